"""Free-form hole masks for inpainting: random brush strokes, as the mask generator of Yu et al. ("Free-Form Image
Inpainting with Gated Convolution", ICCV 2019) that HPI (Hung et al., DGM4MICCAI 2021) trains with.

- :class:`FreeFormMask` / :class:`FreeFormMaskd`: rasterise recorded strokes (polylines with a brush width, in
  pixels) into a hole mask ``(1, H, W)``: 1 = missing, 0 = known;
- :class:`RandFreeFormMask` / :class:`RandFreeFormMaskd`: with probability ``prob`` draw strokes with ``self.R``
  (vertices joined by segments of random length and direction, the direction turning about 2 pi / 5 at each vertex)
  and apply :class:`FreeFormMask`; the strokes are in ``last_params`` (and ``meta["free_form_mask"]`` of a
  MetaTensor mask), so every mask replays.
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
    "FreeFormMask",
    "FreeFormMaskd",
    "FreeFormMaskD",
    "FreeFormMaskDict",
    "RandFreeFormMask",
    "RandFreeFormMaskd",
    "RandFreeFormMaskD",
    "RandFreeFormMaskDict",
]

META_FIELD = "free_form_mask"


def _check_2d(img: NdarrayOrTensor, name: str = "img") -> None:
    if img.ndim != 3:
        raise ValueError(f"{name}: expected a channel-first 2D image (C, H, W), got shape {tuple(img.shape)}.")


class FreeFormMask(Transform):
    """The hole mask of brush ``strokes`` on the grid of a channel-first 2D image ``(C, H, W)``: a list of
    ``{"points": [[row, col], ...], "width": pixels}``; a pixel is a hole (1) when it lies within ``width / 2`` of
    a stroke's polyline (a single point makes a round dab). ``t(img)`` returns the mask ``(1, H, W)`` with the
    image's type, dtype and device (a MetaTensor mask carries the strokes in ``meta["free_form_mask"]``)."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, strokes: Sequence[Mapping[str, Any]]) -> None:
        checked = []
        for k, s in enumerate(strokes):
            pts = np.asarray(s.get("points", []), dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1:
                raise ValueError(f"stroke {k}: expected 'points' as [[row, col], ...], got {s.get('points')!r}.")
            if not float(s.get("width", 0)) > 0:
                raise ValueError(f"stroke {k}: expected a brush 'width' > 0 pixels, got {s.get('width')!r}.")
            checked.append({"points": pts.tolist(), "width": float(s["width"])})
        self.strokes = checked

    @property
    def params(self) -> dict[str, Any]:
        """The record: ``FreeFormMask(**record)`` rebuilds this transform."""
        return {"strokes": [dict(s) for s in self.strokes]}

    def mask(self, spatial_shape: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor:
        """Float ``(H, W)`` tensor of 0/1 (1 = hole) on ``device``."""
        hole = torch.zeros(tuple(int(n) for n in spatial_shape), device=torch.device(device or "cpu"))
        for s in self.strokes:
            hole = torch.maximum(hole, (polyline_distance(np.asarray(s["points"]), spatial_shape, hole.device) <= s["width"] / 2).float())
        return hole

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The hole mask ``(1, H, W)`` for ``img`` (C, H, W)."""
        _check_2d(img)
        x = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        m = self.mask(x.shape[1:], x.device)[None].to(x.dtype)
        if isinstance(img, MetaTensor):
            out = MetaTensor(m)
            out.copy_meta_from(img)
            out.meta[META_FIELD] = self.params
            return out
        return m.numpy() if isinstance(img, np.ndarray) else m


class FreeFormMaskd(MapTransform):
    """Dictionary-based :class:`FreeFormMask`: the mask of the grid of ``keys`` (the first present key) under
    ``mask_key``; plain arrays get the record in ``data[f"{mask_key}_{meta_key_postfix}"]``."""

    backend = FreeFormMask.backend

    def __init__(self, keys: KeysCollection, strokes: Sequence[Mapping[str, Any]], mask_key: str = "mask",
                 meta_key_postfix: str = "meta_dict", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.free_form, self.mask_key, self.meta_key_postfix = FreeFormMask(strokes), mask_key, meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Add the mask of the first ``keys`` image's grid; returns a new dict."""
        return _add_mask(self, dict(data), self.free_form, self.mask_key, self.meta_key_postfix)


def _add_mask(t: MapTransform, d: dict, free_form: FreeFormMask, mask_key: str, meta_key_postfix: str) -> dict:
    for key in t.key_iterator(d):
        _check_2d(d[key], f"{key!r}")
        d[mask_key] = free_form(d[key])
        if not isinstance(d[mask_key], MetaTensor):
            d[f"{mask_key}_{meta_key_postfix}"] = {META_FIELD: free_form.params}
        return d
    return d


class RandFreeFormMask(RandomizableTransform):
    """With probability ``prob``, a random free-form hole mask ``(1, H, W)`` for a 2D image ``(C, H, W)`` (without:
    an empty mask). Draws ``num_strokes`` strokes (a ``(low, high)`` range); each has ``num_vertices`` vertices,
    starts at a random pixel, and each segment turns by ``2 pi / 5 +- 2 pi / 15`` (alternating sides, as Yu et al.)
    with a length of up to ``max_length`` x the image's shorter side and a brush width of ``width_range`` x that
    side. ``last_params`` holds the strokes (``None`` when not applied); ``FreeFormMask(**last_params)`` replays.
    """

    backend = FreeFormMask.backend

    def __init__(self, prob: float = 1.0, num_strokes: tuple[int, int] = (1, 4), num_vertices: tuple[int, int] = (4, 12),
                 max_length: float = 0.25, width_range: tuple[float, float] = (0.05, 0.15)) -> None:
        RandomizableTransform.__init__(self, prob)
        for name, r in (("num_strokes", num_strokes), ("num_vertices", num_vertices), ("width_range", width_range)):
            if len(r) != 2 or not 0 < float(r[0]) <= float(r[1]):
                raise ValueError(f"{name}={r!r}: expected (low, high) with 0 < low <= high.")
        if not float(max_length) > 0:
            raise ValueError(f"max_length={max_length!r}: expected > 0 (fraction of the shorter image side).")
        self.num_strokes, self.num_vertices = (int(num_strokes[0]), int(num_strokes[1])), (int(num_vertices[0]), int(num_vertices[1]))
        self.max_length, self.width_range = float(max_length), (float(width_range[0]), float(width_range[1]))
        self.last_params: dict[str, Any] | None = None

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        """Draw whether to apply and the strokes for a grid of ``spatial_shape`` (H, W)."""
        super().randomize(None)
        if not self._do_transform:
            self.last_params = None
            return
        h, w = int(spatial_shape[0]), int(spatial_shape[1])
        side = min(h, w)
        strokes = []
        for _ in range(int(self.R.randint(self.num_strokes[0], self.num_strokes[1] + 1))):
            n = int(self.R.randint(self.num_vertices[0], self.num_vertices[1] + 1))
            base = self.R.uniform(0, 2 * np.pi)
            p = np.array([self.R.uniform(0, h - 1), self.R.uniform(0, w - 1)])
            points = [p.tolist()]
            for k in range(n):
                turn = 2 * np.pi / 5 + self.R.uniform(-2 * np.pi / 15, 2 * np.pi / 15)
                angle = base + (turn if k % 2 == 0 else -turn) + (np.pi if k % 2 else 0.0)
                length = self.R.uniform(0, self.max_length * side)
                p = np.clip(p + length * np.array([np.sin(angle), np.cos(angle)]), 0, [h - 1, w - 1])
                points.append(p.tolist())
            strokes.append({"points": points, "width": max(self.R.uniform(*self.width_range) * side, 1.0)})
        self.last_params = {"strokes": strokes}

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """The hole mask for ``img`` (C, H, W); ``randomize=False`` re-applies :attr:`last_params`."""
        _check_2d(img)
        if randomize:
            self.randomize(img.shape[1:])
        return FreeFormMask(**(self.last_params or {"strokes": []}))(img)


class RandFreeFormMaskd(RandArrayDelegateMixin, RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandFreeFormMask`: a random hole mask on the grid of ``keys`` under ``mask_key``."""

    backend = RandFreeFormMask.backend

    def __init__(self, keys: KeysCollection, prob: float = 1.0, mask_key: str = "mask", meta_key_postfix: str = "meta_dict",
                 allow_missing_keys: bool = False, **ranges: Any) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandFreeFormMask(prob=1.0, **ranges)
        self.mask_key, self.meta_key_postfix = mask_key, meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Add a random hole mask for the first ``keys`` image; returns a new dict."""
        d = dict(data)
        if self.draw_for_first_key(d, _check_2d) is None:
            return d
        return _add_mask(self, d, FreeFormMask(**(self.last_params or {"strokes": []})), self.mask_key, self.meta_key_postfix)


FreeFormMaskD = FreeFormMaskDict = FreeFormMaskd
RandFreeFormMaskD = RandFreeFormMaskDict = RandFreeFormMaskd
