"""M3 of "Cross-Domain Landmarks Detection in Mitral Regurgitation" (AdaptOR 2021): collaborative training of one
heatmap network per domain. Each learns its own domain's labels and, on the other domain's frames, the other
network's predictions (a pixel-wise KL divergence between their sigmoid maps, ``lambda_kl``). The target-domain
(intraop) network is the one validated, saved and used."""

from __future__ import annotations

from typing import Any

import torch

from ...engines.sample_weighted import SampleWeightedTrainer

__all__ = ["CollaborativeHeatmapTrainer", "bernoulli_kl"]


def bernoulli_kl(p: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over pixels of KL(Bernoulli(p) || Bernoulli(sigmoid(q_logits))), p in [0, 1]: (B,)."""
    log_q, log_1q = torch.nn.functional.logsigmoid(q_logits), torch.nn.functional.logsigmoid(-q_logits)
    p = p.clamp(1e-6, 1 - 1e-6)
    kl = p * (torch.log(p) - log_q) + (1 - p) * (torch.log(1 - p) - log_1q)
    return kl.reshape(kl.shape[0], -1).mean(dim=1)


class CollaborativeHeatmapTrainer(SampleWeightedTrainer):
    """Trains ``network`` (the target domain's) and ``peer`` (the source domain's) on mixed batches.

    ``network`` steps on ``mean_i(t_i w_i l_i) + lambda_kl * mean_i((1 - t_i) KL(sigmoid(peer(x_i)) ||
    sigmoid(network(x_i))))``, and ``peer`` on the same with the roles (and ``t_i`` and ``1 - t_i``) swapped, where
    ``t_i`` is ``batch[domain_key]`` (1 intraop, 0 simulator), ``w_i`` the sample weight and ``l_i`` the per-sample
    loss of ``loss_function``; each network's peer term uses the other's prediction, detached. The peer's last
    loss is in ``state.peer_loss``.

    Args:
        args, kwargs: ``SampleWeightedTrainer``'s (``network``: the target-domain network).
        peer: the source-domain network (same input and output as ``network``).
        peer_optimizer: its optimiser.
        lambda_kl: weight of the peer terms (the paper: 0.1).
        domain_key: batch key of the target-domain flag.
    """

    def __init__(self, *args: Any, peer: torch.nn.Module, peer_optimizer: torch.optim.Optimizer,
                 lambda_kl: float = 0.1, domain_key: str = "target_domain", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peer, self.peer_optimizer = peer, peer_optimizer
        self.lambda_kl, self.domain_key = float(lambda_kl), domain_key
        self._target: torch.Tensor | None = None
        self._inputs: torch.Tensor | None = None
        self._pred: torch.Tensor | None = None

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict:
        self._target = self.batch_vector(batchdata, self.domain_key, "1 target domain, 0 source")
        inputs, labels = self.prepare_batch(batchdata, engine.state.device, engine.non_blocking)[:2]
        self._inputs = inputs.as_tensor() if hasattr(inputs, "as_tensor") else inputs
        with torch.no_grad():
            self._peer_pred = self.peer(self._inputs)
        output = super()._iteration(engine, batchdata)
        # the peer's step: its own domain's labels, and on the target frames the network's prediction
        labels = labels.as_tensor() if hasattr(labels, "as_tensor") else labels
        self.peer_optimizer.zero_grad(set_to_none=True)
        pred = self.peer(self._inputs)
        source = 1.0 - self._target.to(pred.device)
        per = self.per_sample_loss(pred, labels).reshape(pred.shape[0], -1).mean(dim=1)
        kl = bernoulli_kl(torch.sigmoid(self._pred.float()), pred)
        loss = (source * self._weights.to(per) * per).mean() + self.lambda_kl * ((1 - source) * kl).mean()
        loss.backward()
        self.peer_optimizer.step()
        self.state.peer_loss = float(loss)
        return output

    def _weighted_loss(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        target = self._target.to(pred.device)
        per = self.per_sample_loss(pred, label).reshape(pred.shape[0], -1).mean(dim=1)
        kl = bernoulli_kl(torch.sigmoid(self._peer_pred.float()), pred)
        self._pred = pred.detach()
        return (target * self._weights.to(per) * per).mean() + self.lambda_kl * ((1 - target) * kl).mean()
