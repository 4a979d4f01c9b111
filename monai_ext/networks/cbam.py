"""Convolutional Block Attention Module (Woo et al., ECCV 2018), which HPI's convolution blocks end with (Hung et al.,
"Hierarchical Probabilistic Ultrasound Image Inpainting via Variational Inference", DGM4MICCAI 2021): channel
attention from average- and max-pooled descriptors through a shared MLP, then spatial attention from a convolution
over the channel-wise average and maximum maps. MONAI has squeeze-and-excitation (``ChannelSELayer``) but not CBAM.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv

__all__ = ["CBAMBlock", "ConvNormSwishCBAM"]


class CBAMBlock(nn.Module):
    """``x * Mc(x)``, then ``* Ms(.)``, for ``(B, C, *spatial)`` inputs (2D or 3D); output has the input's shape.

    Args:
        spatial_dims: 2 or 3.
        channels: input channels.
        reduction: hidden size of the channel MLP is ``max(channels // reduction, 1)``.
        spatial_kernel: kernel size of the spatial-attention convolution (odd).
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if int(spatial_kernel) % 2 != 1:
            raise ValueError(f"spatial_kernel must be odd, got {spatial_kernel}.")
        hidden = max(int(channels) // int(reduction), 1)
        conv = Conv[Conv.CONV, spatial_dims]
        self.mlp = nn.Sequential(conv(channels, hidden, 1), nn.ReLU(inplace=True), conv(hidden, channels, 1))
        self.spatial = conv(2, 1, int(spatial_kernel), padding=int(spatial_kernel) // 2)
        self.spatial_dims = int(spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(range(2, x.ndim))
        channel = torch.sigmoid(self.mlp(x.mean(dim=dims, keepdim=True)) + self.mlp(x.amax(dim=dims, keepdim=True)))
        x = x * channel
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class ConvNormSwishCBAM(nn.Sequential):
    """HPI's convolution block: MONAI ``Convolution`` (kernel 3, ``dilation``) -> batch norm -> Swish -> CBAM."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, dilation: int = 1, reduction: int = 16) -> None:
        super().__init__(
            Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, dilation=dilation,
                        padding=dilation, act="swish", norm="batch"),
            CBAMBlock(spatial_dims, out_channels, reduction=reduction),
        )
