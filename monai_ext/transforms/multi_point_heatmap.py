"""All points of an image as one heatmap channel: a Gaussian at every point, combined by their maximum (the target
of the AdaptOR suture-point papers, where a frame shows 0-15 points of one kind)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

try:  # MONAI >= 1.6
    from monai.transforms import GenerateHeatmap
except ImportError:  # MONAI 1.5 (MONAI Label 0.8.5): the same Gaussians, evaluated in closed form below
    GenerateHeatmap = None

__all__ = ["MultiPointHeatmap", "MultiPointHeatmapD", "MultiPointHeatmapDict", "MultiPointHeatmapd"]


class MultiPointHeatmap(Transform):
    """One heatmap channel for a set of points: MONAI's ``GenerateHeatmap`` (one channel per point, each
    normalised to a peak of 1) reduced by the maximum over the points.

    ``points``: ``(N, D)`` or ``(1, N, D)`` in the image array's index coordinates (pixels / voxels, ``D`` = 2 or
    3); NaN rows (padding) and points off the grid are skipped, so no points give an all-zero map. Returns
    ``(1, *spatial_shape)`` float32 in [0, 1], a numpy array or tensor (on the points' device) like ``points``.
    As in ``GenerateHeatmap``, each Gaussian is centred on the pixel nearest to its point.

    Args:
        sigma: Gaussian standard deviation in pixels (the AdaptOR papers: 5 px at 512x288).
        spatial_shape: the map's spatial shape (or give it per call).
        truncated: support of each Gaussian in multiples of ``sigma``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, sigma: float = 5.0, spatial_shape: Sequence[int] | None = None, truncated: float = 4.0) -> None:
        if not float(sigma) > 0 or not float(truncated) > 0:
            raise ValueError(f"sigma and truncated must be positive, got {sigma!r} and {truncated!r}.")
        self.sigma = float(sigma)
        self.truncated = float(truncated)
        self.spatial_shape = None if spatial_shape is None else tuple(int(s) for s in spatial_shape)

    def __call__(self, points: NdarrayOrTensor, spatial_shape: Sequence[int] | None = None) -> NdarrayOrTensor:
        """The (1, *spatial_shape) heatmap of ``points``."""
        shape = tuple(int(s) for s in spatial_shape) if spatial_shape is not None else self.spatial_shape
        if shape is None:
            raise ValueError("MultiPointHeatmap: give spatial_shape (at construction or per call).")
        device = points.device if isinstance(points, torch.Tensor) else None
        pts = torch.as_tensor(np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points,
                                         dtype=np.float32), device=device)
        if pts.ndim == 3 and pts.shape[0] == 1:
            pts = pts[0]
        if pts.ndim != 2 or pts.shape[1] != len(shape) or len(shape) not in (2, 3):
            raise ValueError(f"MultiPointHeatmap: expected (N, {len(shape)}) points for a map of spatial shape {shape}, "
                             f"got shape {tuple(pts.shape)}.")
        upper = torch.as_tensor(shape, dtype=pts.dtype, device=pts.device)
        pts = pts[torch.isfinite(pts).all(dim=1) & (pts >= 0).all(dim=1) & (pts < upper).all(dim=1)]
        if pts.shape[0] == 0:
            heat = torch.zeros((1, *shape), dtype=torch.float32, device=pts.device)
        elif GenerateHeatmap is not None:
            per_point = GenerateHeatmap(sigma=self.sigma, spatial_shape=shape, truncated=self.truncated,
                                        dtype=torch.float32)(pts)
            heat = torch.as_tensor(per_point).amax(dim=0, keepdim=True)
        else:
            heat = self._closed_form(pts, shape)
        out, *_ = convert_to_dst_type(heat, points, dtype=np.float32 if isinstance(points, np.ndarray) else torch.float32)
        return out

    def _closed_form(self, pts: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        centres = pts.round().clamp(min=torch.zeros(1, device=pts.device),
                                    max=torch.as_tensor(shape, device=pts.device) - 1)
        grid = torch.stack(torch.meshgrid(*[torch.arange(s, device=pts.device, dtype=torch.float32) for s in shape],
                                          indexing="ij"), dim=-1)
        heat = torch.zeros(shape, device=pts.device)
        reach = self.truncated * self.sigma
        for c in centres:
            offset = grid - c
            g = torch.exp(-(offset**2).sum(-1) / (2 * self.sigma**2))
            g[(offset.abs() > reach).any(-1)] = 0
            heat = torch.maximum(heat, g)
        return heat[None]


class MultiPointHeatmapd(MapTransform):
    """Dictionary version of :class:`MultiPointHeatmap`: the heatmap of the ``keys`` points on the grid of
    ``image_key``, written to ``heatmap_key`` (with the image's meta data when the image is a MetaTensor).

    Args:
        keys: one point key (``(1, N, D)`` as ``PointListd`` writes it).
        image_key: the channel-first image whose spatial shape the map takes.
        heatmap_key: where the map goes (e.g. ``label``).
        sigma, truncated: see :class:`MultiPointHeatmap`.
        allow_missing_keys: skip a missing point key.
    """

    backend = MultiPointHeatmap.backend

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        heatmap_key: str = "label",
        sigma: float = 5.0,
        truncated: float = 4.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"MultiPointHeatmapd: one point key, got {self.keys}.")
        self.image_key = image_key
        self.heatmap_key = heatmap_key
        self.render = MultiPointHeatmap(sigma=sigma, truncated=truncated)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add the heatmap; returns a new dictionary."""
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[self.image_key]
            heat = self.render(d[key], spatial_shape=image.shape[1:])
            d[self.heatmap_key], *_ = convert_to_dst_type(heat, image, dtype=torch.float32
                                                          if isinstance(image, torch.Tensor) else np.float32)
        return d


MultiPointHeatmapD = MultiPointHeatmapDict = MultiPointHeatmapd
