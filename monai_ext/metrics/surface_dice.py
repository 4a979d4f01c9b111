"""Normalised surface Dice that takes the voxel spacing from the label's affine."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import SurfaceDiceMetric

__all__ = ["spacing_from_affine", "SpacingAwareSurfaceDiceMetric"]


def spacing_from_affine(affine: torch.Tensor | np.ndarray) -> list[float]:
    """Voxel size in mm along each array axis: the column norms of the affine's 3x3 (2x2) block."""
    a = torch.as_tensor(affine, dtype=torch.float64)
    n = a.shape[-1] - 1
    return torch.linalg.norm(a[..., :n, :n], dim=-2).tolist()


class SpacingAwareSurfaceDiceMetric(SurfaceDiceMetric):
    """MONAI's :class:`~monai.metrics.SurfaceDiceMetric` (NSD) in millimetres without passing ``spacing``.

    The COVID-19-CT-Seg benchmark scores NSD "computed with the case's voxel spacing" (tolerance
    1 mm for the lungs, 3 mm for infection). MONAI's metric takes ``spacing`` as a call argument,
    which ignite handlers and bundle evaluators never pass. This subclass reads it from the
    reference ``y`` when it is a :class:`~monai.data.MetaTensor` (its affine, per batch item),
    so NSD is correct at whatever resolution the evaluator works, original or resampled.

    Args:
        class_thresholds: tolerance in mm per class (excluding background unless
            ``include_background``).
        default_spacing: spacing in mm used when ``y`` carries no affine (plain tensors);
            ``None`` means unit spacing, as in MONAI.
        kwargs: the remaining arguments of ``SurfaceDiceMetric``.

    Shapes: ``y_pred`` and ``y`` one-hot, (B, C, H, W, D) or lists of (C, H, W, D).
    """

    def __init__(
        self, class_thresholds: list[float], default_spacing: float | list[float] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(class_thresholds=list(class_thresholds), **kwargs)
        self.default_spacing = default_spacing

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if kwargs.get("spacing") is None:
            spacing: Any = self.default_spacing
            if isinstance(y, MetaTensor):
                affine = y.affine
                spacing = spacing_from_affine(affine)
                if affine.ndim == 3:  # batched affine (B, 4, 4): one spacing per item
                    spacing = [list(s) for s in spacing]
            kwargs["spacing"] = spacing
        return super()._compute_tensor(y_pred, y, **kwargs)
