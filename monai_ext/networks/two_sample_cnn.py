"""The real-vs-synthetic CNN of "Evaluating GANs in Medical Imaging" (Wang et al., DGM4MICCAI 2021, Sect. 2.1): a
domain-trained classifier two-sample test and, through its penultimate layer, the feature space of the Frechet and
Mahalanobis distances (instead of ImageNet Inception features).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool

__all__ = ["TwoSampleDiscriminatorCNN"]


class TwoSampleDiscriminatorCNN(nn.Module):
    """Blocks of (3x3 convolution, normalisation, LeakyReLU) x 2 + max-pooling with doubling filters, then a dense feature layer
    with LeakyReLU and one logit (synthetic = 1). Glorot-uniform initialisation, as the paper's Keras model.

    The paper flattens the last feature map of its 80 x 80 inputs; here an adaptive average pool to
    ``pooled_size`` per side comes first, so any input of at least ``2 ** len(channels)`` pixels per side works.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        channels: filters per block (the paper: 4 blocks, doubling; 32 first is assumed).
        feature_dim: size of the penultimate feature vector (the paper: 128).
        pooled_size: side of the feature map before the dense layer.
        negative_slope: LeakyReLU slope (the paper: 0.2).
        norm: normalisation after each convolution (MONAI ``Norm`` name); ``None`` is the paper's network. Without
            it, training on a few hundred images sometimes collapsed to a constant output here (2 of 4 seeds on
            the ultrasound style-transfer sets), which reads as "indistinguishable"; batch norm did not.

    ``forward(x)`` returns logits ``(B, 1)``; ``features(x)`` the ``(B, feature_dim)`` penultimate activations.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channels: Sequence[int] = (32, 64, 128, 256),
        feature_dim: int = 128,
        pooled_size: int = 4,
        negative_slope: float = 0.2,
        norm: str | tuple | None = "batch",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if not channels:
            raise ValueError("channels must name at least one block.")
        act = ("leakyrelu", {"negative_slope": float(negative_slope)})
        layers: list[nn.Module] = []
        prev = int(in_channels)
        for c in channels:
            for _ in range(2):
                layers.append(Convolution(spatial_dims, prev, int(c), kernel_size=3, act=act, norm=norm))
                prev = int(c)
            layers.append(Pool[Pool.MAX, spatial_dims](kernel_size=2))
        pool = nn.AdaptiveAvgPool2d if spatial_dims == 2 else nn.AdaptiveAvgPool3d
        layers.append(pool(int(pooled_size)))
        self.encoder = nn.Sequential(*layers)
        self.feature_head = nn.Sequential(
            nn.Flatten(), nn.Linear(prev * int(pooled_size) ** spatial_dims, int(feature_dim)),
            nn.LeakyReLU(float(negative_slope)),
        )
        self.classifier = nn.Linear(int(feature_dim), 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_head(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
