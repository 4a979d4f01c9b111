"""Label corruption by cropping: zero a box inside the bounding box of every tumour of a binary mask.

Vorontsov & Kadoury, "Label noise in segmentation networks: mitigation must deal with bias" (DGM4MICCAI /
DALI 2021), corrupt the training masks, freshly each time a mask is loaded, by cropping every tumour; "each
variant removes on average half of the tumour area", and the variants differ in how biased the error is.
Here every connected component (8-connectivity in 2D, 26 in 3D, ``scipy.ndimage.label``) is one tumour, and
a box inside its bounding box is set to 0:

- ``"left"`` (the most biased): the box covers the full bounding-box extent on every spatial axis but the
  first, and on the first axis (axis 0 of the spatial axes, i.e. axis 1 of the (1, H, W[, D]) array) a
  fraction ``f`` of the extent starting at the low-index side: the tumour always loses its low-index part;
- ``"rand_0.5"``: on every spatial axis an edge fraction ``f`` in [0.5, 1] of the extent, the box placed
  uniformly at random fully inside the bounding box;
- ``"rand_0"``: the same with ``f`` in [0, 1] (can leave the tumour nearly intact).

Edge fractions are drawn independently per axis from the sloped density ``p(f) ~ (f - lo)^k`` on
``[lo, 1]`` (``lo`` = 0, 0.5, 0), by inverse-CDF sampling ``f = lo + (1 - lo) u^(1/(k+1))``, ``u`` uniform;
``k = 0`` is uniform, ``k > 0`` favours large boxes and ``-1 < k < 0`` small ones. A box has ``round(f * extent)`` pixels along an
axis. The default ``k`` of each mode, :data:`MASK_CROP_EXPONENTS`, is calibrated so that the mean removed
fraction of mask pixels is 0.5 on :func:`mask_crop_calibration_masks` (2D blobs, see there):

============  =====  ==========================================================================
mode          k      mean removed fraction (100 blobs x 50 draws, seed 0)
============  =====  ==========================================================================
``left``      0.0    0.499 (uniform ``f``: exactly 1/2 for centrally symmetric blobs)
``rand_0.5``  -0.62  0.499 (a density favouring small boxes: at ``k = 0`` the mean box covers 0.75 x 0.75
                     of the bounding box, mostly the blob's dense middle, and removes 0.664)
``rand_0``    0.88   0.499
============  =====  ==========================================================================

The values come from ``calibrate_mask_crop_exponent(mask_crop_calibration_masks(100), mode, n_draws=50)``
(left: 0.005, rand_0.5: -0.617, rand_0: 0.885), rounded. On 3D masks the same ``k`` removes a different fraction (a box is the
product of three edge fractions): :func:`calibrate_mask_crop_exponent` recalibrates ``k`` on other masks
(e.g. the real training masks), with :func:`mean_removed_fraction`.

- :class:`MaskCrop` / :class:`MaskCropd`: deterministic: zero the given boxes (pixels);
- :class:`RandMaskCrop` / :class:`RandMaskCropd`: with probability ``prob`` draw one box per component with
  ``self.R`` and apply :class:`MaskCrop` (the random transform only draws the arguments of the deterministic
  one, so every corruption replays from the record).

The applied parameters (``boxes`` and ``mode``) are appended to ``meta["mask_crop"]`` (a list of dicts, one
per application) of a MetaTensor output (dictionary versions: in ``data[f"{key}_{meta_key_postfix}"]`` for
plain arrays) and kept in ``last_params``; ``MaskCrop(**record)`` reproduces the output exactly.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends
from scipy import ndimage

from .binary_mask import RandMaskKeysMixin, append_mask_record, apply_to_mask_keys, binary_mask_array, mask_like

__all__ = [
    "MASK_CROP_MODES",
    "MASK_CROP_EXPONENTS",
    "mask_crop_calibration_masks",
    "mean_removed_fraction",
    "calibrate_mask_crop_exponent",
    "MaskCrop",
    "MaskCropd",
    "MaskCropD",
    "MaskCropDict",
    "RandMaskCrop",
    "RandMaskCropd",
    "RandMaskCropD",
    "RandMaskCropDict",
]

META_FIELD = "mask_crop"

#: the crop variants (see the module docstring)
MASK_CROP_MODES = ("left", "rand_0.5", "rand_0")

#: default slope exponent ``k`` of the edge-fraction density per mode, calibrated for a mean removed fraction of
#: 0.5 on :func:`mask_crop_calibration_masks` (``rand_0.5`` needs k < 0: at k = 0 it removes about 0.66)
MASK_CROP_EXPONENTS = {"left": 0.0, "rand_0.5": -0.62, "rand_0": 0.88}

#: the smallest exponent the calibration tries (k -> -1 puts all the mass on the smallest boxes)
_CROP_MIN_EXPONENT = -0.95

_LOW = {"left": 0.0, "rand_0.5": 0.5, "rand_0": 0.0}


# ----------------------------------------------------------------------------- argument checks


def _crop_check_mode(mode: Any, allow_none: bool = False) -> str | None:
    if mode is None and allow_none:
        return None
    if mode not in MASK_CROP_MODES:
        raise ValueError(f"mode={mode!r}: expected one of {list(MASK_CROP_MODES)}.")
    return str(mode)


def _crop_check_exponent(exponent: Any, name: str = "exponent") -> float:
    k = float(exponent)
    if not (k > -1.0 and np.isfinite(k)):
        raise ValueError(f"{name}={exponent!r}: expected a finite slope exponent k > -1.")
    return k


def _crop_check_boxes(boxes: Any) -> list[list[int]]:
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, (Sequence, np.ndarray)):
        raise ValueError(f"boxes={boxes!r}: expected a list of [start..., stop...] pixel boxes.")
    out = []
    for i, box in enumerate(boxes):
        b = np.asarray(box)
        if (
            b.ndim != 1 or b.size not in (4, 6) or b.dtype == bool or not np.issubdtype(b.dtype, np.number)
            or not np.all(np.isfinite(b)) or np.any(b != np.round(b))
        ):
            raise ValueError(f"boxes[{i}]={box!r}: expected 4 (2D) or 6 (3D) integers [start..., stop...] in pixels.")
        b = [int(v) for v in b]
        nd = len(b) // 2
        if any(s < 0 or e < s for s, e in zip(b[:nd], b[nd:])):
            raise ValueError(f"boxes[{i}]={box!r}: expected 0 <= start <= stop on every axis.")
        out.append(b)
    return out


# ----------------------------------------------------------------------------- boxes


def _crop_components(mask: np.ndarray) -> list[tuple[slice, ...]]:
    """Bounding boxes (slices) of the connected components of ``mask`` (full connectivity: 8 / 26)."""
    lab, _ = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    return [s for s in ndimage.find_objects(lab) if s is not None]


def _crop_draw_boxes(
    objs: Sequence[tuple[slice, ...]], mode: str, k: float, rng: np.random.RandomState
) -> list[list[int]]:
    """One box [start..., stop...] per bounding box; draws 2 x ndim uniforms per component whatever ``mode`` and
    ``k`` (so equal seeds give common random numbers across ``k``)."""
    lo = _LOW[mode]
    boxes = []
    for sl in objs:
        nd = len(sl)
        u = rng.random_sample(nd)
        v = rng.random_sample(nd)
        f = lo + (1.0 - lo) * u ** (1.0 / (k + 1.0))
        start, stop = [], []
        for a, s in enumerate(sl):
            ext = s.stop - s.start
            if mode == "left":
                length = int(np.clip(np.floor(f[0] * ext + 0.5), 0, ext)) if a == 0 else ext
                b = s.start
            else:
                length = int(np.clip(np.floor(f[a] * ext + 0.5), 0, ext))
                b = s.start + int(np.floor(v[a] * (ext - length + 1)))
            start.append(b)
            stop.append(b + length)
        boxes.append(start + stop)
    return boxes


def _crop_mask(mask: np.ndarray, boxes: Sequence[Sequence[int]]) -> np.ndarray:
    out = mask.copy()
    nd = mask.ndim
    for b in boxes:
        out[tuple(slice(s, e) for s, e in zip(b[:nd], b[nd:]))] = False
    return out


def _crop_mask_list(masks: Any) -> list[np.ndarray]:
    if isinstance(masks, (np.ndarray, torch.Tensor)) and masks.ndim in (4, 5) and masks.shape[1] == 1:
        masks = list(masks)  # a batch (N, 1, H, W[, D])
    out = [binary_mask_array(m, f"masks[{i}]") for i, m in enumerate(masks)]
    out = [m for m in out if m.any()]
    if not out:
        raise ValueError("masks: expected at least one mask with foreground pixels.")
    return out


def _crop_mean_removed(
    masks: Sequence[np.ndarray], objs: Sequence[Sequence[tuple[slice, ...]]], mode: str, k: float, n_draws: int,
    seed: int,
) -> float:
    rng = np.random.RandomState(seed)
    fracs = []
    for _ in range(n_draws):
        for m, o in zip(masks, objs):
            kept = _crop_mask(m, _crop_draw_boxes(o, mode, k, rng))
            fracs.append(1.0 - kept.sum() / m.sum())
    return float(np.mean(fracs))


def mask_crop_calibration_masks(n: int = 100, size: int = 64, seed: int = 0) -> np.ndarray:
    """The calibration set of :data:`MASK_CROP_EXPONENTS`: ``n`` binary 2D masks (n, 1, size, size), uint8, each
    one tumour-like blob: an ellipse with semi-axes drawn uniformly in [6, 20] pixels, a random orientation,
    its centre within 4 pixels of the image centre, and a smooth random irregular boundary (the radius scaled
    by ``1 + sum_{j=2..5} a_j cos(j phi + phase_j)``, ``a_j`` uniform in [0, 0.25 / j]). Deterministic in
    ``seed`` (``numpy.random.default_rng``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r}: expected an integer >= 1 (number of masks).")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 48:
        raise ValueError(f"size={size!r}: expected an integer >= 48 pixels (the blobs reach about 30 px from the centre).")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.zeros((n, 1, size, size), np.uint8)
    for i in range(n):
        a, b = rng.uniform(6.0, 20.0, 2)
        theta = rng.uniform(0.0, np.pi)
        cy, cx = (size - 1) / 2.0 + rng.uniform(-4.0, 4.0, 2)
        amps = rng.uniform(0.0, 0.25 / np.arange(2, 6))
        phases = rng.uniform(0.0, 2 * np.pi, 4)
        dy, dx = yy - cy, xx - cx
        p = (np.cos(theta) * dy + np.sin(theta) * dx) / a
        q = (-np.sin(theta) * dy + np.cos(theta) * dx) / b
        phi = np.arctan2(q, p)
        bound = 1.0 + sum(amp * np.cos(j * phi + ph) for j, amp, ph in zip(range(2, 6), amps, phases))
        out[i, 0] = np.hypot(p, q) <= bound
    return out


