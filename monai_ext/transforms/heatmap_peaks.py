"""Points from a heatmap as its local maxima, as in "Cross-Domain Landmarks Detection in Mitral Regurgitation"
(AdaptOR 2021, DALI 2021): pixels equal to their max-pool, the ``top_k`` highest, then those above a score floor,
clamped to a minimum and maximum count."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

__all__ = ["HeatmapPeaksTopK", "HeatmapPeaksTopKD", "HeatmapPeaksTopKDict", "HeatmapPeaksTopKd"]


class HeatmapPeaksTopK(Transform):
    """A ``(1, *spatial)`` heatmap (2D or 3D) to its peaks: ``(1, K, D)`` points in index coordinates and
    ``(K,)`` scores (the map's values there), highest first, float32, of the heatmap's type and device.

    A peak is a pixel equal to the max-pool of the map over a ``kernel_size`` window (a plateau of equal values
    gives one peak per pixel). Of the ``top_k`` highest peaks, those with a score >= ``score_threshold`` are kept,
    but never fewer than ``min_count`` (the highest are kept regardless of the floor) nor more than ``max_count``.
    The paper: kernel 3, top 30, floor 0.1; its count bounds are stated inconsistently (4 and 10), so both are
    arguments.

    Args:
        kernel_size: max-pool window in pixels (odd).
        top_k: candidates kept before the floor.
        score_threshold: score floor (after the sigmoid when ``sigmoid``).
        min_count, max_count: bounds on the number of points.
        sigmoid: apply a sigmoid first (network logits).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        kernel_size: int = 3,
        top_k: int = 30,
        score_threshold: float = 0.1,
        min_count: int = 0,
        max_count: int | None = None,
        sigmoid: bool = False,
    ) -> None:
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}.")
        max_count = int(top_k) if max_count is None else int(max_count)
        if not 0 <= int(min_count) <= max_count <= int(top_k):
            raise ValueError(f"need 0 <= min_count <= max_count <= top_k, got {min_count}, {max_count}, {top_k}.")
        self.kernel_size, self.top_k = int(kernel_size), int(top_k)
        self.score_threshold = float(score_threshold)
        self.min_count, self.max_count = int(min_count), max_count
        self.sigmoid = bool(sigmoid)

    def __call__(self, heatmap: NdarrayOrTensor) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """``(points, scores)`` of one heatmap."""
        if heatmap.ndim not in (3, 4) or heatmap.shape[0] != 1:
            raise ValueError(f"HeatmapPeaksTopK: expected a (1, H, W) or (1, H, W, D) heatmap, got shape "
                             f"{tuple(heatmap.shape)}.")
        heat = torch.as_tensor(heatmap).float()
        heat = heat.as_tensor() if hasattr(heat, "as_tensor") else heat
        # peaks of the logits: the sigmoid is monotonic, so they are the sigmoid map's peaks, without the ties
        # where float32 rounds confident logits to exactly 1
        pool = F.max_pool2d if heat.ndim == 3 else F.max_pool3d
        peaks = heat == pool(heat[None], self.kernel_size, stride=1, padding=self.kernel_size // 2)[0]
        values = torch.where(peaks, heat, torch.full_like(heat, -float("inf")))[0].flatten()
        scores, index = values.topk(min(self.top_k, int(peaks.sum())))
        if self.sigmoid:
            scores = torch.sigmoid(scores)
        keep = int((scores >= self.score_threshold).sum())
        keep = min(max(keep, self.min_count), self.max_count, len(scores))
        scores, index = scores[:keep], index[:keep]
        points = torch.stack(torch.unravel_index(index, heat.shape[1:]), dim=-1).float()[None]
        like = dict(dtype=torch.float32) if isinstance(heatmap, torch.Tensor) else {}
        return (convert_to_dst_type(points, heatmap, **like)[0] if like else points.cpu().numpy(),
                convert_to_dst_type(scores, heatmap, **like)[0] if like else scores.cpu().numpy())


class HeatmapPeaksTopKd(MapTransform):
    """Dictionary version of :class:`HeatmapPeaksTopK`: points to ``points_key``, scores to ``scores_key``.

    Args:
        keys: one heatmap key (e.g. ``pred``).
        points_key, scores_key: where the ``(1, K, D)`` points and ``(K,)`` scores go.
        kernel_size, top_k, score_threshold, min_count, max_count, sigmoid: see :class:`HeatmapPeaksTopK`.
        allow_missing_keys: skip a missing heatmap.
    """

    backend = HeatmapPeaksTopK.backend

    def __init__(
        self,
        keys: KeysCollection,
        points_key: str = "pred_points",
        scores_key: str = "pred_scores",
        kernel_size: int = 3,
        top_k: int = 30,
        score_threshold: float = 0.1,
        min_count: int = 0,
        max_count: int | None = None,
        sigmoid: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"HeatmapPeaksTopKd: one heatmap key, got {self.keys}.")
        self.points_key, self.scores_key = points_key, scores_key
        self.find = HeatmapPeaksTopK(kernel_size, top_k, score_threshold, min_count, max_count, sigmoid)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add the points and scores; returns a new dictionary."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.points_key], d[self.scores_key] = self.find(d[key])
        return d


HeatmapPeaksTopKD = HeatmapPeaksTopKDict = HeatmapPeaksTopKd
