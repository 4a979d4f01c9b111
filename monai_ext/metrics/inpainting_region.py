"""Scores of an inpainted image where it was filled, as HPI reports them (Hung et al., "Hierarchical Probabilistic
Ultrasound Image Inpainting via Variational Inference", DGM4MICCAI 2021, Table 1): L1, PSNR and SSIM on the hole's
bounding box grown by 5 pixels (MONAI's ``PSNRMetric`` and ``SSIMMetric``), plus the speckle check of the CPU
reproduction: the envelope SNR (median local mean / local standard deviation; about 1.91 for fully developed speckle
in the envelope) inside the hole next to that of the known pixels, and the per-pixel spread of several completions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric
from scipy import ndimage

__all__ = ["hole_bounding_box", "InpaintingRegionMetric", "region_envelope_snr", "completion_spread"]


def hole_bounding_box(hole_mask: torch.Tensor | np.ndarray, margin: int = 5) -> tuple[slice, slice]:
    """Row and column slices of the bounding box of the hole pixels (> 0.5) of a ``(H, W)`` or ``(1, H, W)`` mask,
    grown by ``margin`` pixels and clipped to the image."""
    m = np.asarray(hole_mask.detach().cpu() if isinstance(hole_mask, torch.Tensor) else hole_mask) > 0.5
    m = m.reshape(m.shape[-2:]) if m.ndim == 3 else m
    if m.ndim != 2:
        raise ValueError(f"hole_mask: expected (H, W) or (1, H, W), got shape {m.shape}.")
    rows, cols = np.nonzero(m)
    if rows.size == 0:
        raise ValueError("hole_mask: no hole pixel (all 0); nothing was inpainted.")
    h, w = m.shape
    return (slice(max(rows.min() - margin, 0), min(rows.max() + margin + 1, h)),
            slice(max(cols.min() - margin, 0), min(cols.max() + margin + 1, w)))


class InpaintingRegionMetric:
    """``metric(completed, target, hole_mask)`` for single images ``(C, H, W)`` in ``[0, data_range]``: ``{"l1",
    "psnr", "ssim"}`` on the hole's bounding box grown by ``margin`` pixels. SSIM uses a ``kernel_size`` window, at
    most the box's shorter side (odd)."""

    def __init__(self, margin: int = 5, data_range: float = 1.0, kernel_size: int = 7) -> None:
        self.margin, self.data_range, self.kernel_size = int(margin), float(data_range), int(kernel_size)

    def __call__(self, completed: torch.Tensor, target: torch.Tensor, hole_mask: torch.Tensor) -> dict[str, float]:
        completed, target = torch.as_tensor(completed).float(), torch.as_tensor(target).float()
        if completed.ndim != 3 or completed.shape != target.shape:
            raise ValueError(f"completed {tuple(completed.shape)} and target {tuple(target.shape)}: expected one (C, H, W) shape.")
        if tuple(torch.as_tensor(hole_mask).shape[-2:]) != tuple(completed.shape[1:]):
            raise ValueError(f"hole_mask of shape {tuple(torch.as_tensor(hole_mask).shape)} does not match the image's {tuple(completed.shape[1:])}.")
        rs, cs = hole_bounding_box(hole_mask, self.margin)
        a, b = completed[None, :, rs, cs], target[None, :, rs, cs]
        k = min(self.kernel_size, min(a.shape[2:]))
        k = k if k % 2 else k - 1
        return {
            "l1": float((a - b).abs().mean()),
            "psnr": float(PSNRMetric(max_val=self.data_range)(a, b).mean()),
            "ssim": float(SSIMMetric(spatial_dims=2, data_range=self.data_range, win_size=max(k, 1))(a, b).mean()),
        }


def region_envelope_snr(image: torch.Tensor | np.ndarray, region: torch.Tensor | np.ndarray, window: int = 5) -> float:
    """Median of local mean / local standard deviation (``window`` x ``window`` pixels) over the pixels of
    ``region`` (``(H, W)`` or ``(1, H, W)``, > 0.5) of a grey image ``(H, W)`` or ``(1, H, W)``: the envelope SNR of
    speckle there (about 1.91 for fully developed speckle in a linear envelope; higher after log compression)."""
    a = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float64).squeeze()
    r = np.asarray(region.detach().cpu() if isinstance(region, torch.Tensor) else region).squeeze() > 0.5
    if a.ndim != 2 or a.shape != r.shape:
        raise ValueError(f"image {a.shape} and region {r.shape}: expected one (H, W) grid.")
    m = ndimage.uniform_filter(a, size=int(window), mode="reflect")
    s = np.sqrt(np.maximum(ndimage.uniform_filter(a * a, size=int(window), mode="reflect") - m * m, 0.0))
    keep = r & (s > 1e-6)
    if keep.sum() < 1:
        raise ValueError("region: no pixel with local variation (empty region or a constant image there).")
    return float(np.median(m[keep] / s[keep]))


def completion_spread(completions: Sequence[torch.Tensor] | torch.Tensor, hole_mask: torch.Tensor) -> float:
    """Mean over the hole of the per-pixel standard deviation across several completions ``(K, C, H, W)`` of one
    image (HPI reports it over K = 8 samples): 0 when every completion is the same."""
    x = torch.stack(list(completions)) if not isinstance(completions, torch.Tensor) else completions
    if x.ndim != 4 or len(x) < 2:
        raise ValueError(f"completions: expected at least 2 images as (K, C, H, W), got {tuple(x.shape)}.")
    hole = torch.as_tensor(hole_mask).reshape(x.shape[2:]) > 0.5
    if not hole.any():
        raise ValueError("hole_mask: no hole pixel (all 0).")
    return float(x.float().std(dim=0, unbiased=True).mean(dim=0)[hole].mean())
