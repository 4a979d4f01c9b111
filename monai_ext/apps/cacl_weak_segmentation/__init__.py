"""Weakly supervised segmentation of diffuse patterns from image labels: CaCL, class-aware codebook learning (Deng
et al., "CaCL: Class-aware codebook learning for weakly supervised segmentation on diffuse image patterns",
DGM4MICCAI/DALI 2021; seeds/002). The codebook, network, losses, training engine, mask inferer, data lists and the
baselines of the paper's Table 1 (colour deconvolution, Grad-CAM). Generic pieces live by kind:
:class:`monai_ext.engines.HistoryImagePool`, :class:`monai_ext.metrics.EmptyAwareOverlapMetric`,
:class:`monai_ext.transforms.StainDeconvolution`, :mod:`monai_ext.phantoms.ihc_duodenum`,
:func:`monai_ext.datalists.labelled_patch_datalist`. Bundle: ``bundles/cacl_weak_segmentation``.
"""

from __future__ import annotations

from .baselines import (
    BASELINES,
    best_threshold,
    dab_maps,
    evaluate_baseline,
    gradcam_maps,
    load_scored_patches,
    overlap_summary,
)
from .datalist import cacl_datalist, check_rgb_patches, evaluation_items, patch_images
from .inferer import CodebookMaskInferer
from .losses import (
    CODEBOOK_LOSSES,
    cacl_commitment_loss,
    cacl_reconstruction_loss,
    class_code_margin_loss,
    discriminative_codebook_loss,
)
from .network import CACL_MASK_MODES, CaCLNet
from .quantizer import ClassAwareCodebookQuantizer, CodebookQuantization
from .realdata import perturbation_check, real_ihc_check
from .study import STUDY_METHODS, STUDY_VARIANTS, run_study_method, study_variants_report
from .trainer import CACL_CLASSES, CaCLTrainer, image_labels

__all__ = [
    "BASELINES",
    "STUDY_METHODS",
    "STUDY_VARIANTS",
    "study_variants_report",
    "evaluate_baseline",
    "run_study_method",
    "CACL_CLASSES",
    "CACL_MASK_MODES",
    "CODEBOOK_LOSSES",
    "CaCLNet",
    "CaCLTrainer",
    "ClassAwareCodebookQuantizer",
    "CodebookMaskInferer",
    "CodebookQuantization",
    "best_threshold",
    "cacl_commitment_loss",
    "cacl_datalist",
    "cacl_reconstruction_loss",
    "check_rgb_patches",
    "class_code_margin_loss",
    "dab_maps",
    "discriminative_codebook_loss",
    "evaluation_items",
    "gradcam_maps",
    "image_labels",
    "load_scored_patches",
    "overlap_summary",
    "patch_images",
    "perturbation_check",
    "real_ihc_check",
]
