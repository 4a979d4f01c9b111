"""Gradient penalties of a GAN critic (MONAI has none).

CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021) adds a gradient penalty to its slice and slab
discriminator losses for stability and diversity, citing Mescheder et al. 2018 (R1) while preferring a
Wasserstein loss, for which the usual penalty is WGAN-GP (Gulrajani et al. 2017). Both are here:

- ``"wgan-gp"``: ``E[(||grad_x D(x_hat)||_2 - 1)^2]`` at random points ``x_hat`` on the segments between real and
  generated samples;
- ``"r1"``: ``E[||grad_x D(x_real)||_2^2] / 2`` at the real samples.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["critic_gradient_penalty"]


def critic_gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor | None = None,
    mode: str = "wgan-gp",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gradient penalty of ``critic`` (a scalar tensor, differentiable w.r.t. the critic's parameters).

    Args:
        critic: maps a batch ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)`` (wrap extra inputs in a lambda).
        real: real samples ``(B, ...)``.
        fake: generated samples of the same shape (required for ``"wgan-gp"``; detached here).
        mode: ``"wgan-gp"`` or ``"r1"``.
        generator: random generator for the interpolation weights.

    Returns:
        The penalty, averaged over the batch (not multiplied by any weight).
    """
    mode = str(mode).lower()
    if mode not in ("wgan-gp", "r1"):
        raise ValueError(f"mode must be 'wgan-gp' or 'r1', got {mode!r}.")
    if mode == "wgan-gp":
        if fake is None:
            raise ValueError("mode 'wgan-gp' needs the generated samples (fake).")
        if fake.shape != real.shape:
            raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} must have the same shape.")
        alpha = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), generator=generator).to(real)
        x = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    else:
        x = real.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = critic(x)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    norm2 = grad.flatten(1).pow(2).sum(1)
    if mode == "r1":
        return 0.5 * norm2.mean()
    return (torch.sqrt(norm2 + 1e-12) - 1.0).pow(2).mean()
