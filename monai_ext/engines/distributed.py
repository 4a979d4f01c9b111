"""Data-parallel training for iterations that DistributedDataParallel cannot wrap.

``torch.nn.parallel.DistributedDataParallel`` averages gradients through hooks that its own ``forward``
arms. Some iterations here call sub-modules or several methods of one network (CT-SGAN's slice generator
and two critics, the style-transfer model's encoders and decoder) and differentiate critics w.r.t. their
inputs, so a wrapper would see none of it. These helpers do what DDP does, explicitly: the same weights
on every rank at the start, gradients averaged before each optimiser step, buffers (batch-norm statistics)
taken from rank 0 after it. Without an initialised process group (or with one process) they do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["is_distributed", "broadcast_module", "average_gradients", "synced_optimizer_step"]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module: nn.Module, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters (unless ``buffers_only``) and buffers to every rank, in place."""
    if not is_distributed():
        return
    tensors = ([] if buffers_only else list(module.parameters())) + list(module.buffers())
    for t in tensors:
        dist.broadcast(t.data, src=0)


def average_gradients(module: nn.Module) -> None:
    """All-reduce the gradients of ``module``'s trainable parameters to their mean over the ranks (a missing
    gradient counts as zero, so every rank takes part in every reduction)."""
    if not is_distributed():
        return
    world = float(dist.get_world_size())
    for p in module.parameters():
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def synced_optimizer_step(engine: Any, compute_loss: Callable[[], tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any]:
    """One training step of a MONAI trainer's ``engine.network`` with ``engine.optimizer``, kept in step across
    ranks: rank 0's weights are broadcast the first time a network is seen, then ``network.train()``, zeroed
    gradients, ``loss, extra = compute_loss()``, backward, gradients averaged over the ranks, the optimiser step,
    and rank 0's buffers broadcast. Returns ``(loss, extra)``; without a process group it is a plain step."""
    distributed = is_distributed()
    if distributed and getattr(engine, "_synced_network", None) is not engine.network:
        broadcast_module(engine.network)
        engine._synced_network = engine.network
    engine.network.train()
    engine.optimizer.zero_grad(set_to_none=True)
    loss, extra = compute_loss()
    loss.backward()
    if distributed:
        average_gradients(engine.network)
    engine.optimizer.step()
    if distributed:
        broadcast_module(engine.network, buffers_only=True)  # batch-norm statistics from rank 0
    return loss, extra
