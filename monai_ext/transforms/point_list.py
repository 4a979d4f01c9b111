"""A variable-length list of points (landmarks, suture points) as a fixed-size channel-first array.

Frames with 0-15 points then batch together, and MONAI's ``ApplyTransformToPointsd`` moves the points with the
image through flips, rotations, zooms and crops: convert them to world coordinates with the image's affine before
the spatial transforms (``invert_affine=False``) and back to the transformed image's grid after them
(``invert_affine=True``); the image must be a MetaTensor for that (``EnsureTyped``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

__all__ = ["PointList", "PointListD", "PointListDict", "PointListd"]


class PointList(Transform):
    """``(N, D)`` points (a nested list, numpy array or tensor; ``N`` may be 0) as a ``(1, max_points, D)``
    float32 tensor whose rows after ``N`` are NaN (padding: ``MultiPointHeatmap``, the point post-processing and
    ``PointMatchF1Metric`` skip them).

    Coordinates are in the index order and units (pixels / voxels) of the image's array as loaded by MONAI; for a
    PNG read by MONAI's ``PILReader`` (which transposes) that is (x, y) = (column, row) of the picture.

    Args:
        max_points: the fixed number of rows.
        spatial_dims: 2 or 3 (``D``).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, max_points: int, spatial_dims: int = 2) -> None:
        if isinstance(max_points, bool) or int(max_points) < 1:
            raise ValueError(f"max_points must be a positive integer, got {max_points!r}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        self.max_points = int(max_points)
        self.spatial_dims = int(spatial_dims)

    def __call__(self, points: Any, name: str = "points") -> NdarrayOrTensor:
        """Pad ``points`` (``name`` appears in the errors): a numpy array for a numpy array, else a tensor (on the
        input's device). Raises ``ValueError`` for a wrong shape, more than ``max_points`` points or a coordinate
        that is not finite."""
        arr = torch.as_tensor(np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points,
                                         dtype=np.float64), dtype=torch.float32)
        if arr.numel() == 0:
            arr = arr.reshape(0, self.spatial_dims)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2 or arr.shape[1] != self.spatial_dims:
            raise ValueError(f"{name}: expected {self.spatial_dims}D points as an (N, {self.spatial_dims}) list, got "
                             f"shape {tuple(arr.shape)}.")
        arr = arr[~torch.isnan(arr).all(dim=1)]
        if not torch.isfinite(arr).all():
            raise ValueError(f"{name}: every coordinate must be finite (a point is all-NaN or not at all).")
        if arr.shape[0] > self.max_points:
            raise ValueError(f"{name}: {arr.shape[0]} points, more than max_points={self.max_points}.")
        out = torch.full((1, self.max_points, self.spatial_dims), float("nan"))
        out[0, : arr.shape[0]] = arr
        if isinstance(points, np.ndarray):
            return out.numpy()
        return out.to(points.device) if isinstance(points, torch.Tensor) else out


class PointListd(MapTransform):
    """Dictionary version of :class:`PointList`; with ``image_key`` the points must also lie on that image's grid
    (index coordinates from -0.5 to size - 0.5 per axis), else a ``ValueError`` names the image file.

    Args:
        keys: point keys.
        max_points, spatial_dims: see :class:`PointList`.
        image_key: the channel-first image the points belong to (``None``: no bounds check).
        allow_missing_keys: skip keys that are not in the data.
    """

    backend = PointList.backend

    def __init__(
        self,
        keys: KeysCollection,
        max_points: int,
        spatial_dims: int = 2,
        image_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.pad = PointList(max_points, spatial_dims)
        self.image_key = image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Pad every ``keys`` point list; returns a new dictionary."""
        d = dict(data)
        for key in self.key_iterator(d):
            source = _source_name(d, self.image_key)
            d[key] = self.pad(d[key], name=f"{key!r} of {source}")
            if self.image_key is not None:
                _check_inside(torch.as_tensor(d[key][0]), d[self.image_key].shape[1:], f"{key!r} of {source}")
        return d


def _source_name(d: Mapping[Hashable, Any], image_key: str | None) -> str:
    image = d.get(image_key) if image_key is not None else None
    if isinstance(image, MetaTensor) and image.meta.get("filename_or_obj"):
        return str(image.meta["filename_or_obj"])
    return "the image" if image_key is None else repr(image_key)


def _check_inside(points: torch.Tensor, spatial_shape: Sequence[int], name: str) -> None:
    if len(spatial_shape) != points.shape[-1]:
        raise ValueError(f"{name}: {points.shape[-1]}D points for an image with spatial shape "
                         f"{tuple(spatial_shape)}.")
    found = points[~torch.isnan(points).any(dim=1)]
    upper = torch.as_tensor([float(s) - 0.5 for s in spatial_shape])
    outside = ((found < -0.5) | (found > upper)).any(dim=1)
    if outside.any():
        raise ValueError(f"{name}: point {found[outside][0].tolist()} lies outside the image grid "
                         f"{tuple(int(s) for s in spatial_shape)} (index coordinates).")


PointListD = PointListDict = PointListd
