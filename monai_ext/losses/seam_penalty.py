"""Seam penalty for slice-by-slice volume generators (an addition to CT-SGAN, Pesaranghader et al. 2021).

A generator that renders a volume one axial slice at a time can make volumes that change slowly along the
slice axis and then jump between two neighbouring slices: a seam, seen as a horizontal line in coronal and
sagittal views. With ``d_j`` the mean absolute difference between slices ``j`` and ``j + 1``, a seam is a
``d_j`` much larger than its neighbours ``d_{j-1}`` and ``d_{j+1}``. Real scans hardly ever do this: on the
project's chest phantoms (64 x 64 x 48 at 6 mm) 99 % of the ratios ``q_j = d_j / mean(d_{j-1}, d_{j+1})``
are below 1.27, against 2.26 for the CT-SGAN v0.6.0 generator.

:func:`seam_spikiness` scores this per volume as the mean of ``max(0, log q_j)``; :func:`seam_excess_loss`
penalises a generated batch only for the spikiness it has beyond a real batch, so the term asks for the seams
of real data, not for a volume that changes evenly everywhere.
"""

from __future__ import annotations

import torch

from ..metrics.slice_consistency import slice_pair_mad

__all__ = ["seam_spikiness", "seam_excess_loss"]


def seam_spikiness(volumes: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-volume seam spikiness, differentiable.

    Args:
        volumes: ``(B, C, H, W, D)`` with the slice axis last and ``D >= 4`` (any intensity units: the
            score is a log ratio of differences, so it does not depend on the scale).
        eps: floor of the neighbour mean, so constant stretches do not divide by 0.

    Returns:
        ``(B,)``: the mean over ``j = 1 .. D - 3`` of ``max(0, log(d_j / (0.5 * (d_{j-1} + d_{j+1}))))``,
        ``d_j`` the mean absolute difference of slices ``j`` and ``j + 1``. 0 when no slice pair changes more
        than the mean of its neighbours.
    """
    if volumes.ndim != 5 or volumes.shape[-1] < 4:
        raise ValueError(f"volumes must have shape (B, C, H, W, D) with D >= 4, got {tuple(volumes.shape)}.")
    d = slice_pair_mad(volumes)  # (B, D - 1)
    neighbours = (0.5 * (d[:, :-2] + d[:, 2:])).clamp_min(eps)
    return torch.log(d[:, 1:-1].clamp_min(eps) / neighbours).clamp_min(0.0).mean(dim=1)


def seam_excess_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``max(0, mean spikiness(fake) - mean spikiness(real))``: gradients flow into ``fake`` only.

    Both are ``(B, C, H, W, D)`` slabs of the same depth ``D >= 4`` (e.g. the generated and the real slab of a
    CT-SGAN step, which share their position in the volume).
    """
    if fake.shape[-1] != real.shape[-1]:
        raise ValueError(f"fake and real slabs must have the same depth, got {fake.shape[-1]} and {real.shape[-1]}.")
    with torch.no_grad():
        target = seam_spikiness(real).mean()
    return (seam_spikiness(fake).mean() - target).clamp_min(0.0)
