"""The reduction of losses that compute one value per sample ``(B,)``: ``"mean"`` over the batch, ``"sum"``, or
``"none"`` (the per-sample values, for callers that weight or select samples)."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["PerSampleLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class PerSampleLoss(_Loss):
    """Base class: checks ``reduction`` at construction and applies it with :meth:`reduce_samples`.

    Raises:
        ValueError: ``reduction`` is not ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
        super().__init__(reduction=reduction)

    def reduce_samples(self, per_sample: torch.Tensor) -> torch.Tensor:
        """``per_sample`` ``(B,)`` reduced as ``reduction`` says."""
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample
