"""FS-Net: per-data-set feature-space branches in front of one shared U-Net (DGM4MICCAI/DALI 2021).

Each data set ``m`` has a branch (a 1x1 convolution to a common width ``C``, then DANet-style channel attention
without DANet's learnable weight: ``E = X^T A + A`` with ``X = softmax(A A^T)``, a C x C map over the channels
reshaped to C x N); the branch outputs of a batch go through one shared U-Net (MONAI ``UNet``, encoder and decoder
shared) whose output holds the union of all data sets' classes (background shared). Data set ``m``'s prediction is
the background channel and its own classes (:meth:`FSNet.dataset_channels`), so a softmax over them never mixes in
another data set's classes.

Without the branches (``fs_module=False``, the paper's "no FS module" ablation and the plain joint / target-only
networks) the input goes straight into the U-Net.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from monai.networks.layers import Conv
from monai.networks.nets import UNet
from torch import nn

from ...transforms.union_labels import dataset_union_labels

__all__ = ["DANetChannelAttention", "DatasetHead", "FSNet", "FeatureSpaceBranch"]


class DANetChannelAttention(nn.Module):
    """Channel attention as FS-Net writes it (after DANet, Fu et al. 2019): ``out = X^T A + A`` with the C x C map
    ``X = softmax(A A^T)`` (softmax over each row) of ``A`` (B, C, *spatial) reshaped to (B, C, N).

    Args:
        learnable_gamma: DANet scales the attended features by a learnable ``gamma`` (initialised 0) before adding
            ``A``; FS-Net adds them unscaled (``False``, the default). (DANet's code also takes the softmax of
            ``max(A A^T) - A A^T``; FS-Net's formula, used here, is the softmax of ``A A^T``.)

    Shapes: (B, C, *spatial) -> (B, C, *spatial).
    """

    def __init__(self, learnable_gamma: bool = False) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1)) if learnable_gamma else None

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        flat = a.flatten(2)                                                        # (B, C, N)
        attention = torch.softmax(torch.bmm(flat, flat.transpose(1, 2)), dim=-1)  # (B, C, C)
        attended = torch.bmm(attention.transpose(1, 2), flat).view_as(a)
        return a + (self.gamma * attended if self.gamma is not None else attended)


class FeatureSpaceBranch(nn.Module):
    """One data set's FS module: 1x1 convolution ``in_channels -> out_channels`` then channel attention.

    Shapes: (B, in_channels, *spatial) -> (B, out_channels, *spatial).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, learnable_gamma: bool = False) -> None:
        super().__init__()
        self.project = Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=1)
        self.attention = DANetChannelAttention(learnable_gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.project(x))


class FSNet(nn.Module):
    """Shared U-Net for several data sets, with optional per-data-set FS branches.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels of the network (all data sets' slots together with channel coding, else one
            data set's channels).
        class_counts: foreground classes of each data set; the output has ``1 + sum(class_counts)`` channels.
        fs_module: put a :class:`FeatureSpaceBranch` per data set in front of the U-Net.
        branch_channels: width ``C`` of the branches' output (the U-Net's input then).
        channels, strides, num_res_units: of the shared MONAI ``UNet`` (the paper: 4 levels, 16 -> 128 filters).
        learnable_gamma: see :class:`DANetChannelAttention`.

    ``forward(x, dataset_index)``: ``x`` (B, in_channels, *spatial), ``dataset_index`` a (B,) or one-element integer
    tensor (``None``: data set 0, the target) -> union logits (B, 1 + sum(class_counts), *spatial). TorchScript-able.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        class_counts: Sequence[int] = (2, 3),
        fs_module: bool = True,
        branch_channels: int = 16,
        channels: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[int] = (2, 2, 2),
        num_res_units: int = 2,
        learnable_gamma: bool = False,
    ) -> None:
        super().__init__()
        self.class_counts = [int(k) for k in class_counts]
        self.dataset_labels = [dataset_union_labels(self.class_counts, m) for m in range(len(self.class_counts))]
        self.in_channels = int(in_channels)
        self.fs_module = bool(fs_module)
        self.branches = nn.ModuleList(   # empty without FS module (TorchScript needs a ModuleList either way)
            [FeatureSpaceBranch(spatial_dims, in_channels, branch_channels, learnable_gamma) for _ in self.class_counts]
            if self.fs_module else []
        )
        self.unet = UNet(
            spatial_dims=spatial_dims,
            in_channels=branch_channels if self.fs_module else in_channels,
            out_channels=1 + sum(self.class_counts),
            channels=channels,
            strides=strides,
            num_res_units=num_res_units,
        )
        for module in self.modules():   # He initialisation, as the paper
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    @property
    def num_datasets(self) -> int:
        """Number of data sets the network was built for."""
        return len(self.class_counts)

    def dataset_channels(self, dataset_index: int) -> list[int]:
        """Output channels of data set ``dataset_index``: background and its classes, in its own label order."""
        return list(self.dataset_labels[dataset_index])

    def _indices(self, dataset_index: Optional[torch.Tensor], batch: int, device: torch.device) -> torch.Tensor:
        if dataset_index is None:
            return torch.zeros(batch, dtype=torch.long, device=device)
        idx = dataset_index.to(device).reshape(-1).long()
        if idx.numel() == 1 and batch != 1:
            idx = idx.expand(batch)
        if idx.numel() != batch:
            raise ValueError(f"FSNet: {idx.numel()} data set indices for a batch of {batch}.")
        if bool(((idx < 0) | (idx >= len(self.class_counts))).any()):
            raise ValueError(f"FSNet: data set indices must be in 0..{len(self.class_counts) - 1}.")
        return idx

    def forward(self, x: torch.Tensor, dataset_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.ndim < 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"FSNet: expected input (B, {self.in_channels}, spatial...), got {x.shape}.")
        if self.fs_module:
            # every branch on the whole batch, each sample keeping its own data set's output: no data-dependent
            # shapes (TorchScript and ONNX export), and the branches are cheap next to the U-Net (no batch norm)
            idx = self._indices(dataset_index, x.shape[0], x.device)
            routed: Optional[torch.Tensor] = None
            for m, branch in enumerate(self.branches):
                keep = (idx == m).to(x.dtype).view([-1] + [1] * (x.ndim - 1))
                part = branch(x) * keep
                routed = part if routed is None else routed + part
            if routed is not None:
                x = routed
        return self.unet(x)


class DatasetHead(nn.Module):
    """``FSNet`` as a plain network of one data set: ``forward(x)`` -> logits of data set ``dataset_index``'s
    channels (background and its classes, (B, 1 + K_m, *spatial)); for inferers, evaluators and export."""

    def __init__(self, network: nn.Module, dataset_index: int = 0) -> None:
        super().__init__()
        self.network = network
        base = getattr(network, "module", network)   # DistributedDataParallel
        if not 0 <= int(dataset_index) < base.num_datasets:
            raise ValueError(f"DatasetHead: dataset_index must be in 0..{base.num_datasets - 1}, got {dataset_index!r}.")
        self.dataset_index = int(dataset_index)
        self.register_buffer("channels", torch.tensor(base.dataset_channels(self.dataset_index)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = torch.full((x.shape[0],), self.dataset_index, dtype=torch.long, device=x.device)
        return self.network(x, index).index_select(1, self.channels)
