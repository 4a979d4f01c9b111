"""Few-shot landmark localisation on X-ray: Deep Adaptive Graph trained on a few labelled images, then Few-shot DAG
(mean teacher on noisy inputs, labelled : unlabelled sampling, channel-softmax JS feature consistency; Zhou et al.,
"Semi-supervised Landmark Localization for X-ray with Few-Shot Deep Adaptive Graph", DALI 2021, seeds/002) and a
pseudo-label baseline. Generic pieces: ``monai_ext.networks.DeepAdaptiveGraph``, ``monai_ext.losses``
(``MarginL1LandmarkLoss``, ``ChannelSoftmaxJSDivergenceLoss``), ``monai_ext.handlers`` (``MeanTeacherEMA``,
``LandmarkWriter``), ``monai_ext.metrics.LandmarkErrorMetric``, the phantom ``monai_ext.phantoms.xray_landmarks``
and the dataset list ``monai_ext.datalists.landmark_tables``. Bundle: ``bundles/fewshot_dag_xray_landmarks``.
"""

from __future__ import annotations

from .datalist import dag_datalist, dag_mean_shape, labelled_ratio_weights
from .iteration import DAGIteration

__all__ = ["DAGIteration", "dag_datalist", "dag_mean_shape", "labelled_ratio_weights"]