def mean_removed_fraction(
    masks: Iterable[NdarrayOrTensor] | NdarrayOrTensor, mode: str, exponent: float, n_draws: int = 20, seed: int = 0
) -> float:
    """Mean fraction of mask pixels that :class:`RandMaskCrop` (``mode``, slope exponent ``exponent``) removes,
    over ``n_draws`` draws for each mask (masks without foreground are skipped).

    Args:
        masks: channel-first binary masks (1, H, W[, D]) (a sequence, or a batch array (N, 1, H, W[, D])).
        mode: one of :data:`MASK_CROP_MODES`.
        exponent: slope exponent ``k > -1`` of the edge-fraction density.
        n_draws: draws per mask (>= 1).
        seed: seed of the draws (``numpy.random.RandomState``); the same seed gives the same uniforms for every
            ``exponent`` (common random numbers), so the result is a smooth function of ``exponent``.
    """
    mode = _crop_check_mode(mode)
    k = _crop_check_exponent(exponent)
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws={n_draws!r}: expected an integer >= 1.")
    ms = _crop_mask_list(masks)
    return _crop_mean_removed(ms, [_crop_components(m) for m in ms], mode, k, int(n_draws), int(seed))


def calibrate_mask_crop_exponent(
    masks: Iterable[NdarrayOrTensor] | NdarrayOrTensor,
    mode: str,
    target: float = 0.5,
    seed: int = 0,
    n_draws: int = 20,
    max_exponent: float = 1000.0,
    iterations: int = 40,
) -> float:
    """The slope exponent ``k`` for which :func:`mean_removed_fraction` of ``masks`` in ``mode`` is ``target``,
    by bisection on ``t = 1 / (k + 1)`` in ``[1 / (max_exponent + 1), 20]`` (the removed fraction grows with
    ``k``; ``k`` from -0.95 to ``max_exponent``). Returns -0.95 when even that removes ``target`` or more,
    ``max_exponent`` when even that removes less (the closest values; check with :func:`mean_removed_fraction`).

    Args:
        masks: channel-first binary masks (1, H, W[, D]) (a sequence or a batch array), e.g. the training masks.
        mode: one of :data:`MASK_CROP_MODES`.
        target: wanted mean removed fraction of mask pixels, in (0, 1).
        seed, n_draws: the draws of :func:`mean_removed_fraction` (the same for every ``k`` tried).
        max_exponent: largest ``k`` tried (> 0).
        iterations: bisection steps (>= 1).
    """
    mode = _crop_check_mode(mode)
    if not 0.0 < float(target) < 1.0:
        raise ValueError(f"target={target!r}: expected a removed fraction in (0, 1).")
    kmax = _crop_check_exponent(max_exponent, "max_exponent")
    if kmax <= 0:
        raise ValueError(f"max_exponent={max_exponent!r}: expected a value > 0.")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws={n_draws!r}: expected an integer >= 1.")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations={iterations!r}: expected an integer >= 1.")
    ms = _crop_mask_list(masks)
    objs = [_crop_components(m) for m in ms]

    def removed(k: float) -> float:
        return _crop_mean_removed(ms, objs, mode, k, int(n_draws), int(seed))

    if removed(_CROP_MIN_EXPONENT) >= target:
        return _CROP_MIN_EXPONENT
    if removed(kmax) <= target:
        return kmax
    t_lo, t_hi = 1.0 / (kmax + 1.0), 1.0 / (_CROP_MIN_EXPONENT + 1.0)  # removed(t_lo) > target > removed(t_hi)
    for _ in range(int(iterations)):
        t = 0.5 * (t_lo + t_hi)
        if removed(1.0 / t - 1.0) > target:
            t_lo = t
        else:
            t_hi = t
    return float(1.0 / (0.5 * (t_lo + t_hi)) - 1.0)


# ----------------------------------------------------------------------------- transforms


class MaskCrop(Transform):
    """Set boxes of a channel-first binary mask (1, H, W) or (1, H, W, D) to 0: the crop label corruption of
    Vorontsov & Kadoury (DGM4MICCAI/DALI 2021), with given boxes (:class:`RandMaskCrop` draws them).

    Args:
        boxes: any number of boxes ``[start_0, start_1(, start_2), stop_0, stop_1(, stop_2)]`` in pixels of the
            spatial axes (``start`` inclusive, ``stop`` exclusive, ``0 <= start <= stop <= size``); every pixel
            inside is set to 0. An empty list changes nothing.
        mode: the rule that drew the boxes (one of :data:`MASK_CROP_MODES`, or ``None``); only recorded.

    Call ``t(img)``: numpy array or torch tensor (any device; values 0/1, any dtype incl. bool). Returns a new
    array of the same type, shape, dtype and device; a MetaTensor gets ``{"boxes": ..., "mode": ...}``
    appended to ``meta["mask_crop"]``. ``img`` is not changed. Raises ``ValueError`` for non-binary values, a
    shape other than one channel and 2 or 3 spatial axes, or boxes that do not fit the mask.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, boxes: Sequence[Sequence[int]], mode: str | None = None) -> None:
        self.boxes = _crop_check_boxes(boxes)
        self.mode = _crop_check_mode(mode, allow_none=True)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a record (``MaskCrop(**record)`` rebuilds this transform)."""
        return {"boxes": [list(b) for b in self.boxes], "mode": self.mode}

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Zero the boxes of the mask ``img`` (1, H, W[, D]); see the class docstring."""
        mask = binary_mask_array(img)
        nd = mask.ndim
        for i, b in enumerate(self.boxes):
            if len(b) != 2 * nd or any(e > n for e, n in zip(b[nd:], mask.shape)):
                raise ValueError(
                    f"boxes[{i}]={b}: does not fit a mask of spatial shape {mask.shape} "
                    f"(expected {2 * nd} values, stop <= size)."
                )
        out = mask_like(_crop_mask(mask, self.boxes), img)
        append_mask_record(out, META_FIELD, self.params)
        return out


class MaskCropd(MapTransform):
    """Dictionary-based :class:`MaskCrop`: zero the same boxes in every ``keys`` mask (the label, not the image).
    Plain arrays get the record in ``data[f"{key}_{meta_key_postfix}"]["mask_crop"]`` (a new dict; the input's
    is not changed).

    Args:
        keys: mask keys, channel-first binary (1, H, W) or (1, H, W, D).
        boxes, mode: see :class:`MaskCrop` (boxes in pixels).
        meta_key_postfix: where plain arrays' records go.
        allow_missing_keys: skip keys that are not in the data.
    """

    backend = MaskCrop.backend

    def __init__(
        self,
        keys: KeysCollection,
        boxes: Sequence[Sequence[int]],
        mode: str | None = None,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.crop = MaskCrop(boxes, mode)
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Zero the boxes in every ``keys`` mask of ``data``; returns a new dict."""
        return apply_to_mask_keys(self, dict(data), self.crop, META_FIELD, self.meta_key_postfix)


