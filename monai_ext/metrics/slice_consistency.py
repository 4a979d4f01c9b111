"""How a generated volume varies from one axial slice to the next (CT-SGAN evaluation, Pesaranghader et al. 2021).

A slice-by-slice generator can make volumes whose slices are each plausible but whose texture is frozen
along the slice axis: in coronal and sagittal views that shows as streaks. These measures put numbers on it;
compare them with the same measures of real volumes. Volumes are ``(B, 1, H, W, D)`` (slice axis last),
intensities in ``[-1, 1]`` (a HU window), as in :mod:`monai_ext.apps.ctsgan_chest_ct_synthesis.networks`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "adjacent_slice_mad",
    "slice_pair_mad",
    "slice_mean_std",
    "highpass_z_correlation",
    "seam_ratio",
    "z_power_spectrum",
    "z_spectrum_log_distance",
    "bright_columns",
]


def _check(volumes: torch.Tensor) -> torch.Tensor:
    if volumes.ndim != 5 or volumes.shape[1] != 1 or volumes.shape[-1] < 2:
        raise ValueError(f"volumes must have shape (B, 1, H, W, D) with D >= 2, got {tuple(volumes.shape)}.")
    return volumes.float()


def adjacent_slice_mad(volumes: torch.Tensor) -> float:
    """Mean absolute difference between adjacent axial slices (intensity units of ``volumes``)."""
    v = _check(volumes)
    return float((v[..., 1:] - v[..., :-1]).abs().mean())


def slice_pair_mad(volumes: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W, D)`` -> ``(B, D - 1)``: per volume, the mean absolute difference between slices ``j`` and
    ``j + 1`` (intensity units of ``volumes``, float32); differentiable, so losses can use it as well."""
    v = volumes.float()
    return (v[..., 1:] - v[..., :-1]).abs().mean(dim=(1, 2, 3))


def seam_ratio(volumes: torch.Tensor, quantile: float = 0.9) -> float:
    """How unevenly a volume changes along the slice axis: the ``quantile`` (0.9) of the per-slice-pair mean
    absolute differences divided by their median, averaged over volumes.

    Seams (a few neighbouring slices that do not match while the rest change slowly) raise it; a volume that
    changes by the same amount between every pair of slices scores 1. Needs ``D >= 3``.
    """
    v = _check(volumes)
    if v.shape[-1] < 3:
        raise ValueError(f"seam_ratio needs at least 3 slices, got {v.shape[-1]}.")
    d = slice_pair_mad(v)
    ratio = torch.quantile(d, float(quantile), dim=1) / d.median(dim=1).values.clamp_min(1e-12)
    return float(ratio.mean())


def slice_mean_std(volumes: torch.Tensor) -> float:
    """Standard deviation of the slice means along the slice axis, averaged over volumes
    (0 for a volume that repeats one slice)."""
    v = _check(volumes)
    return float(v.mean(dim=(1, 2, 3)).std(dim=-1).mean())


def highpass_z_correlation(volumes: torch.Tensor, background: float = -0.99) -> float:
    """Pearson correlation, along the slice axis, of the fine in-plane texture of adjacent slices.

    The texture is each slice minus its 3 x 3 in-plane mean (a high-pass in-plane only), taken where both
    slices are above ``background`` (inside the body, for a [-1, 1] HU window). 1: the texture repeats from
    slice to slice (streaks along z); 0: independent texture in every slice. Pooled over all volumes.
    """
    v = _check(volumes)
    b, _, h, w, d = v.shape
    slices = v[:, 0].permute(0, 3, 1, 2)  # (B, D, H, W)
    s = slices.reshape(b * d, 1, h, w)
    hp = (s - F.avg_pool2d(F.pad(s, (1, 1, 1, 1), mode="replicate"), 3, stride=1)).reshape(b, d, h, w)
    inside = slices > background
    m = inside[:, 1:] & inside[:, :-1]
    if int(m.sum()) < 2:
        raise ValueError(f"fewer than 2 voxel pairs above background {background}: nothing to correlate.")
    x, y = hp[:, 1:][m].double(), hp[:, :-1][m].double()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()).clamp_min(1e-12))


def bright_columns(reference: torch.Tensor, quantile: float = 0.99, min_fraction: float = 0.1) -> torch.Tensor:
    """In-plane positions where the brightest voxels of ``reference`` recur along z: in chest CT, the bone.

    A voxel is bright when it is at or above the ``quantile`` of all voxels of ``reference``; a column
    ``(i, j)`` is selected when at least ``min_fraction`` of its voxels, over all slices and volumes, are bright.
    With the defaults on the bundle's 64 x 64 chest volumes (6 mm) that is about 100 columns: the vertebral
    bodies and arches and the sternum, the columns whose spectrum along z shows whether vertebrae repeat as
    blocks.
    Defined by intensity rank only, so it needs no HU window.

    Args:
        reference: ``(B, 1, H, W, D)`` real volumes.
        quantile: in ``(0, 1)``, the intensity rank above which a voxel counts as bright.
        min_fraction: in ``(0, 1]``, the share of a column's voxels that must be bright.

    Returns:
        ``(H, W)`` bool mask.
    """
    v = _check(reference)
    if not 0.0 < float(quantile) < 1.0 or not 0.0 < float(min_fraction) <= 1.0:
        raise ValueError(f"quantile must be in (0, 1) and min_fraction in (0, 1], got {quantile}, {min_fraction}.")
    flat = v.flatten()
    level = torch.kthvalue(flat, max(1, min(flat.numel(), int(round(float(quantile) * flat.numel()))))).values
    return (v >= level).float().mean(dim=(0, 1, 4)) >= float(min_fraction)


