"""Biased label corruption: shift a binary mask by a constant number of pixels in a fixed direction.

Vorontsov & Kadoury, "Label noise in segmentation networks: mitigation must deal with bias" (DGM4MICCAI /
DALI 2021), corrupt the training masks with a constant shift of ``n`` pixels in one fixed direction, a
systematically biased label error (unlike the zero-mean elastic warp of
:class:`~monai_ext.transforms.mask_warp.RandBSplineMaskWarp`).

- :class:`MaskShift` / :class:`MaskShiftd`: move the mask by an integer number of pixels along every
  spatial axis; pixels moved in from outside the image are 0, pixels moved out of the frame are dropped.

The shift is deterministic, so there is no random version. The applied parameters are appended to
``meta["mask_shift"]`` (a list of dicts, one per application) of a MetaTensor output (dictionary version:
in ``data[f"{key}_{meta_key_postfix}"]`` for plain arrays); ``MaskShift(**record)`` reproduces the output.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from .binary_mask import append_mask_record, apply_to_mask_keys, binary_mask_array, mask_like

__all__ = ["MaskShift", "MaskShiftd", "MaskShiftD", "MaskShiftDict"]

META_FIELD = "mask_shift"


# ----------------------------------------------------------------------------- helpers


def _check_shift_arg(shift: Any) -> tuple[int, ...]:
    vals = np.asarray(shift)
    if vals.ndim != 1 or vals.size not in (2, 3) or vals.dtype == bool or not np.issubdtype(vals.dtype, np.number):
        raise ValueError(f"shift={shift!r}: expected 2 or 3 integers (pixels per spatial axis).")
    if not np.all(np.isfinite(vals)) or np.any(vals != np.round(vals)):
        raise ValueError(f"shift={shift!r}: expected integer pixel displacements.")
    return tuple(int(v) for v in vals)


def _shift_mask(mask: np.ndarray, shift: Sequence[int]) -> np.ndarray:
    out = np.zeros_like(mask)
    src, dst = [], []
    for s, n in zip(shift, mask.shape):
        if abs(s) >= n:
            return out
        src.append(slice(0, n - s) if s >= 0 else slice(-s, n))
        dst.append(slice(s, n) if s >= 0 else slice(0, n + s))
    out[tuple(dst)] = mask[tuple(src)]
    return out


# ----------------------------------------------------------------------------- transforms


class MaskShift(Transform):
    """Shift a channel-first binary mask (1, H, W) or (1, H, W, D) by ``shift`` pixels: the biased label
    corruption of Vorontsov & Kadoury (DGM4MICCAI/DALI 2021), a constant shift by ``n`` pixels in a fixed
    direction.

    Args:
        shift: integer displacement in pixels per spatial axis, 2 values for (1, H, W), 3 for (1, H, W, D);
            e.g. ``(5, 0)`` moves the mask 5 pixels towards higher indices of the first spatial axis. Pixels
            moved in from outside the image are 0; pixels moved out of the frame are dropped.

    Call ``t(img)``: numpy array or torch tensor (any device; values 0/1, any dtype incl. bool). Returns a new
    array of the same type, shape, dtype and device; a MetaTensor gets ``{"shift": [...]}`` appended to
    ``meta["mask_shift"]``. ``img`` is not changed. Raises ``ValueError`` for non-binary values, a shape other
    than one channel and 2 or 3 spatial axes, or a ``shift`` of the wrong length.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, shift: Sequence[int]) -> None:
        self.shift = _check_shift_arg(shift)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a record (``MaskShift(**record)`` rebuilds this transform)."""
        return {"shift": list(self.shift)}

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Shift the mask ``img`` (1, H, W[, D]); see the class docstring."""
        mask = binary_mask_array(img)
        if len(self.shift) != mask.ndim:
            raise ValueError(
                f"shift={list(self.shift)}: {len(self.shift)} values for a mask with {mask.ndim} spatial axes "
                f"(shape {tuple(img.shape)})."
            )
        out = mask_like(_shift_mask(mask, self.shift), img)
        append_mask_record(out, META_FIELD, self.params)
        return out


class MaskShiftd(MapTransform):
    """Dictionary-based :class:`MaskShift`: shift every ``keys`` mask (the label, not the image) by the same
    ``shift``. Plain arrays get the record in ``data[f"{key}_{meta_key_postfix}"]["mask_shift"]`` (a new dict;
    the input's is not changed).

    Args:
        keys: mask keys, channel-first binary (1, H, W) or (1, H, W, D).
        shift: integer displacement in pixels per spatial axis (see :class:`MaskShift`).
        meta_key_postfix: where plain arrays' records go.
        allow_missing_keys: skip keys that are not in the data.
    """

    backend = MaskShift.backend

    def __init__(
        self,
        keys: KeysCollection,
        shift: Sequence[int],
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.shifter = MaskShift(shift)
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Shift every ``keys`` mask of ``data``; returns a new dict."""
        return apply_to_mask_keys(self, dict(data), self.shifter, META_FIELD, self.meta_key_postfix)


MaskShiftD = MaskShiftDict = MaskShiftd
