"""CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021): 3D chest-CT synthesis with a 2D slice generator and
slice/slab critics, and nodule injection/erasure by inpainting networks. Bundle: ``bundles/ctsgan_chest_ct_synthesis``.
"""

from __future__ import annotations

from .data import (
    VOLUME_HU_WINDOW,
    ct_volume_transforms,
    ctsgan_datalist,
    load_ct_volumes,
)
from .networks import (
    CTSGANCritics,
    CTSGANGenerator,
    CTSGANSlabCritic,
    CTSGANSliceCritic,
    slice_overlap_disagreement,
    slices_to_volume,
    volume_to_slices,
)
from .nodule_inpainting import (
    INPAINT_MODES,
    NODULE_HU_WINDOW,
    NoduleInpaintingGenerator,
    NodulePairCritic,
)
from .nodule_inpainting_trainer import NoduleInpaintingTrainer, inpainting_batch
from .nodule_voi import (
    balance_voi_samples,
    central_region_mask,
    crop_voi,
    ct_nodule_vois,
    eraser_pairs,
    injector_pairs,
    inpaint_ct_voi,
    inserted_nodule_vois,
    learned_voi_inserter,
    nodule_voi_samples,
    phantom_nodule_vois,
    sphere_mask,
)
from .study import (
    NODULE_CLASSIFIER_MODES,
    evaluate_nodule_inpainting,
    nodule_classifier_study,
)
from .trainer import CTSGANTrainer
from .workflows import (
    ctsgan_montage,
    evaluate_ctsgan,
    generate_ctsgan_volumes,
    sample_ctsgan_volumes,
)

__all__ = [
    "ct_volume_transforms",
    "ctsgan_datalist",
    "load_ct_volumes",
    "VOLUME_HU_WINDOW",
    "CTSGANCritics",
    "CTSGANGenerator",
    "CTSGANSlabCritic",
    "CTSGANSliceCritic",
    "slice_overlap_disagreement",
    "slices_to_volume",
    "volume_to_slices",
    "INPAINT_MODES",
    "NODULE_HU_WINDOW",
    "NoduleInpaintingGenerator",
    "NodulePairCritic",
    "inpainting_batch",
    "NoduleInpaintingTrainer",
    "balance_voi_samples",
    "central_region_mask",
    "crop_voi",
    "ct_nodule_vois",
    "eraser_pairs",
    "injector_pairs",
    "inpaint_ct_voi",
    "inserted_nodule_vois",
    "learned_voi_inserter",
    "nodule_voi_samples",
    "phantom_nodule_vois",
    "sphere_mask",
    "NODULE_CLASSIFIER_MODES",
    "evaluate_nodule_inpainting",
    "nodule_classifier_study",
    "CTSGANTrainer",
    "ctsgan_montage",
    "evaluate_ctsgan",
    "generate_ctsgan_volumes",
    "sample_ctsgan_volumes",
]
