"""CycleGAN training (Zhu et al., ICCV 2017) on MONAI's engine: two generators (A -> B, B -> A), two
discriminators, least-squares adversarial losses (MONAI's ``PatchAdversarialLoss``), L1 cycle consistency and the
identity loss, discriminators trained on a history pool of generated images. Unpaired batches carry one image of
each domain per sample (``image_a``, ``image_b``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.engines import Trainer
from monai.losses import PatchAdversarialLoss
from torch.utils.data import DataLoader

from .history_pool import HistoryImagePool

__all__ = ["CycleGANTrainer", "discriminator_logits"]


def discriminator_logits(network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The logits map of a discriminator: the last item when it returns a list of features (MONAI's
    ``PatchDiscriminator``), else its output."""
    out = network(x)
    return out[-1] if isinstance(out, (list, tuple)) else out


class CycleGANTrainer(Trainer):
    """One iteration: the generators step on ``adv(D_b(G_ab(a))) + adv(D_a(G_ba(b))) + lambda_cycle * (|G_ba(G_ab(a))
    - a| + |G_ab(G_ba(b)) - b|) + lambda_identity * lambda_cycle * (|G_ab(b) - b| + |G_ba(a) - a|)``; then each
    discriminator steps on half the sum of its real and (pooled) fake least-squares losses. The output of an
    iteration holds the losses (``g_loss``, ``cycle_loss``, ``d_a_loss``, ``d_b_loss``) as floats.

    Args:
        device, max_epochs, train_data_loader: as MONAI's trainers.
        g_ab, g_ba: generators A -> B and B -> A (images in the discriminators' range).
        d_a, d_b: discriminators of domains A and B (e.g. MONAI's ``PatchDiscriminator``, which returns a list of
            features whose last item is the logits map; a plain tensor output works too).
        g_optimizer: optimiser of both generators' parameters; d_optimizer: of both discriminators'.
        lambda_cycle, lambda_identity: CycleGAN's 10 and 0.5.
        pool_size: history pool per domain (CycleGAN: 50; 0 turns it off).
        image_a_key, image_b_key: batch keys of the two domains.
        train_handlers, epoch_length, seed: as MONAI's trainers; ``seed`` drives the pools.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader,
        g_ab: torch.nn.Module,
        g_ba: torch.nn.Module,
        d_a: torch.nn.Module,
        d_b: torch.nn.Module,
        g_optimizer: torch.optim.Optimizer,
        d_optimizer: torch.optim.Optimizer,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        image_a_key: str = "image_a",
        image_b_key: str = "image_b",
        train_handlers: Sequence | None = None,
        epoch_length: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(device=device, max_epochs=max_epochs, data_loader=train_data_loader,
                         epoch_length=epoch_length, handlers=train_handlers, decollate=False)
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        self.keys = (image_a_key, image_b_key)
        self.pools = (HistoryImagePool(pool_size, seed), HistoryImagePool(pool_size, seed + 1))
        self.adversarial = PatchAdversarialLoss(criterion="least_squares")

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict[str, float]:
        missing = [k for k in self.keys if k not in batchdata]
        if missing:
            raise KeyError(f"CycleGANTrainer: the batch has no {missing}; keys: {sorted(map(str, batchdata))}.")
        a, b = (torch.as_tensor(batchdata[k]).to(engine.state.device, non_blocking=engine.non_blocking)
                for k in self.keys)
        a, b = (x.as_tensor() if hasattr(x, "as_tensor") else x for x in (a, b))
        l1 = torch.nn.functional.l1_loss

        for d in (self.d_a, self.d_b):
            d.requires_grad_(False)
        self.g_optimizer.zero_grad(set_to_none=True)
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        cycle = l1(self.g_ba(fake_b), a) + l1(self.g_ab(fake_a), b)
        identity = l1(self.g_ab(b), b) + l1(self.g_ba(a), a) if self.lambda_identity > 0 else torch.zeros((), device=a.device)
        adv = sum(self.adversarial(discriminator_logits(d, fake), target_is_real=True, for_discriminator=False)
                  for d, fake in ((self.d_b, fake_b), (self.d_a, fake_a)))
        g_loss = adv + self.lambda_cycle * (cycle + self.lambda_identity * identity)
        g_loss.backward()
        self.g_optimizer.step()

        for d in (self.d_a, self.d_b):
            d.requires_grad_(True)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_losses = []
        for d, real, fake, pool in ((self.d_a, a, fake_a, self.pools[0]), (self.d_b, b, fake_b, self.pools[1])):
            loss = 0.5 * (self.adversarial(discriminator_logits(d, real), target_is_real=True, for_discriminator=True)
                          + self.adversarial(discriminator_logits(d, pool.query(fake)), target_is_real=False,
                                             for_discriminator=True))
            d_losses.append(loss)
        sum(d_losses).backward()
        self.d_optimizer.step()
        return {"g_loss": float(g_loss), "cycle_loss": float(cycle), "d_a_loss": float(d_losses[0]),
                "d_b_loss": float(d_losses[1])}
