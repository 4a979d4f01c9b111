"""Multi-planar inference: a 2D network segments a volume from several rotated copies of it.

Laprade et al., "How few annotations are needed for segmentation using a multi-planar U-Net?" (DGM4MICCAI/DALI
2021; after Perslev et al., MICCAI 2019): the volume is rotated to K orientations, every slice of each rotated
copy is segmented by the 2D network (MONAI's ``SliceInferer``), the K predictions are rotated back and averaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import Inferer, SliceInferer

from ..transforms.oblique_plane import random_rotation, sample_at_coordinates

__all__ = ["MultiPlanarInferer", "rotated_cube_coordinates"]

ACTIVATIONS = ("sigmoid", "softmax", "none")


def rotated_cube_coordinates(shape: Sequence[int], rotation: np.ndarray) -> tuple[torch.Tensor, int]:
    """Voxel coordinates (3, S, S, S) in a volume of spatial ``shape`` of a cube of side S (the volume's diagonal,
    so every voxel of the volume lies in it) centred on the volume and rotated by ``rotation``; returns them and S."""
    shape_a = np.asarray(shape, dtype=np.float64)
    side = int(math.ceil(np.linalg.norm(shape_a - 1.0))) + 1
    axis = torch.arange(side, dtype=torch.float64) - (side - 1) / 2.0
    cube = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij")).reshape(3, -1)
    rot = torch.as_tensor(rotation, dtype=torch.float64)
    center = torch.as_tensor((shape_a - 1.0) / 2.0).reshape(3, 1)
    return (center + rot @ cube).reshape(3, side, side, side).float(), side


class MultiPlanarInferer(Inferer):
    """Predict a volume with a 2D network from ``num_views`` rotated copies of it, averaged.

    For each view: the input is resampled (trilinear, outside = ``padding_value``) on a cube rotated by the view's
    rotation and large enough to hold the whole volume, the 2D network segments every slice of that cube along its
    first axis (``SliceInferer``), the activated output is resampled back onto the input grid (trilinear) and the
    views are averaged.

    Args:
        num_views: the number of orientations K (the paper: 3).
        seed: the seed of the orientations, drawn once here (``"any"``: uniform over rotations; ``"axis"``: the
            slices of the volume along a random axis), so a given inferer always predicts the same way.
        orientation: ``"any"`` or ``"axis"``.
        activation: applied to the network's output before averaging: ``"sigmoid"`` (one foreground channel),
            ``"softmax"`` (classes over channels) or ``"none"``. The inferer's output is this average, so the
            post-processing thresholds it without another activation.
        padding_value: the image value outside the volume (as in training).
        sw_batch_size: slices per network call.
        progress: a progress bar per view.

    Call ``inferer(inputs, network)``: ``inputs`` (B, C, X, Y, Z); ``network`` maps (N, C, H, W) to
    (N, K, H, W). Returns (B, K, X, Y, Z) on the input's device.
    """

    def __init__(self, num_views: int = 3, seed: int = 0, orientation: str = "any", activation: str = "sigmoid",
                 padding_value: float = 0.0, sw_batch_size: int = 16, progress: bool = False) -> None:
        super().__init__()
        if isinstance(num_views, bool) or int(num_views) != num_views or int(num_views) < 1:
            raise ValueError(f"num_views must be a positive integer, got {num_views!r}.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
        rng = np.random.RandomState(int(seed))
        # random_rotation rejects an unknown orientation
        self.rotations = [random_rotation(rng, orientation) for _ in range(int(num_views))]
        self.activation = activation
        self.padding_value = float(padding_value)
        self.sw_batch_size = int(sw_batch_size)
        self.progress = bool(progress)

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "sigmoid":
            return torch.sigmoid(x.float())
        if self.activation == "softmax":
            return torch.softmax(x.float(), dim=1)
        return x.float()

    def view(self, image: torch.Tensor, network: Callable[..., torch.Tensor], rotation: np.ndarray,
             *args: Any, **kwargs: Any) -> torch.Tensor:
        """The activated prediction (K, X, Y, Z) of one view of ``image`` (C, X, Y, Z)."""
        coords, side = rotated_cube_coordinates(image.shape[1:], rotation)
        rotated = sample_at_coordinates(image, coords, "bilinear", self.padding_value)
        slicer = SliceInferer(spatial_dim=0, roi_size=(side, side), sw_batch_size=self.sw_batch_size,
                              progress=self.progress)
        pred = self._activate(torch.as_tensor(slicer(rotated[None], network, *args, **kwargs))[0])
        # back: original voxel x sits at cube index R^T (x - centre) + (S - 1) / 2
        shape = torch.as_tensor(image.shape[1:], dtype=torch.float64)
        axes = [torch.arange(int(s), dtype=torch.float64) for s in image.shape[1:]]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij")).reshape(3, -1)
        rot = torch.as_tensor(rotation, dtype=torch.float64)
        back = rot.T @ (grid - ((shape - 1.0) / 2.0).reshape(3, 1)) + (side - 1) / 2.0
        return sample_at_coordinates(pred, back.reshape(3, *image.shape[1:]).float(), "bilinear", 0.0)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        """The averaged prediction (B, K, X, Y, Z) of ``inputs`` (B, C, X, Y, Z)."""
        if inputs.ndim != 5:
            raise ValueError(f"MultiPlanarInferer expects a batch of volumes (B, C, X, Y, Z), got shape "
                             f"{tuple(inputs.shape)}.")
        outs = []
        for image in inputs:
            acc = None
            for rotation in self.rotations:
                v = self.view(image, network, rotation, *args, **kwargs)
                acc = v if acc is None else acc + v
            outs.append(acc / len(self.rotations))
        out = torch.stack(outs).to(inputs.device)
        if isinstance(inputs, MetaTensor):
            res = MetaTensor(out.as_tensor() if isinstance(out, MetaTensor) else out)
            res.copy_meta_from(inputs)
            return res
        return out.as_tensor() if isinstance(out, MetaTensor) else out
