"""Points from a heatmap by thresholding, as in "Improved Heatmap-Based Landmark Detection" (AdaptOR 2021, DALI
2021): Otsu's threshold, a morphological opening, connected components, components larger than the image's mean
component area cut in two through their centroid, and the centroid of every part."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type
from scipy import ndimage
from skimage.filters import threshold_otsu

__all__ = ["HeatmapToPointsOtsu", "HeatmapToPointsOtsuD", "HeatmapToPointsOtsuDict", "HeatmapToPointsOtsud"]


class HeatmapToPointsOtsu(Transform):
    """A ``(1, *spatial)`` heatmap (2D or 3D) to ``(1, K, D)`` points in index coordinates (``K`` >= 0), float32,
    of the heatmap's type and device.

    Steps: sigmoid (if ``sigmoid``); foreground = map > max(Otsu's threshold, ``min_threshold``); binary opening
    with a cross of radius ``opening_radius``; connected components; when ``split_oversize``, every component whose
    area exceeds the mean area of the image's components is cut through its centroid across its longest
    bounding-box side (in 2D: a component taller than wide is cut along the x-axis, as the paper does) and each
    part counts; the points are the parts' centroids.

    Args:
        sigmoid: apply a sigmoid first (network logits).
        opening_radius: radius in pixels of the opening's structuring element (0: no opening).
        split_oversize: cut the oversize components (the paper's answer to touching points).
        min_threshold: floor of the threshold (not in the paper): Otsu splits any map in two, so on a frame without
            points it would turn background noise into points; 0 keeps the paper's rule.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, sigmoid: bool = False, opening_radius: int = 1, split_oversize: bool = True, min_threshold: float = 0.0
    ) -> None:
        if isinstance(opening_radius, bool) or int(opening_radius) < 0:
            raise ValueError(f"opening_radius must be a non-negative integer, got {opening_radius!r}.")
        self.sigmoid = bool(sigmoid)
        self.opening_radius = int(opening_radius)
        self.split_oversize = bool(split_oversize)
        self.min_threshold = float(min_threshold)

    def __call__(self, heatmap: NdarrayOrTensor) -> NdarrayOrTensor:
        """The points of one heatmap."""
        if heatmap.ndim not in (3, 4) or heatmap.shape[0] != 1:
            raise ValueError(f"HeatmapToPointsOtsu: expected a (1, H, W) or (1, H, W, D) heatmap, got shape "
                             f"{tuple(heatmap.shape)}.")
        data = heatmap.detach().float().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
        prob = 1.0 / (1.0 + np.exp(-data[0].astype(np.float64))) if self.sigmoid else data[0].astype(np.float64)
        points = np.zeros((0, prob.ndim))
        if np.ptp(prob) > 0:
            foreground = prob > max(float(threshold_otsu(prob)), self.min_threshold)
            if self.opening_radius:
                cross = ndimage.iterate_structure(ndimage.generate_binary_structure(prob.ndim, 1), self.opening_radius)
                foreground = ndimage.binary_opening(foreground, structure=cross)
            labels, count = ndimage.label(foreground)
            points = self._centroids(labels, count)
        out, *_ = convert_to_dst_type(points[None].astype(np.float32), heatmap, dtype=torch.float32
                                      if isinstance(heatmap, torch.Tensor) else np.float32)
        return out

    def _centroids(self, labels: np.ndarray, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros((0, labels.ndim))
        areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        points = []
        for index, box in enumerate(ndimage.find_objects(labels)):
            coords = np.argwhere(labels[box] == index + 1) + np.array([s.start for s in box])
            centre = coords.mean(axis=0)
            if self.split_oversize and areas[index] > areas.mean():
                longest = int(np.argmax([s.stop - s.start for s in box]))
                below = coords[:, longest] < centre[longest]
                parts = [p for p in (coords[below], coords[~below]) if len(p)]
                points.extend(p.mean(axis=0) for p in parts)
            else:
                points.append(centre)
        return np.asarray(points)


class HeatmapToPointsOtsud(MapTransform):
    """Dictionary version of :class:`HeatmapToPointsOtsu`: the points of the ``keys`` heatmap go to
    ``points_key``.

    Args:
        keys: one heatmap key (e.g. ``pred``).
        points_key: where the ``(1, K, D)`` points go.
        sigmoid, opening_radius, split_oversize, min_threshold: see :class:`HeatmapToPointsOtsu`.
        allow_missing_keys: skip a missing heatmap.
    """

    backend = HeatmapToPointsOtsu.backend

    def __init__(
        self,
        keys: KeysCollection,
        points_key: str = "pred_points",
        sigmoid: bool = False,
        opening_radius: int = 1,
        split_oversize: bool = True,
        min_threshold: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"HeatmapToPointsOtsud: one heatmap key, got {self.keys}.")
        self.points_key = points_key
        self.find = HeatmapToPointsOtsu(sigmoid, opening_radius, split_oversize, min_threshold)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add the points; returns a new dictionary."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.points_key] = self.find(d[key])
        return d


HeatmapToPointsOtsuD = HeatmapToPointsOtsuDict = HeatmapToPointsOtsud
