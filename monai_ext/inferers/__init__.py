"""Inferers that MONAI lacks, generic across methods: multi-planar prediction of a volume with a 2D network."""

from __future__ import annotations

from .multi_planar import MultiPlanarInferer, rotated_cube_coordinates

__all__ = ["MultiPlanarInferer", "rotated_cube_coordinates"]
