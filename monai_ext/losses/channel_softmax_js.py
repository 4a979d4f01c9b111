"""Jensen-Shannon divergence between two feature maps, each softmaxed over its channels at every pixel: the feature
consistency of Few-shot DAG (Zhou et al., "Semi-supervised landmark localization for X-ray with few-shot Deep
Adaptive Graph", DALI 2021), ``L_js = 1 / (2 |Omega|) sum_pixels [KL(a_S || M) + KL(a_T || M)]``, ``M = (a_S + a_T)
/ 2``, between the student's and the teacher's CNN features."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .per_sample import PerSampleLoss

__all__ = ["ChannelSoftmaxJSDivergenceLoss"]


class ChannelSoftmaxJSDivergenceLoss(PerSampleLoss):
    """JS divergence of the channel-softmax distributions of ``input`` and ``target`` ``(B, C, *spatial)``, averaged
    over the pixels: ``(B,)`` per image with ``reduction="none"``, else their mean or sum. In nats, 0 to ln 2.

    Gradients flow into both arguments; detach the teacher's features before the call. ``temperature`` divides
    the features before the softmax.
    """

    def __init__(self, temperature: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}.")
        self.temperature = float(temperature)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape or input.ndim < 3:
            raise ValueError(f"expected two feature maps (B, C, *spatial) of one shape, got {tuple(input.shape)} and "
                             f"{tuple(target.shape)}.")
        log_a = F.log_softmax(input / self.temperature, dim=1)
        log_b = F.log_softmax(target / self.temperature, dim=1)
        log_m = torch.logsumexp(torch.stack([log_a, log_b]), dim=0) - math.log(2.0)
        kl_a = (log_a.exp() * (log_a - log_m)).sum(dim=1)
        kl_b = (log_b.exp() * (log_b - log_m)).sum(dim=1)
        return self.reduce_samples((0.5 * (kl_a + kl_b)).flatten(1).mean(dim=1))
