"""Patch sampling for small targets on bright vessels (Assis et al., "An Efficient Data Strategy for the Detection of
Brain Aneurysms from MRA with Deep Learning", DGM4MICCAI / DALI 2021): per volume, every labelled object gives one
patch centred on it, duplicated ``num_duplicates`` times (each duplicate can get its own warp); negatives are split
between the brightest voxels (vessels, where the false positives are) and voxels of middle intensity (brain), any
two centres at least ``min_distance`` voxels apart. The paper: 50 duplicates, 100 + 100 negatives, 20 mm apart.

- :class:`VesselGuidedPatchSamples`: draws the centres (voxel indices) from an image and its label and returns the
  image's patches (zero-padded at the volume border), positives first;
- :class:`VesselGuidedPatchSamplesd`: crops one patch per centre from every ``keys`` item and returns the list of
  samples, positives first, each with ``patch_center`` and ``positive``.

Negatives: candidate voxels are those at or above the ``bright_quantile`` of the image's intensities (bright) and
those between the ``mid_quantiles`` (middle); they are visited in random order and a candidate is kept when it lies
at least ``min_distance`` voxels (Euclidean) from every centre kept so far, the object centres included. When the
volume has no room for all of them, fewer negatives come back (``last_counts`` tells how many).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable, Transform
from monai.transforms.traits import MultiSampleTrait
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy, ensure_tuple_rep
from scipy import ndimage

__all__ = [
    "crop_around",
    "VesselGuidedPatchSamples",
    "VesselGuidedPatchSamplesD",
    "VesselGuidedPatchSamplesDict",
    "VesselGuidedPatchSamplesd",
]

_MAX_CANDIDATES = 20000


def _patch_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}={value!r}: expected an integer >= 0.")
    return int(value)


def crop_around(arr: np.ndarray, centre: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The (C, *size) box of ``arr`` (C, *spatial) whose voxel ``size // 2`` is ``centre`` (voxel indices); zeros
    where the box leaves ``arr``."""
    out = np.zeros((arr.shape[0], *size), arr.dtype)
    src, dst = [], []
    for c, s, n in zip(centre, size, arr.shape[1:]):
        start = int(c) - s // 2
        a, b = max(start, 0), min(start + s, n)
        src.append(slice(a, b))
        dst.append(slice(a - start, b - start))
    out[(slice(None), *dst)] = arr[(slice(None), *src)]
    return out


class VesselGuidedPatchSamples(Randomizable, Transform):
    """Patches of a volume around drawn centres: the centres of the labelled objects (each repeated ``num_duplicates`` times), then
    ``num_bright`` centres on the brightest voxels and ``num_mid`` on voxels of middle intensity, all of them at
    least ``min_distance`` voxels apart (duplicates aside).

    Args:
        num_duplicates: patches per labelled object (the paper: 50; 0: no positives).
        num_bright: negatives among the voxels at or above the ``bright_quantile`` of the intensities (paper: 100).
        num_mid: negatives among the voxels between the ``mid_quantiles`` (paper: 100, between 20 % and 80 %).
        min_distance: voxels between any two distinct centres (the paper: 20 mm).
        bright_quantile: quantile of the image intensity above which a voxel counts as vessel.
        mid_quantiles: (low, high) quantiles of the middle-intensity band.
        patch_size: voxels per spatial axis (the paper: 48).

    Call ``t(img, label)``: ``img`` (1, H, W, D) and ``label`` (1, H, W, D) (nonzero = object), numpy or torch.
    Returns the list of ``img`` patches (1, *patch_size) of the input's type (positives first, then bright, then
    middle negatives); :attr:`last_centers` holds their centres (K, 3) (voxel indices) and :attr:`last_counts`
    ``{"positive", "bright", "mid"}``. :meth:`draw_centers` draws the centres only.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_duplicates: int = 50, num_bright: int = 100, num_mid: int = 100, min_distance: float = 50.0,
                 bright_quantile: float = 0.99, mid_quantiles: Sequence[float] = (0.2, 0.8),
                 patch_size: Sequence[int] | int = 48) -> None:
        self.num_duplicates = _patch_count(num_duplicates, "num_duplicates")
        self.num_bright, self.num_mid = _patch_count(num_bright, "num_bright"), _patch_count(num_mid, "num_mid")
        self.min_distance = float(min_distance)
        if not (self.min_distance >= 0):
            raise ValueError(f"min_distance={min_distance!r}: expected voxels >= 0.")
        lo, hi = (float(q) for q in mid_quantiles)
        if not (0.0 <= lo < hi <= 1.0) or not (0.0 < float(bright_quantile) < 1.0):
            raise ValueError(f"bright_quantile={bright_quantile!r}, mid_quantiles={mid_quantiles!r}: expected "
                             "0 < bright_quantile < 1 and 0 <= low < high <= 1.")
        self.bright_quantile, self.mid_quantiles = float(bright_quantile), (lo, hi)
        self.patch_size = tuple(int(p) for p in ensure_tuple_rep(patch_size, 3))
        if min(self.patch_size) < 1:
            raise ValueError(f"patch_size={patch_size!r}: expected voxels >= 1.")
        self.last_counts: dict[str, int] = {}
        self.last_centers = np.zeros((0, 3), np.int64)

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw ahead: the candidates are visited in an order drawn with ``self.R`` in ``__call__``."""

    def _greedy(self, candidates: np.ndarray, taken: list[np.ndarray], n: int) -> list[np.ndarray]:
        chosen: list[np.ndarray] = []
        if n == 0 or len(candidates) == 0:
            return chosen
        order = self.R.permutation(len(candidates))[:_MAX_CANDIDATES]
        for c in candidates[order]:
            others = taken + chosen
            if not others or np.min(np.linalg.norm(np.asarray(others) - c, axis=1)) >= self.min_distance:
                chosen.append(c)
                if len(chosen) == n:
                    break
        return chosen

    def draw_centers(self, img: NdarrayOrTensor, label: NdarrayOrTensor) -> np.ndarray:
        """The centres (K, 3) (voxel indices, positives first) for ``img`` and ``label`` (1, H, W, D); also in
        :attr:`last_centers`."""
        x, y = convert_to_numpy(img), convert_to_numpy(label)
        if x.ndim != 4 or x.shape[0] != 1 or y.shape != x.shape:
            raise ValueError(f"img, label: expected one-channel volumes (1, H, W, D) of one shape, got {x.shape} "
                             f"and {y.shape}.")
        objects, n_obj = ndimage.label(y[0] != 0)
        positives = [np.rint(c).astype(int) for c in ndimage.center_of_mass(y[0] != 0, objects, range(1, n_obj + 1))]
        taken = list(positives)
        lo, hi = np.quantile(x[0], self.mid_quantiles)
        bright = self._greedy(np.argwhere(x[0] >= np.quantile(x[0], self.bright_quantile)), taken, self.num_bright)
        mid = self._greedy(np.argwhere((x[0] >= lo) & (x[0] <= hi)), taken + bright, self.num_mid)
        pos = [c for c in positives for _ in range(self.num_duplicates)]
        self.last_counts = {"positive": len(pos), "bright": len(bright), "mid": len(mid)}
        self.last_centers = np.asarray(pos + bright + mid, dtype=np.int64).reshape(-1, 3)
        return self.last_centers

    def __call__(self, img: NdarrayOrTensor, label: NdarrayOrTensor) -> list[NdarrayOrTensor]:
        """The patches of ``img`` around centres drawn for ``img`` and ``label``; see the class docstring."""
        arr, dst = convert_to_numpy(img), img.as_tensor() if isinstance(img, MetaTensor) else img
        return [convert_to_dst_type(crop_around(arr, c, self.patch_size), dst)[0] for c in self.draw_centers(img, label)]


