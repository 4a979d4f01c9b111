"""Intersection over union of per-slice 2D boxes (box masks of :mod:`monai_ext.transforms.slice_boxes`)."""

from __future__ import annotations

import numpy as np
from monai.config import NdarrayOrTensor

from ..transforms.slice_boxes import slice_box_extents

__all__ = ["slice_box_iou"]


def slice_box_iou(pred: NdarrayOrTensor, reference: NdarrayOrTensor, axis: int = 2) -> np.ndarray:
    """IoU of the boxes of ``pred`` and ``reference`` (both (1, H, W, D) box masks) on every slice along ``axis``.

    Returns a float array with one value per slice: the IoU where ``reference`` has a box (0 where ``pred`` has
    none there), ``nan`` where ``reference`` has no box (take ``np.nanmean`` for the mean over the object's slices).
    """
    if tuple(pred.shape) != tuple(reference.shape):
        raise ValueError(f"pred {tuple(pred.shape)} and reference {tuple(reference.shape)} must have the same shape.")
    out = np.full(pred.shape[1 + (int(axis) % 3)], np.nan)
    for k, (a, b) in enumerate(zip(slice_box_extents(pred, axis), slice_box_extents(reference, axis))):
        if b is None:
            continue
        if a is None:
            out[k] = 0.0
            continue
        inter = max(0, min(a[1], b[1]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[2], b[2]))
        union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
        out[k] = inter / union
    return out
