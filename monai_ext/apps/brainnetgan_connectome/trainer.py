"""BrainNetGAN training engine: a conditional WGAN-GP generator, a BrainNetCNN critic and a BrainNetCNN classifier
updated in turn (Cao et al., DGM4MICCAI/DALI 2021, Sect. 2.2).

Why not MONAI's :class:`~monai.engines.GanTrainer` as is: its iteration has no third network, draws latents without
a class condition and computes no gradient penalty. :class:`BrainNetGANTrainer` subclasses it (same events, state and
handlers) and replaces ``_iteration``. Objective, per iteration on a batch of real matrices ``x`` with classes ``c``:

- critic, ``d_train_steps`` times: ``D(G(z|c)) - D(x) + gp_weight * GP`` (WGAN-GP; the paper prints the opposite
  sign and gives no weight: 10 as Gulrajani et al.);
- classifier: ``CE(C(x), c) + c_fake_weight * CE(C(G(z|c)), c)`` (the paper: real and generated matrices with their
  classes, ``c_fake_weight = 1``; with 0, C learns the classes from real matrices only, so the generator's class term
  asks for the real class features rather than any feature C learnt to tell the generator's classes apart by);
- generator: ``-D(G(z|c)) + class_weight * CE(C(G(z|c)), c)``.

Distributed training (``torchrun``): the three networks are updated by separate optimisers from terms that a
``DistributedDataParallel`` wrapper would not see (the gradient penalty differentiates the critic w.r.t. its input),
so the trainer broadcasts rank 0's weights at the start and averages each network's gradients before its step, as
the CT-SGAN trainer does (:mod:`monai_ext.engines.distributed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from monai.engines import GanTrainer
from monai.engines.utils import GanKeys
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from ...engines.distributed import average_gradients, broadcast_module, is_distributed
from ...losses.gradient_penalty import critic_gradient_penalty
from .networks import ConnectomeGenerator

__all__ = ["BrainNetGANTrainer"]


class BrainNetGANTrainer(GanTrainer):
    """Train a :class:`ConnectomeGenerator` against a critic and with a classifier (both BrainNetCNN).

    Args:
        device, max_epochs, train_data_loader, epoch_length, train_handlers, non_blocking, optim_set_to_none: as in
            :class:`~monai.engines.GanTrainer`.
        g_network, g_optimizer: the generator and its optimiser.
        d_network, d_optimizer: the critic (one score per matrix, no dropout) and its optimiser.
        c_network, c_optimizer: the classifier (class logits) and its optimiser.
        d_train_steps: critic updates per generator update (5 as Gulrajani et al.; the paper does not say).
        gp_weight: weight of the WGAN-GP gradient penalty.
        class_weight: weight of the classification term of the generator loss.
        c_fake_weight: weight of the generated matrices' term of the classifier loss (the paper: 1).
        matrix_key, label_key: keys of the real matrices ``(B, 1, N, N)`` in [0, 1] and their classes ``(B,)``.
        seed: seed of the latent codes and penalty interpolation (``seed + rank`` in a distributed run).

    ``engine.state.output`` holds ``d_loss``, ``g_loss``, ``c_loss``, ``gp``, ``wasserstein`` (mean real-minus-fake
    critic score), ``c_acc_real`` and ``c_acc_fake`` (the classifier's accuracy on the batch's real and generated
    matrices), and ``GanKeys.REALS`` / ``FAKES`` / ``LATENTS``.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader,
        g_network: ConnectomeGenerator,
        g_optimizer: Optimizer,
        d_network: nn.Module,
        d_optimizer: Optimizer,
        c_network: nn.Module,
        c_optimizer: Optimizer,
        d_train_steps: int = 5,
        gp_weight: float = 10.0,
        class_weight: float = 1.0,
        c_fake_weight: float = 1.0,
        matrix_key: str = "matrix",
        label_key: str = "label",
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
        non_blocking: bool = False,
        optim_set_to_none: bool = False,
        seed: int | None = None,
    ) -> None:
        if not isinstance(g_network, ConnectomeGenerator):
            raise TypeError(f"g_network must be a ConnectomeGenerator, got {type(g_network).__name__}.")
        if int(d_train_steps) < 1:
            raise ValueError(f"d_train_steps must be >= 1, got {d_train_steps}.")
        for name, w in (("gp_weight", gp_weight), ("class_weight", class_weight), ("c_fake_weight", c_fake_weight)):
            if not float(w) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {w}.")
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            g_network=g_network,
            g_optimizer=g_optimizer,
            g_loss_function=lambda fake_scores: -fake_scores.mean(),
            d_network=d_network,
            d_optimizer=d_optimizer,
            d_loss_function=lambda real_scores, fake_scores: fake_scores.mean() - real_scores.mean(),
            epoch_length=epoch_length,
            d_train_steps=int(d_train_steps),
            non_blocking=non_blocking,
            train_handlers=train_handlers,
            decollate=False,
            optim_set_to_none=optim_set_to_none,
        )
        self.c_network, self.c_optimizer = c_network, c_optimizer
        self.gp_weight, self.class_weight, self.c_fake_weight = float(gp_weight), float(class_weight), float(c_fake_weight)
        self.matrix_key, self.label_key = matrix_key, label_key
        self.rng = torch.Generator()
        self.distributed = is_distributed()
        if seed is not None:
            self.rng.manual_seed(int(seed) + (dist.get_rank() if self.distributed else 0))
        if self.distributed:
            for net in (g_network, d_network, c_network):
                broadcast_module(net)

    def _batch(self, batchdata: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(batchdata, dict) or self.matrix_key not in batchdata or self.label_key not in batchdata:
            raise ValueError(f"each batch must be a dict with '{self.matrix_key}' and '{self.label_key}'.")
        x = torch.as_tensor(batchdata[self.matrix_key]).to(self.state.device, torch.float32, non_blocking=self.non_blocking)
        y = torch.as_tensor(batchdata[self.label_key]).to(self.state.device).long().flatten()
        n = self.g_network.num_nodes
        if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != (n, n) or len(y) != len(x):
            raise ValueError(f"batch['{self.matrix_key}'] must be (B, 1, {n}, {n}) matrices with B labels, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}.")
        return x, y

    def _step(self, network: nn.Module, optimizer: Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        loss.backward()
        if self.distributed:
            average_gradients(network)
        optimizer.step()

    def _iteration(self, engine: BrainNetGANTrainer, batchdata: Any) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        x, y = engine._batch(batchdata)
        g, d, c = engine.g_network, engine.d_network, engine.c_network
        for net in (g, d, c):
            net.train()
        d_total = gp_total = w_total = 0.0
        for _ in range(engine.d_train_steps):
            with torch.no_grad():
                codes = g.condition(y, engine.rng)
                fake = g(codes)
            real_s, fake_s = d(x), d(fake)
            gp = critic_gradient_penalty(d, x, fake, "wgan-gp", engine.rng) if engine.gp_weight > 0 else real_s.new_zeros(())
            d_loss = engine.d_loss_function(real_s, fake_s) + engine.gp_weight * gp
            engine._step(d, engine.d_optimizer, d_loss)
            d_total += d_loss.item() / engine.d_train_steps
            gp_total += gp.item() / engine.d_train_steps
            w_total += (real_s.mean() - fake_s.mean()).item() / engine.d_train_steps

        logits_real, logits_fake = c(x), c(fake)
        c_loss = F.cross_entropy(logits_real, y)
        if engine.c_fake_weight > 0:
            c_loss = c_loss + engine.c_fake_weight * F.cross_entropy(logits_fake, y)
        engine._step(c, engine.c_optimizer, c_loss)

        d.requires_grad_(False)
        c.requires_grad_(False)
        codes = g.condition(y, engine.rng)
        fake = g(codes)
        g_loss = engine.g_loss_function(d(fake)) + engine.class_weight * F.cross_entropy(c(fake), y)
        engine._step(g, engine.g_optimizer, g_loss)
        d.requires_grad_(True)
        c.requires_grad_(True)

        out = {
            "d_loss": d_total,
            "g_loss": g_loss.item(),
            "c_loss": c_loss.item(),
            "gp": gp_total,
            "wasserstein": w_total,
            "c_acc_real": float((logits_real.argmax(1) == y).float().mean()),
            "c_acc_fake": float((logits_fake.argmax(1) == y).float().mean()),
        }
        out.update({GanKeys.REALS: x, GanKeys.FAKES: fake.detach(), GanKeys.LATENTS: codes,
                    GanKeys.GLOSS: out["g_loss"], GanKeys.DLOSS: out["d_loss"]})
        return out
