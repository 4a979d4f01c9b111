"""Transforms that MONAI lacks (array and dictionary versions), generic across methods.
"""

from __future__ import annotations

from .body_mask import MaskOutsideBody, MaskOutsideBodyd, body_outline
from .hu_window import hu_to_unit, unit_to_hu
from .input_checks import (
    CheckLabel,
    CheckLabeld,
    CheckVolume,
    CheckVolumed,
    LoadScan,
    LoadScand,
    ScanInputError,
    unwrap_transform_error,
)
from .load_ultrasound import (
    ULTRASOUND_IMAGE_SUFFIXES,
    LoadUltrasound,
    LoadUltrasoundd,
    read_ultrasound_image,
)
from .nodule_erase import NoduleErase, NoduleErased
from .nodule_geometry import (
    NODULE_SHAPES,
    NODULE_TYPES,
    lung_mask_from_hu,
    nodule_mask_like,
)
from .nodule_insert import NoduleInsert, NoduleInsertd, RandNoduleInsertd
from .reload_original import ReloadOriginal, ReloadOriginald

__all__ = [
    "body_outline",
    "MaskOutsideBody",
    "MaskOutsideBodyd",
    "hu_to_unit",
    "unit_to_hu",
    "CheckLabel",
    "CheckLabeld",
    "CheckVolume",
    "CheckVolumed",
    "LoadScan",
    "LoadScand",
    "ScanInputError",
    "unwrap_transform_error",
    "LoadUltrasound",
    "LoadUltrasoundd",
    "read_ultrasound_image",
    "ULTRASOUND_IMAGE_SUFFIXES",
    "NoduleErase",
    "NoduleErased",
    "lung_mask_from_hu",
    "nodule_mask_like",
    "NODULE_SHAPES",
    "NODULE_TYPES",
    "NoduleInsert",
    "NoduleInsertd",
    "RandNoduleInsertd",
    "ReloadOriginal",
    "ReloadOriginald",
]
