"""A VGG network with batch normalisation (Simonyan & Zisserman 2015, the ``vgg16_bn`` layout), width-scalable, any
number of input channels, 2D or 3D, with an adaptive average pool before the classifier (as DeepMCAT, Kart et al.,
DGM4MICCAI/DALI 2021). Its penultimate activations are the feature vector that deep clustering groups, and the last
linear layer can be re-initialised for a new set of classes (DeepCluster, Caron et al. 2018).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool

__all__ = ["VGG16_BN_BLOCKS", "VGGBNFeatureNet"]

#: convolutions per block of VGG-16
VGG16_BN_BLOCKS = (2, 2, 3, 3, 3)


class VGGBNFeatureNet(nn.Module):
    """Blocks of (3x3 convolution, batch norm, ReLU) x ``convs_per_block[i]`` with ``channels[i]`` filters, each block
    followed by 2x max-pooling; an adaptive average pool to ``pooled_size`` per side; two dense layers of
    ``feature_dim`` (ReLU, dropout) and a linear classifier ``top_layer`` of ``num_classes`` logits.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels (DeepMCAT: 1, raw MR intensities z-scored per image).
        num_classes: logits of ``top_layer`` (deep clustering: the number of clusters).
        channels: filters per block (VGG-16: 64, 128, 256, 512, 512).
        convs_per_block: convolutions per block (VGG-16: :data:`VGG16_BN_BLOCKS`).
        pooled_size: side of the pooled feature map (VGG: 7 at 224 px).
        feature_dim: width of the two dense layers (VGG: 4096).
        dropout: dropout after each dense layer (VGG: 0.5).

    ``forward(x)``: logits ``(B, num_classes)``; ``features(x)``: the ``(B, feature_dim)`` activations that feed
    ``top_layer``. Inputs need at least ``2 ** len(channels)`` pixels per side.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        convs_per_block: Sequence[int] = VGG16_BN_BLOCKS,
        pooled_size: int = 7,
        feature_dim: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if len(channels) != len(convs_per_block) or not channels:
            raise ValueError(f"channels ({list(channels)}) and convs_per_block ({list(convs_per_block)}) must be "
                             "non-empty and of the same length.")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        prev = in_channels
        for out, n in zip(channels, convs_per_block):
            for _ in range(int(n)):
                layers.append(Convolution(spatial_dims, prev, out, kernel_size=3, act="RELU", norm="BATCH"))
                prev = out
            layers.append(Pool[Pool.MAX, spatial_dims](kernel_size=2))
        self.conv = nn.Sequential(*layers)
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](pooled_size)
        flat = prev * pooled_size**spatial_dims
        self.dense = nn.Sequential(
            nn.Linear(flat, feature_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.top_layer = nn.Linear(feature_dim, int(num_classes))
        self.reset_top_layer()

    def reset_top_layer(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise ``top_layer`` in place: weights N(0, 0.01), bias 0 (DeepCluster's initialisation)."""
        with torch.no_grad():
            w = torch.randn(self.top_layer.weight.shape, generator=generator) * 0.01
            self.top_layer.weight.copy_(w.to(self.top_layer.weight))
            self.top_layer.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, feature_dim)`` activations before ``top_layer``."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError("VGGBNFeatureNet expects (B, " + str(self.in_channels) + ", spatial x "
                             + str(self.spatial_dims) + ") inputs, got shape " + str(list(x.shape)) + ".")
        return self.dense(torch.flatten(self.pool(self.conv(x)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top_layer(self.features(x))
