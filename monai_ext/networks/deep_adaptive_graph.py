"""Deep Adaptive Graph (DAG; Li et al., "Structured landmark detection via topology-adapting deep graph learning",
ECCV 2020), the landmark network of Few-shot DAG (Zhou et al., DALI 2021).

A CNN turns the image into a feature map. The landmarks form a graph that starts at the training set's mean shape.
Each vertex carries the features bilinearly sampled at its position plus its displacements to every other vertex
(the shape feature). A global graph network moves the whole graph by one affine transform; local graph networks
then move every vertex on its own, several times. Every graph network learns its own adjacency (the "adaptive
graph": a learnt weight per vertex pair, row-softmaxed).

Coordinates are grid indices (x along spatial dim 0, y along spatial dim 1, as MONAI arrays index a 2D image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import List, Optional, Tuple, Union

import torch
from monai.networks.nets import UNet
from torch import nn
from torch.nn import functional as F

from .graph_conv import DenseGraphConv

__all__ = ["DeepAdaptiveGraph", "LandmarkGraphNetwork"]


class LandmarkGraphNetwork(nn.Module):
    """Graph convolutions over the landmark vertices with a learnt adjacency, then a linear head.

    ``forward(h)``: vertex features ``(B, N, in_features)`` -> ``(B, N, out_features)`` per vertex, or
    ``(B, out_features)`` with ``pool=True`` (mean over the vertices).

    Args:
        num_vertices, in_features, out_features: sizes.
        hidden: width of the graph convolutions.
        layers: number of graph convolutions (each followed by ReLU, with a residual connection after the first).
        pool: pool over the vertices before the head.
    """

    def __init__(self, num_vertices: int, in_features: int, out_features: int, hidden: int = 64, layers: int = 3,
                 pool: bool = False) -> None:
        super().__init__()
        self.adjacency = nn.Parameter(torch.zeros(num_vertices, num_vertices))
        widths = [in_features] + [hidden] * layers
        self.convs = nn.ModuleList([DenseGraphConv(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.head = nn.Linear(hidden, out_features)
        self.pool = pool
        nn.init.zeros_(self.head.weight)  # the graph starts where it was put: identity affine / zero displacement
        nn.init.zeros_(self.head.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.adjacency, dim=-1).expand(h.shape[0], -1, -1)
        for i, conv in enumerate(self.convs):
            out = torch.relu(conv(h, a))
            h = out if i == 0 else h + out
        if self.pool:
            h = h.mean(dim=1)
        return self.head(h)


class DeepAdaptiveGraph(nn.Module):
    """DAG for ``num_landmarks`` 2D landmarks.

    ``forward(x)``: images ``(B, in_channels, X, Y)`` -> landmarks ``(B, N, 2)`` in grid coordinates of ``x``.
    ``forward(x, return_stages=True)`` -> ``(features (B, C, X, Y), global (B, N, 2), local (L, B, N, 2))``: the
    CNN features, the graph after the global affine step and after each of the ``L`` local steps (the last is
    the output), for training losses.

    Args:
        num_landmarks: N.
        in_channels: image channels.
        feature_channels: C, channels of the CNN feature map (a MONAI ``UNet`` at full resolution).
        channels, strides: the feature UNet's encoder widths and strides.
        graph_channels: width of the graph networks.
        graph_layers: graph convolutions per graph network.
        local_steps: L, the number of local displacement steps (the DAG paper: 3).
        mean_shape: ``(N, 2)`` initial graph in normalised coordinates ([-1, 1] over the grid, as
            :meth:`normalise` gives); a buffer saved with the weights. Default: a circle (set it from the
            training landmarks, e.g. with :meth:`normalise` of their mean).
    """

    def __init__(self, num_landmarks: int, in_channels: int = 1, feature_channels: int = 32,
                 channels: Sequence[int] = (16, 32, 64, 128), strides: Sequence[int] = (2, 2, 2),
                 graph_channels: int = 64, graph_layers: int = 3, local_steps: int = 3,
                 mean_shape: Optional[Sequence[Sequence[float]]] = None) -> None:
        super().__init__()
        n = int(num_landmarks)
        if n < 2:
            raise ValueError(f"DeepAdaptiveGraph needs at least 2 landmarks, got {num_landmarks!r}.")
        if int(local_steps) < 1:
            raise ValueError(f"local_steps must be >= 1, got {local_steps!r}.")
        self.num_landmarks, self.in_channels = n, int(in_channels)
        self.backbone = UNet(spatial_dims=2, in_channels=self.in_channels, out_channels=int(feature_channels),
                             channels=tuple(channels), strides=tuple(strides), num_res_units=1)
        vertex_features = int(feature_channels) + 2 * n
        self.global_gcn = LandmarkGraphNetwork(n, vertex_features, 6, graph_channels, graph_layers, pool=True)
        self.local_gcns = nn.ModuleList(
            [LandmarkGraphNetwork(n, vertex_features, 2, graph_channels, graph_layers) for _ in range(int(local_steps))])
        if mean_shape is None:
            angle = torch.arange(n, dtype=torch.float32) * (2 * math.pi / n)
            shape = 0.5 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        else:
            shape = torch.as_tensor(mean_shape, dtype=torch.float32)
            if shape.shape != (n, 2):
                raise ValueError(f"mean_shape must be ({n}, 2), got {tuple(shape.shape)}.")
        self.register_buffer("mean_shape", shape)

    @staticmethod
    def normalise(points: torch.Tensor, spatial_size: List[int]) -> torch.Tensor:
        """Grid coordinates -> [-1, 1] (``align_corners=True``: -1 and 1 are the centres of the first and last
        pixels)."""
        size = torch.tensor(spatial_size, dtype=points.dtype, device=points.device)
        return 2.0 * points / (size - 1.0) - 1.0

    @staticmethod
    def denormalise(points: torch.Tensor, spatial_size: List[int]) -> torch.Tensor:
        """[-1, 1] -> grid coordinates."""
        size = torch.tensor(spatial_size, dtype=points.dtype, device=points.device)
        return (points + 1.0) * (size - 1.0) / 2.0

    def _vertex_features(self, features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        # grid_sample's last axis is (index along the last dim, index along the one before): (y, x) here
        grid = points.flip(-1).unsqueeze(2)
        visual = F.grid_sample(features, grid, mode="bilinear", align_corners=True).squeeze(-1).transpose(1, 2)
        shape = (points.unsqueeze(1) - points.unsqueeze(2)).flatten(2)
        return torch.cat([visual, shape], dim=-1)

    def _stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"DeepAdaptiveGraph: expected images (B, {self.in_channels}, X, Y), got {list(x.shape)}.")
        features = self.backbone(x)
        points = self.mean_shape.unsqueeze(0).expand(x.shape[0], -1, -1)
        theta = self.global_gcn(self._vertex_features(features, points))
        matrix = theta[:, :4].reshape(-1, 2, 2) + torch.eye(2, dtype=x.dtype, device=x.device)
        points = points @ matrix.transpose(1, 2) + theta[:, 4:].unsqueeze(1)
        size = [int(s) for s in x.shape[2:]]
        global_points = self.denormalise(points, size)
        local: List[torch.Tensor] = []
        for gcn in self.local_gcns:
            points = points + gcn(self._vertex_features(features, points))
            local.append(self.denormalise(points, size))
        return features, global_points, torch.stack(local, dim=0)

    def forward(self, x: torch.Tensor, return_stages: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        features, global_points, local = self._stages(x)
        if return_stages:
            return features, global_points, local
        return local[-1]
