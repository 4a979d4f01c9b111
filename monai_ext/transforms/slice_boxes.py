"""Per-slice 2D boxes as masks, for box-supervised slice-by-slice segmentation (Redekop et al., "Medical image
segmentation with imperfect 3D bounding boxes", DGM4MICCAI/DALI 2021).

A box mask is a channel-first (1, H, W, D) uint8 volume that is 1 inside the box of each slice along ``axis`` (the
last spatial axis by default: axial slices of RAS-oriented volumes) and 0 elsewhere; a slice without a box is all 0.

- :class:`WorldBoxToSliceBoxes` / ``...d``: a 3D box given in world millimetres, cut into slices: every slice the
  box crosses gets the same rectangle, which is seldom tight around the object on that slice.
- :class:`TightSliceBoxes` / ``...d``: each slice's tight box around its label (an oracle, or the boxes of the
  fully labelled volumes).
- :func:`slice_box_extents`: the rectangle of every slice of a box mask; :func:`slice_box_mask`: the inverse.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

__all__ = [
    "TightSliceBoxes",
    "TightSliceBoxesD",
    "TightSliceBoxesd",
    "TightSliceBoxesDict",
    "WorldBoxToSliceBoxes",
    "WorldBoxToSliceBoxesD",
    "WorldBoxToSliceBoxesd",
    "WorldBoxToSliceBoxesDict",
    "slice_box_extents",
    "slice_box_mask",
    "world_box_to_voxel_box",
]

#: tolerance (voxels) of a box edge beyond the image's outer voxel edge
_EDGE_TOLERANCE = 0.5


def _check_volume(img: NdarrayOrTensor, what: str) -> None:
    if img.ndim != 4 or img.shape[0] < 1:
        raise ValueError(f"{what}: expected a channel-first volume (C, H, W, D), got shape {tuple(img.shape)}.")


def _axis(axis: int) -> int:
    if isinstance(axis, bool) or int(axis) not in (0, 1, 2, -1, -2, -3):
        raise ValueError(f"axis must be a spatial axis 0, 1 or 2 (or -1..-3), got {axis!r}.")
    return int(axis) % 3


def slice_box_extents(mask: NdarrayOrTensor, axis: int = 2) -> list[tuple[int, int, int, int] | None]:
    """The box of every slice of a box mask (1, H, W, D) along ``axis``: ``(a0, a1, b0, b1)``, half-open voxel
    ranges along the slice's two in-plane axes (in array order), or ``None`` for a slice without a box."""
    _check_volume(mask, "slice_box_extents")
    ax = _axis(axis)
    m = np.moveaxis(np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)[0] > 0, ax, -1)
    out: list[tuple[int, int, int, int] | None] = []
    for k in range(m.shape[-1]):
        rows, cols = np.flatnonzero(m[:, :, k].any(axis=1)), np.flatnonzero(m[:, :, k].any(axis=0))
        out.append(None if rows.size == 0 else (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
    return out


def slice_box_mask(
    extents: Sequence[tuple[int, int, int, int] | None], spatial_shape: Sequence[int], axis: int = 2
) -> np.ndarray:
    """A (1, H, W, D) uint8 box mask with the given per-slice boxes (see :func:`slice_box_extents`)."""
    ax = _axis(axis)
    shape = [int(s) for s in spatial_shape]
    if len(shape) != 3 or len(extents) != shape[ax]:
        raise ValueError(f"need 3 spatial sizes and one extent per slice along axis {ax}, got {shape} and "
                         f"{len(extents)} extents.")
    moved = np.zeros([s for i, s in enumerate(shape) if i != ax] + [shape[ax]], np.uint8)
    for k, e in enumerate(extents):
        if e is not None:
            a0, a1, b0, b1 = (int(v) for v in e)
            moved[max(a0, 0): a1, max(b0, 0): b1, k] = 1
    return np.moveaxis(moved, -1, ax)[None]


def world_box_to_voxel_box(box_mm: Sequence[float], affine: Any, spatial_shape: Sequence[int],
                           name: str = "box") -> tuple[tuple[int, int], ...]:
    """Half-open voxel ranges ``((i0, i1), (j0, j1), (k0, k1))`` of the voxels whose centres lie in the world box.

    Args:
        box_mm: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` in the world millimetres of ``affine`` (NIfTI /
            MONAI: RAS+).
        affine: 4 x 4 voxel-to-world matrix of the image.
        spatial_shape: the image's 3 spatial sizes.
        name: what the box is (for the error message), e.g. the case name.

    Raises:
        ValueError: not 6 finite numbers, a zero or negative extent, an edge beyond the image by more than half a
            voxel, or a box that holds no voxel centre. The message names the box and the image's extent in mm.
    """
    vals = np.asarray(box_mm, dtype=float).ravel() if np.ndim(box_mm) else np.zeros(0)
    if vals.size != 6 or not np.all(np.isfinite(vals)):
        raise ValueError(f"{name}: a box is 6 finite numbers [x_min, y_min, z_min, x_max, y_max, z_max] (mm), got "
                         f"{box_mm!r}.")
    lo, hi = vals[:3], vals[3:]
    if np.any(hi <= lo):
        raise ValueError(f"{name}: box {vals.tolist()} mm has a zero or negative extent (max <= min).")
    aff = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=float)
    shape = np.asarray([int(s) for s in spatial_shape])
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    index = (np.linalg.inv(aff) @ corners.T)[:3].T
    imin, imax = index.min(axis=0), index.max(axis=0)
    if np.any(imin < -0.5 - _EDGE_TOLERANCE) or np.any(imax > shape - 0.5 + _EDGE_TOLERANCE):
        edges = np.array([[x, y, z, 1.0] for x in (-0.5, shape[0] - 0.5) for y in (-0.5, shape[1] - 0.5)
                          for z in (-0.5, shape[2] - 0.5)])
        world = (aff @ edges.T)[:3]
        extent = [[round(float(a), 1), round(float(b), 1)] for a, b in zip(world.min(axis=1), world.max(axis=1))]
        raise ValueError(f"{name}: box {vals.tolist()} mm reaches outside the image (x, y, z extent {extent} mm); "
                         "expected world coordinates of the image's own affine (RAS+ millimetres as NIfTI stores them).")
    start = np.clip(np.ceil(imin - 1e-6), 0, shape).astype(int)
    stop = np.clip(np.floor(imax + 1e-6) + 1, 0, shape).astype(int)
    if np.any(stop <= start):
        raise ValueError(f"{name}: box {vals.tolist()} mm holds no voxel centre of the image (thinner than a voxel).")
    return tuple((int(a), int(b)) for a, b in zip(start, stop))


class WorldBoxToSliceBoxes(Transform):
    """Cut a 3D box in world millimetres into per-slice boxes: a (1, H, W, D) uint8 mask on the image's grid.

    Args:
        axis: spatial axis of the slices (default 2).

    Call ``t(img, box_mm, name="box")``: ``img`` channel-first (C, H, W, D) with its affine (a MetaTensor; a plain
    array is taken as an identity affine, voxel = mm), ``box_mm`` ``[x_min, y_min, z_min, x_max, y_max, z_max]``
    in its world coordinates. Returns the mask, same type and device as ``img`` (a MetaTensor keeps the image's
    meta data and records ``meta["voxel_box"]``). Errors: see :func:`world_box_to_voxel_box`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, axis: int = 2) -> None:
        self.axis = _axis(axis)

    def __call__(self, img: NdarrayOrTensor, box_mm: Sequence[float], name: str = "box") -> NdarrayOrTensor:
        """Return the box mask of ``box_mm`` on ``img``'s grid."""
        _check_volume(img, "WorldBoxToSliceBoxes")
        affine = img.affine if isinstance(img, MetaTensor) else np.eye(4)
        ranges = world_box_to_voxel_box(box_mm, affine, img.shape[1:], name)
        mask = np.zeros((1,) + tuple(img.shape[1:]), np.uint8)
        mask[(0,) + tuple(slice(a, b) for a, b in ranges)] = 1
        out = convert_to_dst_type(mask, img, dtype=torch.uint8 if isinstance(img, torch.Tensor) else np.uint8)[0]
        if isinstance(out, MetaTensor):
            out.meta["voxel_box"] = [list(r) for r in ranges]
        return out


class WorldBoxToSliceBoxesd(MapTransform):
    """Dictionary version of :class:`WorldBoxToSliceBoxes`.

    Args:
        keys: the keys of the world boxes (``[x_min, y_min, z_min, x_max, y_max, z_max]`` mm each).
        ref_key: the image whose grid and affine the masks take.
        mask_key_postfix: the mask of box ``key`` is written to ``f"{key}_{mask_key_postfix}"``.
        axis: see :class:`WorldBoxToSliceBoxes`.
        name_key: an optional key whose value names the case in error messages.
        allow_missing_keys: skip boxes that are not in the data.
    """

    backend = WorldBoxToSliceBoxes.backend

    def __init__(self, keys: KeysCollection, ref_key: str = "image", mask_key_postfix: str = "mask", axis: int = 2,
                 name_key: str | None = "case", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key, self.postfix, self.name_key = ref_key, mask_key_postfix, name_key
        self.cut = WorldBoxToSliceBoxes(axis)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add the box masks; returns a new dictionary."""
        d = dict(data)
        name = str(d.get(self.name_key, "box")) if self.name_key else "box"
        for key in self.key_iterator(d):
            d[f"{key}_{self.postfix}"] = self.cut(d[self.ref_key], d[key], name=f"{name} ({key})")
        return d


class TightSliceBoxes(Transform):
    """Each slice's tight box around its label (any value > 0): a (1, H, W, D) uint8 box mask.

    Args:
        axis: spatial axis of the slices (default 2).

    Call ``t(label)``: channel-first (1, H, W, D), numpy or torch; returns the mask, same type and device (a
    MetaTensor keeps the label's meta data). A slice without label gets no box.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, axis: int = 2) -> None:
        self.axis = _axis(axis)

    def __call__(self, label: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return the tight per-slice box mask of ``label``."""
        _check_volume(label, "TightSliceBoxes")
        if label.shape[0] != 1:
            raise ValueError(f"TightSliceBoxes: expected a one-channel label (1, H, W, D), got {tuple(label.shape)}.")
        mask = slice_box_mask(slice_box_extents(label, self.axis), label.shape[1:], self.axis)
        return convert_to_dst_type(mask, label, dtype=torch.uint8 if isinstance(label, torch.Tensor) else np.uint8)[0]


class TightSliceBoxesd(MapTransform):
    """Dictionary version of :class:`TightSliceBoxes`.

    Args:
        keys: label keys (1, H, W, D).
        box_key_postfix: the mask of label ``key`` is written to ``f"{key}_{box_key_postfix}"``.
        axis: see :class:`TightSliceBoxes`.
        allow_missing_keys: skip labels that are not in the data.
    """

    backend = TightSliceBoxes.backend

    def __init__(self, keys: KeysCollection, box_key_postfix: str = "tight_box", axis: int = 2,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.postfix = box_key_postfix
        self.boxes = TightSliceBoxes(axis)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add the tight box masks; returns a new dictionary."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}_{self.postfix}"] = self.boxes(d[key])
        return d


WorldBoxToSliceBoxesD = WorldBoxToSliceBoxesDict = WorldBoxToSliceBoxesd
TightSliceBoxesD = TightSliceBoxesDict = TightSliceBoxesd
