"""Synthetic data in real units: one module per anatomy or modality (chest CT, ultrasound, brain MRI),
plus the writers that put a phantom data set on disk as NIfTI or DICOM. The embedded default data of the bundles.
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
]
