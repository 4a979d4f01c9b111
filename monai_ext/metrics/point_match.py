"""Detection of a variable number of points (suture points, cells): precision, sensitivity and F1 at a radius with
one-to-one matching, as the AdaptOR 2021 challenge scores them (a prediction within 6 px of a true point is a hit;
each true point is hit at most once)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from scipy.optimize import linear_sum_assignment

__all__ = ["PointMatchF1Metric", "match_points"]


def match_points(pred: Any, true: Any, radius: float, spacing: Sequence[float] | None = None) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of one image: predicted ``(K, D)`` and true ``(M, D)`` points (or ``(1, K, D)``; NaN rows
    are padding and ignored), matched one-to-one so that the number of pairs closer than ``radius`` is the largest
    possible (Hungarian assignment; among those, the smallest total distance). ``spacing`` scales each axis first
    (pixel size in mm for a radius in mm)."""
    p, t = _as_points(pred), _as_points(true)
    if len(p) and len(t) and p.shape[1] != t.shape[1]:
        raise ValueError(f"predicted and true points differ in dimension: {p.shape[1]} and {t.shape[1]}.")
    if spacing is not None:
        scale = np.asarray(spacing, dtype=np.float64)
        p, t = p * scale, t * scale
    if len(p) == 0 or len(t) == 0:
        return 0, len(p), len(t)
    dist = np.linalg.norm(p[:, None, :] - t[None, :, :], axis=-1)
    far = dist > radius
    # an impossible pair costs more than all possible pairs together, so the assignment maximises the hits
    cost = np.where(far, dist.sum() + 1.0 + dist, dist)
    rows, cols = linear_sum_assignment(cost)
    tp = int((~far[rows, cols]).sum())
    return tp, len(p) - tp, len(t) - tp


def _as_points(points: Any) -> np.ndarray:
    arr = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, arr.shape[-1] if arr.ndim >= 2 else 0)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"points must be (N, D) or (1, N, D), got shape {arr.shape}.")
    return arr[~np.isnan(arr).any(axis=1)]


class PointMatchF1Metric(CumulativeIterationMetric):
    """Point-matching precision, sensitivity and F1 at a radius, accumulated over images.

    ``metric(y_pred, y)`` takes a batch: sequences (or ``(B, N, D)`` tensors, NaN-padded) of predicted and true
    point sets, and returns the ``(B, 3)`` counts ``(tp, fp, fn)`` of :func:`match_points`. ``aggregate()`` pools
    the counts of every image (over all points, as the challenge does) into ``{"precision", "sensitivity", "f1",
    "tp", "fp", "fn", "images"}``. Where a ratio has no denominator it is 1 when there was nothing to find and
    nothing was found, else 0.

    Args:
        radius: the largest distance of a hit (pixels, or mm with ``spacing``).
        spacing: per-axis pixel size applied to both point sets.
        summary: one of the keys above: ``aggregate()`` then returns that value alone (as a tensor), which is what
            MONAI's ``IgniteMetricHandler`` needs for a key metric (e.g. ``"f1"``).
    """

    def __init__(self, radius: float = 6.0, spacing: Sequence[float] | None = None, summary: str | None = None) -> None:
        super().__init__()
        if not float(radius) > 0:
            raise ValueError(f"radius must be positive, got {radius!r}.")
        if summary not in (None, "precision", "sensitivity", "f1", "tp", "fp", "fn"):
            raise ValueError(f"summary must be None, 'precision', 'sensitivity', 'f1', 'tp', 'fp' or 'fn', got {summary!r}.")
        self.summary = summary
        self.radius = float(radius)
        self.spacing = None if spacing is None else [float(s) for s in spacing]

    def __call__(self, y_pred: Any, y: Any = None, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """Count the hits of a batch and keep them for :meth:`aggregate`."""
        if y is None or len(y_pred) != len(y):
            raise ValueError("PointMatchF1Metric needs a true point set for every predicted one, "
                             f"got {len(y_pred)} predicted and {0 if y is None else len(y)} true sets.")
        counts = torch.as_tensor([match_points(p, t, self.radius, self.spacing) for p, t in zip(y_pred, y)],
                                 dtype=torch.float64).reshape(-1, 3)
        self.extend(counts)
        return counts

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        raise NotImplementedError("PointMatchF1Metric counts in __call__.")

    def aggregate(self) -> Any:  # type: ignore[override]
        """Pooled precision / sensitivity / F1 of every image so far (a dict, or the ``summary`` value)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise RuntimeError("PointMatchF1Metric.aggregate: no images accumulated.")
        tp, fp, fn = (float(v) for v in data.reshape(-1, 3).sum(dim=0))
        nothing = 1.0 if fp + fn == 0 else 0.0
        result = {
            "precision": tp / (tp + fp) if tp + fp else nothing,
            "sensitivity": tp / (tp + fn) if tp + fn else nothing,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
            "tp": tp, "fp": fp, "fn": fn, "images": int(data.reshape(-1, 3).shape[0]),
        }
        return result if self.summary is None else torch.tensor(result[self.summary])
