"""Latent samplers for a trained RHVAE: manifold HMC, Riemannian random walk, and the prior.

Chadebec & Allassonniere, "Data Augmentation with Variational Autoencoders and Manifold Sampling",
DGM4MICCAI 2021. The paper samples latent codes from the density

    pi(z) ~ 1_S(z) sqrt(det G^-1(z))      (Eq. 3)

which is high near the encoded training data and low where the decoder has seen nothing. Two samplers:

- :class:`MetricHMCSampler`: Hamiltonian Monte Carlo on ``U(z) = -log sqrt(det G^-1(z))``, chains started at
  random centroids (the authors' code does this for the data-augmentation experiments; its defaults,
  15 leapfrog steps of 0.05 and 100 MCMC steps, are used here);
- :class:`RiemannianRandomWalkSampler` (Algorithm 1): wrapped-normal proposals ``Exp_z(v)``,
  ``v ~ N(0, sigma^2 I)``, accepted with probability ``min(1, sqrt(det G^-1(z~)) / sqrt(det G^-1(z)))``;
  ``Exp`` is computed by geodesic shooting (:func:`geodesic_shoot`).

:class:`PriorLatentSampler` draws ``z ~ N(0, I)``, the classic VAE generation scheme, for comparison. All
samplers run many chains at once (one per requested sample) and are reproducible through ``seed``.
"""

from __future__ import annotations

import torch

from .rhvae import RiemannianLatentMetric

__all__ = [
    "geodesic_shoot",
    "MetricHMCSampler",
    "RiemannianRandomWalkSampler",
    "PriorLatentSampler",
    "make_latent_sampler",
    "generate_images",
]


