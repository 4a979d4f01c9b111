"""Training engine of CT-SGAN's learned nodule injector / eraser (conditional inpainting GAN on VOIs).

Why a small engine and not MONAI's :class:`~monai.engines.GanTrainer`: GanTrainer feeds the generator
latents drawn from ``latent_shape`` (``g_prepare_batch(batch_size, latent_shape, ...)`` never sees the
batch) and calls ``d_loss_function(fakes, reals)`` without a condition. An image-to-image cGAN (pix2pix,
as in Jin et al. 2018 that CT-SGAN's injector/eraser follow) needs the batch's conditioning channels in
both networks and an L1 term against the paired target. So :class:`NoduleInpaintingTrainer` subclasses
:class:`~monai.engines.SupervisedTrainer` (its ``network``/``optimizer``/``loss_function`` are the
generator, its optimiser and the L1 loss; events, handlers, ``StatsHandler``/``CheckpointSaver`` work as
usual) and replaces ``_iteration`` by one critic step and one generator step.

Objective per iteration (x condition, y target VOI, G(x) generated VOI, R the central region):
``L_D = softplus(-D(x, y)) + softplus(D(x, G(x)))`` and
``L_G = adv_weight * softplus(-D(x, G(x))) + l1_weight * sum(|G(x) - y| * R) / sum(R)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys as Keys
from torch.optim import Optimizer

from ...transforms.hu_window import hu_to_unit
from .nodule_inpainting import (
    NODULE_HU_WINDOW,
    NoduleInpaintingGenerator,
    NodulePairCritic,
)

__all__ = ["NoduleInpaintingTrainer", "inpainting_batch"]


def inpainting_batch(batch: dict, mode: str, device: torch.device | str,
                     hu_range: Sequence[float] = NODULE_HU_WINDOW) -> tuple[torch.Tensor, ...]:
    """``(voi_in, region, nodule_mask or None, target)`` in [-1, 1] on ``device`` from a batch of
    :func:`~monai_ext.apps.ctsgan_chest_ct_synthesis.injector_pairs` (keys image, region, nodule_mask) or
    :func:`~monai_ext.apps.ctsgan_chest_ct_synthesis.eraser_pairs` (keys image, target, region) dicts in HU."""
    need = ("image", "region", "nodule_mask") if mode == "inject" else ("image", "target", "region")
    missing = [k for k in need if k not in batch]
    if missing:
        raise ValueError(f"{mode} batch: missing keys {missing}; expected {list(need)}.")
    t = {k: torch.as_tensor(batch[k]).float().to(device) for k in need}
    region = (t["region"] > 0.5).float()
    if mode == "inject":
        y = hu_to_unit(t["image"], hu_range)
        return y, region, (t["nodule_mask"] > 0.5).float(), y
    return hu_to_unit(t["image"], hu_range), region, None, hu_to_unit(t["target"], hu_range)


class NoduleInpaintingTrainer(SupervisedTrainer):
    """Alternating conditional-critic / generator updates for a :class:`NoduleInpaintingGenerator`.

    Args:
        device, max_epochs, train_data_loader, epoch_length, train_handlers: as for SupervisedTrainer.
        network: the generator; optimizer: its optimiser.
        d_network: a :class:`NodulePairCritic` of the same ``mode``; d_optimizer: its optimiser.
        l1_weight: weight of the masked L1 term (pix2pix uses 100).
        adv_weight: weight of the adversarial term (0: a plain L1 inpainting network).
        hu_range: HU window mapped to [-1, 1] (the learned transforms must use the same).

    ``engine.state.output``: ``pred`` (generated VOIs), ``loss`` (generator total), ``g_l1``, ``g_adv``,
    ``d_loss`` (floats).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: NoduleInpaintingGenerator,
        optimizer: Optimizer,
        d_network: NodulePairCritic,
        d_optimizer: Optimizer,
        l1_weight: float = 100.0,
        adv_weight: float = 1.0,
        hu_range: Sequence[float] = NODULE_HU_WINDOW,
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
    ) -> None:
        if not isinstance(network, NoduleInpaintingGenerator):
            raise TypeError(f"network: expected a NoduleInpaintingGenerator, got {type(network).__name__}.")
        super().__init__(device=device, max_epochs=max_epochs, train_data_loader=train_data_loader, network=network,
                         optimizer=optimizer, loss_function=torch.nn.L1Loss(), epoch_length=epoch_length,
                         train_handlers=train_handlers, decollate=False)
        self.d_network = d_network
        self.d_optimizer = d_optimizer
        self.l1_weight = float(l1_weight)
        self.adv_weight = float(adv_weight)
        self.hu_range = tuple(float(h) for h in hu_range)

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict) -> dict:  # type: ignore[override]
        g: NoduleInpaintingGenerator = engine.network  # type: ignore[assignment]
        d = self.d_network
        x, region, nod, y = inpainting_batch(batchdata, g.mode, engine.state.device, self.hu_range)
        cond = g.condition(x, region, nod)
        g.train()
        d.train()
        fake = g(x, region, nod)

        d_loss = torch.zeros((), device=x.device)
        if self.adv_weight > 0:
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss = F.softplus(-d(cond, y)).mean() + F.softplus(d(cond, fake.detach())).mean()
            d_loss.backward()
            self.d_optimizer.step()

        engine.optimizer.zero_grad(set_to_none=True)
        l1 = ((fake - y).abs() * region).sum() / region.sum().clamp_min(1.0)
        adv = F.softplus(-d(cond, fake)).mean() if self.adv_weight > 0 else torch.zeros((), device=x.device)
        loss = self.l1_weight * l1 + self.adv_weight * adv
        loss.backward()
        engine.optimizer.step()
        return {Keys.IMAGE: x, Keys.LABEL: y, Keys.PRED: fake.detach(), Keys.LOSS: loss.detach(),
                "g_l1": float(l1.detach()), "g_adv": float(adv.detach()), "d_loss": float(d_loss.detach())}
