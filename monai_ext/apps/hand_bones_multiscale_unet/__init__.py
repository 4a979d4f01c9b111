"""Bone segmentation in 3D hand MR with the multi-scale U-Net of Kayalibay et al. 2017 (paper 001): the data split
of the bundle and its study helpers (convergence numbers, validation curves). Bundle:
``bundles/hand_bones_multiscale_unet``.
"""

from __future__ import annotations

from .datalist import HAND_SPLIT_SEED, hand_bones_datalist
from .study import convergence_summary, plot_validation_curves

__all__ = [
    "HAND_SPLIT_SEED",
    "convergence_summary",
    "hand_bones_datalist",
    "plot_validation_curves",
]
