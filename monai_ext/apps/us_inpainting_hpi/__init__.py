"""HPI: hierarchical probabilistic ultrasound image inpainting via variational inference (Hung, Sun, Chen, Galeotti,
DGM4MICCAI 2021): the conditional hierarchical VAE, its objective and training iteration, the data lists and fixed
evaluation holes, and the evaluation against a deterministic U-Net and biharmonic inpainting. Bundle:
``bundles/us_inpainting_hpi``.
"""

from __future__ import annotations

from .evaluation import (
    INPAINTING_METHODS,
    biharmonic_inpaint,
    evaluate_inpainting,
    inpaint,
    inpainted_image_sets,
    load_hpi_network,
)
from .data import free_form_examples, hidden_needle_examples, hpi_datalist, inference_examples
from .inference import inpaint_folder
from .networks import HPIBranch, HPIInpaintingNet, hpi_network_input
from .objective import HPIInpaintingIteration, HPIInpaintingLoss
from .transforms import (
    NeedleGapMask,
    RandNeedleGapMask,
    RandNeedleGapMaskD,
    RandNeedleGapMaskd,
    RandNeedleGapMaskDict,
    needle_gap_mask,
)

__all__ = [
    "HPIBranch",
    "HPIInpaintingNet",
    "hpi_network_input",
    "HPIInpaintingIteration",
    "HPIInpaintingLoss",
    "hpi_datalist",
    "free_form_examples",
    "hidden_needle_examples",
    "inference_examples",
    "INPAINTING_METHODS",
    "load_hpi_network",
    "biharmonic_inpaint",
    "inpaint",
    "evaluate_inpainting",
    "inpaint_folder",
    "inpainted_image_sets",
    "needle_gap_mask",
    "NeedleGapMask",
    "RandNeedleGapMask",
    "RandNeedleGapMaskd",
    "RandNeedleGapMaskD",
    "RandNeedleGapMaskDict",
]
