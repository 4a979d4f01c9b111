"""KL divergence of a residual Gaussian posterior from its prior, as NVAE (Vahdat and Kautz 2020) and HPI (Hung et
al., DGM4MICCAI 2021, Sect. 2.2) parametrise the posterior relative to the prior: ``p = N(mu, sigma^2)``,
``q = N(mu + delta_mu, (sigma * delta_sigma)^2)``, so ``KL(q || p) = 1/2 (delta_mu^2 / sigma^2 + delta_sigma^2
- log delta_sigma^2 - 1)`` per latent element (HPI's paper prints ``log sigma^2`` for the last log term; NVAE's
``log delta_sigma^2`` is the correct one).
"""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["ResidualGaussianKLLoss"]


class ResidualGaussianKLLoss(_Loss):
    """``loss(delta_mu, log_delta_sigma, prior_log_sigma)``: the KL above summed over every latent element of a
    sample and averaged over the batch (dimension 0); all inputs of one shape ``(B, ...)``, log standard deviations
    in natural log. ``reduction="none"`` returns the per-sample sums ``(B,)``."""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
        super().__init__(reduction=reduction)

    def forward(self, delta_mu: torch.Tensor, log_delta_sigma: torch.Tensor, prior_log_sigma: torch.Tensor) -> torch.Tensor:
        if not delta_mu.shape == log_delta_sigma.shape == prior_log_sigma.shape:
            raise ValueError(
                f"delta_mu {tuple(delta_mu.shape)}, log_delta_sigma {tuple(log_delta_sigma.shape)} and prior_log_sigma "
                f"{tuple(prior_log_sigma.shape)} must have one shape."
            )
        kl = 0.5 * (delta_mu.square() * torch.exp(-2 * prior_log_sigma) + torch.exp(2 * log_delta_sigma) - 2 * log_delta_sigma - 1)
        per_sample = kl.flatten(1).sum(dim=1)
        return per_sample if self.reduction == "none" else per_sample.mean()
