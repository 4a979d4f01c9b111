"""Cell instance labels <-> the two maps of a centroid / region segmenter, as array and dictionary transforms.

Segmenters of densely packed cells (e.g. cone photoreceptors in adaptive-optics retinal images, Liu et al., OMIA
2019 and DGM4MICCAI/DALI 2021) predict two maps instead of instance labels: a *centroid map* (a small blob on every
cell centre) and a *region map* (cell pixels, with a gap between touching cells). Instances come back by a
marker-controlled watershed seeded at the centroid blobs (Beucher & Meyer 1993).

- :class:`CellTargets` / :class:`CellTargetsd`: instance labels (1, H, W[, D]) -> the two target maps (2, ...);
- :class:`CentroidSeededWatershed` / :class:`CentroidSeededWatershedd`: the two predicted maps (2, ...) ->
  instance labels (1, ...).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

__all__ = [
    "CellTargets",
    "CellTargetsD",
    "CellTargetsDict",
    "CellTargetsd",
    "CentroidSeededWatershed",
    "CentroidSeededWatershedD",
    "CentroidSeededWatershedDict",
    "CentroidSeededWatershedd",
]


def _numpy(img: NdarrayOrTensor) -> np.ndarray:
    return img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)


class CellTargets(Transform):
    """Instance labels (1, H, W[, D]; 0 background, one integer per cell) -> float32 (2, H, W[, D]) targets:
    channel 0 the centroid map (a ball of ``centroid_radius`` px around each cell's centre of mass, clipped to the
    image), channel 1 the region map (the cells' pixels minus those touching another cell, so touching cells stay
    apart). Numpy arrays and torch tensors in, the same type out.

    Raises ``ValueError`` for more than one channel or non-integer / negative labels.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, centroid_radius: float = 2.0) -> None:
        if not float(centroid_radius) >= 0:
            raise ValueError(f"centroid_radius must be >= 0 px, got {centroid_radius!r}.")
        self.centroid_radius = float(centroid_radius)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The two target maps of the instance labels ``img``; see the class docstring."""
        lab = _numpy(img)
        if lab.ndim not in (3, 4) or lab.shape[0] != 1:
            raise ValueError(f"CellTargets expects instance labels of shape (1, H, W[, D]), got {lab.shape}.")
        if lab.size and (lab.min() < 0 or not np.all(np.mod(lab, 1) == 0)):
            raise ValueError("CellTargets: labels must be non-negative integers (0 background, 1, 2, ... cells).")
        lab = lab[0].astype(np.int64)
        ids = np.unique(lab[lab > 0])
        seeds = np.zeros(lab.shape, bool)
        if len(ids):
            centres = np.atleast_2d(np.asarray(ndimage.center_of_mass(np.ones_like(lab), lab, ids)))
            idx = np.clip(np.round(centres).astype(int), 0, np.array(lab.shape) - 1)
            seeds[tuple(idx.T)] = True
        centroid = (ndimage.distance_transform_edt(~seeds) <= self.centroid_radius) & seeds.any()
        footprint = ndimage.generate_binary_structure(lab.ndim, 1)
        region = (lab > 0) & ~_touches_other_cell(lab, footprint)
        maps = np.stack([centroid, region]).astype(np.float32)
        out, *_ = convert_to_dst_type(maps, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)
        return out


def _touches_other_cell(lab: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Cell pixels with a neighbour (in ``footprint``) that belongs to a *different* cell (not background)."""
    big = np.iinfo(np.int64).max
    hi = ndimage.maximum_filter(lab, footprint=footprint)
    lo = ndimage.minimum_filter(np.where(lab > 0, lab, big), footprint=footprint)
    return (lab > 0) & ((hi != lab) | ((lo != lab) & (lo != big)))


class CellTargetsd(MapTransform):
    """Dictionary-based :class:`CellTargets`: replaces each ``keys`` instance label image by its two target maps."""

    backend = CellTargets.backend

    def __init__(self, keys: KeysCollection, centroid_radius: float = 2.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.targets = CellTargets(centroid_radius)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """The target maps of every ``keys`` label image of ``data``; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.targets(d[key])
        return d


class CentroidSeededWatershed(Transform):
    """The two predicted maps (2, H, W[, D]; probabilities: channel 0 centroids, channel 1 cell regions) -> int32
    instance labels (1, H, W[, D]), 0 background.

    Markers: connected components of ``centroid > centroid_threshold``. Foreground: ``region > region_threshold``
    (``None``: Otsu's threshold of the region map, as the AO papers). The watershed floods ``1 - region`` from the
    markers inside the foreground (scikit-image); foreground not reached by any marker stays background; cells smaller
    than ``min_size`` pixels are dropped and the rest numbered 1, 2, ... in raster order of their markers.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, centroid_threshold: float = 0.5, region_threshold: float | None = None, min_size: int = 0) -> None:
        if not 0.0 <= float(centroid_threshold) <= 1.0:
            raise ValueError(f"centroid_threshold must be in [0, 1], got {centroid_threshold!r}.")
        if region_threshold is not None and not 0.0 <= float(region_threshold) <= 1.0:
            raise ValueError(f"region_threshold must be in [0, 1] or None (Otsu), got {region_threshold!r}.")
        self.centroid_threshold = float(centroid_threshold)
        self.region_threshold = None if region_threshold is None else float(region_threshold)
        self.min_size = int(min_size)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Instance labels from the maps ``img``; see the class docstring."""
        maps = _numpy(img).astype(np.float64)
        if maps.ndim not in (3, 4) or maps.shape[0] != 2:
            raise ValueError(f"CentroidSeededWatershed expects (2, H, W[, D]) maps (centroid, region), got {maps.shape}.")
        centroid, region = maps
        markers, _ = ndimage.label(centroid > self.centroid_threshold)
        if self.region_threshold is not None:
            level = self.region_threshold
        else:
            level = threshold_otsu(region) if np.ptp(region) > 0 else float(region.max()) + 1.0
        foreground = region > level
        labels = watershed(1.0 - region, markers=np.where(foreground, markers, 0), mask=foreground)
        if self.min_size > 0 and labels.max() > 0:
            sizes = np.bincount(labels.ravel())
            labels[sizes[labels] < self.min_size] = 0
        ids = np.unique(labels[labels > 0])
        lut = np.zeros(int(labels.max()) + 1, np.int32)
        lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
        out, *_ = convert_to_dst_type(lut[labels][None], img, dtype=torch.int32 if isinstance(img, torch.Tensor) else np.int32)
        return out


class CentroidSeededWatershedd(MapTransform):
    """Dictionary-based :class:`CentroidSeededWatershed`: replaces each ``keys`` map pair by instance labels."""

    backend = CentroidSeededWatershed.backend

    def __init__(self, keys: KeysCollection, centroid_threshold: float = 0.5, region_threshold: float | None = None,
                 min_size: int = 0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.watershed = CentroidSeededWatershed(centroid_threshold, region_threshold, min_size)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Instance labels of every ``keys`` map pair of ``data``; returns a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.watershed(d[key])
        return d


CellTargetsD = CellTargetsDict = CellTargetsd
CentroidSeededWatershedD = CentroidSeededWatershedDict = CentroidSeededWatershedd
