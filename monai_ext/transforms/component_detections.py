"""Detections from a probability map: one per connected component of the voxels at or above a threshold, with its
centre of gravity in world millimetres, the radius of the ball of its volume and its score (the highest probability
inside it). This is how a segmentation network becomes a detector in the ADAM aneurysm challenge scoring (Timmins
et al. 2021) used by Assis et al. (DGM4MICCAI / DALI 2021).

- :class:`ComponentDetections`: probability map (1, H, W, D) -> detections (K, 5): ``x, y, z`` (mm, the image's
  world frame: MONAI's RAS for NIfTI), ``radius_mm``, ``score``; sorted by score, highest first;
- :class:`ComponentDetectionsd`: the dictionary version (``data[detections_key]``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = [
    "DETECTION_COLUMNS",
    "ComponentDetections",
    "ComponentDetectionsD",
    "ComponentDetectionsDict",
    "ComponentDetectionsd",
    "probability_components",
]

#: the columns of a detection row
DETECTION_COLUMNS = ("x_mm", "y_mm", "z_mm", "radius_mm", "score")


def probability_components(prob: np.ndarray, threshold: float, affine: np.ndarray | None = None,
                           min_voxels: int = 1, min_volume: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Connected components (26-connected in 3D) of ``prob >= threshold`` of a spatial map ``prob`` (H, W[, D]).

    Returns ``(labels, rows)``: the component label image and an array (K, 5) of ``x, y, z`` (world mm via
    ``affine``, voxel indices when ``None``), ``radius_mm`` (of the ball of the component's volume), ``score`` (the
    highest probability in it), in label order; components under ``min_voxels`` voxels or ``min_volume`` (world
    units cubed, mm^3 via ``affine``) are dropped from both.
    """
    nd = prob.ndim
    labels, n = ndimage.label(prob >= threshold, structure=np.ones((3,) * nd))
    aff = np.eye(nd + 1) if affine is None else np.asarray(affine, dtype=np.float64)
    voxel_volume = abs(float(np.linalg.det(aff[:nd, :nd])))
    rows = []
    keep = np.zeros(n + 1, bool)
    if n:
        idx = np.arange(1, n + 1)
        sizes = ndimage.sum_labels(np.ones_like(prob), labels, idx)
        centres = np.asarray(ndimage.center_of_mass(np.ones_like(prob), labels, idx)).reshape(n, nd)
        scores = ndimage.maximum(prob, labels, idx)
        for k in range(n):
            if sizes[k] < min_voxels or sizes[k] * voxel_volume < min_volume:
                continue
            keep[k + 1] = True
            world = aff[:nd, :nd] @ centres[k] + aff[:nd, nd]
            radius = (3.0 * sizes[k] * voxel_volume / (4.0 * np.pi)) ** (1.0 / 3.0) if nd == 3 else \
                np.sqrt(sizes[k] * voxel_volume / np.pi)
            rows.append([*world, radius, float(scores[k])])
    if not keep[1:].all():
        labels = np.where(keep[labels], labels, 0)
    return labels, np.asarray(rows, dtype=np.float64).reshape(-1, nd + 2)


class ComponentDetections(Transform):
    """One detection per connected component of a probability map thresholded at ``threshold``.

    Args:
        threshold: probability at or above which a voxel belongs to a detection (the ADAM scoring: 0.5).
        min_voxels: smaller components are dropped.
        min_volume_mm3: components of a smaller volume (voxels times the voxel volume of the affine) are dropped.

    Call ``t(prob, affine=None)``: ``prob`` (1, H, W, D) probabilities (numpy or torch; a MetaTensor's
    ``meta["affine"]`` gives world mm, else ``affine``, else voxel indices). Returns (K, 5) rows ``x, y, z``
    (mm), ``radius_mm``, ``score`` (:data:`DETECTION_COLUMNS`), highest score first, float64, of the input's type.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, threshold: float = 0.5, min_voxels: int = 1, min_volume_mm3: float = 0.0) -> None:
        if not (0.0 < float(threshold) <= 1.0):
            raise ValueError(f"threshold={threshold!r}: expected a probability in (0, 1].")
        if not float(min_volume_mm3) >= 0.0:
            raise ValueError(f"min_volume_mm3={min_volume_mm3!r}: expected a volume >= 0.")
        self.threshold, self.min_voxels, self.min_volume = float(threshold), int(min_voxels), float(min_volume_mm3)

    def __call__(self, prob: NdarrayOrTensor, affine: Any = None) -> NdarrayOrTensor:
        """The detections of ``prob``; see the class docstring."""
        if not isinstance(prob, (np.ndarray, torch.Tensor)) or prob.ndim not in (3, 4) or prob.shape[0] != 1:
            raise ValueError("prob: expected a one-channel probability map (1, H, W[, D]), got shape "
                             f"{tuple(getattr(prob, 'shape', ()))}.")
        if affine is None and isinstance(prob, MetaTensor):
            affine = prob.meta.get("affine")
        aff = None if affine is None else convert_to_numpy(affine, dtype=np.float64)
        arr = convert_to_numpy(prob)
        _, rows = probability_components(arr[0].astype(np.float32), self.threshold, aff, self.min_voxels, self.min_volume)
        rows = rows[np.argsort(-rows[:, -1], kind="stable")]
        dst = prob.as_tensor() if isinstance(prob, MetaTensor) else prob
        out, *_ = convert_to_dst_type(rows, dst, dtype=torch.float64 if isinstance(prob, torch.Tensor) else np.float64)
        return out


class ComponentDetectionsd(MapTransform):
    """Dictionary-based :class:`ComponentDetections`: ``data[detections_key]`` = the detections (K, 5) of the
    probability map ``data[key]`` (one key).

    Args:
        keys: the probability map (one key).
        detections_key: where the detections go.
        threshold, min_voxels, min_volume_mm3: see :class:`ComponentDetections`.
        allow_missing_keys: skip a missing map.
    """

    backend = ComponentDetections.backend

    def __init__(self, keys: KeysCollection, detections_key: str = "detections", threshold: float = 0.5,
                 min_voxels: int = 1, min_volume_mm3: float = 0.0, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys={keys!r}: expected one key (the probability map).")
        self.detections_key = detections_key
        self.detect = ComponentDetections(threshold, min_voxels, min_volume_mm3)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        """Add ``detections_key`` to a new dict."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.detections_key] = self.detect(d[key])
        return d


ComponentDetectionsD = ComponentDetectionsDict = ComponentDetectionsd
