"""Spline warps of an image patch on a coarse control lattice whose centre stays put: the deformed duplicates of the
positive patches of Assis et al., "An Efficient Data Strategy for the Detection of Brain Aneurysms from MRA with
Deep Learning" (DGM4MICCAI / DALI 2021). Each duplicate of a patch centred on an aneurysm gets its own warp: a
3 x 3 x 3 lattice spanning the patch, every control point except the centre moved at random by up to 4 mm per axis,
the voxel positions in between found by cubic-spline interpolation. The centre stays fixed, so the aneurysm stays
at the patch centre while its shape and the vessels around it change.

- :class:`LatticeSplineDeform` / :class:`LatticeSplineDeformd`: deterministic: warp by given control-point
  displacements (voxels);
- :class:`RandLatticeSplineDeform` / :class:`RandLatticeSplineDeformd`: with probability ``prob`` draw the
  displacements uniformly in ``[-max_displacement, max_displacement]`` voxels per axis (the centre point 0) and
  apply :class:`LatticeSplineDeform`; the draw is recorded, so every warp replays from the record.

The dense field is the cubic interpolating B-spline of :func:`monai_ext.transforms.bspline_displacement_field`
(control point ``j`` of an axis of ``n`` voxels at voxel ``j (n - 1) / (g - 1)``). The output voxel ``x`` takes the
input's value at ``x + u(x)`` (backward mapping), interpolated per ``mode`` (``"bilinear"``: (tri)linear,
``"nearest"``: nearest, for labels), values outside the patch from its nearest border voxel. The applied
parameters are appended to ``meta["lattice_spline_deform"]`` of a MetaTensor output and kept in ``last_params``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy, ensure_tuple_rep
from scipy import ndimage

from .mask_warp import bspline_displacement_field
from .random_delegate import RandArrayDelegateMixin

__all__ = [
    "LatticeSplineDeform",
    "LatticeSplineDeformD",
    "LatticeSplineDeformDict",
    "LatticeSplineDeformd",
    "RandLatticeSplineDeform",
    "RandLatticeSplineDeformD",
    "RandLatticeSplineDeformDict",
    "RandLatticeSplineDeformd",
]

META_FIELD = "lattice_spline_deform"
_ORDERS = {"bilinear": 1, "nearest": 0}


def _interp_order(mode: str) -> int:
    if mode not in _ORDERS:
        raise ValueError(f"mode={mode!r}: expected one of {sorted(_ORDERS)}.")
    return _ORDERS[mode]


def _check_lattice(displacements: Any) -> np.ndarray:
    try:
        disp = np.asarray(displacements, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"displacements: expected a nested list of numbers (voxels), got {displacements!r}.") from err
    if disp.ndim not in (3, 4) or disp.shape[0] != disp.ndim - 1 or min(disp.shape[1:]) < 2:
        raise ValueError("displacements: expected shape (2, g, g) or (3, g, g, g) (spatial axis, lattice, g >= 2), "
                         f"got {disp.shape}.")
    if not np.all(np.isfinite(disp)):
        raise ValueError("displacements: expected finite values (voxels).")
    return disp


def _check_deform_input(img: Any, name: str) -> None:
    if not isinstance(img, (np.ndarray, torch.Tensor)) or img.ndim not in (3, 4):
        shape = tuple(getattr(img, "shape", ()))
        raise ValueError(f"{name}: expected a channel-first image (C, H, W) or (C, H, W, D) as a numpy array or "
                         f"torch tensor, got {type(img).__name__} of shape {shape}.")


class LatticeSplineDeform(Transform):
    """Warp a channel-first image (C, H, W) or (C, H, W, D) by a cubic-spline deformation given by the displacements
    of a control lattice spanning it (Assis et al., DGM4MICCAI / DALI 2021: 3 x 3 x 3 around a 48^3 patch).

    Args:
        displacements: control-point displacements in voxels, shape ``(ndim, g0, g1[, g2])`` (``displacements[a]``
            along spatial axis ``a``). Output voxel ``x`` = input at ``x + u(x)``; all zeros is the identity.
        mode: ``"bilinear"`` (images) or ``"nearest"`` (labels).

    Call ``t(img, mode=None)``: numpy array or torch tensor (any device). Returns a new array of the input's type,
    shape, dtype and device; a MetaTensor keeps its meta data and gets ``params`` appended to
    ``meta["lattice_spline_deform"]``. Raises ``ValueError`` for a lattice whose number of axes differs from the
    image's.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, displacements: Sequence[Any] | np.ndarray, mode: str = "bilinear") -> None:
        self.displacements = _check_lattice(displacements)
        self.mode = mode
        _interp_order(mode)

    @property
    def params(self) -> dict[str, Any]:
        """The record (``LatticeSplineDeform(**record)`` rebuilds this transform, mode aside)."""
        return {"displacements": self.displacements.tolist()}

    def __call__(self, img: NdarrayOrTensor, mode: str | None = None) -> NdarrayOrTensor:
        """Warp every channel of ``img`` by the same field; see the class docstring."""
        _check_deform_input(img, "img")
        order = _interp_order(self.mode if mode is None else mode)
        spatial = tuple(img.shape[1:])
        if self.displacements.shape[0] != len(spatial):
            raise ValueError(f"displacements: shape {self.displacements.shape} is for {self.displacements.shape[0]} "
                             f"spatial axes, the image has {len(spatial)} (shape {tuple(img.shape)}).")
        arr = convert_to_numpy(img)
        if np.any(self.displacements):
            coords = np.indices(spatial, dtype=np.float64) + bspline_displacement_field(self.displacements, spatial)
            out = np.stack([ndimage.map_coordinates(c.astype(np.float32), coords, order=order, mode="nearest")
                            for c in arr]).astype(arr.dtype, copy=False)
        else:
            out = arr.copy()
        res, *_ = convert_to_dst_type(out, img, dtype=img.dtype)
        if isinstance(res, MetaTensor):
            res.meta[META_FIELD] = list(res.meta.get(META_FIELD, [])) + [self.params]
        return res


