"""The network inside a data-parallel wrapper."""

from __future__ import annotations

from torch import nn

__all__ = ["unwrap_parallel"]


def unwrap_parallel(network: nn.Module) -> nn.Module:
    """The module inside a ``DataParallel`` / ``DistributedDataParallel`` wrapper; any other module as it is."""
    return network.module if isinstance(network, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else network
