"""Score predictions against the label exactly as stored, not a resampled copy of it."""

from __future__ import annotations

from typing import Hashable, Mapping

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from .input_checks import LoadScan, ScanInputError


class ReloadOriginald(MapTransform):
    """Replace ``data[key]`` by the file it was loaded from, read again unmodified (channel-first).

    An evaluator's preprocessing resamples, re-orients and crops the label along with the image, and
    MONAI engines keep only ``image``, ``label`` and ``pred`` in their output. After ``Invertd`` has
    brought ``pred`` back to the input grid, this transform reloads the reference label from
    ``data[key].meta["filename_or_obj"]`` so Dice and surface Dice are measured on the original voxels
    and spacing (as benchmarks such as COVID-19-CT-Seg define them), not on a nearest-neighbour
    round trip of the label.

    Raises:
        ScanInputError: ``data[key]`` carries no source file name.
    """

    def __init__(self, keys: KeysCollection, reader: str | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadScan(reader=reader, image_only=True, ensure_channel_first=True)

    def __call__(self, data: Mapping[Hashable, MetaTensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = getattr(d[key], "meta", {}) or {}
            source = meta.get("filename_or_obj")
            if not source:
                raise ScanInputError(f"{key!r}: no filename_or_obj in its metadata; cannot reload the original.")
            d[key] = self.loader(source)
        return d
