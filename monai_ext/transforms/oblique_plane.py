"""Oblique planes through a 3D volume: the 2D training samples of the multi-planar U-Net.

Laprade et al., "How few annotations are needed for segmentation using a multi-planar U-Net?" (DGM4MICCAI/DALI
2021), train a 2D U-Net on images resampled on randomly oriented planes through the volume (images trilinear,
labels nearest neighbour) and predict a volume from several rotated copies of it.

A plane is a rotation (3 x 3, columns: the plane's row direction, column direction and normal, in voxel axes) and
a centre (voxel coordinates of the plane's middle pixel); its pixels are 1 voxel apart.

- :func:`random_rotation`, :func:`plane_coordinates`, :func:`sample_at_coordinates`: the geometry.
- :class:`ObliquePlane` / :class:`ObliquePlaned`: resample a given plane.
- :class:`RandObliquePlane` / :class:`RandObliquePlaned`: draw a plane and hand it to :class:`ObliquePlane`.

The plane of every call is recorded in ``meta["oblique_plane"]`` of a MetaTensor output (``{"rotation",
"center", "size"}``); ``ObliquePlane(**record)`` resamples the same plane again.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable, Resample, Transform
from monai.utils import TransformBackends, ensure_tuple_rep
from scipy.spatial.transform import Rotation

__all__ = [
    "ObliquePlane",
    "ObliquePlaned",
    "ObliquePlaneD",
    "ObliquePlaneDict",
    "RandObliquePlane",
    "RandObliquePlaned",
    "RandObliquePlaneD",
    "RandObliquePlaneDict",
    "SamplerRandomizable",
    "check_plane_sampling",
    "check_rotation",
    "draw_plane",
    "offset_center",
    "plane_coordinates",
    "random_rotation",
    "sample_at_coordinates",
]

META_FIELD = "oblique_plane"
ORIENTATIONS = ("any", "axis")


def random_rotation(rng: np.random.RandomState, orientation: str = "any") -> np.ndarray:
    """A rotation (3, 3) drawn with ``rng``: uniform over all rotations (``"any"``, scipy's ``Rotation.random``) or
    one of the 24 that map voxel axes onto voxel axes (``"axis"``: planes are slices of the volume)."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}.")
    if orientation == "axis":
        perm = rng.permutation(3)
        signs = rng.choice([-1.0, 1.0], size=3)
        rot = np.eye(3)[:, perm] * signs
        if np.linalg.det(rot) < 0:
            rot[:, 2] *= -1.0
        return rot
    return Rotation.random(random_state=rng).as_matrix()


