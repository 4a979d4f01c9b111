"""L1 landmark loss with a margin (Deep Adaptive Graph, Li et al. ECCV 2020; Few-shot DAG, Zhou et al. DALI 2021):
``max(0, mean |p - t| - m)`` per image, so that the global affine step of a landmark graph is not pushed below the
precision an affine transform can reach (``m`` > 0), and a plain mean L1 with ``m`` = 0 (the local steps)."""

from __future__ import annotations

import torch

from .per_sample import PerSampleLoss

__all__ = ["MarginL1LandmarkLoss"]


class MarginL1LandmarkLoss(PerSampleLoss):
    """``max(0, mean_{landmarks, coordinates} |pred - target| - margin)`` per image.

    ``forward(pred, target)``: points ``(B, N, D)`` in one unit (pixels or mm; ``margin`` in the same unit), or
    ``(L, B, N, D)`` stacked steps, averaged over ``L``. Returns the mean over images (``reduction="mean"``), the
    sum, or ``(B,)`` (``"none"``).

    Args:
        margin: the distance below which the error costs nothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        if not float(margin) >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}.")
        self.margin = float(margin)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim not in (3, 4) or pred.shape[-target.ndim:] != target.shape or target.ndim != 3:
            raise ValueError(f"expected pred (B, N, D) or (L, B, N, D) and target (B, N, D), got {tuple(pred.shape)} "
                             f"and {tuple(target.shape)}.")
        err = (pred - target).abs().mean(dim=(-1, -2))
        loss = torch.clamp(err - self.margin, min=0.0)
        return self.reduce_samples(loss.mean(0) if loss.ndim == 2 else loss)
