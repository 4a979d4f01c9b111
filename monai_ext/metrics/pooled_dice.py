"""Data-set-level ("pooled") Dice: all predictions and references of a set stacked, then one Dice per class.

Vorontsov & Kadoury (DGM4MICCAI 2021) report Dice this way: 2 sum(P * Y) / (sum(P) + sum(Y)) over every pixel of
every test image. Unlike the mean of per-image Dice (MONAI's ``DiceMetric``), an empty reference slice (a healthy
slice) costs nothing when nothing is predicted there and costs its false positives otherwise, and large tumours
weigh more than small ones.
"""

from __future__ import annotations

import torch
from monai.metrics import CumulativeIterationMetric

__all__ = ["PooledDiceMetric"]


class PooledDiceMetric(CumulativeIterationMetric):
    """Pooled Dice per class over everything accumulated since the last ``reset()``.

    Call with binarised ``y_pred`` and ``y`` of shape (B, C, spatial...) (one-hot or one channel per class, values
    0/1, same shape). ``aggregate()`` returns a (C,) tensor (classes without any foreground in both the
    predictions and the references get 1.0: nothing to find, nothing found), or its mean with ``reduction="mean"``.

    Args:
        include_background: keep channel 0 (``False`` drops it; use ``True`` for a one-channel sigmoid output).
        reduction: ``"none"`` (per class) or ``"mean"`` (mean over the classes).
    """

    def __init__(self, include_background: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("none", "mean"):
            raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}.")
        self.include_background = include_background
        self.reduction = reduction

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if y_pred.shape != y.shape or y_pred.ndim < 3:
            raise ValueError(f"{type(self).__name__}: y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} must have the "
                             "same shape (B, C, spatial...).")
        if not self.include_background:
            if y_pred.shape[1] == 1:
                raise ValueError(f"{type(self).__name__}: include_background=False needs more than one channel.")
            y_pred, y = y_pred[:, 1:], y[:, 1:]
        p, t = (y_pred > 0.5).float(), (y > 0.5).float()
        dims = tuple(range(2, p.ndim))
        return torch.stack([(p * t).sum(dims), p.sum(dims), t.sum(dims)], dim=-1)   # (B, C, 3)

    def pooled_sums(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(intersection, predicted, reference)`` pixel counts per class, summed over everything accumulated
        (float64, shape (C,) each)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError(f"{type(self).__name__}: nothing accumulated yet.")
        inter, pred, ref = data.double().sum(0).unbind(-1)
        return inter, pred, ref

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        inter, pred, ref = self.pooled_sums()
        denom = pred + ref
        dice = torch.where(denom > 0, 2 * inter / denom.clamp(min=1e-12), torch.ones_like(denom))
        return dice.mean() if self.reduction == "mean" else dice
