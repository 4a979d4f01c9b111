"""Distance of every pixel of a 2D grid to a polyline: the geometry the needle and free-form-mask transforms draw
with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["polyline_distance"]


def polyline_distance(points: np.ndarray, shape: Sequence[int], device: torch.device | str | None = None,
                      step: float = 0.5) -> torch.Tensor:
    """Distance (pixels) of every pixel of a 2D grid ``shape`` (H, W) to a polyline through ``points`` ``(P, 2)``
    (row, column): the segments are sampled every ``step`` pixels. Float32 ``(H, W)`` tensor on ``device``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) > 1:
        dense = [pts[:1]]
        for a, b in zip(pts[:-1], pts[1:]):
            n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
            dense.append(a + (b - a) * (np.arange(1, n + 1)[:, None] / n))
        pts = np.concatenate(dense)
    dev = torch.device(device or "cpu")
    h, w = int(shape[0]), int(shape[1])
    p = torch.as_tensor(pts, dtype=torch.float32, device=dev)
    grid = torch.stack(torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij"), -1)
    grid = grid.reshape(-1, 2).float()
    d = torch.empty(h * w, device=dev)
    for start in range(0, h * w, 8192):
        d[start : start + 8192] = torch.cdist(grid[start : start + 8192], p).amin(dim=1)
    return d.reshape(h, w)
