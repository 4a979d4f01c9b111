"""Unbiased label corruption: a random B-spline elastic deformation of a binary mask on a coarse control grid.

Vorontsov & Kadoury, "Label noise in segmentation networks: mitigation must deal with bias" (DGM4MICCAI /
DALI 2021), corrupt the training masks, freshly each time a mask is loaded, with an elastic deformation whose
control points lie on a 3 x 3 grid spanning the image, every control-point displacement drawn from
N(0, sigma^2) pixels per axis: a zero-mean (unbiased) label error.

- :class:`BSplineMaskWarp` / :class:`BSplineMaskWarpd`: deterministic: warp a mask by given control-point
  displacements (pixels);
- :class:`RandBSplineMaskWarp` / :class:`RandBSplineMaskWarpd`: with probability ``prob`` draw the
  displacements with ``self.R`` and apply :class:`BSplineMaskWarp` (the random transform only draws the
  arguments of the deterministic one, so every corruption replays from the record).

How it is computed: the control points of each spatial axis of ``n`` pixels lie at the pixel positions
``j (n - 1) / (g - 1)``, ``j = 0 .. g - 1`` (the first and the last at the image corners). The control
displacements are interpolated to every pixel with a cubic interpolating B-spline (the tensor product of
the 1D spline of ``scipy.ndimage.map_coordinates``, ``order=3``, ``mode="mirror"``), which passes exactly through
the control values. The output pixel ``x`` takes the value of the input mask at ``x + u(x)`` (backward
mapping), linearly interpolated with 0 outside the image, re-thresholded at 0.5 (``>= 0.5`` is 1).

The applied parameters are appended to ``meta["mask_warp"]`` (a list of dicts, one per application) of a
MetaTensor output (dictionary versions: in ``data[f"{key}_{meta_key_postfix}"]`` for plain arrays), and kept
in ``last_params``; ``BSplineMaskWarp(**record)`` reproduces the output exactly.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends
from scipy import ndimage

from .binary_mask import RandMaskKeysMixin, append_mask_record, apply_to_mask_keys, binary_mask_array, mask_like

__all__ = [
    "BSplineMaskWarp",
    "BSplineMaskWarpd",
    "BSplineMaskWarpD",
    "BSplineMaskWarpDict",
    "RandBSplineMaskWarp",
    "RandBSplineMaskWarpd",
    "RandBSplineMaskWarpD",
    "RandBSplineMaskWarpDict",
    "bspline_displacement_field",
]

META_FIELD = "mask_warp"


# ----------------------------------------------------------------------------- argument checks


def _warp_check_sigma(sigma: Any) -> float:
    s = float(sigma)
    if not (s >= 0.0 and np.isfinite(s)):
        raise ValueError(f"sigma={sigma!r}: expected a standard deviation >= 0 pixels.")
    return s


def _warp_check_grid_size(grid_size: Any) -> int:
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 2:
        raise ValueError(f"grid_size={grid_size!r}: expected an integer >= 2 (control points per axis).")
    return int(grid_size)


def _warp_check_displacements(displacements: Any) -> np.ndarray:
    try:
        disp = np.asarray(displacements, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"displacements: expected a nested list of numbers (pixels), got {displacements!r}.") from err
    nd = disp.shape[0] if disp.ndim else 0
    if disp.ndim not in (3, 4) or nd != disp.ndim - 1 or min(disp.shape[1:]) < 2:
        raise ValueError(
            "displacements: expected shape (2, g, g) or (3, g, g, g) (spatial axis, control grid, g >= 2), "
            f"got {disp.shape}."
        )
    if not np.all(np.isfinite(disp)):
        raise ValueError("displacements: expected finite values (pixels).")
    return disp


# ----------------------------------------------------------------------------- the displacement field


def _bspline_weights(n: int, g: int) -> np.ndarray:
    """(n, g): row ``i`` holds the weights of the ``g`` control values in the cubic interpolating B-spline at
    pixel ``i`` (control point ``j`` at pixel ``j (n - 1) / (g - 1)``)."""
    x = np.arange(n, dtype=np.float64) * ((g - 1) / (n - 1)) if n > 1 else np.zeros(1)
    eye = np.eye(g)
    return np.stack([ndimage.map_coordinates(eye[k], x[None], order=3, mode="mirror") for k in range(g)], axis=1)


def bspline_displacement_field(disp: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Control-point displacements ``disp`` (ndim, g0, g1[, g2]) -> the dense displacement field (ndim, *shape), in
    the units of ``disp`` (pixels): the cubic interpolating B-spline through the control values, control point ``j``
    of an axis of ``n`` pixels at pixel ``j (n - 1) / (g - 1)``."""
    field = disp
    for a, n in enumerate(shape):
        w = _bspline_weights(int(n), disp.shape[a + 1])
        field = np.moveaxis(np.tensordot(field, w, axes=([a + 1], [1])), -1, a + 1)
    return field


