"""HPI's reconstruction loss for inpainting (Hung et al., "Hierarchical Probabilistic Ultrasound Image Inpainting via
Variational Inference", DGM4MICCAI 2021, Eq. 3): the L1 difference of the Laplacian pyramids of the completed and the
true image, level ``k`` weighted by ``r**k`` (coarse structure counts more) and each pixel by ``alpha**(-d_k)``, where
``d_k`` is the Gaussian pyramid of the distance (pixels) to the nearest known pixel: deep inside a hole, where many
completions are plausible, a pixel-wise error counts less than at the hole's edge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.transforms.utils import distance_transform_edt
from torch.nn.modules.loss import _Loss

__all__ = ["gaussian_pyramid", "laplacian_pyramid", "DistanceWeightedLaplacianPyramidLoss"]

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _BINOMIAL.to(x.device, x.dtype)
    x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def gaussian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` images ``(B, C, H / 2**k, W / 2**k)``: ``x``, then repeatedly a 5-tap binomial blur and halving."""
    out = [x]
    for _ in range(int(levels) - 1):
        out.append(_blur(out[-1])[:, :, ::2, ::2])
    return out


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels ``G_k - up(G_{k+1})`` and, last, the coarsest Gaussian level (sum of the upsampled levels
    rebuilds ``x`` up to the upsampling's accuracy)."""
    g = gaussian_pyramid(x, levels)
    bands = [a - F.interpolate(b, size=a.shape[2:], mode="bilinear", align_corners=False) for a, b in zip(g[:-1], g[1:])]
    return bands + [g[-1]]


class DistanceWeightedLaplacianPyramidLoss(_Loss):
    """``sum_k r**k mean(alpha**(-d_k) |L_k(input) - L_k(target)|)`` for 2D images ``(B, C, H, W)`` and a hole mask
    ``(B, 1, H, W)`` (1 = missing, 0 = known); ``d_0`` is the Euclidean distance in pixels from each pixel to the
    nearest known pixel (MONAI's ``distance_transform_edt``; 0 on known pixels), ``d_k`` its Gaussian pyramid.

    Args:
        levels: pyramid levels (the image needs at least ``2 ** (levels - 1)`` pixels per side).
        r: level weight base (> 0); the paper weights coarser levels more (``r > 1``) without giving the value.
        alpha: distance weight base (>= 1; 1 weights every pixel alike).
    """

    def __init__(self, levels: int = 4, r: float = 2.0, alpha: float = 1.1) -> None:
        super().__init__()
        if int(levels) < 1 or not float(r) > 0 or not float(alpha) >= 1:
            raise ValueError(f"levels >= 1, r > 0 and alpha >= 1 expected, got {levels}, {r}, {alpha}.")
        self.levels, self.r, self.alpha = int(levels), float(r), float(alpha)

    def forward(self, input: torch.Tensor, target: torch.Tensor, hole_mask: torch.Tensor) -> torch.Tensor:
        if input.ndim != 4 or input.shape != target.shape:
            raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)}: expected equal (B, C, H, W).")
        if hole_mask.shape != (input.shape[0], 1, *input.shape[2:]):
            raise ValueError(f"hole_mask: expected shape {(input.shape[0], 1, *input.shape[2:])}, got {tuple(hole_mask.shape)}.")
        if min(input.shape[2:]) < 2 ** (self.levels - 1):
            raise ValueError(f"images of {tuple(input.shape[2:])} pixels are too small for {self.levels} pyramid levels.")
        with torch.no_grad():
            hole = hole_mask.detach() > 0.5
            if hole.flatten(1).all(dim=1).any():
                raise ValueError("hole_mask: an image has no known pixel (all 1); distances to known pixels are undefined.")
            dist = torch.stack([torch.as_tensor(distance_transform_edt(h.float()), dtype=input.dtype, device=input.device)
                                for h in hole])  # per image: (1, H, W), 0 on known pixels
            weights = [self.alpha ** (-d) for d in gaussian_pyramid(dist, self.levels)]
        loss = input.new_zeros(())
        for k, (a, b, w) in enumerate(zip(laplacian_pyramid(input, self.levels), laplacian_pyramid(target, self.levels), weights)):
            loss = loss + self.r**k * (w * (a - b).abs()).mean()
        return loss