def z_power_spectrum(
    volumes: torch.Tensor,
    segment: int = 16,
    background: float = -0.99,
    pool: int = 1,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean power spectrum along the slice axis of the columns inside the body; differentiable.

    Each voxel column ``volumes[b, 0, i, j, :]`` is cut into segments of ``segment`` slices (hop
    ``segment // 2``); a segment counts when all its voxels are above ``background`` (inside the body, for a
    [-1, 1] HU window). Its mean is removed, a Hann window applied, and ``|rfft|^2`` averaged over all counted
    segments of all volumes. Too little power at the upper frequencies means texture that runs on along z
    (streaks in coronal and sagittal views); spikes there come from seams.

    With ``pool > 1`` the columns are those of the volumes averaged over ``pool x pool`` in-plane blocks (a
    block counts only where all its voxels are above ``background``): variation along z that is coherent over
    the block keeps its power, while columns that vary independently of their neighbours average out. That
    separates structures that repeat along z as wholes (vertebrae) from per-column dashes.

    Args:
        volumes: ``(B, 1, H, W, D)``, ``D >= segment``.
        segment: segment length in slices (>= 4); frequency ``k`` is ``k / segment`` cycles per slice.
        background: intensity at or below which a voxel is outside the body.
        pool: in-plane block size in voxels (>= 1; ``H`` and ``W`` are cut down to multiples of it).
        columns: optional ``(H, W)`` bool mask (e.g. :func:`bright_columns`): only these columns count (a block
            only when all its columns are in it).

    Returns:
        ``(segment // 2 + 1,)`` power per frequency (squared intensity units), float32.
    """
    v = _check(volumes)
    if int(segment) < 4 or v.shape[-1] < int(segment):
        raise ValueError(f"segment must be >= 4 and <= the {v.shape[-1]} slices of volumes, got {segment}.")
    segment, pool = int(segment), int(pool)
    if pool < 1 or pool > min(v.shape[2:4]):
        raise ValueError(f"pool must be in 1..{min(v.shape[2:4])} (the in-plane size), got {pool}.")
    outside = v <= background
    if columns is not None:
        columns = torch.as_tensor(columns, dtype=torch.bool, device=v.device)
        if tuple(columns.shape) != tuple(v.shape[2:4]):
            raise ValueError(f"columns must be an (H, W) = {tuple(v.shape[2:4])} mask, got {tuple(columns.shape)}.")
        outside = outside | ~columns[None, None, :, :, None]
    outside = outside.to(v.dtype)
    if pool > 1:
        v = F.avg_pool3d(v, (pool, pool, 1))
        outside = F.max_pool3d(outside, (pool, pool, 1))
    segs = v[:, 0].unfold(-1, segment, max(segment // 2, 1))  # (B, H', W', n, segment)
    inside = (outside[:, 0].unfold(-1, segment, max(segment // 2, 1)) == 0).all(dim=-1)
    if int(inside.sum()) == 0:
        where = "" if columns is None else " in the selected columns"
        raise ValueError(
            f"no {segment}-slice column segment (in-plane blocks of {pool}){where} lies fully above background "
            f"{background}."
        )
    x = segs[inside]
    x = x - x.mean(dim=-1, keepdim=True)
    window = torch.hann_window(segment, periodic=False, dtype=x.dtype, device=x.device)
    return (torch.fft.rfft(x * window, dim=-1).abs() ** 2).mean(dim=0)


def z_spectrum_log_distance(
    volumes: torch.Tensor,
    reference: torch.Tensor,
    segment: int = 16,
    background: float = -0.99,
    eps: float = 1e-6,
    pool: int = 1,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over frequencies of ``|log P(k) - log P_ref(k)|``, ``P`` the :func:`z_power_spectrum` of each set
    (columns of ``pool x pool`` in-plane blocks; only the ``columns`` mask's, when given, in both sets).

    Unitless: 0 when the spectra along z agree, ``log 2 = 0.69`` when every frequency has twice or half the
    reference power. Differentiable w.r.t. ``volumes``; ``reference`` is taken without gradient. Both
    ``(B, 1, H, W, D)`` with ``D >= segment`` (the batch sizes may differ). Returns a 0-d tensor.
    """
    with torch.no_grad():
        target = z_power_spectrum(reference, segment=segment, background=background, pool=pool, columns=columns)
    p = z_power_spectrum(volumes, segment=segment, background=background, pool=pool, columns=columns)
    return (torch.log(p + eps) - torch.log(target + eps)).abs().mean()
