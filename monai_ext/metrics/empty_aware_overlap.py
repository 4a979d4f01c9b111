"""Dice, recall and precision per image with the empty-reference rule of weakly supervised segmentation benchmarks.

An image whose reference mask is empty (a negative image) scores 1 when the prediction is empty too, else 0, on all
three metrics (the rule of CaCL, Deng et al. 2021, Table 1, after Chicco & Jurman, BMC Genomics 2020). On images with a reference mask
the usual definitions apply: Dice ``2 TP / (2 TP + FP + FN)``, recall ``TP / (TP + FN)``, precision ``TP / (TP + FP)``
(0 when nothing is predicted). MONAI's ``DiceMetric(ignore_empty=False)`` gives the same Dice; recall and precision
with this rule are what MONAI lacks.
"""

from __future__ import annotations

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

__all__ = ["EMPTY_AWARE_METRICS", "EmptyAwareOverlapMetric", "empty_aware_overlap_scores"]

EMPTY_AWARE_METRICS = ("dice", "recall", "precision")


def empty_aware_overlap_scores(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, 3) float: Dice, recall, precision per image of binary masks ``y_pred`` and ``y`` (B, 1, ...), any values
    > 0.5 being foreground."""
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}.")
    if y.ndim < 3 or y.shape[1] != 1:
        raise ValueError(f"binary masks of shape (B, 1, spatial...) expected, got {tuple(y.shape)}.")
    p, g = (y_pred > 0.5).flatten(1).float(), (y > 0.5).flatten(1).float()
    tp, sp, sg = (p * g).sum(1), p.sum(1), g.sum(1)
    dice = 2 * tp / (sp + sg).clamp_min(1.0)
    recall = tp / sg.clamp_min(1.0)
    precision = tp / sp.clamp_min(1.0)
    out = torch.stack([dice, recall, precision], 1)
    empty = sg == 0
    return torch.where(empty[:, None], (sp == 0).float()[:, None].expand_as(out), out)


class EmptyAwareOverlapMetric(CumulativeIterationMetric):
    """One of :data:`EMPTY_AWARE_METRICS` per image (see the module docstring), accumulated over iterations.

    Args:
        metric_name: ``dice`` | ``recall`` | ``precision``.
        reduction: MONAI reduction of the (N, 1) per-image values in :meth:`aggregate` (default mean).

    Inputs: ``y_pred``, ``y`` binary masks (B, 1, H, W[, D]) or lists of (1, H, W[, D]) (as MONAI handlers pass them).
    """

    def __init__(self, metric_name: str = "dice", reduction: MetricReduction | str = MetricReduction.MEAN) -> None:
        super().__init__()
        if metric_name not in EMPTY_AWARE_METRICS:
            raise ValueError(f"metric_name must be one of {EMPTY_AWARE_METRICS}, got {metric_name!r}.")
        self.metric_name = metric_name
        self.reduction = reduction

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("EmptyAwareOverlapMetric needs the reference masks y.")
        k = EMPTY_AWARE_METRICS.index(self.metric_name)
        return empty_aware_overlap_scores(torch.as_tensor(y_pred), torch.as_tensor(y).to(torch.as_tensor(y_pred).device))[:, k : k + 1]

    def aggregate(self, reduction: MetricReduction | str | None = None) -> torch.Tensor:
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("EmptyAwareOverlapMetric: nothing accumulated yet.")
        f, _ = do_metric_reduction(data, reduction or self.reduction)
        return f
