"""A needle with reverberation artifacts drawn into a 2D ultrasound image: the augmentation and test data of
"Hierarchical Probabilistic Ultrasound Image Inpainting via Variational Inference" (Hung, Sun, Chen, Galeotti,
DGM4MICCAI 2021): a metal needle is a bright (possibly curved) line, and sound bouncing between its walls repeats
it as equally spaced, decaying echoes below it; parts of the shaft can be invisible. The reverberation region is
the mask an inpainting network fills, the whole needle the ground truth a needle tracker should find.

- :class:`NeedleReverberation` / :class:`NeedleReverberationd`: deterministic, from recorded parameters (all in
  pixels of the image grid, rows = depth downwards, columns = lateral);
- :class:`RandNeedleReverberation` / :class:`RandNeedleReverberationd`: with probability ``prob`` draw those
  parameters with ``self.R`` and apply the deterministic transform, so every augmentation replays from its record
  (``meta["needle_reverberation"]`` of a MetaTensor output, and ``last_params``).
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

from .polyline import polyline_distance
from .random_delegate import RandArrayDelegateMixin

__all__ = [
    "needle_centreline",
    "NeedleReverberation",
    "NeedleReverberationd",
    "NeedleReverberationD",
    "NeedleReverberationDict",
    "RandNeedleReverberation",
    "RandNeedleReverberationd",
    "RandNeedleReverberationD",
    "RandNeedleReverberationDict",
]

META_FIELD = "needle_reverberation"


def needle_centreline(entry: Sequence[float], angle_deg: float, length: float, curvature: float = 0.0,
                      step: float = 0.5) -> np.ndarray:
    """Points ``(P, 2)`` (row, column) every ``step`` pixels along a needle of ``length`` pixels that enters at
    ``entry`` (row, column) with direction ``angle_deg`` below the lateral axis (0: horizontal to the right, 90:
    straight down, 180: horizontal to the left) and bends by ``curvature`` radians per pixel (a circular arc)."""
    if not length > 0:
        raise ValueError(f"length={length!r}: expected a needle length > 0 pixels.")
    s = np.arange(0.0, float(length) + 1e-9, float(step))
    phi = np.deg2rad(float(angle_deg)) + float(curvature) * s
    # integrate the direction (trapezoid rule on the fine grid: exact enough for a 0.5-pixel step)
    dr, dc = np.sin(phi), np.cos(phi)
    rows = float(entry[0]) + np.concatenate([[0.0], np.cumsum((dr[1:] + dr[:-1]) / 2 * np.diff(s))])
    cols = float(entry[1]) + np.concatenate([[0.0], np.cumsum((dc[1:] + dc[:-1]) / 2 * np.diff(s))])
    return np.stack([rows, cols], axis=1)


def _check_us_image(img: NdarrayOrTensor, name: str = "img") -> None:
    if img.ndim != 3:
        raise ValueError(f"{name}: expected a channel-first 2D ultrasound image (C, H, W), got shape {tuple(img.shape)}.")


def _line_profile(points: np.ndarray, shape: Sequence[int], sigma: float, device: torch.device) -> torch.Tensor:
    """``exp(-d^2 / 2 sigma^2)`` of each pixel's distance ``d`` to the centreline, 0 beyond ``3 sigma``."""
    d2 = polyline_distance(points, shape, device).square()
    prof = torch.exp(-d2 / (2 * sigma**2))
    prof[d2 > (3 * sigma) ** 2] = 0
    return prof


def _shift_down(x: torch.Tensor, rows: int) -> torch.Tensor:
    out = torch.zeros_like(x)
    if rows < x.shape[0]:
        out[rows:] = x[: x.shape[0] - rows]
    return out


