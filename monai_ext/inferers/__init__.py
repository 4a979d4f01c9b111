"""Inferers that MONAI lacks, generic across methods: multi-planar prediction of a volume with a 2D network, and
tiling that keeps only the centre of every tile."""

from __future__ import annotations

from .central_crop_tiling import CentralCropTilingInferer, central_box_weights
from .multi_planar import MultiPlanarInferer, rotated_cube_coordinates

__all__ = ["CentralCropTilingInferer", "MultiPlanarInferer", "central_box_weights", "rotated_cube_coordinates"]
