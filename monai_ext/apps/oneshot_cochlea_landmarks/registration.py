"""Deformable registration of the one-shot method: ITK's diffeomorphic demons (Vercauteren et al. 2009), coarse to
fine, between two cubes on the same voxel grid. The displacement maps each fixed-image voxel to where its content
is in the moving image: ``fixed(y) ~ moving(y + u(y))``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage as ndi

__all__ = ["demons_displacement", "displacement_at"]


def _itk_demons(fixed: np.ndarray, moving: np.ndarray, init: np.ndarray | None, iterations: int, sigma: float):
    import itk  # lazy: loading ITK's registration module takes seconds

    image_type = itk.Image[itk.F, 3]
    field_type = itk.Image[itk.Vector[itk.F, 3], 3]
    demons = itk.DiffeomorphicDemonsRegistrationFilter[image_type, image_type, field_type].New()
    # ITK reads a NumPy array as (z, y, x): passing the transpose makes ITK's x our first axis, so the vector
    # components come in our axis order
    demons.SetFixedImage(itk.image_from_array(np.ascontiguousarray(fixed.T, dtype=np.float32)))
    demons.SetMovingImage(itk.image_from_array(np.ascontiguousarray(moving.T, dtype=np.float32)))
    if init is not None:
        field = itk.image_from_array(np.ascontiguousarray(np.moveaxis(init, 0, -1).transpose(2, 1, 0, 3), dtype=np.float32),
                                     ttype=field_type)
        demons.SetInitialDisplacementField(field)
    demons.SetNumberOfIterations(int(iterations))
    demons.SetStandardDeviations(float(sigma))
    demons.Update()
    out = itk.array_from_image(demons.GetOutput())  # (z, y, x, 3), components (x, y, z)
    return np.moveaxis(out.transpose(2, 1, 0, 3), -1, 0).astype(np.float64)


def demons_displacement(fixed: torch.Tensor | np.ndarray, moving: torch.Tensor | np.ndarray,
                        iterations: Sequence[int] = (60, 30), smoothing: float = 1.5) -> np.ndarray:
    """Displacement (3, X, Y, Z), voxels, from the diffeomorphic demons registration of ``moving`` to ``fixed``
    (both (X, Y, Z), same grid, comparable intensities): one level per entry of ``iterations``, coarsest first,
    each level half the resolution of the next (Gaussian pre-smoothing), the field upsampled between levels.
    ``smoothing`` is the standard deviation (voxels of each level) of the Gaussian that regularises the field."""
    f = np.asarray(fixed.detach().cpu() if isinstance(fixed, torch.Tensor) else fixed, dtype=np.float64)
    m = np.asarray(moving.detach().cpu() if isinstance(moving, torch.Tensor) else moving, dtype=np.float64)
    if f.shape != m.shape or f.ndim != 3:
        raise ValueError(f"fixed and moving must be 3D cubes of one shape, got {f.shape} and {m.shape}.")
    field = None
    levels = len(iterations)
    for level, n in enumerate(iterations):
        factor = 2 ** (levels - 1 - level)
        if factor > 1:
            fs = ndi.zoom(ndi.gaussian_filter(f, 0.5 * factor), 1.0 / factor, order=1)
            ms = ndi.zoom(ndi.gaussian_filter(m, 0.5 * factor), 1.0 / factor, order=1)
        else:
            fs, ms = f, m
        if field is not None:
            zoom = [a / b for a, b in zip(fs.shape, field.shape[1:])]
            field = np.stack([ndi.zoom(c, zoom, order=1) * zoom[0] for c in field])
        field = _itk_demons(fs, ms, field, int(n), smoothing)
    return field


def displacement_at(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The displacement (N, 3) at voxel coordinates ``points`` (N, 3) of the field's grid, trilinear."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3).T
    return np.stack([ndi.map_coordinates(c, pts, order=1, mode="nearest") for c in field], axis=1)
