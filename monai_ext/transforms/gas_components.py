"""Remove predicted objects that are gas: connected components whose median intensity is below a threshold."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_numpy
from scipy import ndimage

from .body_mask import set_to_background

__all__ = ["RemoveDarkComponents", "RemoveDarkComponentsd", "RemoveDarkComponentsD", "RemoveDarkComponentsDict"]


class RemoveDarkComponents(Transform):
    """Set to background every connected component of ``labels`` whose median image value is below ``threshold``.

    A CT lung model can label a pocket of bowel or stomach gas as lung: gas is nearly pure air (about -1000 HU),
    while a lung, with its vessels, partial volume and gravity gradient, has a median of about -900..-700 HU
    (emphysematous lungs a little lower). A component of the predicted lungs whose median is below ``threshold``
    (e.g. -960 HU) is gas, not lung. Components are those of the argmax of ``pred``, per label.

    Args:
        threshold: in the image's units (HU, or its value after windowing).
        labels: the label values (channels of ``pred``) to check, e.g. ``(1, 2)``: left and right lung.

    Shapes: ``pred`` (C, *spatial) probabilities or one-hot, channel 0 background; ``image`` (1, *spatial) on
    the same grid. Returns ``pred`` (a copy, same type and device) with channel 0 set to 1 and the others to 0
    on the removed components.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, threshold: float, labels: Sequence[int] = (1, 2)) -> None:
        self.threshold = float(threshold)
        self.labels = tuple(int(v) for v in labels)

    def dark_mask(self, pred: NdarrayOrTensor, image: NdarrayOrTensor) -> np.ndarray:
        """Boolean (spatial shape): the voxels of the components to remove."""
        lab = convert_to_numpy(pred).argmax(0)
        img = convert_to_numpy(image)[0]
        out = np.zeros(lab.shape, bool)
        for v in self.labels:
            comp, n = ndimage.label(lab == v)
            if n == 0:
                continue
            medians = np.asarray(ndimage.median(img, comp, np.arange(1, n + 1)))
            dark = np.zeros(n + 1, bool)
            dark[1:] = medians < self.threshold
            out |= dark[comp]
        return out

    def __call__(self, pred: NdarrayOrTensor, image: NdarrayOrTensor) -> NdarrayOrTensor:
        """``pred`` with the dark components set to background."""
        if tuple(pred.shape[1:]) != tuple(image.shape[1:]):
            raise ValueError(f"pred {tuple(pred.shape)} and image {tuple(image.shape)} must share the spatial grid.")
        return set_to_background(pred, self.dark_mask(pred, image))


class RemoveDarkComponentsd(MapTransform):
    """Dictionary-based :class:`RemoveDarkComponents`: checks ``data[key]`` against ``data[image_key]``."""

    backend = RemoveDarkComponents.backend

    def __init__(
        self, keys: KeysCollection, image_key: str = "image", threshold: float = -960.0, labels: Sequence[int] = (1, 2),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.remover = RemoveDarkComponents(threshold, labels)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Clean every ``keys`` entry of ``data``; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.remover(d[key], d[self.image_key])
        return d


RemoveDarkComponentsD = RemoveDarkComponentsDict = RemoveDarkComponentsd
