"""M2 of "Cross-Domain Landmarks Detection in Mitral Regurgitation" (AdaptOR 2021): the joint training of M1 plus a
fully convolutional domain discriminator on the output heatmaps. The discriminator learns to tell intraop heatmaps
(1) from simulator heatmaps (0); the heatmap network is also trained to make its simulator heatmaps pass as
intraop ones (``lambda_adv`` x binary cross-entropy), so that its outputs look alike in both domains."""

from __future__ import annotations

from typing import Any

import torch

from ...engines.cycle_gan import discriminator_logits
from ...engines.sample_weighted import SampleWeightedTrainer

__all__ = ["DomainAdversarialHeatmapTrainer"]


class DomainAdversarialHeatmapTrainer(SampleWeightedTrainer):
    """``SampleWeightedTrainer`` (the M1 loss, weighted per sample) plus an output-space domain discriminator.

    Per iteration: the heatmap network steps on ``M1 loss + lambda_adv * BCE(D(sigmoid(pred_sim)), 1)``; then the
    discriminator steps on ``BCE(D(sigmoid(pred)), target_domain)`` over the batch (pixel-wise on its logits map).
    ``batch[domain_key]`` is 1 for a target-domain (intraop) sample and 0 for a source (simulator or translated) one.
    The last iteration's losses are in ``state.d_loss`` and ``state.adv_loss``.

    Args:
        args, kwargs: ``SampleWeightedTrainer``'s.
        discriminator: a network on (B, 1, H, W) maps in [0, 1] (e.g. MONAI's ``PatchDiscriminator``, whose last
            output is the logits map; a plain tensor output works too).
        d_optimizer: its optimiser.
        lambda_adv: weight of the adversarial term (the paper: 1).
        domain_key: batch key of the target-domain flag.
    """

    def __init__(self, *args: Any, discriminator: torch.nn.Module, d_optimizer: torch.optim.Optimizer,
                 lambda_adv: float = 1.0, domain_key: str = "target_domain", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.discriminator, self.d_optimizer = discriminator, d_optimizer
        self.lambda_adv, self.domain_key = float(lambda_adv), domain_key
        self._target: torch.Tensor | None = None
        self._pred: torch.Tensor | None = None
        self._adv = 0.0

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict:
        self._target = self.batch_vector(batchdata, self.domain_key, "1 target domain, 0 source")
        output = super()._iteration(engine, batchdata)
        maps = torch.sigmoid(self._pred.float())
        self.discriminator.requires_grad_(True)
        self.d_optimizer.zero_grad(set_to_none=True)
        logits = discriminator_logits(self.discriminator, maps)
        truth = self._target.to(logits.device).reshape(-1, *([1] * (logits.ndim - 1))).expand_as(logits)
        d_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, truth)
        d_loss.backward()
        self.d_optimizer.step()
        self.state.d_loss, self.state.adv_loss = float(d_loss), self._adv  # the output is decollated by now
        return output

    def _weighted_loss(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        loss = super()._weighted_loss(pred, label)
        self._pred = pred.detach()
        self._pred = self._pred.as_tensor() if hasattr(self._pred, "as_tensor") else self._pred
        source = self._target.to(pred.device) < 0.5
        self._adv = 0.0
        if self.lambda_adv > 0 and bool(source.any()):
            self.discriminator.requires_grad_(False)  # the heatmap network's step leaves the discriminator alone
            logits = discriminator_logits(self.discriminator, torch.sigmoid(pred[source]))
            adv = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            self._adv = float(adv)
            loss = loss + self.lambda_adv * adv
        return loss
