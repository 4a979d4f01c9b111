"""Tiled inference that keeps only the centre of every tile (Assis et al., "An Efficient Data Strategy for the
Detection of Brain Aneurysms from MRA with Deep Learning", DGM4MICCAI / DALI 2021: 48^3 tiles overlapping by 8
voxels on each side, the central 32^3 of each kept and stitched). A network trained on small patches sees little
context near a patch's faces; its predictions there are the least reliable, so they are dropped instead of averaged.

Built on MONAI's sliding window: tiles step by ``roi_size - 2 * margin`` voxels, and every tile's prediction is
weighted by a map that is 1 in its central box and ``edge_weight`` (1e-3) in the ``margin`` around it. Where central
boxes meet (the last tile of an axis is moved to end at the volume's border and may overlap its neighbour), their
predictions are averaged; the volume's own border, which no central box covers, takes the tile's margin prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import SlidingWindowInferer
from monai.utils import ensure_tuple_rep

__all__ = ["CentralCropTilingInferer", "central_box_weights"]


def central_box_weights(roi_size: Sequence[int], margin: Sequence[int], edge_weight: float = 1e-3) -> torch.Tensor:
    """Weight map of shape ``roi_size``: 1 in the central box (``margin`` voxels from each face), ``edge_weight``
    elsewhere."""
    w = torch.full(tuple(int(r) for r in roi_size), float(edge_weight))
    w[tuple(slice(int(m), int(r) - int(m)) for r, m in zip(roi_size, margin))] = 1.0
    return w


class CentralCropTilingInferer(SlidingWindowInferer):
    """MONAI's :class:`~monai.inferers.SlidingWindowInferer` with tiles that step by their central box and keep
    only it (see the module docstring).

    Args:
        roi_size: tile size in voxels per spatial axis (the paper: 48; an int for all axes).
        margin: voxels dropped at each face of a tile (the paper: 8); ``2 * margin < roi_size``.
        sw_batch_size: tiles per network call.
        edge_weight: weight of the margin predictions (only the volume's border relies on them).
        kwargs: other :class:`~monai.inferers.SlidingWindowInferer` arguments (``sw_device``, ``device``,
            ``progress``, ``padding_mode``, ``cval``); ``overlap`` and ``mode`` are set here.

    Call ``inferer(inputs, network)`` with ``inputs`` (B, C, H, W, D) (or 2D); returns the stitched prediction of the
    input's spatial size.
    """

    def __init__(self, roi_size: Sequence[int] | int, margin: Sequence[int] | int = 8, sw_batch_size: int = 1,
                 edge_weight: float = 1e-3, **kwargs) -> None:
        for key in ("overlap", "mode", "roi_weight_map"):
            if key in kwargs:
                raise TypeError(f"CentralCropTilingInferer sets {key!r} itself; got {key}={kwargs[key]!r}.")
        if isinstance(roi_size, int):
            roi_size = (roi_size,) * 3
        roi = tuple(int(r) for r in roi_size)
        marg = tuple(int(m) for m in ensure_tuple_rep(margin, len(roi)))
        if any(m < 0 or 2 * m >= r for r, m in zip(roi, marg)):
            raise ValueError(f"margin={margin!r}: expected 0 <= 2 * margin < roi_size={roi}.")
        if not (0.0 < float(edge_weight) <= 1.0):
            raise ValueError(f"edge_weight={edge_weight!r}: expected a weight in (0, 1].")
        overlap = tuple(2.0 * m / r for r, m in zip(roi, marg))
        super().__init__(roi_size=roi, sw_batch_size=sw_batch_size, overlap=overlap, mode="constant", **kwargs)
        self.margin = marg
        self.roi_weight_map = central_box_weights(roi, marg, edge_weight)
