"""Active learning on unbalanced medical image classification (Chong et al., DGM4MICCAI/DALI 2021; seeds/002): the
chest-radiograph benchmark's data, classifier evaluation and study report. The loop, scores and query strategies are
generic (``monai_ext.engines.ActiveLearningLoop``, ``monai_ext.metrics.acquisition``,
``monai_ext.engines.active_queries``). Bundle: ``bundles/active_learning_cxr``.
"""

from __future__ import annotations

from .data import CXR_LABEL_NAMES, cxr_datalist
from .evaluation import evaluate_classifier
from .inference import RADIOGRAPH_SUFFIXES, classify_radiographs
from .study import active_learning_report

__all__ = [
    "CXR_LABEL_NAMES",
    "RADIOGRAPH_SUFFIXES",
    "active_learning_report",
    "classify_radiographs",
    "cxr_datalist",
    "evaluate_classifier",
]
