"""Segmentation from sparse planar annotations with a multi-planar U-Net (Laprade et al., "How few annotations
are needed for segmentation using a multi-planar U-Net?", DGM4MICCAI/DALI 2021; seeds/002): the split of the cases,
the sparse training data of a run (annotated planes, training planes, sparse volumes) and the regression of Dice on
the annotation effort. The plane transforms, the ignore-masked loss and the multi-planar inferer are generic
(:mod:`monai_ext.transforms`, :mod:`monai_ext.losses`, :mod:`monai_ext.inferers`).
Bundle: ``bundles/multiplanar_unet_sparse``.
"""

from __future__ import annotations

from .datalist import multiplanar_datalist
from .regression import annotation_regression_report, fit_log_linear, study_fit_rows
from .samples import (
    ANNOTATIONS,
    IGNORE,
    MODELS,
    annotated_only,
    check_sparse_switches,
    load_volume,
    planes_per_volume,
    sparse_plane_samples,
    sparse_training_data,
    sparse_validation_volumes,
    sparse_volume_samples,
    sparse_volume_transforms,
)

__all__ = [
    "ANNOTATIONS",
    "IGNORE",
    "MODELS",
    "annotated_only",
    "annotation_regression_report",
    "check_sparse_switches",
    "fit_log_linear",
    "load_volume",
    "multiplanar_datalist",
    "planes_per_volume",
    "sparse_plane_samples",
    "sparse_training_data",
    "sparse_validation_volumes",
    "sparse_volume_samples",
    "study_fit_rows",
    "sparse_volume_transforms",
]
