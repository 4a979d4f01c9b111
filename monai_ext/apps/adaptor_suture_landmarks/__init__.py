"""Suture-point detection in endoscopic mitral-valve frames across the simulator -> surgery domain gap: both AdaptOR
2021 papers of DGM4MICCAI/DALI 2021 (seeds/002), "Improved Heatmap-Based Landmark Detection" (heatmap U-Net, soft
Dice, Otsu post-processing, CycleGAN-translated simulator frames) and "Cross-Domain Landmarks Detection in Mitral
Regurgitation" (joint training with a weight lambda_sim on the simulator frames, top-k peak post-processing).
Generic pieces: ``monai_ext.transforms`` (``PointListd``, ``MultiPointHeatmapd``, ``HeatmapToPointsOtsud``,
``HeatmapPeaksTopKd``), ``monai_ext.metrics.PointMatchF1Metric``, ``monai_ext.engines.SampleWeightedTrainer``,
``monai_ext.networks.NarrowResNetEncoder``, ``monai_ext.handlers.PointsWriter``, the phantom
``monai_ext.phantoms.valve_endoscopy`` and the dataset list ``monai_ext.datalists.adaptor_frames``. Bundle:
``bundles/adaptor_suture_landmarks``.
"""

from __future__ import annotations

from .collaborative import CollaborativeHeatmapTrainer, bernoulli_kl
from .domain_adversarial import DomainAdversarialHeatmapTrainer
from .datalist import SIM_FRAME_CHOICES, adaptor_datalist, domain_balanced_weights, translated_sim_items
from .translation import cyclegan_pairs, translate_frames

__all__ = [
    "CollaborativeHeatmapTrainer",
    "DomainAdversarialHeatmapTrainer",
    "SIM_FRAME_CHOICES",
    "adaptor_datalist",
    "bernoulli_kl",
    "cyclegan_pairs",
    "domain_balanced_weights",
    "translate_frames",
    "translated_sim_items",
]
