"""Dice overlap of two binary masks given as arrays (numpy), for label-free agreement checks between two
predictions, where MONAI's one-hot ``DiceMetric`` would need batching and channels."""

from __future__ import annotations

import numpy as np

__all__ = ["mask_dice"]


def mask_dice(a: np.ndarray, b: np.ndarray, empty: float = float("nan")) -> float:
    """Dice 2 |a & b| / (|a| + |b|) of two boolean masks of the same shape; ``empty`` when both are empty (NaN by
    default: nothing to agree on; 1.0 where an empty prediction of an empty reference counts as right)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mask_dice: masks of shapes {a.shape} and {b.shape}; expected the same shape.")
    s = int(a.sum()) + int(b.sum())
    return float(empty) if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s