def geodesic_shoot(metric: RiemannianLatentMetric, p: torch.Tensor, v: torch.Tensor, n_steps: int = 10) -> torch.Tensor:
    """``Exp_p(v)``: the point reached at time 1 by the geodesic from ``p`` (``(B, d)``) with initial velocity
    ``v`` (``(B, d)``).

    Hamiltonian form ``H(p, q) = 0.5 q^T G^-1(p) q`` with momentum ``q_0 = G(p) v``, integrated on
    ``t in [0, 1]`` with ``n_steps`` explicit midpoint (RK2) steps (the authors' code uses 10)."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
    q = torch.einsum("bij,bj->bi", metric.metric(p), v)
    dt = 1.0 / n_steps

    def flow(p_, q_):
        return torch.einsum("bij,bj->bi", metric.inverse_metric(p_), q_), -metric.quadratic_form_gradient(p_, q_)

    for _ in range(n_steps):
        dp, dq = flow(p, q)
        dp, dq = flow(p + 0.5 * dt * dp, q + 0.5 * dt * dq)
        p, q = p + dt * dp, q + dt * dq
    return p


def _start_points(metric: RiemannianLatentMetric, num: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randint(metric.centroids.shape[0], (num,), generator=gen, device=gen.device)
    return metric.centroids[idx.to(metric.centroids.device)].clone()


def _randn(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=gen.device, dtype=like.dtype).to(like.device)


def _rand(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=gen.device, dtype=like.dtype).to(like.device)


class MetricHMCSampler:
    """Manifold sampling by HMC on ``pi(z) ~ sqrt(det G^-1(z))`` (optionally restricted to a ball ``S``).

    Args:
        n_steps: MCMC steps per chain (authors' code: 100).
        n_lf: leapfrog steps per MCMC step (authors' code: 15).
        eps_lf: leapfrog step size, latent units (authors' code: 0.05).
        support_radius: radius of the compact set ``S`` (a ball around the origin); proposals outside are
            rejected. ``None`` (the authors' code) does not enforce ``S``.

    After a call, ``acceptance_rate`` holds the mean acceptance rate of the last run.
    """

    def __init__(self, n_steps: int = 100, n_lf: int = 15, eps_lf: float = 0.05, support_radius: float | None = None):
        if n_steps < 1 or n_lf < 1 or eps_lf <= 0:
            raise ValueError(f"MetricHMCSampler: need n_steps >= 1, n_lf >= 1, eps_lf > 0; got {n_steps}, {n_lf}, {eps_lf}.")
        self.n_steps, self.n_lf, self.eps_lf = int(n_steps), int(n_lf), float(eps_lf)
        self.support_radius = support_radius
        self.acceptance_rate = float("nan")

    @torch.no_grad()
    def __call__(self, metric: RiemannianLatentMetric, num: int, seed: int = 0) -> torch.Tensor:
        """``num`` latent samples ``(num, d)``, one independent chain each, started at random centroids."""
        gen = torch.Generator().manual_seed(int(seed))
        z = _start_points(metric, num, gen)
        log_pi, grad = metric.grad_log_sqrt_det_inverse(z)
        accepted = 0.0
        for _ in range(self.n_steps):
            rho = _randn(z.shape, gen, z)
            h0 = -log_pi + 0.5 * (rho**2).sum(1)
            z_new, lp_new, g_new = z, log_pi, grad
            rho = rho + 0.5 * self.eps_lf * g_new  # grad U = -grad log pi
            for k in range(self.n_lf):
                z_new = z_new + self.eps_lf * rho
                lp_new, g_new = metric.grad_log_sqrt_det_inverse(z_new)
                rho = rho + (self.eps_lf if k < self.n_lf - 1 else 0.5 * self.eps_lf) * g_new
            h = -lp_new + 0.5 * (rho**2).sum(1)
            accept = _rand((z.shape[0],), gen, z) < torch.exp(torch.clamp(h0 - h, max=0.0))
            if self.support_radius is not None:
                accept &= z_new.norm(dim=1) <= self.support_radius
            z = torch.where(accept[:, None], z_new, z)
            log_pi = torch.where(accept, lp_new, log_pi)
            grad = torch.where(accept[:, None], g_new, grad)
            accepted += float(accept.float().mean())
        self.acceptance_rate = accepted / self.n_steps
        return z


class RiemannianRandomWalkSampler:
    """Riemannian random walk (Algorithm 1): wrapped-normal proposals along geodesics, Metropolis-type
    acceptance on ``sqrt(det G^-1)``.

    Args:
        n_steps: chain length.
        sigma: proposal standard deviation in the tangent space (``Sigma = sigma^2 I``); the paper notes that
            small values sample Eq. 3 (Remark 1); the authors' code uses ``Sigma = 0.5 I``.
        n_shoot_steps: RK2 steps of the geodesic shooting.
    """

    def __init__(self, n_steps: int = 50, sigma: float = 0.5**0.5, n_shoot_steps: int = 10):
        if n_steps < 1 or sigma <= 0:
            raise ValueError(f"RiemannianRandomWalkSampler: need n_steps >= 1 and sigma > 0; got {n_steps}, {sigma}.")
        self.n_steps, self.sigma, self.n_shoot_steps = int(n_steps), float(sigma), int(n_shoot_steps)
        self.acceptance_rate = float("nan")

    @torch.no_grad()
    def __call__(self, metric: RiemannianLatentMetric, num: int, seed: int = 0) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(seed))
        z = _start_points(metric, num, gen)
        log_pi = metric.log_sqrt_det_inverse(z)
        accepted = 0.0
        for _ in range(self.n_steps):
            v = self.sigma * _randn(z.shape, gen, z)
            z_new = geodesic_shoot(metric, z, v, self.n_shoot_steps)
            lp_new = metric.log_sqrt_det_inverse(z_new)
            accept = torch.log(_rand((z.shape[0],), gen, z)) < (lp_new - log_pi)
            accept &= torch.isfinite(z_new).all(1)
            z = torch.where(accept[:, None], z_new, z)
            log_pi = torch.where(accept, lp_new, log_pi)
            accepted += float(accept.float().mean())
        self.acceptance_rate = accepted / self.n_steps
        return z


class PriorLatentSampler:
    """The classic VAE generation: ``z ~ N(0, I)`` (the metric is only used for its latent size)."""

    acceptance_rate = 1.0

    @torch.no_grad()
    def __call__(self, metric: RiemannianLatentMetric | int, num: int, seed: int = 0) -> torch.Tensor:
        d = metric if isinstance(metric, int) else metric.latent_size
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randn((num, d), generator=gen)


_SAMPLERS = {"hmc": MetricHMCSampler, "rrw": RiemannianRandomWalkSampler, "prior": PriorLatentSampler}


def make_latent_sampler(name: str, **kwargs):
    """``"hmc"`` (manifold sampling, the paper's method), ``"rrw"`` (Riemannian random walk) or ``"prior"``."""
    if name not in _SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(_SAMPLERS)}.")
    return _SAMPLERS[name](**kwargs)


@torch.no_grad()
def generate_images(
    model, num: int, sampler: str | object = "hmc", seed: int = 0, batch_size: int = 256, **sampler_kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``num`` latent codes with ``sampler`` and decode them.

    Args:
        model: a trained :class:`~monai_ext.apps.vae_manifold_augmentation.RiemannianHamiltonianVAE` with a metric bank (for
            ``"prior"`` any model with ``latent_size`` and ``decode_forward``, e.g. MONAI's ``VarAutoEncoder``).
        num: number of images (>= 1).
        sampler: a name for :func:`make_latent_sampler` or a sampler object.
        seed: seeds the sampler; the same seed gives the same images.
    Returns:
        ``(images, z)``: images ``(num, C, *spatial)`` float32 in [0, 1] on CPU, latent codes ``(num, d)``.
    """
    if num < 1:
        raise ValueError(f"generate_images: num must be >= 1, got {num}.")
    s = make_latent_sampler(sampler, **sampler_kwargs) if isinstance(sampler, str) else sampler
    model.eval()
    if isinstance(s, PriorLatentSampler):
        z = s(int(model.latent_size), num, seed)
    else:
        if not hasattr(model, "latent_metric"):
            raise TypeError(f"sampler {type(s).__name__} needs an RHVAE (a model with a learned metric), got {type(model).__name__}.")
        z = s(model.latent_metric(), num, seed)
    device = next(model.parameters()).device
    out = [torch.sigmoid(model.decode_forward(zb.to(device), use_sigmoid=False)).float().cpu() for zb in torch.split(z, batch_size)]
    return torch.cat(out), z.cpu()