class NeedleReverberation(Transform):
    """Draw a needle and its reverberation echoes into a channel-first 2D ultrasound image ``(C, H, W)`` (rows =
    depth, downwards), the same in every channel. Intensities are the image's units (e.g. [0, 1]); each drawn
    structure replaces darker pixels (``max``), as a strong echo does.

    Args:
        entry: (row, column) in pixels where the needle starts.
        angle_deg: direction below the lateral axis, degrees (0: to the right, 90: down, 180: to the left).
        length: needle length, pixels.
        curvature: bend, radians per pixel (0: straight; the sign bends it down or up).
        intensity: brightness of the needle, image units.
        thickness: full width at half maximum of the needle's Gaussian profile, pixels.
        num_echoes: reverberation echoes below the needle.
        echo_spacing: axial distance between the needle and its first echo and between echoes, pixels.
        echo_decay: amplitude factor per echo, in (0, 1].
        dropout: ``(start, end)`` fractions of the needle length where the shaft is invisible (its echoes too);
            the needle mask keeps them (the ground truth).

    ``t(img)`` returns the image (same type, dtype, device; MetaTensor meta gets the parameters appended to
    ``meta["needle_reverberation"]``). ``t.masks(spatial_shape)`` gives ``(needle_mask, artifact_mask)``, float
    ``(H, W)`` tensors of 0/1: the whole needle (profile >= 0.5) and the drawn echoes (the region to inpaint).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        entry: Sequence[float],
        angle_deg: float,
        length: float,
        curvature: float = 0.0,
        intensity: float = 1.0,
        thickness: float = 2.0,
        num_echoes: int = 4,
        echo_spacing: float = 5.0,
        echo_decay: float = 0.6,
        dropout: Sequence[Sequence[float]] = (),
    ) -> None:
        if len(entry) != 2:
            raise ValueError(f"entry={entry!r}: expected (row, column) in pixels.")
        if not float(thickness) > 0 or not float(echo_spacing) > 0:
            raise ValueError(f"thickness={thickness!r} and echo_spacing={echo_spacing!r} must be > 0 pixels.")
        if not 0 < float(echo_decay) <= 1:
            raise ValueError(f"echo_decay={echo_decay!r}: expected a value in (0, 1].")
        if int(num_echoes) < 0:
            raise ValueError(f"num_echoes={num_echoes!r}: expected >= 0.")
        for seg in dropout:
            if len(seg) != 2 or not 0 <= float(seg[0]) <= float(seg[1]) <= 1:
                raise ValueError(f"dropout segment {seg!r}: expected (start, end) fractions with 0 <= start <= end <= 1.")
        self.entry = [float(entry[0]), float(entry[1])]
        self.angle_deg, self.length, self.curvature = float(angle_deg), float(length), float(curvature)
        self.intensity, self.thickness = float(intensity), float(thickness)
        self.num_echoes, self.echo_spacing, self.echo_decay = int(num_echoes), float(echo_spacing), float(echo_decay)
        self.dropout = [[float(a), float(b)] for a, b in dropout]
        self.points = needle_centreline(self.entry, self.angle_deg, self.length, self.curvature)
        self._last_profiles: tuple[tuple, tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]] | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a record: ``NeedleReverberation(**record)`` rebuilds this transform."""
        return {"entry": list(self.entry), "angle_deg": self.angle_deg, "length": self.length,
                "curvature": self.curvature, "intensity": self.intensity, "thickness": self.thickness,
                "num_echoes": self.num_echoes, "echo_spacing": self.echo_spacing, "echo_decay": self.echo_decay,
                "dropout": [list(s) for s in self.dropout]}

    def _profiles(self, shape: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(whole needle, visible needle, echoes)`` profiles on a grid, kept for the last grid and device (the
        keys of one sample and its masks share them); read-only."""
        key = (tuple(int(n) for n in shape), str(device))
        if self._last_profiles is not None and self._last_profiles[0] == key:
            return self._last_profiles[1]
        sigma = self.thickness / (2 * np.sqrt(2 * np.log(2)))
        frac = np.linspace(0, 1, len(self.points))
        visible = np.ones(len(self.points), bool)
        for a, b in self.dropout:
            visible &= ~((frac >= a) & (frac <= b))
        whole = _line_profile(self.points, shape, sigma, device)
        if visible.all():
            shown = whole
        else:
            shown = torch.zeros_like(whole)
            edges = np.flatnonzero(np.diff(np.concatenate([[0], visible.astype(int), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):  # each visible run on its own: a gap is not bridged
                shown = torch.maximum(shown, _line_profile(self.points[a:b], shape, sigma, device))
        echoes = [_shift_down(shown, int(round(k * self.echo_spacing))) * self.echo_decay**k for k in range(1, self.num_echoes + 1)]
        self._last_profiles = (key, (whole, shown, echoes))
        return whole, shown, echoes

    def masks(self, spatial_shape: Sequence[int], device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(needle_mask, artifact_mask)`` on a grid of ``spatial_shape`` (H, W): float tensors of 0/1."""
        whole, _, echoes = self._profiles(spatial_shape, torch.device(device or "cpu"))
        artifact = torch.zeros_like(whole)
        for k, e in enumerate(echoes, start=1):
            artifact = torch.maximum(artifact, (e >= 0.5 * self.echo_decay**k).float())
        return (whole >= 0.5).float(), artifact

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Draw the needle and its echoes into ``img`` (C, H, W); returns a new array of the same type."""
        _check_us_image(img)
        x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        _, shown, echoes = self._profiles(x.shape[1:], x.device)
        drawn = shown
        for e in echoes:
            drawn = torch.maximum(drawn, e)
        out = torch.maximum(x.float(), (drawn * self.intensity)[None]).to(x.dtype)
        if isinstance(img, MetaTensor):
            res = MetaTensor(out)
            res.copy_meta_from(img)
            res.meta[META_FIELD] = list(img.meta.get(META_FIELD, [])) + [self.params]
            return res
        return out.numpy() if isinstance(img, np.ndarray) else out


def _draw_needle_into_keys(t: MapTransform, data: Mapping, needle: NeedleReverberation, needle_mask_key: str | None,
                   artifact_mask_key: str | None, meta_key_postfix: str) -> dict:
    d = dict(data)
    first = None
    for key in t.key_iterator(d):
        img = d[key]
        _check_us_image(img, f"{key!r}")
        first = first if first is not None else img
        if tuple(img.shape[1:]) != tuple(first.shape[1:]):
            raise ValueError(f"{key!r}: spatial shape {tuple(img.shape[1:])} differs from {tuple(first.shape[1:])} of the first key.")
        d[key] = needle(img)
        if not isinstance(d[key], MetaTensor):
            meta_key = f"{key}_{meta_key_postfix}"
            meta = dict(d.get(meta_key) or {})
            meta[META_FIELD] = list(meta.get(META_FIELD, [])) + [needle.params]
            d[meta_key] = meta
    if first is not None and (needle_mask_key or artifact_mask_key):
        dev = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
        masks = needle.masks(first.shape[1:], dev)
        for mkey, m in ((needle_mask_key, masks[0]), (artifact_mask_key, masks[1])):
            if mkey:
                d[mkey] = m[None].numpy() if isinstance(first, np.ndarray) else m[None]
    return d


class NeedleReverberationd(MapTransform):
    """Dictionary-based :class:`NeedleReverberation`: the same needle in every ``keys`` image (same spatial shape),
    and the masks ``(1, H, W)`` under ``needle_mask_key`` (the whole needle) and ``artifact_mask_key`` (the echoes);
    ``None`` skips one. Plain arrays get the record in ``data[f"{key}_{meta_key_postfix}"]``."""

    backend = NeedleReverberation.backend

    def __init__(self, keys: KeysCollection, entry: Sequence[float], angle_deg: float, length: float,
                 curvature: float = 0.0, intensity: float = 1.0, thickness: float = 2.0, num_echoes: int = 4,
                 echo_spacing: float = 5.0, echo_decay: float = 0.6, dropout: Sequence[Sequence[float]] = (),
                 needle_mask_key: str | None = "needle_mask", artifact_mask_key: str | None = "artifact_mask",
                 meta_key_postfix: str = "meta_dict", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.needle = NeedleReverberation(entry, angle_deg, length, curvature, intensity, thickness, num_echoes,
                                          echo_spacing, echo_decay, dropout)
        self.needle_mask_key, self.artifact_mask_key, self.meta_key_postfix = needle_mask_key, artifact_mask_key, meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Draw the needle into every ``keys`` image and add the masks; returns a new dict."""
        return _draw_needle_into_keys(self, data, self.needle, self.needle_mask_key, self.artifact_mask_key, self.meta_key_postfix)


class RandNeedleReverberation(RandomizableTransform):
    """With probability ``prob``, draw a random needle with reverberation into a 2D ultrasound image ``(C, H, W)``
    (see :class:`NeedleReverberation`; ``last_params`` holds the drawn record, ``None`` when not applied).

    The needle enters at a random lateral position in the upper ``entry_depth`` fraction of the image, pointing
    down-right or down-left at ``angle_range`` degrees below the lateral axis, ``length_range`` of the image width
    long; ``curvature_range`` in radians per pixel; ``num_dropout`` (a range) invisible segments of
    ``dropout_length`` (fractions of the needle). Every range is ``(low, high)``, drawn uniformly.
    """

    backend = NeedleReverberation.backend

    def __init__(
        self,
        prob: float = 0.5,
        entry_depth: tuple[float, float] = (0.1, 0.4),
        angle_range: tuple[float, float] = (10.0, 45.0),
        length_range: tuple[float, float] = (0.4, 0.9),
        curvature_range: tuple[float, float] = (-0.004, 0.004),
        intensity_range: tuple[float, float] = (0.8, 1.0),
        thickness_range: tuple[float, float] = (1.5, 3.0),
        num_echoes_range: tuple[int, int] = (2, 6),
        echo_spacing_range: tuple[float, float] = (3.0, 8.0),
        echo_decay_range: tuple[float, float] = (0.5, 0.8),
        num_dropout: tuple[int, int] = (0, 2),
        dropout_length: tuple[float, float] = (0.05, 0.2),
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        ranges = dict(entry_depth=entry_depth, angle_range=angle_range, length_range=length_range,
                      curvature_range=curvature_range, intensity_range=intensity_range, thickness_range=thickness_range,
                      num_echoes_range=num_echoes_range, echo_spacing_range=echo_spacing_range,
                      echo_decay_range=echo_decay_range, num_dropout=num_dropout, dropout_length=dropout_length)
        for name, r in ranges.items():
            if len(r) != 2 or float(r[0]) > float(r[1]):
                raise ValueError(f"{name}={r!r}: expected (low, high) with low <= high.")
        self.ranges = {k: (float(v[0]), float(v[1])) for k, v in ranges.items()}
        self.last_params: dict[str, Any] | None = None

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        """Draw whether to apply and, when applied, the needle for an image of ``spatial_shape`` (H, W)."""
        super().randomize(None)
        if not self._do_transform:
            self.last_params = None
            return
        h, w = int(spatial_shape[0]), int(spatial_shape[1])
        r, u = self.ranges, self.R.uniform
        rightwards = bool(self.R.rand() < 0.5)
        angle = u(*r["angle_range"])
        dropout = []
        for _ in range(int(self.R.randint(int(r["num_dropout"][0]), int(r["num_dropout"][1]) + 1))):
            seg = u(*r["dropout_length"])
            start = u(0.0, max(1.0 - seg, 0.0))
            dropout.append([start, start + seg])
        self.last_params = {
            "entry": [u(*r["entry_depth"]) * h, u(0.05, 0.45) * w if rightwards else u(0.55, 0.95) * w],
            "angle_deg": angle if rightwards else 180.0 - angle,
            "length": u(*r["length_range"]) * w,
            "curvature": u(*r["curvature_range"]),
            "intensity": u(*r["intensity_range"]),
            "thickness": u(*r["thickness_range"]),
            "num_echoes": int(self.R.randint(int(r["num_echoes_range"][0]), int(r["num_echoes_range"][1]) + 1)),
            "echo_spacing": u(*r["echo_spacing_range"]),
            "echo_decay": u(*r["echo_decay_range"]),
            "dropout": sorted(dropout),
        }

    def transform(self) -> NeedleReverberation | None:
        """The :class:`NeedleReverberation` of :attr:`last_params` (``None`` when the last draw applies nothing)."""
        return None if self.last_params is None else NeedleReverberation(**self.last_params)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Draw a random needle into ``img`` (C, H, W); ``randomize=False`` re-applies :attr:`last_params`."""
        _check_us_image(img)
        if randomize:
            self.randomize(img.shape[1:])
        t = self.transform()
        return img if t is None else t(img)


class RandNeedleReverberationd(RandArrayDelegateMixin, RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandNeedleReverberation`: one random needle in every ``keys`` image, masks as
    :class:`NeedleReverberationd` (all zero when the draw applies nothing, so batches keep their keys)."""

    backend = RandNeedleReverberation.backend

    def __init__(self, keys: KeysCollection, prob: float = 0.5, needle_mask_key: str | None = "needle_mask",
                 artifact_mask_key: str | None = "artifact_mask", meta_key_postfix: str = "meta_dict",
                 allow_missing_keys: bool = False, **ranges: Any) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandNeedleReverberation(prob=1.0, **ranges)
        self.needle_mask_key, self.artifact_mask_key, self.meta_key_postfix = needle_mask_key, artifact_mask_key, meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Draw one random needle into every ``keys`` image and add the masks; returns a new dict."""
        d = dict(data)
        key = self.draw_for_first_key(d, _check_us_image)
        if key is None:
            return d
        if self._do_transform:
            return _draw_needle_into_keys(self, d, self.rand.transform(), self.needle_mask_key, self.artifact_mask_key,
                                          self.meta_key_postfix)
        first = d[key]
        for mkey in (self.needle_mask_key, self.artifact_mask_key):
            if mkey:
                z = torch.zeros((1, *first.shape[1:]), device=first.device if isinstance(first, torch.Tensor) else None)
                d[mkey] = z.numpy() if isinstance(first, np.ndarray) else z
        return d


NeedleReverberationD = NeedleReverberationDict = NeedleReverberationd
RandNeedleReverberationD = RandNeedleReverberationDict = RandNeedleReverberationd
