"""The shallow 2D U-Net of the one-shot cochlea landmark method: it segments the structure of interest (the cochlea)
in 2D slices of any orientation."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["ShallowSliceUNet"]


class ShallowSliceUNet(nn.Module):
    """Input (B, 1, H, W), H and W even; output (B, 1, H, W) logits of "inside the structure" (sigmoid at use).

    The paper's layout at ``features=64``: four 3 x 3 convolutions of ``features`` channels at full resolution,
    max-pooling to half resolution and two convolutions of ``2 * features``, upsampling and concatenation with the
    full-resolution features (64 + 128 channels), then five convolutions, the last one to one channel. Batch norm
    and ReLU after every convolution but the last.
    """

    def __init__(self, in_channels: int = 1, features: int = 64) -> None:
        super().__init__()
        if int(features) < 1 or int(in_channels) < 1:
            raise ValueError(f"in_channels and features must be positive, got {in_channels!r}, {features!r}.")
        f = int(features)

        def conv(cin: int, cout: int) -> Convolution:
            return Convolution(2, cin, cout, kernel_size=3, act="RELU", norm="BATCH")

        self.encoder = nn.Sequential(conv(in_channels, f), conv(f, f), conv(f, f), conv(f, f))
        self.bottom = nn.Sequential(nn.MaxPool2d(2), conv(f, 2 * f), conv(2 * f, 2 * f), nn.Upsample(scale_factor=2))
        self.decoder = nn.Sequential(conv(3 * f, f), conv(f, f), conv(f, f), conv(f, f),
                                     Convolution(2, f, 1, kernel_size=3, conv_only=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError("ShallowSliceUNet needs an even slice size, got " + str(x.shape[-2]) + " x " + str(x.shape[-1]))
        e = self.encoder(x)
        return self.decoder(torch.cat([e, self.bottom(e)], dim=1))