def check_plane_sampling(orientation: str, center_range: float) -> float:
    """``ValueError`` naming the setting for an unknown ``orientation`` or a ``center_range`` outside [0, 1]; returns
    ``center_range`` as a float."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}.")
    if not 0.0 <= float(center_range) <= 1.0:
        raise ValueError(f"center_range must be in [0, 1], got {center_range!r}.")
    return float(center_range)


def draw_plane(rng: np.random.RandomState, orientation: str, center_range: float) -> tuple[np.ndarray, np.ndarray]:
    """One random plane: its rotation (:func:`random_rotation`) and its centre's offset from the volume's centre, per
    axis uniform in ``[-center_range, center_range]`` as a fraction of the half size (:func:`offset_center`)."""
    return random_rotation(rng, orientation), rng.uniform(-center_range, center_range, size=3)


def offset_center(shape: Sequence[int], offset: np.ndarray) -> np.ndarray:
    """Voxel coordinates of the centre ``offset`` (fractions of the half size per axis) away from the centre of a
    volume of spatial ``shape``."""
    half = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    return half + np.asarray(offset, dtype=np.float64) * half


def check_rotation(rotation: Any, name: str = "rotation") -> np.ndarray:
    """``rotation`` as a float64 (3, 3) array; ``ValueError`` unless it is orthonormal."""
    rot = np.asarray(rotation, dtype=np.float64)
    if rot.shape != (3, 3) or not np.all(np.isfinite(rot)) or not np.allclose(rot.T @ rot, np.eye(3), atol=1e-4):
        raise ValueError(f"{name} must be an orthonormal 3 x 3 matrix (columns: plane rows, plane columns, normal), "
                         f"got {rotation!r}.")
    return rot


def plane_coordinates(rotation: Any, center: Sequence[float], size: Sequence[int]) -> torch.Tensor:
    """Voxel coordinates (3, H, W) of the pixels of the plane through ``center`` (voxel coordinates) spanned by the
    first two columns of ``rotation``, ``size = (H, W)`` pixels 1 voxel apart, centred on ``center``."""
    rot = torch.as_tensor(check_rotation(rotation), dtype=torch.float64)
    h, w = (int(s) for s in size)
    u = torch.arange(h, dtype=torch.float64) - (h - 1) / 2.0
    v = torch.arange(w, dtype=torch.float64) - (w - 1) / 2.0
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    c = torch.as_tensor(np.asarray(center, dtype=np.float64)).reshape(3, 1, 1)
    return (c + rot[:, 0, None, None] * uu + rot[:, 1, None, None] * vv).float()


def sample_at_coordinates(img: torch.Tensor, coords: torch.Tensor, mode: str = "bilinear",
                          padding_value: float = 0.0) -> torch.Tensor:
    """Values of ``img`` (C, X, Y, Z) at the voxel coordinates ``coords`` (3, *S), by MONAI's ``Resample``
    (``"bilinear"``: trilinear, or ``"nearest"``); points outside the volume get ``padding_value``. Returns a
    torch tensor (C, *S) on ``img``'s device."""
    img_t = torch.as_tensor(img)
    if img_t.ndim != 4:
        raise ValueError(f"expected a channel-first volume (C, X, Y, Z), got shape {tuple(img_t.shape)}.")
    if coords.shape[0] != 3:
        raise ValueError(f"coords must be (3, ...) voxel coordinates, got shape {tuple(coords.shape)}.")
    out_shape = coords.shape[1:]
    grid = coords.reshape(3, *out_shape, *([1] * (3 - len(out_shape)))).to(img_t.device, torch.float32)
    grid = grid - (torch.as_tensor(img_t.shape[1:], device=grid.device, dtype=torch.float32) - 1.0).reshape(3, 1, 1, 1) / 2.0
    data = img_t.as_tensor() if isinstance(img_t, MetaTensor) else img_t
    data = data.float() - float(padding_value)
    out = Resample(mode=mode, padding_mode="zeros", norm_coords=True, align_corners=False)(data, grid=grid)
    out = (out.as_tensor() if isinstance(out, MetaTensor) else torch.as_tensor(out)) + float(padding_value)
    return out.reshape(out.shape[0], *out_shape)


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    vals = ensure_tuple_rep(size, 2)
    if len(vals) != 2 or any(isinstance(s, bool) or int(s) != s or int(s) < 1 for s in vals):
        raise ValueError(f"size must be one or two positive integers (pixels), got {size!r}.")
    return int(vals[0]), int(vals[1])


def _plane_like_input(out: torch.Tensor, img: NdarrayOrTensor, record: dict[str, Any]) -> NdarrayOrTensor:
    if isinstance(img, np.ndarray):
        return out.cpu().numpy().astype(img.dtype if np.issubdtype(img.dtype, np.floating) else np.float32)
    out = out.to(img.dtype) if torch.is_floating_point(img) else out
    if isinstance(img, MetaTensor):
        res = MetaTensor(out)
        res.meta[META_FIELD] = record
        res.meta["filename_or_obj"] = img.meta.get("filename_or_obj", "")
        return res
    return out


