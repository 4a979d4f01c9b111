"""Liver and liver-tumour segmentation in CT with a 2D / 2.5D MONAI U-Net (paper 003, a LiTS U-Net project report):
the data split of the bundle (its 2.5D input transform, adjacent slices as channels, is the generic
:class:`monai_ext.transforms.AdjacentSlicesd`). Bundle:
``bundles/liver_tumor_ct_seg``.
"""

from __future__ import annotations

from .active_learning import ACTIVE_STRATEGIES, rank_unlabelled, score_cases, simulate_active_learning
from .fbp_agreement import REFERENCE_KERNELS, kernel_agreement
from .datalist import LIVER_SPLIT_SEED, liver_tumor_datalist
from ...transforms.adjacent_slices import AdjacentSlices, AdjacentSlicesd, AdjacentSlicesD, AdjacentSlicesDict

__all__ = [
    "REFERENCE_KERNELS",
    "kernel_agreement",
    "ACTIVE_STRATEGIES",
    "rank_unlabelled",
    "score_cases",
    "simulate_active_learning",
    "LIVER_SPLIT_SEED",
    "AdjacentSlices",
    "AdjacentSlicesd",
    "AdjacentSlicesD",
    "AdjacentSlicesDict",
    "liver_tumor_datalist",
]
