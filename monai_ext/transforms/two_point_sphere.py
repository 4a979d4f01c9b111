"""Sphere labels from two-point annotations (neck and dome of a saccular aneurysm), as in Assis et al., "An Efficient
Data Strategy for the Detection of Brain Aneurysms from MRA with Deep Learning" (DGM4MICCAI / DALI 2021): an
annotator clicks the centre of the aneurysm's neck and its dome; the label is the ball whose diameter is that
segment (centre: the midpoint; radius: half the distance). Two clicks per aneurysm instead of a voxel-wise outline.

- :class:`TwoPointSphereLabel`: points (N, 2, 3) in world mm + the image's grid -> a binary label (1, H, W, D);
- :class:`TwoPointSphereLabeld`: the dictionary version (points under ``keys``, the grid from ``ref_key``).

A voxel is labelled when its centre lies inside a ball (distance <= ``radius_scale`` x radius); the voxel nearest to
each ball's centre is always labelled, so an aneurysm smaller than a voxel is not lost.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy

__all__ = [
    "TwoPointSphereLabel",
    "TwoPointSphereLabelD",
    "TwoPointSphereLabelDict",
    "TwoPointSphereLabeld",
    "two_point_spheres",
]


def two_point_spheres(points: Any, name: str = "points") -> tuple[np.ndarray, np.ndarray]:
    """Centres (N, 3) and radii (N,) of the balls spanned by two-point annotations ``points`` (N, 2, 3) (units of
    ``points``); an empty list gives (0, 3) and (0,). ``ValueError`` naming ``name`` for another shape, non-finite
    values or two identical points."""
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected pairs of 3D points (N, 2, 3), got {points!r}.") from err
    if p.size == 0:
        return np.zeros((0, 3)), np.zeros(0)
    if p.ndim != 3 or p.shape[1:] != (2, 3):
        raise ValueError(f"{name}: expected pairs of 3D points, shape (N, 2, 3) (neck, dome), got shape {p.shape}.")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name}: expected finite coordinates.")
    radii = 0.5 * np.linalg.norm(p[:, 1] - p[:, 0], axis=1)
    if np.any(radii <= 0):
        raise ValueError(f"{name}: the two points of annotation {int(np.argmin(radii))} coincide (no sphere).")
    return p.mean(axis=1), radii


class TwoPointSphereLabel(Transform):
    """Render two-point (neck, dome) annotations as balls on an image's voxel grid.

    Args:
        radius_scale: multiplies every radius (1: the ball through both points).
        outside: what a ball whose centre lies outside the grid does: ``"error"`` (``ValueError``) or ``"skip"``
            (left out, e.g. on a volume cropped to a smaller field of view; the voxels of its part inside the
            grid are not labelled either).

    Call ``t(img, points, affine=None)``:
        img: the reference image (C, H, W, D) (numpy array or torch tensor); only its grid is used.
        points: (N, 2, 3) world coordinates in mm (the frame of ``affine``); N = 0 gives an empty label.
        affine: 4 x 4 voxel -> world; default: ``img.meta["affine"]`` of a MetaTensor, else the identity (points
            in voxel indices).

    Returns a uint8 label (1, H, W, D) of the type and device of ``img`` (a MetaTensor keeps ``img``'s meta data).
    With ``outside="error"``, raises ``ValueError`` when a ball centre lies outside the grid (naming the annotation
    and the grid shape).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, radius_scale: float = 1.0, outside: str = "error") -> None:
        s = float(radius_scale)
        if not (s > 0 and np.isfinite(s)):
            raise ValueError(f"radius_scale={radius_scale!r}: expected a number > 0.")
        if outside not in ("error", "skip"):
            raise ValueError(f"outside={outside!r}: expected 'error' or 'skip'.")
        self.radius_scale, self.outside = s, outside

    def __call__(self, img: NdarrayOrTensor, points: Any, affine: Any = None) -> NdarrayOrTensor:
        """Render the balls of ``points`` on the grid of ``img``; see the class docstring."""
        if not isinstance(img, (np.ndarray, torch.Tensor)) or img.ndim != 4:
            raise ValueError(f"img: expected a channel-first volume (C, H, W, D), got shape {tuple(getattr(img, 'shape', ()))}.")
        if affine is None:
            affine = img.meta.get("affine") if isinstance(img, MetaTensor) else None
        aff = np.eye(4) if affine is None else convert_to_numpy(affine, dtype=np.float64)
        spatial = tuple(int(s) for s in img.shape[1:])
        centres, radii = two_point_spheres(points)
        label = np.zeros(spatial, np.uint8)
        inv = np.linalg.inv(aff)
        vox_size = np.linalg.norm(aff[:3, :3], axis=0)
        for k, (c, r) in enumerate(zip(centres, radii * self.radius_scale)):
            cv = inv[:3, :3] @ c + inv[:3, 3]
            if np.any(cv < -0.5) or np.any(cv > np.array(spatial) - 0.5):
                if self.outside == "skip":
                    continue
                raise ValueError(f"points: annotation {k} (centre {np.round(c, 2).tolist()} mm, voxel "
                                 f"{np.round(cv, 1).tolist()}) lies outside the image grid {spatial}.")
            half = np.ceil(r / vox_size).astype(int) + 1
            lo = np.maximum(np.floor(cv).astype(int) - half, 0)
            hi = np.minimum(np.ceil(cv).astype(int) + half + 1, spatial)
            idx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1)
            world = idx @ aff[:3, :3].T + aff[:3, 3]
            inside = np.linalg.norm(world - c, axis=-1) <= r
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            label[box] |= inside.astype(np.uint8)
            label[tuple(np.clip(np.rint(cv).astype(int), 0, np.array(spatial) - 1))] = 1
        out, *_ = convert_to_dst_type(label[None], img, dtype=torch.uint8 if isinstance(img, torch.Tensor) else np.uint8)
        return out


class TwoPointSphereLabeld(MapTransform):
    """Dictionary-based :class:`TwoPointSphereLabel`: ``data[label_key]`` = the balls of the two-point annotations
    ``data[key]`` (N, 2, 3, world mm) on the grid of ``data[ref_key]`` (its ``meta["affine"]``).

    Args:
        keys: the key of the annotations (one key).
        ref_key: the image whose grid the label takes.
        label_key: where the label goes.
        radius_scale, outside: see :class:`TwoPointSphereLabel`.
        allow_missing_keys: a sample without annotations is left as it is.
    """

    backend = TwoPointSphereLabel.backend

    def __init__(self, keys: KeysCollection, ref_key: str = "image", label_key: str = "label",
                 radius_scale: float = 1.0, outside: str = "error", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys={keys!r}: expected one key (the annotations).")
        self.ref_key, self.label_key = ref_key, label_key
        self.render = TwoPointSphereLabel(radius_scale, outside)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        """Add ``label_key`` to a new dict; see the class docstring."""
        d = dict(data)
        for key in self.key_iterator(d):
            if self.ref_key not in d:
                raise KeyError(f"ref_key {self.ref_key!r} is not in the data (keys: {sorted(map(str, d))}).")
            try:
                d[self.label_key] = self.render(d[self.ref_key], d[key])
            except ValueError as err:
                raise ValueError(f"{key!r} of {d.get('case', 'the sample')}: {err}") from err
        return d


TwoPointSphereLabelD = TwoPointSphereLabelDict = TwoPointSphereLabeld

