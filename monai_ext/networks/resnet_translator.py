"""The image-to-image generator of CycleGAN (Zhu et al., ICCV 2017; Johnson et al.'s ResNet generator): a 7x7
convolution, two stride-2 convolutions, residual blocks at a quarter of the resolution, two transposed convolutions
and a 7x7 output convolution, instance normalisation and reflection padding throughout. Images in [0, 1] in and
out (a sigmoid output), 2D or 3D, sizes divisible by 4."""

from __future__ import annotations

import torch
from monai.networks.layers import Act, Conv, Norm

__all__ = ["ResNetTranslator"]


def _reflection_pad(spatial_dims: int) -> type[torch.nn.Module]:
    return torch.nn.ReflectionPad2d if spatial_dims == 2 else torch.nn.ReflectionPad3d


class _TranslatorResidualBlock(torch.nn.Module):
    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        conv, norm, pad = Conv[Conv.CONV, spatial_dims], Norm[Norm.INSTANCE, spatial_dims], _reflection_pad(spatial_dims)
        self.body = torch.nn.Sequential(
            pad(1), conv(channels, channels, 3), norm(channels), Act[Act.RELU](),
            pad(1), conv(channels, channels, 3), norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetTranslator(torch.nn.Module):
    """CycleGAN's ResNet generator.

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: image channels (3 for RGB frames).
        channels: features of the first convolution (CycleGAN: 64); 2x and 4x after the down-samplings.
        num_res_blocks: residual blocks (CycleGAN: 6 at 128 px, 9 at 256 px).
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 3, channels: int = 32,
                 num_res_blocks: int = 6) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        conv, norm = Conv[Conv.CONV, spatial_dims], Norm[Norm.INSTANCE, spatial_dims]
        up, pad = Conv[Conv.CONVTRANS, spatial_dims], _reflection_pad(spatial_dims)
        c = int(channels)
        layers: list[torch.nn.Module] = [pad(3), conv(in_channels, c, 7), norm(c), Act[Act.RELU]()]
        for k in (1, 2):
            layers += [conv(c * k, c * 2 * k, 3, stride=2, padding=1), norm(c * 2 * k), Act[Act.RELU]()]
        layers += [_TranslatorResidualBlock(spatial_dims, 4 * c) for _ in range(int(num_res_blocks))]
        for k in (4, 2):
            layers += [up(c * k, c * k // 2, 3, stride=2, padding=1, output_padding=1), norm(c * k // 2),
                       Act[Act.RELU]()]
        layers += [pad(3), conv(c, out_channels, 7), torch.nn.Sigmoid()]
        self.model = torch.nn.Sequential(*layers)
        self.spatial_dims = spatial_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, in_channels, *spatial) in [0, 1], each spatial size divisible by 4."""
        if any(s % 4 for s in x.shape[2:]):
            raise ValueError("ResNetTranslator: every spatial size must be divisible by 4.")
        return self.model(x)
