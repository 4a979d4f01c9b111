"""Label transfer from one visit to the other (Liu, Aguilera, Liu & Tam, DGM4MICCAI/DALI 2021, section 2.3).

Into the *target* visit's instance labels, from the *source* visit's, given the matched cells and the affine that
takes source pixels to target pixels:

- the target's cells whose area lies outside centre +- ``size_sd`` x spread of the target's cell areas are taken for
  falsely segmented (merged, split, cut): a matched one is *replaced* by its source cell, moved into the target;
  one without a match is *removed* (the paper says only what happens to matched ones; a noise fragment that matches
  nothing is what this removes);
- source cells without a match are taken for cells the target missed and *added*: moved into the target, where
  their centre falls inside the image. Two guards the paper does not state (it copies every unmatched cell): the
  source cell must pass the source's own size test, and at least ``min_free`` of its moved pixels must lie on the
  target's background; it is pasted on background pixels only.

The paper's centre and spread are the mean and the standard deviation (``size_statistics="mean"``). In a noisy
visit the segmenter's fragments widen the standard deviation until every fragment passes; the default ``"robust"``
uses the median and 1.4826 x the median absolute deviation instead (the same numbers for normally spread areas).

Cells that touch the image border are cut by the field of view, not by the segmenter: they are left out of the size
statistics, never replaced or removed, and never copied from the source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["SIZE_STATISTICS", "transfer_cell_labels", "warp_instance_labels"]


def warp_instance_labels(labels: np.ndarray, affine: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``labels`` (H, W) moved by ``affine`` (3 x 3, its (row, col, 1) -> the output's) onto a ``shape`` grid,
    nearest neighbour, 0 outside."""
    inv = np.linalg.inv(np.asarray(affine, float))
    return ndimage.affine_transform(np.asarray(labels), inv[:2, :2], offset=inv[:2, 2], output_shape=tuple(shape),
                                    order=0, mode="constant", cval=0)


def _border_labels(labels: np.ndarray) -> set[int]:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return set(int(v) for v in np.unique(edge[edge > 0]))


#: how :func:`transfer_cell_labels` measures the centre and spread of a visit's cell areas
SIZE_STATISTICS = ("robust", "mean")


def _size_range(labels: np.ndarray, size_sd: float, statistics: str) -> tuple[np.ndarray, set[int], float, float]:
    """The cell areas (px, by label), the labels of the cells on the border, and the plausible area range
    (centre +- size_sd x spread over the cells not on the border)."""
    areas = np.bincount(labels.ravel())
    border = _border_labels(labels)
    inner = np.array([a for lab, a in enumerate(areas) if lab > 0 and a > 0 and lab not in border])
    if not len(inner):
        return areas, border, 0.0, np.inf
    if statistics == "mean":
        centre, spread = float(inner.mean()), float(inner.std())
    else:
        centre = float(np.median(inner))
        spread = 1.4826 * float(np.median(np.abs(inner - centre)))
    return areas, border, centre - size_sd * spread, centre + size_sd * spread


def transfer_cell_labels(target: np.ndarray, source: np.ndarray, matches: np.ndarray, source_to_target: np.ndarray,
                         size_sd: float = 2.0, min_free: float = 0.7, size_statistics: str = "robust"
                         ) -> tuple[np.ndarray, dict[str, Any]]:
    """The target's instance labels improved from the source's (module docstring).

    ``target`` (H, W), ``source`` (H', W'): instance labels (0 background); ``matches``: (M, 2) pairs (target
    label, source label); ``source_to_target``: 3 x 3 affine, source (row, col, 1) -> target.

    Returns ``(labels, record)``: int32 (H, W) labels, cells renumbered 1..n; ``record``: ``{"kept", "replaced",
    "removed", "added", "size_range"}``.
    """
    if size_statistics not in SIZE_STATISTICS:
        raise ValueError(f"size_statistics must be one of {SIZE_STATISTICS}, got {size_statistics!r}.")
    tgt, src = np.asarray(target).astype(np.int64), np.asarray(source).astype(np.int64)
    moved = warp_instance_labels(src, source_to_target, tgt.shape)
    t_areas, t_border, t_lo, t_hi = _size_range(tgt, size_sd, size_statistics)
    s_areas, s_border, s_lo, s_hi = _size_range(src, size_sd, size_statistics)
    out = tgt.copy()
    next_label = int(max(tgt.max(), 0)) + 1
    replaced, added, removed = 0, 0, 0
    pairs = np.asarray(matches, int).reshape(-1, 2)
    matched_source = set(int(s) for s in pairs[:, 1])
    matched_target = set(int(t) for t in pairs[:, 0])
    for t in np.flatnonzero(t_areas):
        if t > 0 and int(t) not in matched_target | t_border and not t_lo <= t_areas[t] <= t_hi:
            out[out == t] = 0
            removed += 1
    for t, s in pairs:
        if t_lo <= t_areas[t] <= t_hi or int(t) in t_border:
            continue
        cell = moved == s
        if not cell.any():
            continue
        out[out == t] = 0
        out[cell & (out == 0)] = next_label
        next_label += 1
        replaced += 1
    h, w = tgt.shape
    present = np.unique(moved[moved > 0])
    centres = ndimage.center_of_mass(np.ones_like(moved), moved, present) if len(present) else []
    for s, (r, c) in zip(present, np.atleast_2d(centres)):
        if (int(s) in matched_source | s_border or not s_lo <= s_areas[s] <= s_hi
                or not (0 <= r <= h - 1 and 0 <= c <= w - 1)):
            continue
        cell = moved == s
        free = cell & (out == 0)
        if free.sum() < min_free * cell.sum():
            continue
        out[free] = next_label
        next_label += 1
        added += 1
    ids = np.unique(out[out > 0])
    lut = np.zeros(int(out.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[out], {"kept": int(len(np.unique(tgt[tgt > 0])) - replaced - removed), "replaced": replaced,
                      "removed": removed, "added": added, "size_range": [round(t_lo, 1), round(t_hi, 1)]}
