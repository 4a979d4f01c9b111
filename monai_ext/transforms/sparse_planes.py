"""Sparse planar annotation: a label volume annotated only on a few planes, the rest marked "not annotated".

Laprade et al., "How few annotations are needed for segmentation using a multi-planar U-Net?" (DGM4MICCAI/DALI
2021), simulate an annotator who labels ``n_a`` randomly oriented planes of a volume: only the voxels of those
planes keep their label. Training planes that cross them then carry labels only along the crossing lines
(resample the sparse volume with :class:`~monai_ext.transforms.oblique_plane.ObliquePlane`, nearest neighbour,
padding ``-1``).

- :class:`SparsePlaneAnnotation` / :class:`SparsePlaneAnnotationd`: keep the label on given planes.
- :class:`RandSparsePlaneAnnotation` / :class:`RandSparsePlaneAnnotationd`: draw ``num_planes`` planes and hand
  them to :class:`SparsePlaneAnnotation`.

A plane is ``{"rotation": 3 x 3, "center": [x, y, z]}`` in voxel axes / coordinates, the normal being the
rotation's third column (the plane records of :mod:`~monai_ext.transforms.oblique_plane`, so each annotated plane
can be resampled as a fully labelled 2D sample). The planes are recorded in ``meta["sparse_planes"]`` of a
MetaTensor output; ``SparsePlaneAnnotation(planes=record)`` reproduces the output.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import TransformBackends

from .oblique_plane import SamplerRandomizable, check_plane_sampling, check_rotation, draw_plane, offset_center

__all__ = [
    "RandSparsePlaneAnnotation",
    "RandSparsePlaneAnnotationd",
    "RandSparsePlaneAnnotationD",
    "RandSparsePlaneAnnotationDict",
    "SparsePlaneAnnotation",
    "SparsePlaneAnnotationd",
    "SparsePlaneAnnotationD",
    "SparsePlaneAnnotationDict",
    "annotated_plane_mask",
]

META_FIELD = "sparse_planes"


def _check_planes(planes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(planes):
        if not isinstance(p, Mapping) or "rotation" not in p or "center" not in p:
            raise ValueError(f"planes[{i}] must be a dict with 'rotation' (3 x 3) and 'center' (3 voxel coordinates), "
                             f"got {p!r}.")
        center = np.asarray(p["center"], dtype=np.float64)
        if center.shape != (3,) or not np.all(np.isfinite(center)):
            raise ValueError(f"planes[{i}]['center'] must be 3 finite voxel coordinates, got {p['center']!r}.")
        out.append({"rotation": check_rotation(p["rotation"], f"planes[{i}]['rotation']").tolist(),
                    "center": center.tolist()})
    return out


def annotated_plane_mask(shape: Sequence[int], planes: Sequence[Mapping[str, Any]], half_thickness: float = 0.5,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (X, Y, Z) mask of the voxels whose centre lies within ``half_thickness`` voxels of any plane."""
    planes = _check_planes(planes)
    axes = [torch.arange(int(s), dtype=torch.float32, device=device) for s in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    mask = torch.zeros(tuple(int(s) for s in shape), dtype=torch.bool, device=device)
    for p in planes:
        normal = torch.as_tensor(np.asarray(p["rotation"])[:, 2], dtype=torch.float32, device=device)
        center = torch.as_tensor(p["center"], dtype=torch.float32, device=device)
        dist = ((grid - center.reshape(3, 1, 1, 1)) * normal.reshape(3, 1, 1, 1)).sum(0)
        mask |= dist.abs() < half_thickness
    return mask


class SparsePlaneAnnotation(Transform):
    """Keep a label volume (1, X, Y, Z) only on the given planes; every other voxel becomes ``ignore_value``.

    Args:
        planes: plane records ``{"rotation", "center"}`` (voxel axes and coordinates; normal = third column).
        half_thickness: voxels whose centre is closer than this to a plane (voxels) count as annotated; 0.5 gives
            a plane one voxel thick.
        ignore_value: the value of voxels not annotated (a loss with ``ignore_index`` skips them).

    Returns the input's type (numpy or torch, same device), dtype float32 for integer and boolean inputs (to hold
    ``ignore_value``); a MetaTensor keeps its meta data and gets ``meta["sparse_planes"]`` (the planes).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, planes: Sequence[Mapping[str, Any]], half_thickness: float = 0.5, ignore_value: float = -1.0) -> None:
        self.planes = _check_planes(planes)
        if not float(half_thickness) > 0:
            raise ValueError(f"half_thickness must be > 0 voxels, got {half_thickness!r}.")
        self.half_thickness = float(half_thickness)
        self.ignore_value = float(ignore_value)

    def __call__(self, label: NdarrayOrTensor) -> NdarrayOrTensor:
        """The sparse version of ``label`` (1, X, Y, Z)."""
        if label.ndim != 4 or label.shape[0] != 1:
            raise ValueError(f"SparsePlaneAnnotation expects a one-channel label volume (1, X, Y, Z), got shape "
                             f"{tuple(label.shape)}.")
        lab = torch.as_tensor(label)
        data = lab.as_tensor() if isinstance(lab, MetaTensor) else lab
        dtype = data.dtype if torch.is_floating_point(data) else torch.float32
        mask = annotated_plane_mask(data.shape[1:], self.planes, self.half_thickness, data.device)
        out = torch.where(mask[None], data.to(dtype), torch.full_like(data, self.ignore_value, dtype=dtype))
        if isinstance(label, np.ndarray):
            return out.cpu().numpy()
        if isinstance(label, MetaTensor):
            res = MetaTensor(out)
            res.copy_meta_from(label)
            res.meta[META_FIELD] = [dict(p) for p in self.planes]
            return res
        return out


class RandSparsePlaneAnnotation(Randomizable, Transform):
    """Draw ``num_planes`` random planes and keep the label only there (:class:`SparsePlaneAnnotation`): the
    sparse annotation of Laprade et al. (DGM4MICCAI/DALI 2021).

    Args:
        num_planes: planes annotated (the paper's ``n_a``), >= 1.
        orientation: ``"any"`` (uniform over rotations) or ``"axis"`` (slices along the voxel axes).
        center_range: each plane passes through the volume's centre plus a uniform offset in
            ``[-r, r] x (size - 1) / 2`` voxels per axis.
        half_thickness, ignore_value: as :class:`SparsePlaneAnnotation`.

    ``last_params`` holds ``{"planes": [...]}`` of the last call (``SparsePlaneAnnotation(**last_params)``).
    """

    backend = SparsePlaneAnnotation.backend

    def __init__(self, num_planes: int, orientation: str = "any", center_range: float = 0.5,
                 half_thickness: float = 0.5, ignore_value: float = -1.0) -> None:
        if isinstance(num_planes, bool) or int(num_planes) != num_planes or int(num_planes) < 1:
            raise ValueError(f"num_planes must be a positive integer, got {num_planes!r}.")
        self.center_range = check_plane_sampling(orientation, center_range)
        self.num_planes = int(num_planes)
        self.orientation = orientation
        self.half_thickness = float(half_thickness)
        self.ignore_value = float(ignore_value)
        self.last_params: dict[str, Any] | None = None
        self._draws: list[tuple[np.ndarray, np.ndarray]] = []

    def randomize(self, data: Any = None) -> None:
        """Draw the planes' rotations and centre offsets."""
        self._draws = [draw_plane(self.R, self.orientation, self.center_range) for _ in range(self.num_planes)]

    def sampled_planes(self, shape: Sequence[int]) -> list[dict[str, Any]]:
        """The plane records of the last draw for a volume of spatial ``shape``."""
        return [{"rotation": rot.tolist(), "center": offset_center(shape, off).tolist()} for rot, off in self._draws]

    def __call__(self, label: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """The sparse version of ``label`` (1, X, Y, Z) on freshly drawn planes."""
        if randomize:
            self.randomize()
        self.last_params = {"planes": self.sampled_planes(label.shape[1:]), "half_thickness": self.half_thickness,
                            "ignore_value": self.ignore_value}
        return SparsePlaneAnnotation(**self.last_params)(label)


class SparsePlaneAnnotationd(MapTransform):
    """Dictionary-based :class:`SparsePlaneAnnotation` on every ``keys`` label volume."""

    backend = SparsePlaneAnnotation.backend

    def __init__(self, keys: KeysCollection, planes: Sequence[Mapping[str, Any]], half_thickness: float = 0.5,
                 ignore_value: float = -1.0, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.annotate = SparsePlaneAnnotation(planes, half_thickness, ignore_value)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Replace every ``keys`` label by its sparse version; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.annotate(d[key])
        return d


class RandSparsePlaneAnnotationd(SamplerRandomizable, MapTransform):
    """Dictionary-based :class:`RandSparsePlaneAnnotation`: the same random planes for every ``keys`` label; the
    planes are also written to ``data[planes_key]`` (a list of plane records) so that a later step can resample
    the annotated planes themselves (``None``: not written)."""

    backend = SparsePlaneAnnotation.backend

    def __init__(self, keys: KeysCollection, num_planes: int, orientation: str = "any", center_range: float = 0.5,
                 half_thickness: float = 0.5, ignore_value: float = -1.0, planes_key: str | None = "annotation_planes",
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.sampler = RandSparsePlaneAnnotation(num_planes, orientation, center_range, half_thickness, ignore_value)
        self.planes_key = planes_key
        self.last_params: dict[str, Any] | None = None

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Replace every ``keys`` label by its sparse version on the planes drawn for this call."""
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        self.randomize()
        for key in keys:
            d[key] = self.sampler(d[key], randomize=False)
        self.last_params = self.sampler.last_params
        if self.planes_key is not None:
            d[self.planes_key] = [dict(p) for p in self.last_params["planes"]]
        return d


SparsePlaneAnnotationD = SparsePlaneAnnotationDict = SparsePlaneAnnotationd
RandSparsePlaneAnnotationD = RandSparsePlaneAnnotationDict = RandSparsePlaneAnnotationd
