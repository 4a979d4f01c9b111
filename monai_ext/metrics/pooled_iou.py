"""Data-set-level ("pooled") intersection over union, MetaHistoSeg's mIoU (Yuan et al., DGM4MICCAI/DALI 2021, eq. 1):
per class i, |P_i and T_i| / |P_i or T_i| over every pixel of every evaluation image, then the mean over the
classes. MONAI's ``MeanIoU`` averages per image instead.
"""

from __future__ import annotations

import torch

from .pooled_dice import PooledDiceMetric

__all__ = ["PooledIoUMetric"]


class PooledIoUMetric(PooledDiceMetric):
    """Pooled IoU per class over everything accumulated since the last ``reset()``: the same sums as
    :class:`PooledDiceMetric` (intersection, predicted and reference pixels per class), IoU = I / (P + T - I).

    Call with binarised ``y_pred`` and ``y`` of shape (B, C, spatial...) (one-hot, same shape). ``aggregate()``
    returns a (C,) tensor (a class absent from both predictions and references gets 1.0), or its mean with
    ``reduction="mean"``. MetaHistoSeg's mIoU counts every class of the task, background included (the default).
    """

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        inter, pred, ref = self.pooled_sums()
        union = pred + ref - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.ones_like(union))
        return iou.mean() if self.reduction == "mean" else iou
