"""Landmark localisation error: the Euclidean distance between predicted and true points, per landmark, in mm
(world coordinates) or pixels / voxels (grid coordinates), with the failure rate at a radius (a landmark further
than ``failure_radius`` from its truth counts as a failure; the usual radii are 2-4 mm on X-ray and CT)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import CumulativeIterationMetric

__all__ = ["LandmarkErrorMetric"]


class LandmarkErrorMetric(CumulativeIterationMetric):
    """Per-case, per-landmark Euclidean errors, accumulated over calls.

    ``metric(y_pred, y)`` takes points (B, N, D) (or a list of (N, D)) in one unit (mm for world coordinates) and
    returns the errors (B, N). ``aggregate()`` gives ``{"mean", "std", "median", "max", "failure_rate", and per
    landmark "<name>_mean", "<name>_std"}`` over every case (std: sample standard deviation over cases; nan for
    one case). A point of NaN (a landmark not found) is an error of infinity: it counts as a failure and makes
    the means infinite, so a missing landmark is never silently left out.

    Args:
        landmark_names: N names (default ``landmark_0``, ...).
        failure_radius: distance (same unit as the points) beyond which a landmark counts as a failure.
        summary: one key of the summary (e.g. ``"mean"``): ``aggregate()`` then returns that value alone as a
            tensor, as MONAI's ignite metric handlers want a key metric.
    """

    def __init__(self, landmark_names: Sequence[str] | None = None, failure_radius: float = 2.0,
                 summary: str | None = None) -> None:
        super().__init__()
        if not float(failure_radius) > 0:
            raise ValueError(f"failure_radius must be positive, got {failure_radius!r}.")
        if summary not in (None, "mean", "std", "median", "max", "failure_rate"):
            raise ValueError(f"summary must be None, 'mean', 'std', 'median', 'max' or 'failure_rate', got {summary!r}.")
        self.summary = summary
        self.landmark_names = None if landmark_names is None else [str(n) for n in landmark_names]
        self.failure_radius = float(failure_radius)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("LandmarkErrorMetric needs the true points y.")
        pred, true = torch.as_tensor(y_pred, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
        if pred.ndim == 2:
            pred, true = pred[None], true[None] if true.ndim == 2 else true
        if pred.shape != true.shape or pred.ndim != 3:
            raise ValueError(f"predicted and true points must both be (B, N, D), got {tuple(pred.shape)} and "
                             f"{tuple(true.shape)}.")
        if self.landmark_names is not None and pred.shape[1] != len(self.landmark_names):
            raise ValueError(f"expected {len(self.landmark_names)} landmarks {self.landmark_names}, got "
                             f"{pred.shape[1]} points.")
        if not torch.isfinite(true).all():
            raise ValueError("the true points must be finite.")
        err = torch.linalg.norm(pred - true, dim=-1)
        return torch.where(torch.isnan(err), torch.full_like(err, float("inf")), err)

    def aggregate(self) -> dict[str, float] | torch.Tensor:  # type: ignore[override]
        """Summary statistics of every error accumulated so far (see the class docstring), or the ``summary``
        value."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise RuntimeError("LandmarkErrorMetric.aggregate: no cases accumulated.")
        data = data.reshape(-1, data.shape[-1])
        names = self.landmark_names or [f"landmark_{i}" for i in range(data.shape[1])]
        out = {
            "mean": float(data.mean()),
            "std": float(data.std()) if data.numel() > 1 else float("nan"),
            "median": float(torch.quantile(data.reshape(-1), 0.5)),
            "max": float(data.max()),
            "failure_rate": float((data > self.failure_radius).double().mean()),
            "cases": int(data.shape[0]),
        }
        for i, name in enumerate(names):
            out[f"{name}_mean"] = float(data[:, i].mean())
            out[f"{name}_std"] = float(data[:, i].std()) if data.shape[0] > 1 else float("nan")
        return out if self.summary is None else torch.tensor(out[self.summary])