class VesselGuidedPatchSamplesd(Randomizable, MapTransform, MultiSampleTrait):
    """Crop the patches of :class:`VesselGuidedPatchSamples` from every ``keys`` item: a list of samples, one per
    centre, positives first. Each sample holds the cropped ``keys`` items (plain arrays of the input's type, no
    meta data; zero-padded where the patch leaves the volume), ``patch_center`` (voxel indices) and ``positive``
    (1 for a patch centred on an object, 0 for a negative); other items of the input are shared.

    Args:
        keys: the image and the label (cropped alike).
        label_key: the label whose objects give the positive centres; image_key: the image that gives the bright
            and middle-intensity negatives.
        patch_size: voxels per spatial axis (the paper: 48).
        positive_transform: applied to every positive sample after cropping (e.g. a
            :class:`~monai_ext.transforms.RandLatticeSplineDeformd`: each duplicate its own warp); seeded with this
            transform.
        num_duplicates, num_bright, num_mid, min_distance, bright_quantile, mid_quantiles: see
            :class:`VesselGuidedPatchSamples`.
    """

    backend = VesselGuidedPatchSamples.backend

    def __init__(self, keys: KeysCollection, label_key: str = "label", image_key: str = "image",
                 patch_size: Sequence[int] | int = 48, num_duplicates: int = 50, num_bright: int = 100,
                 num_mid: int = 100, min_distance: float = 50.0, bright_quantile: float = 0.99,
                 mid_quantiles: Sequence[float] = (0.2, 0.8),
                 positive_transform: Callable[[dict], dict] | None = None, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.label_key, self.image_key = label_key, image_key
        self.sampler = VesselGuidedPatchSamples(num_duplicates, num_bright, num_mid, min_distance, bright_quantile,
                                                mid_quantiles, patch_size)
        self.positive_transform = positive_transform

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed the centre draw and ``positive_transform``; returns ``self``."""
        super().set_random_state(seed, state)
        self.sampler.set_random_state(seed, state)
        if isinstance(self.positive_transform, Randomizable):
            self.positive_transform.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw ahead (see :class:`VesselGuidedPatchSamples`)."""

    @property
    def last_counts(self) -> dict[str, int]:
        """Positive, bright and middle-intensity patches of the last call."""
        return self.sampler.last_counts

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict]:
        """The list of patch samples of ``data``; see the class docstring."""
        d = dict(data)
        for k in (self.image_key, self.label_key):
            if k not in d:
                raise KeyError(f"{k!r} is not in the data (keys: {sorted(map(str, d))}).")
        centres = self.sampler.draw_centers(d[self.image_key], d[self.label_key])
        n_pos = self.sampler.last_counts["positive"]
        arrays = {k: convert_to_numpy(d[k]) for k in self.key_iterator(d)}
        samples = []
        for i, c in enumerate(centres):
            s = {k: v for k, v in d.items() if k not in arrays}
            for k, arr in arrays.items():
                src = d[k].as_tensor() if isinstance(d[k], MetaTensor) else d[k]
                s[k], *_ = convert_to_dst_type(crop_around(arr, c, self.sampler.patch_size), src)
            s["patch_center"], s["positive"] = c.tolist(), int(i < n_pos)
            if i < n_pos and self.positive_transform is not None:
                s = self.positive_transform(s)
            samples.append(s)
        return samples


VesselGuidedPatchSamplesD = VesselGuidedPatchSamplesDict = VesselGuidedPatchSamplesd
