"""Keep segmentation inside the patient's body outline."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_numpy
from scipy import ndimage

__all__ = ["set_to_background", "body_outline", "MaskOutsideBody", "MaskOutsideBodyd", "MaskOutsideBodyD", "MaskOutsideBodyDict"]


def set_to_background(pred: NdarrayOrTensor, mask: np.ndarray) -> NdarrayOrTensor:
    """A copy of ``pred`` (C, *spatial; probabilities or one-hot, channel 0 background) with channel 0 set to 1 and
    the others to 0 where the boolean ``mask`` (spatial shape) is true; same type and device as ``pred``."""
    if isinstance(pred, torch.Tensor):
        where = torch.as_tensor(mask, device=pred.device)
        out = pred.clone()
    else:
        where, out = mask, pred.copy()
    out[0][where] = 1
    out[1:, where] = 0
    return out


def _close_along_border(body_slice: np.ndarray) -> np.ndarray:
    """A 2D body mask with each image edge filled between its first and last body pixel.

    When the field of view cuts the body, a lung reaches the image edge and is open to it, so hole
    filling would leave it out. Along every edge the pixels between two body pixels become body: a lung
    cut by the edge lies between chest-wall pixels on it, while the air in front of, behind and around
    the patient reaches a corner of the image and stays outside."""
    out = body_slice.copy()
    for edge in (out[0, :], out[-1, :], out[:, 0], out[:, -1]):
        hit = np.flatnonzero(edge)
        if hit.size >= 2:
            edge[hit[0] : hit[-1] + 1] = True
    return out


def body_outline(image: NdarrayOrTensor, threshold: float, slice_axis: int = -1) -> np.ndarray:
    """Boolean mask (spatial shape) of the body: the largest connected component above ``threshold``,
    with holes (lungs, airways, bowel gas) filled slice by slice along ``slice_axis`` (axial for RAS).

    A scan whose field of view cuts the body is handled: on each slice, the image edges are closed between
    the body's first and last pixel on them before the holes are filled, so a lung that touches the image
    border still counts as inside the body. The table (a separate component) and the air around the
    patient stay outside."""
    img = convert_to_numpy(image)[0]
    comp, n = ndimage.label(img > threshold)
    if n == 0:
        return np.zeros(img.shape, bool)
    sizes = ndimage.sum_labels(np.ones_like(comp), comp, index=np.arange(1, n + 1))
    body = comp == (int(np.argmax(sizes)) + 1)
    body = np.moveaxis(body, slice_axis, 0)
    body = np.stack([ndimage.binary_fill_holes(_close_along_border(s)) for s in body])
    return np.moveaxis(body, 0, slice_axis)


class MaskOutsideBody(Transform):
    """Set a prediction to background outside the body outline of its image.

    Lungs and lesions lie inside the chest wall, but the air/skin edge of the body, of the arms, and the
    gap between the back and the patient table are thin dark bands that a CT lung model can take for a
    lung edge. This removes those false positives.

    Args:
        threshold: body intensity threshold in the image's units (e.g. -500 HU, or its value after
            windowing).
        slice_axis: spatial axis along which holes are filled (the last axis is axial in RAS).

    Shapes: ``pred`` (C, H, W, D) probabilities or one-hot, channel 0 background; ``image`` (1, H, W, D)
    on the same grid. Returns ``pred`` with channel 0 set to 1 and the others to 0 outside the body.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, threshold: float, slice_axis: int = -1) -> None:
        self.threshold = threshold
        self.slice_axis = slice_axis

    def __call__(self, pred: NdarrayOrTensor, image: NdarrayOrTensor) -> NdarrayOrTensor:
        """``pred`` (a copy, same type and device) with background outside the body of ``image``."""
        if tuple(pred.shape[1:]) != tuple(image.shape[1:]):
            raise ValueError(f"pred {tuple(pred.shape)} and image {tuple(image.shape)} must share the spatial grid.")
        return set_to_background(pred, ~body_outline(image, self.threshold, self.slice_axis))


class MaskOutsideBodyd(MapTransform):
    """Dictionary-based :class:`MaskOutsideBody`: masks ``data[key]`` using ``data[image_key]``."""

    backend = MaskOutsideBody.backend

    def __init__(
        self, keys: KeysCollection, image_key: str = "image", threshold: float = -500.0, slice_axis: int = -1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.masker = MaskOutsideBody(threshold, slice_axis)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Mask every ``keys`` entry of ``data``; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.masker(d[key], d[self.image_key])
        return d


MaskOutsideBodyD = MaskOutsideBodyDict = MaskOutsideBodyd