class RandMaskCrop(RandomizableTransform):
    """With probability ``prob``, crop every tumour (connected component, 8-/26-connectivity) of a channel-first
    binary mask (1, H, W) or (1, H, W, D): the crop label corruption of Vorontsov & Kadoury (DGM4MICCAI/DALI
    2021), "each variant removes on average half of the tumour area". One box per component, inside its
    bounding box, is drawn with ``self.R`` according to ``mode`` (see the module docstring), then
    :class:`MaskCrop` is applied. The drawn parameters are in :attr:`last_params` (``None`` when not applied)
    and, for a MetaTensor, appended to ``meta["mask_crop"]`` of the output.
    ``MaskCrop(**last_params)(img)`` reproduces the output exactly.

    Args:
        prob: probability of corrupting the mask (1: every time).
        mode: ``"left"`` (the low-index part along the first spatial axis, full extent on the others; the most
            biased), ``"rand_0.5"`` (edge fractions in [0.5, 1], random position) or ``"rand_0"`` (edge
            fractions in [0, 1], random position).
        exponent: slope exponent ``k > -1`` of the edge-fraction density ``p(f) ~ (f - lo)^k``; ``None``: the
            calibrated default :data:`MASK_CROP_EXPONENTS` ``[mode]`` (mean removed fraction 0.5 on 2D blobs).

    Call ``t(img, randomize=True)``; ``randomize=False`` re-applies :attr:`last_params`. Returns a new array
    of the input's type, shape, dtype and device (the input itself when not applied). Deterministic under
    ``set_random_state``.
    """

    backend = MaskCrop.backend

    def __init__(self, prob: float = 1.0, mode: str = "left", exponent: float | None = None) -> None:
        RandomizableTransform.__init__(self, prob)
        self.mode = _crop_check_mode(mode)
        self.exponent = MASK_CROP_EXPONENTS[self.mode] if exponent is None else _crop_check_exponent(exponent)
        self.last_params: dict[str, Any] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply and, when applied, one box per connected component of ``data`` (the mask
        (1, H, W[, D])) into :attr:`last_params`."""
        mask = binary_mask_array(data, "data")
        super().randomize(None)
        if not self._do_transform:
            self.last_params = None
            return
        boxes = _crop_draw_boxes(_crop_components(mask), self.mode, self.exponent, self.R)
        self.last_params = {"boxes": boxes, "mode": self.mode}

    def transform(self) -> MaskCrop | None:
        """The :class:`MaskCrop` of :attr:`last_params` (``None`` when the last draw applies nothing)."""
        return None if self.last_params is None else MaskCrop(**self.last_params)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Crop the tumours of ``img`` by random boxes (see the class docstring)."""
        binary_mask_array(img)
        if randomize:
            self.randomize(img)
        t = self.transform()
        return img if t is None else t(img)


class RandMaskCropd(RandMaskKeysMixin, RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandMaskCrop`: with probability ``prob`` draw the boxes from the components of
    the first ``keys`` mask present and zero them in every ``keys`` mask (the label, not the image). Records as
    :class:`MaskCropd`; the drawn parameters are in :attr:`last_params`.

    Args:
        keys: mask keys, channel-first binary (1, H, W) or (1, H, W, D), of the same spatial shape.
        prob, mode, exponent: see :class:`RandMaskCrop`.
        meta_key_postfix: where plain arrays' records go (``data[f"{key}_{meta_key_postfix}"]``).
        allow_missing_keys: skip keys that are not in the data.

    Deterministic under ``set_random_state``.
    """

    backend = RandMaskCrop.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 1.0,
        mode: str = "left",
        exponent: float | None = None,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandMaskCrop(prob, mode, exponent)
        self.meta_field, self.meta_key_postfix = META_FIELD, meta_key_postfix


MaskCropD = MaskCropDict = MaskCropd
RandMaskCropD = RandMaskCropDict = RandMaskCropd
