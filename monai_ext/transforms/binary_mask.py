"""What the label-corruption transforms (mask warp, shift, crop, erosion / dilation) share: reading a channel-first
binary mask, returning a result of the input's type, recording the applied parameters in the meta data, the
dictionary versions' loop over their keys, and what the random dictionary versions do around their array version."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform

__all__ = ["RandMaskKeysMixin", "append_mask_record", "apply_to_mask_keys", "binary_mask_array", "mask_like"]


def binary_mask_array(img: Any, name: str = "img") -> np.ndarray:
    """The spatial part of a channel-first binary mask (1, H, W) or (1, H, W, D) as a boolean numpy array.

    Raises ``ValueError`` naming ``name`` for anything but a numpy array or torch tensor with one channel, 2 or 3
    spatial axes and values 0 / 1 only.
    """
    if not isinstance(img, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name}: expected a numpy array or torch tensor, got {type(img).__name__}.")
    if img.ndim not in (3, 4) or img.shape[0] != 1:
        raise ValueError(
            f"{name}: expected a channel-first binary mask with one channel, (1, H, W) or (1, H, W, D), "
            f"got shape {tuple(img.shape)}."
        )
    if isinstance(img, torch.Tensor):
        arr = (img.as_tensor() if isinstance(img, MetaTensor) else img).detach().cpu().numpy()
    else:
        arr = img
    bad = np.setdiff1d(np.unique(arr), [0, 1])
    if bad.size:
        raise ValueError(f"{name}: expected a binary mask (values 0 and 1 only), found values {bad[:5].tolist()}.")
    return arr[0] != 0


def mask_like(out: np.ndarray, img: NdarrayOrTensor) -> NdarrayOrTensor:
    """``out`` (spatial, boolean) as a (1, ...) array of the type, dtype and device of ``img``; a MetaTensor gets a
    copy of the meta data of ``img``."""
    out = out[None]
    if isinstance(img, torch.Tensor):
        t = torch.as_tensor(out).to(device=img.device, dtype=img.dtype)
        if isinstance(img, MetaTensor):
            res = MetaTensor(t)
            res.copy_meta_from(img)
            return res
        return t
    return out.astype(img.dtype)


def append_mask_record(img: NdarrayOrTensor, field: str, params: dict[str, Any]) -> None:
    """Append ``params`` to the list ``img.meta[field]`` of a MetaTensor (plain arrays have no meta: no-op)."""
    if isinstance(img, MetaTensor):
        img.meta[field] = list(img.meta.get(field, [])) + [dict(params)]


def apply_to_mask_keys(
    t: MapTransform, d: dict[Hashable, Any], transform: Any, field: str, meta_key_postfix: str
) -> dict[Hashable, Any]:
    """Check every ``t.keys`` mask of ``d`` with :func:`binary_mask_array` and replace it by ``transform(mask)``
    (``transform`` has a ``params`` record; ``None``: check only). A MetaTensor mask carries the record itself;
    for a plain array ``transform.params`` is appended to ``d[f"{key}_{meta_key_postfix}"][field]`` (a new dict).
    Changes and returns ``d``."""
    for key in t.key_iterator(d):
        binary_mask_array(d[key], f"{key!r}")
        if transform is None:
            continue
        d[key] = transform(d[key])
        if not isinstance(d[key], MetaTensor):
            meta_key = f"{key}_{meta_key_postfix}"
            meta = dict(d.get(meta_key) or {})
            meta[field] = list(meta.get(field, [])) + [dict(transform.params)]
            d[meta_key] = meta
    return d


class RandMaskKeysMixin:
    """The random dictionary versions of the mask corruptions (``RandBSplineMaskWarpd``, ``RandMaskCropd``,
    ``RandMaskMorphologyd``): one draw of the array version ``self.rand`` per call, from the first ``keys`` mask
    present, and its deterministic transform (``self.rand.transform()``) applied to every ``keys`` mask with
    :func:`apply_to_mask_keys` (records in ``self.meta_field``). Every mask is checked, applied or not.

    A class using it also derives from ``RandomizableTransform`` and ``MapTransform`` (in that order, after this
    one) and sets ``rand``, ``meta_field`` and ``meta_key_postfix``.
    """

    rand: Any
    meta_field: str
    meta_key_postfix: str

    @property
    def last_params(self) -> dict[str, Any] | None:
        """The parameters of the last draw (``None`` when it applied nothing)."""
        return self.rand.last_params

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed this transform and its array version (which draws every random number); returns ``self``."""
        super().set_random_state(seed, state)  # type: ignore[misc]
        self.rand.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply and the parameters; ``data``: the mask the array version draws from."""
        self.rand.randomize(data)
        self._do_transform = self.rand._do_transform

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Corrupt every ``keys`` mask of ``data`` by one random draw; returns a new dict."""
        d = dict(data)
        keys = list(self.key_iterator(d))  # type: ignore[attr-defined]
        if not keys:
            return d
        binary_mask_array(d[keys[0]], f"{keys[0]!r}")
        self.randomize(d[keys[0]])
        return apply_to_mask_keys(self, d, self.rand.transform(), self.meta_field, self.meta_key_postfix)
