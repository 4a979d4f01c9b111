"""Score predictions against the label exactly as stored, not a resampled copy of it."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from .input_checks import LoadScan, ScanInputError

__all__ = ["ReloadOriginal", "ReloadOriginald", "ReloadOriginalD", "ReloadOriginalDict"]


class ReloadOriginal(Transform):
    """Return the file a (transformed) MetaTensor was loaded from, read again unmodified, channel-first.

    An evaluator's preprocessing resamples, re-orients and crops the label along with the image. After
    ``Invertd`` has brought the prediction back to the input grid, this reloads the reference from
    ``img.meta["filename_or_obj"]`` so Dice and surface Dice are measured on the original voxels and
    spacing (as benchmarks such as COVID-19-CT-Seg define them), not on a nearest-neighbour round trip
    of the label. Output: (C, H, W, D) MetaTensor with the file's affine.

    Raises:
        ScanInputError: the input carries no source file name.
    """

    backend = [TransformBackends.TORCH]  # needs a MetaTensor (its meta data names the file)

    def __init__(self, reader: str | None = None) -> None:
        self.loader = LoadScan(reader=reader, image_only=True, ensure_channel_first=True)

    def __call__(self, img: MetaTensor, name: Hashable = "input") -> MetaTensor:
        """The file ``img.meta["filename_or_obj"]`` reloaded; ``name`` is used in the error message."""
        meta = getattr(img, "meta", {}) or {}
        source = meta.get("filename_or_obj")
        if not source:
            raise ScanInputError(f"{name!r}: no filename_or_obj in its metadata; cannot reload the original.")
        return self.loader(source)


class ReloadOriginald(MapTransform):
    """Dictionary-based :class:`ReloadOriginal`: ``data[key]`` is replaced by its source file, reloaded.

    MONAI engines keep only ``image``, ``label`` and ``pred`` in their output, so this is how an
    evaluator's postprocessing gets the stored label back.
    """

    backend = ReloadOriginal.backend

    def __init__(self, keys: KeysCollection, reader: str | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reloader = ReloadOriginal(reader=reader)

    def __call__(self, data: Mapping[Hashable, MetaTensor]) -> dict:
        """Reload every ``keys`` entry of ``data``; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.reloader(d[key], name=key)
        return d


ReloadOriginalD = ReloadOriginalDict = ReloadOriginald
