"""Holes over parts of a needle, for training and testing HPI on needle images (Hung et al., DGM4MICCAI 2021, Sect.
3.3: where a needle tracker finds no candidate, the image is inpainted). A hidden stretch of a needle is missing
together with its reverberation echoes, so the hole covers the stretch and its echo copies below it.

- :func:`needle_gap_mask`: the hole for recorded needle parameters (:class:`~monai_ext.transforms.NeedleReverberation`)
  and fractions of its length;
- :class:`NeedleGapMask`: that hole for an image's grid (deterministic, from the recorded stretch);
- :class:`RandNeedleGapMask` / :class:`RandNeedleGapMaskd`: with probability ``prob``, draw a random stretch and apply
  :class:`NeedleGapMask`; the dictionary version reads the needle that
  :class:`~monai_ext.transforms.RandNeedleReverberationd` drew into the image from its record and adds the hole to
  the hole mask. The stretch is in ``last_params``, so every hole replays.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends

from monai_ext.transforms import RandArrayDelegateMixin, needle_centreline, polyline_distance

__all__ = ["needle_gap_mask", "NeedleGapMask", "RandNeedleGapMask", "RandNeedleGapMaskd", "RandNeedleGapMaskD", "RandNeedleGapMaskDict"]

NEEDLE_FIELD = "needle_reverberation"


def needle_gap_mask(needle: Mapping[str, Any], segments: Sequence[Sequence[float]], spatial_shape: Sequence[int],
                    margin: float = 2.0) -> torch.Tensor:
    """Float ``(H, W)`` mask (1 = hole) of the pixels within ``thickness + margin`` pixels of the needle's centreline
    over each ``(start, end)`` fraction of its length in ``segments``, and of the same stretch shifted down by each
    echo (``k * echo_spacing`` rows, ``k = 1 .. num_echoes``). ``needle``: the record of a
    :class:`~monai_ext.transforms.NeedleReverberation` (entry, angle_deg, length, curvature, thickness, num_echoes,
    echo_spacing)."""
    h, w = int(spatial_shape[0]), int(spatial_shape[1])
    points = needle_centreline(needle["entry"], needle["angle_deg"], needle["length"], needle.get("curvature", 0.0))
    frac = np.linspace(0, 1, len(points))
    radius = float(needle.get("thickness", 2.0)) + float(margin)
    hole = torch.zeros(h, w)
    for a, b in segments:
        if not 0 <= float(a) <= float(b) <= 1:
            raise ValueError(f"segment {(a, b)}: expected fractions 0 <= start <= end <= 1.")
        pts = points[(frac >= float(a)) & (frac <= float(b))]
        if len(pts) == 0:
            pts = points[[int(np.argmin(np.abs(frac - 0.5 * (float(a) + float(b)))))]]
        pts = pts if len(pts) > 1 else np.repeat(pts, 2, axis=0)
        for k in range(int(needle.get("num_echoes", 0)) + 1):
            shifted = pts + np.array([k * float(needle.get("echo_spacing", 0.0)), 0.0])
            hole = torch.maximum(hole, (polyline_distance(shifted, (h, w)) <= radius).float())
    return hole


def _needle_record(d: Mapping, key: Hashable, meta_key_postfix: str) -> dict | None:
    img = d[key]
    # a MetaTensor's own meta, else the side dictionary (where the record of a plain array went: a later transform
    # may have made it a MetaTensor since)
    records = (img.meta.get(NEEDLE_FIELD) if isinstance(img, MetaTensor) else None) or \
        (d.get(f"{key}_{meta_key_postfix}") or {}).get(NEEDLE_FIELD)
    return dict(records[-1]) if records else None


def _as_like(mask: torch.Tensor, img: NdarrayOrTensor) -> NdarrayOrTensor:
    if isinstance(img, np.ndarray):
        return mask.numpy()
    return mask.to(img.device)


class NeedleGapMask(Transform):
    """The hole ``(1, H, W)`` (float 0/1, the image's type and device) of :func:`needle_gap_mask` for a channel-first
    2D image ``(C, H, W)``: ``needle`` (a :class:`~monai_ext.transforms.NeedleReverberation` record) hidden over
    ``segments`` (``(start, end)`` fractions of its length), within its thickness plus ``margin`` pixels."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, needle: Mapping[str, Any], segments: Sequence[Sequence[float]], margin: float = 2.0) -> None:
        self.needle, self.segments, self.margin = dict(needle), [[float(a), float(b)] for a, b in segments], float(margin)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The hole mask on the grid of ``img`` (C, H, W)."""
        if len(img.shape) != 3:
            raise ValueError(f"expected a channel-first 2D image (C, H, W), got shape {tuple(img.shape)}.")
        return _as_like(needle_gap_mask(self.needle, self.segments, img.shape[1:], self.margin)[None], img)


class RandNeedleGapMask(RandomizableTransform):
    """With probability ``prob``, the hole of a random stretch of ``needle`` (:class:`NeedleGapMask`), else an empty
    mask: ``t(img, needle)`` for a ``(C, H, W)`` image and a needle record (``None``: empty mask). The stretch is
    ``segment_length`` (a ``(low, high)`` range of fractions) long, at the tip with probability ``hide_tip_prob``,
    else anywhere; ``last_params`` holds ``{"segments": [[start, end]], "margin"}`` (``None`` when not applied), so
    ``NeedleGapMask(needle, **last_params)`` replays it."""

    backend = NeedleGapMask.backend

    def __init__(self, prob: float = 0.5, segment_length: tuple[float, float] = (0.15, 0.3), hide_tip_prob: float = 0.5,
                 margin: float = 2.0) -> None:
        RandomizableTransform.__init__(self, prob)
        if len(segment_length) != 2 or not 0 < float(segment_length[0]) <= float(segment_length[1]) <= 1:
            raise ValueError(f"segment_length={segment_length!r}: expected (low, high) with 0 < low <= high <= 1.")
        self.segment_length = (float(segment_length[0]), float(segment_length[1]))
        self.hide_tip_prob, self.margin = float(hide_tip_prob), float(margin)
        self.last_params: dict[str, Any] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw whether to hide a stretch and which one."""
        super().randomize(None)
        self.last_params = None
        if self._do_transform:
            length = self.R.uniform(*self.segment_length)
            start = 1.0 - length if self.R.rand() < self.hide_tip_prob else self.R.uniform(0.0, 1.0 - length)
            self.last_params = {"segments": [[float(start), float(start + length)]], "margin": self.margin}

    def __call__(self, img: NdarrayOrTensor, needle: Mapping[str, Any] | None = None, randomize: bool = True) -> NdarrayOrTensor:
        """The hole mask ``(1, H, W)`` for ``img`` (C, H, W); ``randomize=False`` re-applies :attr:`last_params`."""
        if randomize:
            self.randomize()
        if self.last_params is None or needle is None:
            shape = (1, *img.shape[1:])
            return np.zeros(shape, np.float32) if isinstance(img, np.ndarray) else torch.zeros(shape, device=img.device)
        return NeedleGapMask(needle, **self.last_params)(img)


class RandNeedleGapMaskd(RandArrayDelegateMixin, RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandNeedleGapMask`: the hole of a random stretch of the last needle drawn into the
    first ``keys`` image (its record from :class:`~monai_ext.transforms.RandNeedleReverberationd` or
    :class:`~monai_ext.transforms.NeedleReverberationd`, beside a plain array or in a MetaTensor's meta) is added to
    ``data[mask_key]`` ``(1, H, W)`` (created as zeros when missing). Images without a needle are left alone."""

    backend = RandNeedleGapMask.backend

    def __init__(self, keys: KeysCollection, mask_key: str = "mask", prob: float = 0.5,
                 segment_length: tuple[float, float] = (0.15, 0.3), hide_tip_prob: float = 0.5, margin: float = 2.0,
                 meta_key_postfix: str = "meta_dict", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandNeedleGapMask(1.0, segment_length, hide_tip_prob, margin)
        self.mask_key, self.meta_key_postfix = mask_key, meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Add the gap of a random stretch of the drawn needle to ``data[mask_key]``; returns a new dict."""
        d = dict(data)
        key = next(iter(self.key_iterator(d)), None)
        if key is None:
            return d
        img = d[key]
        shape = (1, *img.shape[1:])
        mask = d.get(self.mask_key)
        if mask is None:
            mask = np.zeros(shape, np.float32) if isinstance(img, np.ndarray) else torch.zeros(shape, device=img.device)
        if tuple(mask.shape) != shape:
            raise ValueError(f"{self.mask_key!r}: expected a {shape} mask on the grid of {key!r}, got {tuple(mask.shape)}.")
        self.randomize(None)
        gap = self.rand(img, _needle_record(d, key, self.meta_key_postfix) if self._do_transform else None)
        if isinstance(mask, np.ndarray):
            d[self.mask_key] = np.maximum(mask, np.asarray(gap, dtype=mask.dtype))
        else:
            d[self.mask_key] = torch.maximum(mask, torch.as_tensor(gap).to(mask.device, mask.dtype))
        return d


RandNeedleGapMaskD = RandNeedleGapMaskDict = RandNeedleGapMaskd
