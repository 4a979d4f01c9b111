"""The segmentation network of the label-noise study, with an optional second decoder that reconstructs the input.

Vorontsov & Kadoury compare *Seg* (an encoder-decoder with long skips, soft Dice), *AE* (the same plus a second
decoder that reconstructs the input image: a semi-supervised auxiliary task that unlabelled images can train) and a
mean teacher (*MT*, the same network as *Seg*). :class:`DualDecoderUNet` is all of them: with
``reconstruction=False`` it is a plain residual U-Net (MONAI ``ResidualUnit`` blocks), with ``reconstruction=True``
a second decoder without long skips (so it cannot copy the input through them) shares the encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import List, Tuple, Union

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

__all__ = ["DualDecoderUNet"]


class _Decoder(nn.Module):
    def __init__(self, spatial_dims: int, channels: Sequence[int], out_channels: int, skips: bool) -> None:
        super().__init__()
        self.skips = skips
        self.ups, self.blocks = nn.ModuleList(), nn.ModuleList()
        for deep, shallow in zip(channels[::-1][:-1], channels[::-1][1:]):
            self.ups.append(Convolution(spatial_dims, deep, shallow, strides=2, kernel_size=3, is_transposed=True))
            self.blocks.append(ResidualUnit(spatial_dims, shallow * (2 if skips else 1), shallow, subunits=1))
        self.head = Convolution(spatial_dims, channels[0], out_channels, kernel_size=1, conv_only=True)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        n = len(features)
        for i, (up, block) in enumerate(zip(self.ups, self.blocks)):
            x = up(x)
            if self.skips:
                x = torch.cat([x, features[n - 2 - i]], dim=1)
            x = block(x)
        return self.head(x)


class DualDecoderUNet(nn.Module):
    """Residual U-Net (segmentation decoder with long skips) and, optionally, a reconstruction decoder.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (4 MR contrasts in the study).
        out_channels: segmentation output channels (logits; 1 for a sigmoid tumour mask).
        channels: feature channels per level; every level after the first halves the size (input sizes must be
            divisible by ``2 ** (len(channels) - 1)``).
        reconstruction: add the second decoder; ``forward(x, return_reconstruction=True)`` then also returns it.

    Shapes: ``x`` (B, in_channels, *spatial) -> logits (B, out_channels, *spatial) [, reconstruction
    (B, in_channels, *spatial)].
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 4,
        out_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        reconstruction: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"DualDecoderUNet: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if len(channels) < 2:
            raise ValueError(f"DualDecoderUNet: channels needs at least two levels, got {channels!r}.")
        self.in_channels, self.depth = int(in_channels), len(channels) - 1
        self.encoder = nn.ModuleList(
            ResidualUnit(spatial_dims, c_in, c_out, strides=1 if i == 0 else 2, subunits=2 if i == 0 else 1)
            for i, (c_in, c_out) in enumerate(zip([in_channels, *channels[:-1]], channels))
        )
        self.seg_decoder = _Decoder(spatial_dims, channels, out_channels, skips=True)
        self.recon_decoder = _Decoder(spatial_dims, channels, in_channels, skips=False) if reconstruction else None

    def forward(
        self, x: torch.Tensor, return_reconstruction: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        if x.ndim < 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"DualDecoderUNet: expected input (B, {self.in_channels}, spatial...), got {x.shape}.")
        for size in x.shape[2:]:
            if size % (2 ** self.depth) != 0:
                raise ValueError(f"DualDecoderUNet: spatial sizes {x.shape[2:]} must be divisible by {2 ** self.depth}.")
        features: List[torch.Tensor] = []
        for block in self.encoder:
            x = block(x)
            features.append(x)
        seg = self.seg_decoder(features)
        if not return_reconstruction:
            return seg
        if self.recon_decoder is None:
            raise ValueError("DualDecoderUNet: built with reconstruction=False, so there is no reconstruction to return.")
        return seg, self.recon_decoder(features)
