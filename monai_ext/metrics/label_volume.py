"""Volume in millilitres of each class of a segmentation, as a MONAI metric (per case and class)."""

from __future__ import annotations

from typing import Any

import torch
from monai.data import MetaTensor
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

__all__ = ["ClassVolumeMetric"]


class ClassVolumeMetric(CumulativeIterationMetric):
    """Volume (ml) of each class of the prediction or of the reference, with the voxel size of its affine.

    Next to Dice this tells how much a model finds where the reference has nothing (e.g. infection predicted on a
    scan without disease, where Dice is undefined), and how far predicted and reference volumes differ.

    Args:
        source: ``"y_pred"`` (the prediction) or ``"y"`` (the reference): which of the two the volumes are of.
        include_background: whether channel 0 is reported.
        reduction: how :py:meth:`aggregate` reduces the (cases, classes) buffer (MONAI's ``MetricReduction``).
        default_voxel_ml: voxel volume (ml) of an input without an affine (plain tensors).

    Shapes: ``y_pred`` and ``y`` one-hot, (B, C, H, W, D) or lists of (C, H, W, D). A ``MetaTensor``'s affine gives
    the voxel volume (|det| of its 3x3 block, mm^3 / 1000).
    """

    def __init__(
        self,
        source: str = "y_pred",
        include_background: bool = False,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        default_voxel_ml: float = 0.001,
    ) -> None:
        super().__init__()
        if source not in ("y_pred", "y"):
            raise ValueError(f"source must be 'y_pred' or 'y', got {source!r}.")
        self.source = source
        self.include_background = include_background
        self.reduction = reduction
        self.default_voxel_ml = float(default_voxel_ml)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        t = y_pred if self.source == "y_pred" else y
        if t is None:
            raise ValueError("ClassVolumeMetric(source='y') needs the reference y.")
        if t.ndim < 3:
            raise ValueError(f"expected one-hot input (B, C, spatial...), got shape {tuple(t.shape)}.")
        n = t.ndim - 2
        voxel_ml = torch.full((t.shape[0],), self.default_voxel_ml, dtype=torch.float64)
        if isinstance(t, MetaTensor):
            affine = torch.as_tensor(t.affine, dtype=torch.float64).cpu()
            if affine.ndim == 2:
                affine = affine[None].expand(t.shape[0], -1, -1)
            voxel_ml = torch.linalg.det(affine[:, :n, :n]).abs() / 1000.0
        counts = (torch.as_tensor(t) > 0.5).flatten(2).sum(-1).to(torch.float64).cpu()  # (B, C)
        volumes = counts * voxel_ml[:, None]
        return volumes if self.include_background else volumes[:, 1:]

    def aggregate(self, reduction: MetricReduction | str | None = None) -> torch.Tensor:
        """The buffered volumes (cases x classes) reduced by ``reduction`` (default: the constructor's)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor.")
        f, _ = do_metric_reduction(data, reduction or self.reduction)
        return f
