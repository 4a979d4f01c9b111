"""The argument check every phantom generator applies to the grid it renders on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["check_phantom_grid"]


def check_phantom_grid(
    shape: Sequence[int],
    spacing: Sequence[float] | float,
    shape_range: tuple[int, int],
    spacing_range_mm: tuple[float, float],
    scalar_spacing: bool = False,
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """``shape`` (three whole numbers in ``shape_range``) and ``spacing`` (three finite voxel sizes in
    ``spacing_range_mm``, mm; one number for all axes when ``scalar_spacing``) as tuples of int and float.

    Raises:
        ValueError: naming the argument, its allowed range and the value given.
    """
    lo, hi = shape_range
    try:
        shp = tuple(int(v) for v in shape)
        ok = len(shp) == 3 and all(int(v) == v for v in shape) and min(shp) >= lo and max(shp) <= hi
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"shape must be three integers in [{lo}, {hi}], got {shape!r}.")
    lo_mm, hi_mm = spacing_range_mm
    sizes = (spacing,) * 3 if scalar_spacing and np.ndim(spacing) == 0 else spacing
    try:
        spc = tuple(float(v) for v in sizes)  # type: ignore[union-attr]
        ok = len(spc) == 3 and all(np.isfinite(v) and lo_mm <= v <= hi_mm for v in spc)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        one = " (or one for all axes)" if scalar_spacing else ""
        raise ValueError(f"spacing must be three voxel sizes in [{lo_mm:g}, {hi_mm:g}] mm{one}, got {spacing!r}.")
    return shp, spc  # type: ignore[return-value]
