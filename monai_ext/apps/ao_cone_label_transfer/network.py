"""The segmenter of the AO label-transfer method: a U-Net with two outputs, the cell centroid map and the cell region
map, whose last decoder block (16 channels in the paper) also gives the per-pixel features of the matching energy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import BasicUNet

__all__ = ["ConeMapUNet"]


class ConeMapUNet(BasicUNet):
    """MONAI's ``BasicUNet`` (2D) with ``out_channels=2``: logits of the centroid map (channel 0) and the region map
    (channel 1); :meth:`forward_with_features` also returns the last decoder block's output (``features[-1]``
    channels, 16 by default as the paper), the features the matching compares around each cell centre.

    Input (B, in_channels, H, W), H and W multiples of 16 (four poolings).
    """

    def __init__(self, in_channels: int = 1, features: Sequence[int] = (16, 32, 64, 128, 128, 16),
                 dropout: float = 0.0) -> None:
        super().__init__(spatial_dims=2, in_channels=in_channels, out_channels=2, features=features, dropout=dropout)

    def decoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder block's output, (B, features[-1], H, W)."""
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)
        u4 = self.upcat_4(x4, x3)
        u3 = self.upcat_3(u4, x2)
        u2 = self.upcat_2(u3, x1)
        return self.upcat_1(u2, x0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 2, H, W): channel 0 centroids, channel 1 cell regions."""
        return self.final_conv(self.decoder_features(x))

    @torch.jit.unused
    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, 2, H, W), features (B, features[-1], H, W))`` in one pass."""
        feats = self.decoder_features(x)
        return self.final_conv(feats), feats
