"""Synthetic data in real units: one module per anatomy or modality (chest CT, ultrasound, brain MRI, brain tumour
MRI, hand MRI), plus the writers that put a phantom data set on disk as NIfTI or DICOM. The embedded default data of the bundles.
The chest CT's acquisition and patient variety (issue 28) is in ``chest_ct_acquisition``.
"""

from __future__ import annotations

from .brain_mri import (
    brain_subject_affine,
    generate_brain_subject,
    mni152_t1,
    mni152_tissue_maps,
    render_brain_subject,
    sample_brain_subject_params,
    synthesize_brain_ad_dataset,
)
from .brain_tumor_mri import (
    BRAIN_TUMOR_CONTRASTS,
    BRAIN_TUMOR_LABELS,
    BrainTumorCase,
    brain_tumor_affine,
    generate_brain_tumor_case,
    render_brain_tumor_case,
    sample_brain_tumor_params,
    synthesize_brain_tumor_dataset,
)
from .chest_ct import (
    HU_RANGE,
    LABELS,
    TISSUE_NAMES,
    ChestCTCase,
    generate_chest_ct,
    phantom_affine,
)
from .chest_ct_acquisition import (
    ACQUISITION_OPTIONS,
    apply_kernel,
    crop_affine,
    kernel_noise,
    sample_acquisition,
)
from .chest_ct_dataset import (
    case_seed,
    fewshot_folds,
    synth,
    synthesize_dataset,
)
from .dicom_series import CT_IMAGE_STORAGE, write_dicom_series
from .hand_mri import (
    HAND_DEFAULT_SHAPE,
    HAND_DEFAULT_SPACING,
    HAND_LABELS,
    HAND_TISSUES,
    generate_hand_case,
    hand_affine,
    hand_landmarks,
    render_hand_case,
    render_hand_tissues,
    sample_hand_params,
    synthesize_hand_dataset,
)
from .nifti_writer import save_phantom_nifti
from .seeds import check_seed, derive_seed
from .ultrasound import (
    DISPLAY_CEILING_DB,
    SPEED_OF_SOUND_M_S,
    ULTRASOUND_STYLES,
    US_LABELS,
    UltrasoundStyle,
    blend_ultrasound_styles,
    generate_us_anatomy,
    sample_ultrasound_style,
    simulate_bmode,
    synthesize_us_dataset,
    ultrasound_fov_mask,
)

__all__ = [
    "brain_subject_affine",
    "generate_brain_subject",
    "mni152_t1",
    "mni152_tissue_maps",
    "render_brain_subject",
    "sample_brain_subject_params",
    "synthesize_brain_ad_dataset",
    "BRAIN_TUMOR_CONTRASTS",
    "BRAIN_TUMOR_LABELS",
    "BrainTumorCase",
    "brain_tumor_affine",
    "generate_brain_tumor_case",
    "render_brain_tumor_case",
    "sample_brain_tumor_params",
    "synthesize_brain_tumor_dataset",
    "ChestCTCase",
    "generate_chest_ct",
    "HU_RANGE",
    "LABELS",
    "phantom_affine",
    "TISSUE_NAMES",
    "ACQUISITION_OPTIONS",
    "apply_kernel",
    "crop_affine",
    "kernel_noise",
    "sample_acquisition",
    "case_seed",
    "fewshot_folds",
    "synth",
    "synthesize_dataset",
    "CT_IMAGE_STORAGE",
    "write_dicom_series",
    "save_phantom_nifti",
    "derive_seed",
    "check_seed",
    "blend_ultrasound_styles",
    "DISPLAY_CEILING_DB",
    "generate_us_anatomy",
    "sample_ultrasound_style",
    "simulate_bmode",
    "SPEED_OF_SOUND_M_S",
    "synthesize_us_dataset",
    "ultrasound_fov_mask",
    "ULTRASOUND_STYLES",
    "UltrasoundStyle",
    "US_LABELS",
    "generate_hand_case",
    "HAND_DEFAULT_SHAPE",
    "HAND_DEFAULT_SPACING",
    "HAND_LABELS",
    "HAND_TISSUES",
    "hand_affine",
    "hand_landmarks",
    "render_hand_case",
    "render_hand_tissues",
    "sample_hand_params",
    "synthesize_hand_dataset",
]