class LatticeSplineDeformd(MapTransform):
    """Dictionary-based :class:`LatticeSplineDeform`: warp every ``keys`` item by the same lattice.

    Args:
        keys: channel-first images / labels with the same spatial shape.
        displacements: control-point displacements in voxels (see :class:`LatticeSplineDeform`).
        mode: one per key or one for all: ``"bilinear"`` for images, ``"nearest"`` for labels.
        allow_missing_keys: skip keys that are not in the data.
    """

    backend = LatticeSplineDeform.backend

    def __init__(self, keys: KeysCollection, displacements: Sequence[Any] | np.ndarray,
                 mode: str | Sequence[str] = "bilinear", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.deform = LatticeSplineDeform(displacements)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        for m in self.mode:
            _interp_order(m)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Warp every ``keys`` item of ``data``; returns a new dict."""
        d = dict(data)
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.deform(d[key], mode=mode)
        return d


class RandLatticeSplineDeform(RandomizableTransform):
    """With probability ``prob``, warp a channel-first image (C, H, W[, D]) by a random lattice spline deformation
    (Assis et al., DGM4MICCAI / DALI 2021: a 3 x 3 x 3 lattice, every point but the centre moved by up to 4 mm per
    axis). Each displacement is drawn uniformly in ``[-max_displacement, max_displacement]`` voxels with ``self.R``;
    with ``fix_centre`` (and an odd ``lattice_size``) the centre point stays at 0. The draw is in
    :attr:`last_params` (``None`` when not applied); ``LatticeSplineDeform(**last_params)(img)`` reproduces the
    output.

    Args:
        prob: probability of warping.
        max_displacement: voxels (>= 0); the paper: 4 mm = 10 voxels of 0.4 mm.
        lattice_size: control points per spatial axis (>= 2; the paper: 3).
        fix_centre: keep the centre point still, so what lies at the patch centre stays there.
        mode: ``"bilinear"`` (images) or ``"nearest"`` (labels).

    Call ``t(img, randomize=True)``; ``randomize=False`` re-applies :attr:`last_params`. Returns a new array of the
    input's type, shape, dtype and device (the input itself when not applied).
    """

    backend = LatticeSplineDeform.backend

    def __init__(self, prob: float = 1.0, max_displacement: float = 10.0, lattice_size: int = 3,
                 fix_centre: bool = True, mode: str = "bilinear") -> None:
        RandomizableTransform.__init__(self, prob)
        m = float(max_displacement)
        if not (m >= 0.0 and np.isfinite(m)):
            raise ValueError(f"max_displacement={max_displacement!r}: expected a number of voxels >= 0.")
        if isinstance(lattice_size, bool) or not isinstance(lattice_size, (int, np.integer)) or lattice_size < 2:
            raise ValueError(f"lattice_size={lattice_size!r}: expected an integer >= 2 (control points per axis).")
        _interp_order(mode)
        self.max_displacement, self.lattice_size, self.fix_centre, self.mode = m, int(lattice_size), fix_centre, mode
        self.last_params: dict[str, Any] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply and the displacements; ``data``: the spatial shape (or its number of axes, 2 or 3)."""
        nd = int(data) if isinstance(data, (int, np.integer)) else len(tuple(data))
        if nd not in (2, 3):
            raise ValueError(f"data: expected 2 or 3 spatial axes, got {nd}.")
        super().randomize(None)
        if not self._do_transform:
            self.last_params = None
            return
        g = self.lattice_size
        disp = self.R.uniform(-self.max_displacement, self.max_displacement, size=(nd,) + (g,) * nd)
        if self.fix_centre and g % 2 == 1:
            disp[(slice(None),) + (g // 2,) * nd] = 0.0
        self.last_params = {"displacements": disp.tolist()}

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True, mode: str | None = None) -> NdarrayOrTensor:
        """Warp ``img`` by a random deformation (see the class docstring)."""
        _check_deform_input(img, "img")
        if randomize:
            self.randomize(img.shape[1:])
        if self.last_params is None:
            return img
        return LatticeSplineDeform(**self.last_params, mode=self.mode)(img, mode=mode)


class RandLatticeSplineDeformd(RandArrayDelegateMixin, RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandLatticeSplineDeform`: with probability ``prob`` warp every ``keys`` item by one
    random lattice deformation (the image bilinear, the label nearest). Arguments as
    :class:`RandLatticeSplineDeform`; ``mode`` one per key or one for all. The draw is in :attr:`last_params`."""

    backend = RandLatticeSplineDeform.backend

    def __init__(self, keys: KeysCollection, prob: float = 1.0, max_displacement: float = 10.0,
                 lattice_size: int = 3, fix_centre: bool = True, mode: str | Sequence[str] = "bilinear",
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandLatticeSplineDeform(1.0, max_displacement, lattice_size, fix_centre)
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        for m in self.mode:
            _interp_order(m)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Draw once and warp every ``keys`` item; returns a new dict (the input's items unchanged)."""
        d = dict(data)
        if self.draw_for_first_key(d, _check_deform_input) is None or not self._do_transform:
            return d
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.rand(d[key], randomize=False, mode=mode)
        return d


LatticeSplineDeformD = LatticeSplineDeformDict = LatticeSplineDeformd
RandLatticeSplineDeformD = RandLatticeSplineDeformDict = RandLatticeSplineDeformd
