"""How dense and how grainy the lung parenchyma of chest-CT volumes is (CT-SGAN evaluation).

A generator can get the lungs' place and shape right and still fill them with mid-grey blobs where real lungs
are dark with a few thin vessels. Two numbers put that into figures: the 90th percentile of the lung voxels'
HU, and the HU RMS of the lung texture at scales of 4-8 voxels, measured in axial patches that lie wholly in
the lung. Compare them with the same numbers of real volumes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..transforms.hu_window import unit_to_hu

__all__ = ["lung_texture"]


def lung_texture(
    volumes: torch.Tensor,
    hu_range: Sequence[float] = (-1000.0, 500.0),
    lung_hu: Sequence[float] = (-980.0, -400.0),
    patch: int = 8,
    band: Sequence[float] = (0.12, 0.25),
    quantile: float = 0.9,
) -> dict:
    """Lung density and in-plane texture of ``volumes``.

    Lung voxels are those with ``lung_hu[0] < HU < lung_hu[1]``: between air (outside the body and in the
    airways, about -1000 HU) and soft tissue. ``lung_hu_p<q>`` is the ``quantile`` of their HU. For the texture,
    every ``patch x patch`` window of every axial slice (stride ``patch // 2``) whose voxels are all lung has its
    mean removed and its 2D power spectrum taken. The spectra are averaged over patches and summed over the
    frequencies whose radius lies in ``(band[0], band[1]]`` cycles per voxel; ``lung_texture_rms_hu`` is the square
    root of that sum over ``patch**2``, i.e. the HU RMS of a patch after a band-pass filter (Parseval). The default
    band holds periods of 4-8 voxels. On the bundle's 6 mm chest volumes the phantoms score -722 HU and 37 HU RMS
    (dark lung, a few thin vessels), CT-SGAN v0.11.0 -598 HU and 63 HU (mid-grey blobs).

    Args:
        volumes: ``(B, 1, H, W, D)`` in ``[-1, 1]`` (``hu_range`` mapped to ``[-1, 1]``), slice axis last.
        hu_range: the HU window of ``volumes``.
        lung_hu: open HU interval of lung voxels.
        patch: in-plane patch size in voxels, >= 4.
        band: radial frequency band in cycles per voxel, ``0 <= band[0] < band[1] <= 0.75``.
        quantile: in ``(0, 1)``.

    Returns:
        dict with ``lung_fraction`` (share of all voxels that are lung), ``lung_hu_p<100*quantile>``,
        ``lung_texture_rms_hu`` and ``lung_patches`` (how many patches it averaged). HU values are nan where there is
        no lung voxel (no whole-lung patch).
    """
    v = torch.as_tensor(volumes)
    if v.ndim != 5 or v.shape[1] != 1:
        raise ValueError(f"volumes must have shape (B, 1, H, W, D), got {tuple(v.shape)}.")
    lo, hi = (float(x) for x in lung_hu)
    if not lo < hi:
        raise ValueError(f"lung_hu must be an interval (low, high) with low < high, got {tuple(lung_hu)}.")
    patch = int(patch)
    if patch < 4 or patch > min(v.shape[2:4]):
        raise ValueError(f"patch must be >= 4 and fit in the {tuple(v.shape[2:4])} slices, got {patch}.")
    f0, f1 = (float(x) for x in band)
    if not 0.0 <= f0 < f1 <= 0.75:
        raise ValueError(f"band must satisfy 0 <= low < high <= 0.75 cycles per voxel, got {tuple(band)}.")
    if not 0.0 < float(quantile) < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}.")
    hu = unit_to_hu(v.detach().float().cpu(), hu_range)[:, 0]  # (B, H, W, D)
    lung = (hu > lo) & (hu < hi)
    key = f"lung_hu_p{round(100 * float(quantile)):d}"
    out = {"lung_fraction": float(lung.float().mean()), key: float("nan"), "lung_texture_rms_hu": float("nan"),
           "lung_patches": 0}
    values = hu[lung]
    if values.numel():
        k = max(1, min(values.numel(), math.ceil(float(quantile) * values.numel())))
        out[key] = float(torch.kthvalue(values, k).values)
    # axial slices as images: (B * D, H, W) -> patches (N, patch, patch)
    step = patch // 2
    slices = hu.permute(0, 3, 1, 2).reshape(-1, *hu.shape[1:3])
    masks = lung.permute(0, 3, 1, 2).reshape(-1, *hu.shape[1:3])
    tiles = slices.unfold(1, patch, step).unfold(2, patch, step).reshape(-1, patch, patch)
    whole = masks.unfold(1, patch, step).unfold(2, patch, step).reshape(-1, patch * patch).all(dim=1)
    tiles = tiles[whole]
    if tiles.shape[0]:
        tiles = tiles - tiles.mean(dim=(1, 2), keepdim=True)
        power = torch.fft.fft2(tiles).abs().pow(2).mean(dim=0)
        freq = torch.fft.fftfreq(patch)
        radius = (freq[:, None] ** 2 + freq[None, :] ** 2).sqrt()
        in_band = (radius > f0) & (radius <= f1)
        out["lung_texture_rms_hu"] = float(power[in_band].sum().sqrt() / patch**2)
        out["lung_patches"] = int(tiles.shape[0])
    return out
