"""Transforms that MONAI lacks."""
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
from .reload_original import ReloadOriginal, ReloadOriginald
from .body_mask import MaskOutsideBody, MaskOutsideBodyd, body_outline
from .load_ultrasound import LoadUltrasound, LoadUltrasoundd, read_ultrasound_image  # noqa: F401,E402
from .style_transfer import (  # noqa: F401,E402
    RandStyleTransfer,
    RandStyleTransferd,
    StyleInterpolate,
    StyleInterpolated,
    StyleTransfer,
    StyleTransferd,
    restyle_images,
    style_fewshot_datalist,
)
from .nodule_geometry import lung_mask_from_hu, nodule_mask_like  # noqa: F401,E402
from .nodule_insert import NoduleInsert, NoduleInsertd, RandNoduleInsertd  # noqa: F401,E402
from .nodule_erase import NoduleErase, NoduleErased  # noqa: F401,E402
