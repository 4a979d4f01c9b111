"""Transforms that MONAI lacks (array and dictionary versions), generic across methods.
"""

from __future__ import annotations

from .body_mask import (
    MaskOutsideBody,
    MaskOutsideBodyD,
    MaskOutsideBodyd,
    MaskOutsideBodyDict,
    body_outline,
    set_to_background,
)
from .component_majority import (
    ComponentMajorityLabel,
    ComponentMajorityLabelD,
    ComponentMajorityLabeld,
    ComponentMajorityLabelDict,
)
from .gas_components import (
    RemoveDarkComponents,
    RemoveDarkComponentsD,
    RemoveDarkComponentsd,
    RemoveDarkComponentsDict,
)
from .hu_window import hu_to_unit, unit_to_hu
from .input_checks import (
    CheckLabel,
    CheckLabelD,
    CheckLabeld,
    CheckLabelDict,
    CheckVolume,
    CheckVolumeD,
    CheckVolumed,
    CheckVolumeDict,
    LoadScan,
    LoadScanD,
    LoadScand,
    LoadScanDict,
    ScanInputError,
    filename_of,
    unwrap_transform_error,
)
from .load_contrasts import LoadContrasts, LoadContrastsD, LoadContrastsd, LoadContrastsDict
from .label_mapping import MapLabels, MapLabelsD, MapLabelsd, MapLabelsDict
from .load_ultrasound import (
    ULTRASOUND_IMAGE_SUFFIXES,
    LoadUltrasound,
    LoadUltrasoundD,
    LoadUltrasoundd,
    LoadUltrasoundDict,
    read_ultrasound_image,
)
from .nodule_erase import NoduleErase, NoduleEraseD, NoduleErased, NoduleEraseDict
from .nodule_geometry import (
    NODULE_SHAPES,
    NODULE_TYPES,
    lung_mask_from_hu,
    nodule_mask_like,
)
from .nodule_insert import (
    NoduleInsert,
    NoduleInsertD,
    NoduleInsertd,
    NoduleInsertDict,
    RandNoduleInsert,
    RandNoduleInsertD,
    RandNoduleInsertd,
    RandNoduleInsertDict,
)
from .reload_original import (
    ReloadOriginal,
    ReloadOriginalD,
    ReloadOriginald,
    ReloadOriginalDict,
)

__all__ = [
    "set_to_background",
    "RemoveDarkComponents",
    "RemoveDarkComponentsd",
    "RemoveDarkComponentsD",
    "RemoveDarkComponentsDict",
    "ComponentMajorityLabel",
    "ComponentMajorityLabeld",
    "ComponentMajorityLabelD",
    "ComponentMajorityLabelDict",
    "body_outline",
    "MaskOutsideBody",
    "MaskOutsideBodyd",
    "MaskOutsideBodyD",
    "MaskOutsideBodyDict",
    "hu_to_unit",
    "unit_to_hu",
    "CheckLabel",
    "CheckLabeld",
    "CheckLabelD",
    "CheckLabelDict",
    "CheckVolume",
    "CheckVolumed",
    "CheckVolumeD",
    "CheckVolumeDict",
    "LoadScan",
    "LoadScand",
    "LoadScanD",
    "LoadScanDict",
    "ScanInputError",
    "filename_of",
    "unwrap_transform_error",
    "LoadContrasts",
    "LoadContrastsd",
    "LoadContrastsD",
    "LoadContrastsDict",
    "MapLabels",
    "MapLabelsd",
    "MapLabelsD",
    "MapLabelsDict",
    "LoadUltrasound",
    "LoadUltrasoundd",
    "LoadUltrasoundD",
    "LoadUltrasoundDict",
    "read_ultrasound_image",
    "ULTRASOUND_IMAGE_SUFFIXES",
    "NoduleErase",
    "NoduleErased",
    "NoduleEraseD",
    "NoduleEraseDict",
    "lung_mask_from_hu",
    "nodule_mask_like",
    "NODULE_SHAPES",
    "NODULE_TYPES",
    "NoduleInsert",
    "NoduleInsertd",
    "NoduleInsertD",
    "NoduleInsertDict",
    "RandNoduleInsert",
    "RandNoduleInsertd",
    "RandNoduleInsertD",
    "RandNoduleInsertDict",
    "ReloadOriginal",
    "ReloadOriginald",
    "ReloadOriginalD",
    "ReloadOriginalDict",
]
