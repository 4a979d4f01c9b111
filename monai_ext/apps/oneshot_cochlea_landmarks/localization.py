"""Finding the structure of interest in a new volume (the one-shot method's translation step): the 2D network is
run slice by slice along X, Y and Z of a cubic patch, the three probability volumes are multiplied voxel by voxel,
and the patch moves to the probability-weighted centroid until it moves less than a tolerance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .alignment import resample_rigid

__all__ = ["CentroidSearch", "crop_cube", "fused_slice_probabilities", "iterative_centroid"]


def crop_cube(volume: torch.Tensor, center: Sequence[float], size: int, padding_value: float = 0.0) -> torch.Tensor:
    """The axis-aligned cube (size, size, size) of ``volume`` (X, Y, Z) centred on the voxel coordinates ``center``
    (sub-voxel centres are interpolated trilinearly; outside the volume: ``padding_value``)."""
    return resample_rigid(volume, np.eye(3), center, center, size, padding_value)


@torch.no_grad()
def fused_slice_probabilities(network: torch.nn.Module, cube: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The product of the sigmoid outputs of ``network`` on the slices of ``cube`` (X, Y, Z) along each axis:
    (X, Y, Z) probabilities on ``cube``'s device."""
    device = next(network.parameters()).device
    fused = torch.ones_like(cube, device=device)
    for axis in range(3):
        slices = cube.movedim(axis, 0).unsqueeze(1).to(device)
        prob = torch.cat([torch.sigmoid(network(slices[i:i + batch_size])) for i in range(0, len(slices), batch_size)])
        fused = fused * prob[:, 0].movedim(0, axis)
    return fused


@dataclass
class CentroidSearch:
    """The outcome of :func:`iterative_centroid`: the centre found (voxel coordinates), the fused probabilities
    of the cube around the last centre visited, that centre, the centres visited and whether it converged."""

    center: np.ndarray
    probabilities: torch.Tensor
    cube_center: np.ndarray
    path: list
    converged: bool


def iterative_centroid(network: torch.nn.Module, volume: torch.Tensor, start: Sequence[float], size: int,
                       spacing: Sequence[float], tolerance_mm: float = 1.0, max_iterations: int = 10,
                       padding_value: float = 0.0) -> CentroidSearch:
    """Algorithm 2 of the one-shot paper: from ``start`` (voxel coordinates of the reference's structure centroid),
    crop a cube of ``size`` voxels, fuse the slice-wise probabilities, move to their weighted centroid; stop when
    the move is below ``tolerance_mm`` (the paper: 1 mm) or after ``max_iterations``. If the cube holds no
    probability at all the search stops where it is (``converged`` False)."""
    center = np.asarray(start, dtype=np.float64)
    spc = np.asarray(spacing, dtype=np.float64)
    half = (size - 1) / 2.0
    path = [center.copy()]
    prob = None
    idx = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float64)] * 3, indexing="ij"))
    for _ in range(int(max_iterations)):
        prob = fused_slice_probabilities(network, crop_cube(volume, center, size, padding_value)).cpu()
        total = float(prob.sum())
        if total <= 1e-6:
            return CentroidSearch(center, prob, center.copy(), path, False)
        centroid = (idx * prob.double()).reshape(3, -1).sum(1).numpy() / total
        new = center + centroid - half
        moved = float(np.linalg.norm((new - center) * spc))
        cube_center, center = center, new
        path.append(center.copy())
        if moved < tolerance_mm:
            return CentroidSearch(center, prob, cube_center, path, True)
    return CentroidSearch(center, prob, path[-2], path, False)
