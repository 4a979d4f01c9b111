"""Label noise in segmentation networks, biased vs unbiased errors (Vorontsov & Kadoury, DGM4MICCAI 2021; seeds/002):
2D axial brain-tumour slices, training-mask corruptions by name, the Seg / AE / MT models and their iteration.
Bundle: ``bundles/label_noise_bias_study``.
"""

from __future__ import annotations

from .corruption import (
    AUGMENTATIONS,
    MODELS,
    NOISE_MODES,
    RECORD_KEY,
    LabelCorruptionRecordd,
    augmentation_transforms,
    check_noise,
    check_study_switches,
    corrupt_training_list,
    corruption_transforms,
)
from .iteration import SemiSupervisedIteration
from .networks import DualDecoderUNet
from .study import read_metrics_csv, relative_dice_report
from .slices import SLICE_LIST_FILE, load_slice_transforms, tumour_slice_datalist

__all__ = [
    "AUGMENTATIONS",
    "MODELS",
    "NOISE_MODES",
    "RECORD_KEY",
    "LabelCorruptionRecordd",
    "SLICE_LIST_FILE",
    "DualDecoderUNet",
    "SemiSupervisedIteration",
    "augmentation_transforms",
    "check_noise",
    "check_study_switches",
    "corrupt_training_list",
    "corruption_transforms",
    "load_slice_transforms",
    "read_metrics_csv",
    "relative_dice_report",
    "tumour_slice_datalist",
]
