"""Colour deconvolution of brightfield RGB images into stain amounts (Ruifrok & Johnston, Anal. Quant. Cytol.
Histol. 2001), the standard way to measure an IHC stain and the colour baseline of CaCL (Deng et al., 2021).

By the Beer-Lambert law, a pixel's optical density ``-log10(I / I0)`` per colour channel is a sum of stain amounts
times their stain vectors; with three stain vectors (haematoxylin, eosin, DAB) the matrix inverts. The computation is
scikit-image's ``rgb2hed`` (its standard vectors); this module gives it MONAI's channel-first array and dictionary
transforms.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type
from skimage.color import rgb2hed

__all__ = [
    "HED_STAINS",
    "StainDeconvolution",
    "StainDeconvolutionD",
    "StainDeconvolutionDict",
    "StainDeconvolutiond",
]

#: the stains, in the order of ``rgb2hed``'s channels
HED_STAINS = ("haematoxylin", "eosin", "dab")


class StainDeconvolution(Transform):
    """Amounts of the chosen stains in a channel-first RGB image (3, H, W): a float32 (len(stains), H, W) image.

    Args:
        stains: one or more of :data:`HED_STAINS` (e.g. ``"dab"``, the brown IHC stain).
        max_value: the intensity of white (fully transmitted light); ``None``: 255 for integer images, else 1.

    The values are scikit-image's stain amounts (optical density along each stain vector, about 0-0.5 for DAB on
    real slides; clear glass is 0). Works on numpy arrays and torch tensors (returned as the input's type and
    device; the computation runs on the CPU). Raises ``ValueError`` for an image without 3 channels.
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, stains: str | tuple[str, ...] = "dab", max_value: float | None = None) -> None:
        names = (stains,) if isinstance(stains, str) else tuple(stains)
        unknown = [s for s in names if s not in HED_STAINS]
        if not names or unknown:
            raise ValueError(f"stains must be among {HED_STAINS}, got {stains!r}.")
        if max_value is not None and not float(max_value) > 0:
            raise ValueError(f"max_value must be > 0, got {max_value!r}.")
        self.channels = [HED_STAINS.index(s) for s in names]
        self.max_value = None if max_value is None else float(max_value)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The stain amounts of ``img``; see the class docstring."""
        arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        if arr.ndim != 3 or arr.shape[0] != 3:
            raise ValueError(f"StainDeconvolution expects a channel-first RGB image (3, H, W), got shape {arr.shape}.")
        white = self.max_value or (255.0 if np.issubdtype(arr.dtype, np.integer) else 1.0)
        rgb = np.clip(np.moveaxis(arr, 0, -1).astype(np.float64) / white, 0.0, 1.0)
        hed = np.moveaxis(rgb2hed(rgb), -1, 0)[self.channels].astype(np.float32)
        out, *_ = convert_to_dst_type(hed, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)
        return out


class StainDeconvolutiond(MapTransform):
    """Dictionary-based :class:`StainDeconvolution`: replaces each ``keys`` RGB image by its stain amounts."""

    backend = StainDeconvolution.backend

    def __init__(self, keys: KeysCollection, stains: str | tuple[str, ...] = "dab", max_value: float | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.deconvolve = StainDeconvolution(stains, max_value)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """The stain amounts of every ``keys`` image of ``data``; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.deconvolve(d[key])
        return d


StainDeconvolutionD = StainDeconvolutionDict = StainDeconvolutiond
