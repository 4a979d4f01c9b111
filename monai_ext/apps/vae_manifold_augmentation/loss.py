"""Negative ELBO of the Riemannian Hamiltonian VAE (and of a plain VAE, for the baseline).

Chadebec & Allassonniere, DGM4MICCAI 2021 (RHVAE of Chadebec et al., arXiv:2010.11518):

    -ELBO = -[log p(x|z_K) + log N(z_K; 0, I) + log N(rho_K; 0, G(z_K))] + log q(z_0|x),
    log q(z_0|x) = log N(eps_0; 0, I) - 0.5 sum(logvar),

with a Bernoulli likelihood ``p(x|z)`` on images in [0, 1] (binary cross-entropy summed over voxels), as in
the authors' code. The tempering Jacobian is left out, as in their code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...losses import PerSampleLoss
from .rhvae import safe_cholesky

__all__ = ["RHVAEElboLoss"]

_LOG2PI = math.log(2 * math.pi)


class RHVAEElboLoss(PerSampleLoss):
    """Negative ELBO, averaged over the batch (per-sample sums over voxels and latent dimensions).

    ``forward(outputs, target)``:
        outputs: the dict of :class:`monai_ext.apps.vae_manifold_augmentation.RiemannianHamiltonianVAE`, or the tuple
            ``(recon, mu, logvar, z)`` of MONAI's :class:`~monai.networks.nets.VarAutoEncoder` (plain VAE:
            reconstruction + KL to N(0, I)).
        target: the input images ``(B, C, *spatial)``, values in [0, 1].

    Args:
        reduction: ``"mean"`` (over the batch) | ``"sum"`` | ``"none"`` (shape ``(B,)``).
        beta: weight of the latent terms of the plain VAE (KL); 1 gives the ELBO.
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.beta = float(beta)

    def forward(self, outputs, target: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if target.min() < 0 or target.max() > 1:
            raise ValueError(
                f"RHVAEElboLoss target: values must lie in [0, 1] (Bernoulli likelihood), got "
                f"[{float(target.min()):.3g}, {float(target.max()):.3g}]."
            )
        if isinstance(outputs, dict):
            per = self._rhvae(outputs, target)
        elif isinstance(outputs, (tuple, list)) and len(outputs) == 4:
            per = self._vae(*outputs, target)
        else:
            raise TypeError("RHVAEElboLoss: outputs must be the RHVAE dict or VarAutoEncoder's (recon, mu, logvar, z).")
        return self.reduce_samples(per)

    @staticmethod
    def _recon_nll(target: torch.Tensor, logits: torch.Tensor | None = None, recon: torch.Tensor | None = None) -> torch.Tensor:
        if logits is not None:
            if logits.shape != target.shape:
                raise ValueError(f"RHVAEElboLoss: reconstruction shape {tuple(logits.shape)} != target shape {tuple(target.shape)}.")
            nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            if recon.shape != target.shape:
                raise ValueError(f"RHVAEElboLoss: reconstruction shape {tuple(recon.shape)} != target shape {tuple(target.shape)}.")
            nll = F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), target, reduction="none")
        return nll.flatten(1).sum(1)

    def _rhvae(self, out: dict, target: torch.Tensor) -> torch.Tensor:
        z, rho, g_inv = out["z"], out["rho"], out["inverse_metric"]
        d = z.shape[1]
        nll = self._recon_nll(target, logits=out["logits"])
        log_pz = -0.5 * (z**2).sum(1) - 0.5 * d * _LOG2PI
        chol = safe_cholesky(g_inv).to(g_inv.dtype)
        logdet_g_inv = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        # log N(rho; 0, G) with G = (G^-1)^-1: -0.5 rho^T G^-1 rho - 0.5 log det G
        log_prho = -0.5 * torch.einsum("bi,bij,bj->b", rho, g_inv, rho) + 0.5 * logdet_g_inv - 0.5 * d * _LOG2PI
        log_q = -0.5 * (out["eps0"] ** 2).sum(1) - 0.5 * d * _LOG2PI - 0.5 * out["logvar"].sum(1)
        return nll - log_pz - log_prho + log_q

    def _vae(self, recon, mu, logvar, z, target) -> torch.Tensor:
        nll = self._recon_nll(target, recon=recon)
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
        return nll + self.beta * kl
