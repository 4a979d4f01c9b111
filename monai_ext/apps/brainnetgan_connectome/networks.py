"""BrainNetGAN's generator: a class-conditional fully connected network whose output is the upper triangle of a
connectivity matrix, mirrored into a symmetric matrix with a zero diagonal (Cao et al., "BrainNetGAN: Data
Augmentation of Brain Connectivity Using Generative Adversarial Network for Dementia Classification", DGM4MICCAI/DALI
2021, Fig. 1C). The critic and the classifier are :class:`~monai_ext.networks.BrainNetCNN`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...transforms.connectome import upper_triangle_to_symmetric

__all__ = ["ConnectomeGenerator"]


class ConnectomeGenerator(nn.Module):
    """``G(z | c)``: a Gaussian code ``z`` and a one-hot class ``c`` through fully connected ReLU layers to
    ``N (N - 1) / 2`` sigmoid outputs, the upper triangle of an ``N x N`` matrix in [0, 1].

    ``forward(x)`` takes ``x = [z, one_hot(c)]`` ``(B, latent_dim + num_classes)`` and returns ``(B, 1, N, N)``
    (symmetric, zero diagonal); :meth:`sample` draws ``z`` for given classes. The paper: four hidden layers (widths
    only in its figure), ``z`` of 64, 4005 outputs for AAL-90. Default widths (64, 128, 256, 256) keep the weights
    file under 5 MB (a last hidden layer of 1024 alone would give 4.1 M weights).

    Args:
        num_nodes: ``N``.
        latent_dim: length of ``z``.
        num_classes: number of classes of the condition.
        hidden_channels: widths of the hidden layers.
    """

    def __init__(self, num_nodes: int = 90, latent_dim: int = 64, num_classes: int = 2,
                 hidden_channels: Sequence[int] = (64, 128, 256, 256)) -> None:
        super().__init__()
        self.num_nodes, self.latent_dim, self.num_classes = int(num_nodes), int(latent_dim), int(num_classes)
        layers: list[nn.Module] = []
        c = self.latent_dim + self.num_classes
        for f in hidden_channels:
            layers += [nn.Linear(c, int(f)), nn.ReLU()]
            c = int(f)
        layers += [nn.Linear(c, self.num_nodes * (self.num_nodes - 1) // 2)]
        self.net = nn.Sequential(*layers)

    @property
    def in_features(self) -> int:
        """``latent_dim + num_classes``: the length of ``forward``'s input rows."""
        return self.latent_dim + self.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, latent_dim + num_classes)``; returns ``(B, 1, N, N)`` in [0, 1]."""
        return upper_triangle_to_symmetric(self.upper_triangle(x), self.num_nodes).unsqueeze(1)

    def upper_triangle(self, x: torch.Tensor) -> torch.Tensor:
        """The generated upper triangles ``(B, N (N - 1) / 2)`` in [0, 1] for codes ``x`` (see :meth:`forward`)."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected (B, latent_dim + num_classes) = (B, {self.in_features}) codes, got "
                             f"{tuple(x.shape)}.")
        return torch.sigmoid(self.net(x))

    def condition(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The input rows ``[z, one_hot(labels)]`` for integer ``labels`` ``(B,)``, ``z ~ N(0, I)`` from
        ``generator``."""
        labels = torch.as_tensor(labels).long().flatten()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must be in 0..{self.num_classes - 1}, got {labels.unique().tolist()}.")
        device = next(self.parameters()).device
        z = torch.randn(len(labels), self.latent_dim, generator=generator).to(device)
        return torch.cat([z, F.one_hot(labels.to(device), self.num_classes).float()], dim=1)

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Matrices ``(B, 1, N, N)`` of the classes ``labels`` ``(B,)``."""
        return self(self.condition(labels, generator))