def _warp_mask(mask: np.ndarray, disp: np.ndarray) -> np.ndarray:
    if not np.any(disp):
        return mask.copy()
    field = bspline_displacement_field(disp, mask.shape)
    coords = np.indices(mask.shape, dtype=np.float64) + field
    vals = ndimage.map_coordinates(mask.astype(np.float32), coords, order=1, mode="constant", cval=0.0)
    return vals >= 0.5


# ----------------------------------------------------------------------------- transforms


class BSplineMaskWarp(Transform):
    """Warp a channel-first binary mask (1, H, W) or (1, H, W, D) by a cubic B-spline deformation given by its
    control-point displacements: the unbiased (elastic) label corruption of Vorontsov & Kadoury
    (DGM4MICCAI/DALI 2021, a 3 x 3 control grid).

    Args:
        displacements: control-point displacements in pixels, a nested list (or array) of shape
            ``(ndim, g, g)`` for a 2D mask or ``(ndim, g, g, g)`` for a 3D one (``ndim`` = number of spatial
            axes; ``displacements[a]`` is the displacement along spatial axis ``a``; the control grid may have
            a different size ``g >= 2`` per axis). Control point ``j`` of an axis of ``n`` pixels lies at pixel
            ``j (n - 1) / (g - 1)``. The output at pixel ``x`` is the input at ``x + u(x)``, ``u`` the
            interpolated field (so a constant displacement ``+d`` moves the mask by ``-d`` pixels).
            All zeros gives the identity.

    Call ``t(img)``: numpy array or torch tensor (any device; values 0/1, any dtype incl. bool). Returns a new
    binary array of the same type, shape, dtype and device (the warped mask, linear interpolation with 0
    outside the image, thresholded at 0.5); a MetaTensor gets ``{"displacements": ...}`` appended to
    ``meta["mask_warp"]``. ``img`` is not changed. Raises ``ValueError`` for non-binary values, a shape other
    than one channel and 2 or 3 spatial axes, or ``displacements`` of the wrong shape.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, displacements: Sequence[Any] | np.ndarray) -> None:
        self.displacements = _warp_check_displacements(displacements)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a record (``BSplineMaskWarp(**record)`` rebuilds this transform)."""
        return {"displacements": self.displacements.tolist()}

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Warp the mask ``img`` (1, H, W[, D]); see the class docstring."""
        mask = binary_mask_array(img)
        if self.displacements.shape[0] != mask.ndim:
            raise ValueError(
                f"displacements: shape {self.displacements.shape} is for {self.displacements.shape[0]} spatial "
                f"axes, the mask has {mask.ndim} (shape {tuple(img.shape)})."
            )
        out = mask_like(_warp_mask(mask, self.displacements), img)
        append_mask_record(out, META_FIELD, self.params)
        return out


class BSplineMaskWarpd(MapTransform):
    """Dictionary-based :class:`BSplineMaskWarp`: warp every ``keys`` mask (the label, not the image) by the
    same control-point displacements. Plain arrays get the record in
    ``data[f"{key}_{meta_key_postfix}"]["mask_warp"]`` (a new dict; the input's is not changed).

    Args:
        keys: mask keys, channel-first binary (1, H, W) or (1, H, W, D).
        displacements: control-point displacements in pixels, shape (ndim, g, g[, g]) (see :class:`BSplineMaskWarp`).
        meta_key_postfix: where plain arrays' records go.
        allow_missing_keys: skip keys that are not in the data.
    """

    backend = BSplineMaskWarp.backend

    def __init__(
        self,
        keys: KeysCollection,
        displacements: Sequence[Any] | np.ndarray,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.warp = BSplineMaskWarp(displacements)
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Warp every ``keys`` mask of ``data``; returns a new dict."""
        return apply_to_mask_keys(self, dict(data), self.warp, META_FIELD, self.meta_key_postfix)


class RandBSplineMaskWarp(RandomizableTransform):
    """With probability ``prob``, warp a channel-first binary mask (1, H, W) or (1, H, W, D) by a random cubic
    B-spline deformation: the unbiased label corruption of Vorontsov & Kadoury (DGM4MICCAI/DALI 2021). The
    control points lie on a ``grid_size`` x ``grid_size`` (x ``grid_size``) grid spanning the image (corners
    included); each control-point displacement along each spatial axis is drawn from N(0, sigma^2) pixels
    with ``self.R``, then :class:`BSplineMaskWarp` is applied. The drawn parameters are in
    :attr:`last_params` (``None`` when not applied) and, for a MetaTensor, appended to ``meta["mask_warp"]``
    of the output. ``BSplineMaskWarp(**last_params)(img)`` reproduces the output exactly.

    Args:
        prob: probability of corrupting the mask (1: every time, as in the paper).
        sigma: standard deviation of the control-point displacements, pixels (>= 0; 0 gives the identity).
        grid_size: control points per spatial axis (>= 2; 3 in the paper).

    Call ``t(img, randomize=True)``; ``randomize=False`` re-applies :attr:`last_params`. Returns a new array
    of the input's type, shape, dtype and device (the input itself when not applied). Deterministic under
    ``set_random_state``.
    """

    backend = BSplineMaskWarp.backend

    def __init__(self, prob: float = 1.0, sigma: float = 5.0, grid_size: int = 3) -> None:
        RandomizableTransform.__init__(self, prob)
        self.sigma = _warp_check_sigma(sigma)
        self.grid_size = _warp_check_grid_size(grid_size)
        self.last_params: dict[str, Any] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply and, when applied, the displacements (into :attr:`last_params`); ``data``: the
        mask (1, H, W[, D]) or its number of spatial axes (2 or 3)."""
        if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
            nd = int(data)
        elif data is not None and hasattr(data, "ndim"):
            nd = data.ndim - 1
        else:
            raise ValueError(f"data={data!r}: expected the mask (1, H, W[, D]) or its number of spatial axes.")
        if nd not in (2, 3):
            raise ValueError(f"data: expected 2 or 3 spatial axes, got {nd}.")
        super().randomize(None)
        if not self._do_transform:
            self.last_params = None
            return
        disp = self.R.normal(0.0, self.sigma, size=(nd,) + (self.grid_size,) * nd)
        self.last_params = {"displacements": disp.tolist()}

    def transform(self) -> BSplineMaskWarp | None:
        """The :class:`BSplineMaskWarp` of :attr:`last_params` (``None`` when the last draw applies nothing)."""
        return None if self.last_params is None else BSplineMaskWarp(**self.last_params)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Warp ``img`` by a random deformation (see the class docstring)."""
        binary_mask_array(img)
        if randomize:
            self.randomize(img)
        t = self.transform()
        return img if t is None else t(img)


class RandBSplineMaskWarpd(RandMaskKeysMixin, RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandBSplineMaskWarp`: with probability ``prob`` warp every ``keys`` mask (the
    label, not the image) by one random deformation (the same control-point displacements for all keys).
    Records as :class:`BSplineMaskWarpd`; the drawn parameters are in :attr:`last_params`.

    Args:
        keys: mask keys, channel-first binary (1, H, W) or (1, H, W, D), all with the same number of spatial axes.
        prob, sigma, grid_size: see :class:`RandBSplineMaskWarp` (``sigma`` in pixels).
        meta_key_postfix: where plain arrays' records go (``data[f"{key}_{meta_key_postfix}"]``).
        allow_missing_keys: skip keys that are not in the data.

    Deterministic under ``set_random_state``.
    """

    backend = RandBSplineMaskWarp.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 1.0,
        sigma: float = 5.0,
        grid_size: int = 3,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandBSplineMaskWarp(prob, sigma, grid_size)
        self.meta_field, self.meta_key_postfix = META_FIELD, meta_key_postfix


BSplineMaskWarpD = BSplineMaskWarpDict = BSplineMaskWarpd
RandBSplineMaskWarpD = RandBSplineMaskWarpDict = RandBSplineMaskWarpd
