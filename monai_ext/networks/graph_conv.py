"""A graph network for whole connectivity matrices: dense graph convolutions (Morris et al., "Weisfeiler and Leman
go neural", AAAI 2019, the ``GraphConv`` of PyTorch Geometric) with the matrix as weighted adjacency, written in plain
torch so that PyTorch Geometric is not needed. BrainNetGAN (Cao et al., DGM4MICCAI/DALI 2021) judges its generated
connectomes by the test accuracy of such a classifier (GraphConv layers, then fully connected layers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DenseGraphConv", "DenseGraphConvClassifier"]


class DenseGraphConv(nn.Module):
    """``h'_i = W_root h_i + W_rel sum_j A_ij h_j`` for node features ``h`` ``(B, N, F)`` and weighted adjacency
    ``A`` ``(B, N, N)``.

    Args:
        in_features, out_features: feature widths.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.root = nn.Linear(in_features, out_features)
        self.rel = nn.Linear(in_features, out_features, bias=False)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """``h``: ``(B, N, F_in)``, ``adjacency``: ``(B, N, N)``; returns ``(B, N, F_out)``."""
        return self.root(h) + self.rel(adjacency @ h)


class DenseGraphConvClassifier(nn.Module):
    """Graph classification of connectivity matrices: node features are the matrix rows (each node's connection
    profile, as BrainNetGAN's evaluation GNN is taken to use: the paper does not say), graph convolutions with
    ReLU, mean and max pooling over the nodes, then fully connected layers.

    Input ``(B, 1, N, N)`` (symmetric, [0, 1]); output ``(B, out_channels)`` logits.

    Args:
        num_nodes: ``N``.
        out_channels: number of classes.
        in_channels: must be 1 (one matrix per subject).
        graph_channels: widths of the graph convolutions.
        fc_channels: widths of the hidden fully connected layers.
        dropout: dropout before each fully connected layer.
    """

    def __init__(self, num_nodes: int, out_channels: int, in_channels: int = 1,
                 graph_channels: Sequence[int] = (32, 32), fc_channels: Sequence[int] = (32,),
                 dropout: float = 0.3) -> None:
        super().__init__()
        if int(in_channels) != 1:
            raise ValueError(f"in_channels must be 1 (one connectivity matrix per subject), got {in_channels}.")
        self.num_nodes = int(num_nodes)
        widths = [self.num_nodes, *[int(c) for c in graph_channels]]
        self.convs = nn.ModuleList(DenseGraphConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        layers: list[nn.Module] = []
        c = 2 * widths[-1]
        for f in fc_channels:
            layers += [nn.Dropout(float(dropout)), nn.Linear(c, int(f)), nn.ReLU()]
            c = int(f)
        layers += [nn.Dropout(float(dropout)), nn.Linear(c, int(out_channels))]
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, 1, N, N)``; returns ``(B, out_channels)``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.num_nodes or x.shape[3] != self.num_nodes:
            raise ValueError(f"expected connectivity matrices (B, 1, {self.num_nodes}, {self.num_nodes}), got "
                             f"{list(x.shape)}.")
        a = x[:, 0]
        h = a
        for conv in self.convs:
            h = torch.relu(conv(h, a))
        return self.head(torch.cat([h.mean(1), h.amax(1)], dim=1))
