"""Segmentation from imperfect 3D bounding boxes (Redekop et al., "Medical image segmentation with imperfect 3D
bounding boxes", DGM4MICCAI/DALI 2021; seeds/002): box files, the patch-classifier box correction and the 2.5D
training slices per kind of supervision. The box losses (Kervadec et al.) are generic: :mod:`monai_ext.losses`.
Bundle: ``bundles/box_supervised_seg``.
"""

from __future__ import annotations

from .boxes import BOX_COLUMNS, case_name, label_box_mm, read_box_file, write_box_file
from .correction import SliceBoxCorrector, box_patch_samples, patch_classifier, tile_box, tile_starts
from .datalist import DEFAULT_BOX_FILE, box_seg_datalist, synthesize_box_dataset
from .slices import (
    BOX_SOURCES,
    box_training_slices,
    check_box_switches,
    corrector_training_patches,
    load_box_corrector,
    load_box_volume,
    volume_transforms,
)

__all__ = [
    "BOX_COLUMNS",
    "BOX_SOURCES",
    "DEFAULT_BOX_FILE",
    "SliceBoxCorrector",
    "box_patch_samples",
    "box_seg_datalist",
    "box_training_slices",
    "case_name",
    "check_box_switches",
    "corrector_training_patches",
    "label_box_mm",
    "load_box_corrector",
    "load_box_volume",
    "patch_classifier",
    "read_box_file",
    "synthesize_box_dataset",
    "tile_box",
    "tile_starts",
    "volume_transforms",
    "write_box_file",
]
