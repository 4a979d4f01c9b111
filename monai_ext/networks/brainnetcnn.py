"""BrainNetCNN (Kawahara et al., "BrainNetCNN: Convolutional neural networks for brain networks; towards predicting
neurodevelopment", NeuroImage 146, 2017): convolutions whose filters follow the topology of a connectivity matrix
``(B, C, N, N)``. An edge-to-edge filter sums over the edges that share a node with edge ``(i, j)`` (row ``i`` and
column ``j``); edge-to-node reduces each node's row to one value; node-to-graph reduces all nodes to one. BrainNetGAN
(Cao et al., DGM4MICCAI/DALI 2021) uses the same network as its critic and as its classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["EdgeToEdgeConv", "EdgeToNodeConv", "NodeToGraphConv", "BrainNetCNN"]


def _filters(out_channels: int, in_channels: int, length: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Weights ``(F, C, L)`` and bias ``(F,)`` initialised as ``nn.Conv2d`` with a ``1 x L`` kernel would be."""
    conv = nn.Conv2d(in_channels, out_channels, (1, length))
    return nn.Parameter(conv.weight.detach()[:, :, 0].clone()), nn.Parameter(conv.bias.detach().clone())


class EdgeToEdgeConv(nn.Module):
    """Edge-to-edge filter: ``out[b, f, i, j] = sum_c sum_k (w_row[f, c, k] x[b, c, i, k] + w_col[f, c, k] x[b, c, k,
    j]) + bias[f]``: a ``1 x N`` convolution along each row plus an ``N x 1`` convolution along each column,
    broadcast to ``(B, F, N, N)``. Written as matrix products (a ``1 x N`` ``nn.Conv2d`` is several times slower on
    the CPU).

    Args:
        in_channels, out_channels: ``C`` and ``F``.
        num_nodes: ``N``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_nodes: int) -> None:
        super().__init__()
        self.row_weight, self.row_bias = _filters(out_channels, in_channels, num_nodes)
        self.col_weight, self.col_bias = _filters(out_channels, in_channels, num_nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, N, N)``; returns ``(B, F, N, N)``."""
        row = torch.einsum("bcik,fck->bfi", x, self.row_weight) + self.row_bias[:, None]
        col = torch.einsum("bckj,fck->bfj", x, self.col_weight) + self.col_bias[:, None]
        return row[..., :, None] + col[..., None, :]


class EdgeToNodeConv(nn.Module):
    """Edge-to-node filter: a ``1 x N`` convolution over each node's row, ``(B, C, N, N) -> (B, F, N, 1)``.

    Args:
        in_channels, out_channels: ``C`` and ``F``.
        num_nodes: ``N``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_nodes: int) -> None:
        super().__init__()
        self.weight, self.bias = _filters(out_channels, in_channels, num_nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, N, N)``; returns ``(B, F, N, 1)``."""
        return (torch.einsum("bcik,fck->bfi", x, self.weight) + self.bias[:, None])[..., None]


class NodeToGraphConv(nn.Module):
    """Node-to-graph filter: an ``N x 1`` convolution over the nodes, ``(B, C, N, 1) -> (B, F, 1, 1)``.

    Args:
        in_channels, out_channels: ``C`` and ``F``.
        num_nodes: ``N``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_nodes: int) -> None:
        super().__init__()
        self.weight, self.bias = _filters(out_channels, in_channels, num_nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, N, 1)``; returns ``(B, F, 1, 1)``."""
        return (torch.einsum("bci,fci->bf", x[..., 0], self.weight) + self.bias)[..., None, None]


class BrainNetCNN(nn.Module):
    """BrainNetCNN: edge-to-edge layers, one edge-to-node layer, one node-to-graph layer, then fully connected layers;
    leaky ReLU (slope 0.33, as Kawahara et al.) between them and dropout before each fully connected layer.

    Input ``(B, in_channels, N, N)`` connectivity matrices; output ``(B, out_channels)`` (class logits, or one
    critic score with ``out_channels=1``). A GAN critic takes ``dropout=0`` (the gradient penalty needs a
    deterministic critic). Kawahara's widths are ``e2e_channels=(32, 32), e2n_channels=64, n2g_channels=256,
    fc_channels=(128, 30)``; the defaults here are smaller (a 90-node node-to-graph layer of 64 x 256 filters alone has
    1.5 M weights).

    Args:
        num_nodes: ``N``.
        out_channels: outputs per matrix.
        in_channels: channels of the input matrices.
        e2e_channels: filters of each edge-to-edge layer (``()``: none).
        e2n_channels, n2g_channels: filters of the edge-to-node and node-to-graph layers.
        fc_channels: widths of the hidden fully connected layers.
        dropout: dropout probability before each fully connected layer.
    """

    def __init__(self, num_nodes: int, out_channels: int, in_channels: int = 1, e2e_channels: Sequence[int] = (16, 16),
                 e2n_channels: int = 32, n2g_channels: int = 64, fc_channels: Sequence[int] = (64, 32),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.num_nodes, self.in_channels = int(num_nodes), int(in_channels)
        act = nn.LeakyReLU(0.33)
        layers: list[nn.Module] = []
        c = self.in_channels
        for f in e2e_channels:
            layers += [EdgeToEdgeConv(c, int(f), self.num_nodes), act]
            c = int(f)
        layers += [EdgeToNodeConv(c, int(e2n_channels), self.num_nodes), act,
                   NodeToGraphConv(int(e2n_channels), int(n2g_channels), self.num_nodes), act, nn.Flatten()]
        c = int(n2g_channels)
        for f in fc_channels:
            layers += [nn.Dropout(float(dropout)), nn.Linear(c, int(f)), act]
            c = int(f)
        layers += [nn.Dropout(float(dropout)), nn.Linear(c, int(out_channels))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, in_channels, N, N)``; returns ``(B, out_channels)``."""
        n = self.num_nodes
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] != n or x.shape[3] != n:
            raise ValueError(f"expected connectivity matrices (B, {self.in_channels}, {n}, {n}), got {list(x.shape)}.")
        return self.net(x)
