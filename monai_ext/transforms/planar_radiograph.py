"""A 2D radiograph as it comes (a DICOM CR / DX file, a PNG or BMP picture, a NIfTI slice) as one channel in which
attenuating structures (bone) are bright: the singleton third axis of a single-frame DICOM dropped, a colour
picture of a grey radiograph averaged to grey, and a MONOCHROME1 image (DICOM photometric interpretation: the
lowest value is white, as computed and digital radiography systems often store it) inverted."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

__all__ = ["NOT_RADIOGRAPH_MODALITIES", "PlanarRadiograph", "PlanarRadiographD", "PlanarRadiographDict", "PlanarRadiographd"]

_PHOTOMETRIC_TAG = "0028|0004"  # DICOM Photometric Interpretation, as MONAI's ITKReader / PydicomReader name it
_MODALITY_TAG = "0008|0060"
#: DICOM modalities that are not projection radiographs (a slice of a CT / MR series is 2D but not an X-ray)
NOT_RADIOGRAPH_MODALITIES = ("CT", "MR", "PT", "NM", "US", "SEG", "RTSTRUCT")


class PlanarRadiograph(Transform):
    """Channel-first ``(C, X, Y)`` or ``(C, X, Y, 1)`` -> ``(1, X, Y)``, bright = attenuating.

    Channels are averaged (grey pictures saved as RGB); a MONOCHROME1 image is mapped to ``min + max - value``
    (same range). The photometric interpretation is ``photometric`` when given, else read from a MetaTensor's
    metadata (``"0028|0004"``); absent: MONOCHROME2 (bright = attenuating). Keeps the input's type and device;
    a MetaTensor keeps its metadata (the affine of the dropped axis is irrelevant to 2D landmarks).

    Raises:
        ValueError: naming ``name``: the image is not 2D (a third axis longer than 1), or its DICOM modality
            (``"0008|0060"`` in a MetaTensor's metadata) is one of ``NOT_RADIOGRAPH_MODALITIES`` (e.g. a CT slice).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor, photometric: str | None = None, name: str = "image") -> NdarrayOrTensor:
        """The one-channel radiograph of ``img`` (``name`` appears in the errors)."""
        if isinstance(img, MetaTensor):
            modality = str(img.meta.get(_MODALITY_TAG, "")).strip().upper()
            if modality in NOT_RADIOGRAPH_MODALITIES:
                raise ValueError(f"{name}: a DICOM image of modality {modality}, not a radiograph (CR, DX, ...).")
            if photometric is None:
                photometric = img.meta.get(_PHOTOMETRIC_TAG)
        if img.ndim == 4 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim != 3:
            raise ValueError(f"{name}: expected a 2D radiograph, channel-first (C, X, Y) or (C, X, Y, 1), got shape "
                             f"{tuple(img.shape)}.")
        if img.shape[0] > 1:
            img = img.float().mean(dim=0, keepdim=True) if isinstance(img, torch.Tensor) else \
                img.astype(np.float32).mean(axis=0, keepdims=True)
        if str(photometric or "").strip().upper() == "MONOCHROME1":
            img = img.min() + img.max() - img
        return img


class PlanarRadiographd(MapTransform):
    """Dictionary version of :class:`PlanarRadiograph` (the photometric interpretation from each image's
    metadata)."""

    backend = PlanarRadiograph.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = PlanarRadiograph()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Convert every key's image; errors name its file."""
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            source = image.meta.get("filename_or_obj") if isinstance(image, MetaTensor) else None
            d[key] = self.converter(image, name=str(source or repr(key)))
        return d


PlanarRadiographD = PlanarRadiographDict = PlanarRadiographd
