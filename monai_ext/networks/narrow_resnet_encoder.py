"""Narrow ResNet encoders for MONAI's ``FlexibleUNet``: ResNet-10/18 with 16 or 32 features in the first stage
instead of 64, trained from scratch (no pretrained weights exist here), so that a U-Net with a residual encoder
fits the project's 5 MB weight files. Registered in MONAI's ``FLEXUNET_BACKBONE`` on import, as
``resnet10_w16``, ``resnet10_w32``, ``resnet18_w16`` and ``resnet18_w32`` (stage widths w, 2w, 4w, 8w)."""

from __future__ import annotations

from monai.networks.blocks import BaseEncoder
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetFeatures

__all__ = ["NarrowResNetEncoder"]

_DEPTHS = {"resnet10": (1, 1, 1, 1), "resnet18": (2, 2, 2, 2)}
_WIDTHS = (16, 32)


class NarrowResNetEncoder(ResNetFeatures, BaseEncoder):
    """A ResNet (basic blocks, 1x1-convolution shortcuts as MONAI's ``resnet10``: TorchScript can export them)
    whose stages have ``width, 2 width, 4 width, 8 width`` features; its forward gives the five feature maps
    ``FlexibleUNet`` expects (strides 2, 4, 8, 16, 32).

    Args:
        model_name: ``resnet10`` or ``resnet18`` (blocks per stage).
        width: features of the first stage (16 or 32 are registered).
        pretrained: must be False (there are no pretrained narrow weights).
        spatial_dims: 2 or 3.
        in_channels: input channels (3 for RGB frames).
    """

    def __init__(self, model_name: str = "resnet10", width: int = 16, pretrained: bool = False, spatial_dims: int = 2,
                 in_channels: int = 3) -> None:
        if model_name not in _DEPTHS:
            raise ValueError(f"model_name must be one of {sorted(_DEPTHS)}, got {model_name!r}.")
        if pretrained:
            raise ValueError("NarrowResNetEncoder has no pretrained weights; use pretrained=False.")
        w = int(width)
        ResNet.__init__(self, block=ResNetBlock, layers=list(_DEPTHS[model_name]), block_inplanes=[w, 2 * w, 4 * w, 8 * w],
                        spatial_dims=spatial_dims, n_input_channels=in_channels, conv1_t_stride=2,
                        shortcut_type="B", feed_forward=False)

    @classmethod
    def get_encoder_parameters(cls) -> list[dict]:
        """Constructor arguments of each registered name (FlexibleUNet overrides the last three)."""
        return [{"model_name": m, "width": w, "pretrained": False, "spatial_dims": 2, "in_channels": 3}
                for m in _DEPTHS for w in _WIDTHS]

    @classmethod
    def num_channels_per_output(cls) -> list[tuple[int, ...]]:
        """Features of the five outputs of each registered name."""
        return [(w, w, 2 * w, 4 * w, 8 * w) for _ in _DEPTHS for w in _WIDTHS]

    @classmethod
    def num_outputs(cls) -> list[int]:
        """Five feature maps for every registered name."""
        return [5] * (len(_DEPTHS) * len(_WIDTHS))

    @classmethod
    def get_encoder_names(cls) -> list[str]:
        """``resnet10_w16``, ``resnet10_w32``, ``resnet18_w16``, ``resnet18_w32``."""
        return [f"{m}_w{w}" for m in _DEPTHS for w in _WIDTHS]


FLEXUNET_BACKBONE.register_class(NarrowResNetEncoder)
