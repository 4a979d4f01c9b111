"""2.5D input of a 2D network: each axial slice with its neighbours as channels (liver-tumour and box-supervised
segmentation bundles).

:class:`AdjacentSlices` turns a channel-first volume (C, H, W, D) into (C * (2k + 1), H, W, D): channel block ``c``
holds, for every slice ``z``, the slices ``z - k .. z + k`` of channel ``c`` (the first and last slices repeated
beyond the volume's ends). A 2D network then sees slice ``z`` with its context when it is given column ``z``: MONAI's
``SliceInferer`` (``spatial_dim=2``) feeds exactly that, slice by slice, and a training crop of depth 1
(``RandCropByLabelClassesd`` with spatial size [H, W, 1]) gives the same input for one slice. ``k = 0`` is the plain
2D input.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

__all__ = ["AdjacentSlices", "AdjacentSlicesd", "AdjacentSlicesD", "AdjacentSlicesDict"]


def _context(value: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 0:
        raise ValueError(f"context must be a non-negative integer (slices on each side), got {value!r}.")
    return int(value)


class AdjacentSlices(Transform):
    """Stack each slice's ``context`` neighbours on each side as channels (edge slices repeated).

    Args:
        context: ``k``, the number of slices on each side (0: the input unchanged).
        axis: spatial axis of the slices (default 2, the last of (C, H, W, D): axial for RAS-oriented CT).

    Call ``t(img)``: ``img`` channel-first (C, H, W, D), numpy or torch (a MetaTensor keeps its meta data); returns
    (C * (2k + 1), H, W, D) of the same type, dtype and device, channel ``c * (2k + 1) + j`` holding slice
    ``z + j - k`` of channel ``c``. The input is not changed.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, context: int = 1, axis: int = 2) -> None:
        self.context = _context(context)
        self.axis = int(axis)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return the image with ``2 * context + 1`` channels per input channel."""
        if img.ndim != 4:
            raise ValueError(
                f"AdjacentSlices: expected a channel-first volume (C, H, W, D), got shape {tuple(img.shape)}."
            )
        if self.context == 0:
            return img
        ax = 1 + (self.axis % 3)
        k, n = self.context, int(img.shape[ax])
        index = np.clip(np.arange(n)[None, :] + np.arange(-k, k + 1)[:, None], 0, n - 1)  # (2k+1, D)
        if isinstance(img, torch.Tensor):
            data = img.as_tensor() if hasattr(img, "as_tensor") else img
            moved = torch.movedim(data, ax, -1)
            out = moved[..., torch.as_tensor(index, device=data.device)]  # (C, ..., 2k+1, D)
            out = torch.movedim(out, -2, 1).flatten(0, 1)
            out = torch.movedim(out, -1, ax).contiguous()
        else:
            moved = np.moveaxis(np.asarray(img), ax, -1)
            out = np.moveaxis(moved[..., index], -2, 1)
            out = np.ascontiguousarray(np.moveaxis(out.reshape((-1,) + out.shape[2:]), -1, ax))
        return convert_to_dst_type(out, img)[0]


class AdjacentSlicesd(MapTransform):
    """Dictionary version of :class:`AdjacentSlices`: the same stacking for every key.

    Args:
        keys: image keys, channel-first (C, H, W, D).
        context, axis: see :class:`AdjacentSlices`.
        allow_missing_keys: skip keys that are not in the data.
    """

    backend = AdjacentSlices.backend

    def __init__(self, keys: KeysCollection, context: int = 1, axis: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.stack = AdjacentSlices(context, axis)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Stack the slices of every ``keys`` image; returns a new dictionary."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.stack(d[key])
        return d


AdjacentSlicesD = AdjacentSlicesDict = AdjacentSlicesd
