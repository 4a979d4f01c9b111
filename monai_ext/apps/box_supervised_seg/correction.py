"""Box correction with a patch classifier (Redekop et al., DGM4MICCAI/DALI 2021, section 2.2).

The 3D box of an object, cut into axial slices, gives each slice the same rectangle, far from tight wherever the
object is narrower than its widest slice. A small classifier trained on the few fully labelled volumes tightens them:

1. the slice's (non-tight) box is tiled into ``p x p`` patches with stride ``p / 2`` (a last tile flush with the
   box's far edge; a box narrower than ``p`` gets one tile, moved inside the image);
2. training: a patch is foreground when the object covers more than half of it (binary cross-entropy);
3. correction: the corrected box is the extent of the patches classified foreground, clipped to the original box.
   One false-positive patch at the box's edge undoes the whole correction on that side, which the paper's rule
   (the extent of all positive patches) leaves to the classifier's accuracy. ``cluster_fraction`` adds a
   safeguard: positive tiles are grouped into 8-connected clusters on the tile grid and only clusters with at least
   that fraction of the largest one's tiles count (0: the paper's rule, 1: the largest cluster only). A slice where no patch is foreground gets no box and is left out of training (the paper does not say what it
   does; calling it background would teach the network to miss the object's ends).

The classifier is MONAI's ``Classifier`` (strided residual convolutions down to 1 x 1, then a linear layer) instead
of the paper's VGG-16, which is far too deep for 4-8 px patches (16-32 mm at the bundle's 4 mm pixels, the size of
the paper's 16 and 32 px patches at LiTS's 0.7-1 mm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.networks.nets import Classifier
from scipy import ndimage

from ...transforms.slice_boxes import slice_box_extents, slice_box_mask

__all__ = ["SliceBoxCorrector", "box_patch_samples", "patch_classifier", "tile_starts", "tile_box"]


def _check_patch_size(patch_size: int) -> int:
    if isinstance(patch_size, bool) or int(patch_size) != patch_size or int(patch_size) < 2:
        raise ValueError(f"patch_size must be an integer >= 2 (pixels), got {patch_size!r}.")
    return int(patch_size)


def _check_context(context: int) -> int:
    if isinstance(context, bool) or int(context) != context or int(context) < 0:
        raise ValueError(f"context must be a non-negative integer (pixels around each patch), got {context!r}.")
    return int(context)


def patch_classifier(patch_size: int, context: int = 0, channels: Sequence[int] | None = None) -> Classifier:
    """MONAI ``Classifier`` for (1, s, s) inputs, ``s = patch_size + 2 * context``, with one logit: ``floor(log2(s))``
    stride-2 residual stages (16, 32, 64, ... channels; batch norm, as instance norm is undefined on the last 1 x 1
    maps), then a linear layer."""
    size = _check_patch_size(patch_size) + 2 * _check_context(context)
    if channels is None:
        channels = [16 * 2**i for i in range(int(math.floor(math.log2(size))))]
    return Classifier(in_shape=(1, size, size), classes=1, channels=list(channels), strides=[2] * len(channels), norm="batch")


def tile_starts(lo: int, hi: int, patch_size: int, size: int) -> list[int]:
    """Start positions of the ``p``-tiles of ``[lo, hi)`` along an axis of ``size`` pixels (stride ``p // 2``)."""
    p = _check_patch_size(patch_size)
    if size < p:
        raise ValueError(f"the image ({size} px) is smaller than a patch ({p} px).")
    if hi - lo <= p:
        return [min(max(lo, 0), size - p)]
    starts = list(range(lo, hi - p + 1, max(p // 2, 1)))
    if starts[-1] != hi - p:
        starts.append(hi - p)
    return starts


def tile_box(extent: tuple[int, int, int, int], patch_size: int, shape: Sequence[int]) -> list[tuple[int, int]]:
    """Top-left corners of the tiles of one slice's box ``(a0, a1, b0, b1)`` in a slice of ``shape`` (H, W)."""
    a0, a1, b0, b1 = extent
    rows = tile_starts(a0, a1, patch_size, int(shape[0]))
    cols = tile_starts(b0, b1, patch_size, int(shape[1]))
    return [(a, b) for a in rows for b in cols]


def _slice_patches(image: np.ndarray, corners: list[tuple[int, int]], p: int, context: int = 0) -> np.ndarray:
    if context:
        image = np.pad(image, context, mode="edge")  # corner (a, b) of the tile is (a, b) of its context window
    size = p + 2 * context
    return np.stack([image[a: a + size, b: b + size] for a, b in corners])


def box_patch_samples(volumes: Sequence[dict[str, Any]], patch_size: int, max_samples: int | None = None,
                      seed: int = 0, context: int = 0) -> list[dict[str, np.ndarray]]:
    """Training patches of the box classifier from fully labelled volumes.

    Args:
        volumes: dicts with ``image`` (1, H, W, D) intensities (windowed), ``label`` (1, H, W, D) 0/1 and ``box``
            (1, H, W, D) box mask (the 3D box cut into slices), all on one grid (slices along the last axis).
        patch_size: ``p`` (pixels).
        max_samples: keep at most this many patches (a seeded random subset; ``None``: all).
        seed: seed of the subset.
        context: pixels of image around each tile that the classifier also sees (0: the tile only, the paper);
            the label is the tile's coverage either way.

    Returns:
        ``[{"image": (1, p + 2 context, p + 2 context) float32, "label": (1,) float32 (1 when the object covers > 50 % of the patch)}]``.
    """
    p, margin = _check_patch_size(patch_size), _check_context(context)
    images, labels = [], []
    for vol in volumes:
        image, label = (np.asarray(torch.as_tensor(vol[k]).cpu())[0] for k in ("image", "label"))
        for k, extent in enumerate(slice_box_extents(vol["box"])):
            if extent is None:
                continue
            corners = tile_box(extent, p, image.shape[:2])
            images.append(_slice_patches(image[:, :, k], corners, p, margin))
            labels.append(_slice_patches((label[:, :, k] > 0).astype(np.float32), corners, p).mean(axis=(1, 2)) > 0.5)
    if not images:
        raise ValueError("no box slices in the labelled volumes: no patches to train the box classifier on.")
    x, y = np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.float32)
    order = np.arange(len(x))
    if max_samples is not None and len(x) > int(max_samples):
        order = np.sort(np.random.default_rng(seed).choice(len(x), int(max_samples), replace=False))
    return [{"image": x[i][None], "label": y[i: i + 1]} for i in order]


class SliceBoxCorrector:
    """Tighten per-slice boxes with a trained patch classifier (see the module docstring).

    Args:
        network: the patch classifier (one logit per (1, p, p) patch), e.g. :func:`patch_classifier`.
        patch_size: ``p`` (pixels), as in training.
        context: pixels around each tile the classifier sees, as in training.
        threshold: foreground probability of a patch (default 0.5).
        cluster_fraction: keep positive-tile clusters of at least this fraction of the largest (0: all, the paper).
        device: where the classifier runs.
        batch_size: patches per forward pass.

    Call ``corrector(image, box)``: ``image`` (1, H, W, D) windowed intensities, ``box`` (1, H, W, D) box mask;
    returns ``(corrected_box, dropped)``: the corrected (1, H, W, D) uint8 box mask and the indices of the slices
    whose box was dropped (no foreground patch).
    """

    def __init__(self, network: torch.nn.Module, patch_size: int, threshold: float = 0.5,
                 cluster_fraction: float = 0.0, device: str | torch.device = "cpu", batch_size: int = 4096,
                 context: int = 0) -> None:
        self.network = network
        self.patch_size, self.context = _check_patch_size(patch_size), _check_context(context)
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}.")
        if not 0.0 <= float(cluster_fraction) <= 1.0:
            raise ValueError(f"cluster_fraction must be in [0, 1], got {cluster_fraction!r}.")
        self.cluster_fraction = float(cluster_fraction)
        self.threshold, self.device, self.batch_size = float(threshold), torch.device(device), int(batch_size)

    @torch.no_grad()
    def _probabilities(self, patches: np.ndarray) -> np.ndarray:
        self.network.eval()
        out = []
        for i in range(0, len(patches), self.batch_size):
            x = torch.as_tensor(patches[i: i + self.batch_size][:, None], device=self.device)
            out.append(torch.sigmoid(self.network(x).float()).flatten().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def _kept_tiles(self, tiles: list[tuple[int, int]], positive: np.ndarray) -> list[tuple[int, int]]:
        if self.cluster_fraction <= 0 or positive.sum() < 2:
            return [c for c, q in zip(tiles, positive) if q]
        rows, cols = sorted({c[0] for c in tiles}), sorted({c[1] for c in tiles})
        grid = positive.reshape(len(rows), len(cols))  # tile_box lists the tiles row by row
        clusters, n = ndimage.label(grid, structure=np.ones((3, 3)))
        sizes = np.bincount(clusters.ravel(), minlength=n + 1)[1:]
        keep = np.isin(clusters, 1 + np.flatnonzero(sizes >= self.cluster_fraction * sizes.max())).ravel()
        return [c for c, q in zip(tiles, keep) if q]

    def __call__(self, image: Any, box: Any) -> tuple[np.ndarray, list[int]]:
        """Return the corrected box mask and the dropped slices."""
        img = np.asarray(torch.as_tensor(image).detach().cpu(), dtype=np.float32)
        if img.ndim != 4 or img.shape[0] != 1 or tuple(box.shape) != img.shape:
            raise ValueError(f"image and box must both be (1, H, W, D), got {tuple(img.shape)} and {tuple(box.shape)}.")
        p, extents = self.patch_size, slice_box_extents(box)
        corners, patches = {}, []
        for k, extent in enumerate(extents):
            if extent is not None:
                corners[k] = tile_box(extent, p, img.shape[1:3])
                patches.append(_slice_patches(img[0, :, :, k], corners[k], p, self.context))
        prob = self._probabilities(np.concatenate(patches)) if patches else np.zeros(0)
        corrected: list[tuple[int, int, int, int] | None] = [None] * len(extents)
        dropped, i = [], 0
        for k, tiles in corners.items():
            positive = self._kept_tiles(tiles, prob[i: i + len(tiles)] > self.threshold)
            i += len(tiles)
            if not positive:
                dropped.append(k)
                continue
            a0, a1, b0, b1 = extents[k]
            rows, cols = [c[0] for c in positive], [c[1] for c in positive]
            corrected[k] = (max(a0, min(rows)), min(a1, max(rows) + p), max(b0, min(cols)), min(b1, max(cols) + p))
        return slice_box_mask(corrected, img.shape[1:]), dropped
