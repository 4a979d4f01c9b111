"""The one mapping between Hounsfield units and a network's ``[-1, 1]`` intensity range.

Every method that windows CT does it here, with its own window passed explicitly (CT-SGAN's volumes use
``[-1000, 500]`` HU, its nodule inpainting networks ``[-1000, 400]`` HU: the windows are the methods' choices,
the mapping is shared).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["hu_to_unit", "unit_to_hu"]


def _window(hu_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in hu_range)
    if not hi > lo:
        raise ValueError(f"hu_range must be (low, high) with high > low, got {tuple(hu_range)}.")
    return lo, hi


def hu_to_unit(x: torch.Tensor, hu_range: Sequence[float]) -> torch.Tensor:
    """HU -> ``[-1, 1]``: ``hu_range[0]`` maps to -1, ``hu_range[1]`` to 1, values outside are clipped.

    Args:
        x: CT intensities in HU, any shape (tensor or anything ``torch.as_tensor`` takes).
        hu_range: the window ``(low, high)`` in HU.
    """
    lo, hi = _window(hu_range)
    return ((torch.as_tensor(x) - lo) / (hi - lo) * 2.0 - 1.0).clamp(-1.0, 1.0)


def unit_to_hu(x: torch.Tensor, hu_range: Sequence[float]) -> torch.Tensor:
    """``[-1, 1]`` -> HU over ``hu_range``, the inverse of :func:`hu_to_unit`; inputs outside ``[-1, 1]`` are
    clipped first, so a network output never maps outside the window."""
    lo, hi = _window(hu_range)
    return (torch.as_tensor(x).clamp(-1.0, 1.0) + 1.0) * 0.5 * (hi - lo) + lo