class ObliquePlane(Transform):
    """Resample a channel-first volume (C, X, Y, Z) on one plane: the (C, H, W) image of the plane through
    ``center`` spanned by ``rotation[:, 0]`` (rows) and ``rotation[:, 1]`` (columns), pixels 1 voxel apart.

    Args:
        rotation: orthonormal (3, 3), columns in voxel axes: row direction, column direction, plane normal.
        center: voxel coordinates of the plane's middle; ``None``: the volume's centre.
        size: (H, W) pixels; ``None``: the largest spatial size of the volume, both ways.
        mode: ``"bilinear"`` (trilinear; images) or ``"nearest"`` (labels).
        padding_value: the value of points outside the volume (e.g. -1, "not annotated", for sparse labels).

    Returns the plane as the input's type (numpy float, or a torch tensor on the input's device); a MetaTensor gets
    ``meta["oblique_plane"] = {"rotation", "center", "size"}``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, rotation: Any, center: Sequence[float] | None = None, size: Sequence[int] | int | None = None,
                 mode: str = "bilinear", padding_value: float = 0.0) -> None:
        self.rotation = check_rotation(rotation)
        self.center = None if center is None else [float(c) for c in center]
        if self.center is not None and len(self.center) != 3:
            raise ValueError(f"center must be 3 voxel coordinates, got {center!r}.")
        self.size = _check_size(size)
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}.")
        self.mode = mode
        self.padding_value = float(padding_value)

    def plane_of(self, shape: Sequence[int]) -> dict[str, Any]:
        """The plane record for a volume of spatial ``shape`` (defaults filled in)."""
        center = self.center if self.center is not None else [(s - 1) / 2.0 for s in shape]
        size = self.size if self.size is not None else (int(max(shape)),) * 2
        return {"rotation": self.rotation.tolist(), "center": [float(c) for c in center], "size": list(size)}

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The plane of ``img`` (C, X, Y, Z); see the class docstring."""
        if img.ndim != 4:
            raise ValueError(f"ObliquePlane expects a channel-first 3D volume (C, X, Y, Z), got shape {tuple(img.shape)}.")
        record = self.plane_of(img.shape[1:])
        coords = plane_coordinates(record["rotation"], record["center"], record["size"])
        out = sample_at_coordinates(torch.as_tensor(img), coords, self.mode, self.padding_value)
        return _plane_like_input(out, img, record)


class RandObliquePlane(Randomizable, Transform):
    """Draw a plane and resample the volume on it with :class:`ObliquePlane` (the multi-planar U-Net's training
    samples, Laprade et al., DGM4MICCAI/DALI 2021).

    Args:
        size: (H, W) pixels of the plane; ``None``: the largest spatial size of the volume.
        orientation: ``"any"`` (uniform over rotations) or ``"axis"`` (slices of the volume, any axis).
        center_range: the centre is the volume's centre plus, per axis, a uniform offset in
            ``[-r, r] x (size - 1) / 2`` voxels (0: always through the centre, 1: anywhere in the volume).
        mode, padding_value: as :class:`ObliquePlane`.

    ``last_params`` holds the last plane record; ``ObliquePlane(**last_params)`` replays it.
    """

    backend = ObliquePlane.backend

    def __init__(self, size: Sequence[int] | int | None = None, orientation: str = "any", center_range: float = 0.5,
                 mode: str = "bilinear", padding_value: float = 0.0) -> None:
        self.center_range = check_plane_sampling(orientation, center_range)
        self.size = _check_size(size)
        self.orientation = orientation
        self.mode = mode
        self.padding_value = float(padding_value)
        self.last_params: dict[str, Any] | None = None
        self._rotation: np.ndarray | None = None
        self._offset: np.ndarray | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw the rotation and the centre offset (a fraction of the half size per axis)."""
        self._rotation, self._offset = draw_plane(self.R, self.orientation, self.center_range)

    def sampled_plane(self, shape: Sequence[int]) -> ObliquePlane:
        """The deterministic transform of the last draw for a volume of spatial ``shape``."""
        if self._rotation is None:
            raise RuntimeError("call randomize() first.")
        return ObliquePlane(self._rotation, center=offset_center(shape, self._offset), size=self.size or int(max(shape)),
                            mode=self.mode, padding_value=self.padding_value)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """A random plane of ``img`` (C, X, Y, Z)."""
        if randomize:
            self.randomize()
        if img.ndim != 4:
            raise ValueError(f"RandObliquePlane expects a channel-first 3D volume (C, X, Y, Z), got shape {tuple(img.shape)}.")
        plane = self.sampled_plane(img.shape[1:])
        self.last_params = dict(plane.plane_of(img.shape[1:]), mode=plane.mode, padding_value=plane.padding_value)
        return plane(img)


class SamplerRandomizable(Randomizable):
    """Base of a dictionary transform whose array version, ``self.sampler``, draws every random number: seeding
    seeds the sampler with this transform's state, ``randomize`` is the sampler's draw."""

    sampler: Randomizable

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed this transform and its sampler; returns ``self``."""
        super().set_random_state(seed, state)
        self.sampler.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """One draw of the sampler."""
        self.sampler.randomize()


