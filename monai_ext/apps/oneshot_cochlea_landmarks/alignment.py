"""The one-shot method's rotation step: the principal axes of the inertia tensors of the structure in the
reference (its mask) and in the target (the fused probabilities) are made to coincide. Eigenvectors have no sign,
so of the four proper rotations that align the sorted axes the one whose resampled target matches the reference
best (lowest sum of squared differences on the cube) is kept (the paper's sign ambiguity).

A flat structure such as the cochlea (a spiral ~7 mm wide, ~3.5 mm high) has two nearly equal principal moments,
so its in-plane axes, and with them the rotation about its own axis, are poorly defined by the inertia tensor;
:func:`search_rotation_about_axis` (not in the paper, whose registration adds a rigid stage instead) tries
rotations about the structure's axis, both ways up, and keeps the one whose resampled target matches the reference
best near the structure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from scipy.spatial.transform import Rotation

from ...transforms.oblique_plane import sample_at_coordinates

__all__ = ["SIGN_FLIPS", "cube_coordinates", "inertia_axes", "inertia_rotation", "resample_rigid", "search_rotation_about_axis"]

#: the sign flips of the three axes that keep a rotation proper
SIGN_FLIPS = ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))


def inertia_axes(weights: torch.Tensor | np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Eigenvectors (3, 3, columns, voxel axes) of the weighted second moments of a cube of ``weights`` (X, Y, Z)
    about their centroid (in mm, so anisotropic voxels count right), by increasing eigenvalue."""
    w = np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights, dtype=np.float64)
    if w.ndim != 3 or w.sum() <= 0:
        raise ValueError(f"inertia_axes needs a non-empty 3D weight cube, got shape {w.shape}, sum {w.sum():.3g}.")
    pts = np.argwhere(w > 0) * np.asarray(spacing, dtype=np.float64)
    vals = w[w > 0]
    rel = pts - (pts * vals[:, None]).sum(0) / vals.sum()
    cov = (rel * vals[:, None]).T @ rel / vals.sum()
    _, vecs = np.linalg.eigh(cov)
    return vecs


def cube_coordinates(center: Sequence[float], size: int) -> np.ndarray:
    """Voxel coordinates (size^3, 3) of the axis-aligned cube of ``size`` voxels centred on ``center``."""
    off = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    grid = np.stack(np.meshgrid(off, off, off, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid + np.asarray(center, dtype=np.float64)


def resample_rigid(volume: torch.Tensor, rotation: np.ndarray, ref_center: Sequence[float],
                   target_center: Sequence[float], size: int, padding_value: float = 0.0) -> torch.Tensor:
    """The target ``volume`` (X, Y, Z) seen in the reference frame: its values at ``target_center + rotation @ (y -
    ref_center)`` for the voxels y of the cube of ``size`` around ``ref_center``; returns (size, size, size)."""
    y = cube_coordinates(ref_center, size)
    x = (y - np.asarray(ref_center)) @ np.asarray(rotation).T + np.asarray(target_center)
    coords = torch.as_tensor(x.T.reshape(3, size, size, size), dtype=torch.float32)
    return sample_at_coordinates(volume[None], coords, "bilinear", padding_value)[0]


def inertia_rotation(ref_weights: torch.Tensor | np.ndarray, target_weights: torch.Tensor | np.ndarray,
                     spacing: Sequence[float], ref_cube: torch.Tensor, volume: torch.Tensor,
                     ref_center: Sequence[float], target_center: Sequence[float],
                     padding_value: float = 0.0) -> tuple[np.ndarray, list[float]]:
    """The rotation (3, 3, voxel axes, isotropic voxels) taking reference offsets to target offsets that aligns the
    principal axes of ``ref_weights`` with those of ``target_weights`` (both cubes of the same size), the sign flip
    chosen by the lowest mean squared difference between ``ref_cube`` and the target ``volume`` resampled by it;
    returns it with the four differences (order of :data:`SIGN_FLIPS`)."""
    e_ref, e_tgt = inertia_axes(ref_weights, spacing), inertia_axes(target_weights, spacing)
    if np.linalg.det(e_ref) * np.linalg.det(e_tgt) < 0:
        e_tgt = e_tgt * np.array([1.0, 1.0, -1.0])
    size = int(ref_cube.shape[0])
    best, costs = None, []
    for flips in SIGN_FLIPS:
        rot = (e_tgt * np.asarray(flips, dtype=np.float64)) @ e_ref.T
        moved = resample_rigid(volume, rot, ref_center, target_center, size, padding_value)
        costs.append(float(((moved - ref_cube.to(moved)) ** 2).mean()))
        if best is None or costs[-1] < min(costs[:-1]):
            best = rot
    return best, costs


def search_rotation_about_axis(rotation: np.ndarray, axis: np.ndarray, ref_cube: torch.Tensor, weights: torch.Tensor,
                               volume: torch.Tensor, ref_center: Sequence[float], target_center: Sequence[float],
                               step_deg: float = 15.0, padding_value: float = 0.0) -> tuple[np.ndarray, float]:
    """``rotation @ R_axis(theta)`` and ``rotation @ R_perp(180) @ R_axis(theta)`` for theta in ``[0, 360)`` by
    ``step_deg``, ``axis`` (3,) in the reference's voxel axes (the structure's axis: its smallest principal
    moment); returns the one with the lowest ``weights``-weighted mean squared difference between ``ref_cube`` and
    the target ``volume`` resampled by it, and that difference. ``rotation`` itself is among the candidates."""
    if not step_deg > 0:
        raise ValueError(f"step_deg must be positive, got {step_deg!r}.")
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
    flip = Rotation.from_rotvec(np.pi * perp / np.linalg.norm(perp)).as_matrix()
    w = weights.float() / float(weights.sum())
    ref = ref_cube.float()
    size = int(ref_cube.shape[0])
    best, best_cost = np.asarray(rotation, dtype=np.float64), float("inf")
    for upside in (np.eye(3), flip):
        for theta in np.arange(0.0, 360.0, float(step_deg)):
            cand = np.asarray(rotation) @ upside @ Rotation.from_rotvec(np.radians(theta) * a).as_matrix()
            moved = resample_rigid(volume, cand, ref_center, target_center, size, padding_value)
            cost = float((w * (moved - ref) ** 2).sum())
            if cost < best_cost:
                best, best_cost = cand, cost
    return best, best_cost