def _per_key(value: Any, n: int, name: str) -> tuple:
    vals = ensure_tuple_rep(value, n)
    if len(vals) != n:
        raise ValueError(f"{name}: one value or one per key ({n}), got {value!r}.")
    return vals


class ObliquePlaned(MapTransform):
    """Dictionary-based :class:`ObliquePlane`: the same plane of every ``keys`` volume (same spatial shape), with a
    ``mode`` and ``padding_value`` per key (e.g. ``("bilinear", "nearest")`` and ``(0, -1)`` for image and
    sparse label)."""

    backend = ObliquePlane.backend

    def __init__(self, keys: KeysCollection, rotation: Any, center: Sequence[float] | None = None,
                 size: Sequence[int] | int | None = None, mode: Sequence[str] | str = "bilinear",
                 padding_value: Sequence[float] | float = 0.0, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        modes = _per_key(mode, len(self.keys), "mode")
        pads = _per_key(padding_value, len(self.keys), "padding_value")
        self.planes = {k: ObliquePlane(rotation, center, size, m, p) for k, m, p in zip(self.keys, modes, pads)}

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Replace every ``keys`` volume by its plane; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.planes[key](d[key])
        return d


class RandObliquePlaned(SamplerRandomizable, MapTransform):
    """Dictionary-based :class:`RandObliquePlane`: one random plane per call, resampled from every ``keys`` volume
    (same spatial shape) with a ``mode`` and ``padding_value`` per key; the plane record is in ``last_params``
    and in ``meta["oblique_plane"]`` of MetaTensor outputs."""

    backend = ObliquePlane.backend

    def __init__(self, keys: KeysCollection, size: Sequence[int] | int | None = None, orientation: str = "any",
                 center_range: float = 0.5, mode: Sequence[str] | str = "bilinear",
                 padding_value: Sequence[float] | float = 0.0, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.modes = _per_key(mode, len(self.keys), "mode")
        self.pads = _per_key(padding_value, len(self.keys), "padding_value")
        self.sampler = RandObliquePlane(size, orientation, center_range)
        self.last_params: dict[str, Any] | None = None

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Replace every ``keys`` volume by the plane drawn for this call; returns a new dict."""
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        self.randomize()
        shape = d[keys[0]].shape[1:]
        plane = self.sampler.sampled_plane(shape)
        self.last_params = plane.plane_of(shape)
        for key, mode, pad in zip(self.keys, self.modes, self.pads):
            if key not in d:
                continue
            if d[key].shape[1:] != shape:
                raise ValueError(f"{key!r} has spatial shape {tuple(d[key].shape[1:])}, {keys[0]!r} {tuple(shape)}: "
                                 "the volumes of one plane must share their grid.")
            d[key] = ObliquePlane(plane.rotation, plane.center, plane.size, mode, pad)(d[key])
        return d


ObliquePlaneD = ObliquePlaneDict = ObliquePlaned
RandObliquePlaneD = RandObliquePlaneDict = RandObliquePlaned
