"""Riemannian Hamiltonian VAE (RHVAE) for 2D and 3D images.

Chadebec C., Allassonniere S., "Data Augmentation with Variational Autoencoders and Manifold Sampling",
DGM4MICCAI 2021, builds on the RHVAE of Chadebec, Mantoux, Allassonniere, "Geometry-aware Hamiltonian
variational auto-encoder" (arXiv:2010.11518). The latent space is a Riemannian manifold with the learned
inverse metric

    G^-1(z) = sum_i L_i L_i^T exp(-||z - c_i||^2 / T^2) + lambda I,

where ``L_i`` is the lower-triangular output of a metric network for training image ``x_i`` and ``c_i`` its
encoded mean. During training the sum runs over the current batch; afterwards it runs over the whole training
set (the *metric bank*, :meth:`RiemannianHamiltonianVAE.update_metric_bank`), which the samplers in
:mod:`monai_ext.apps.vae_manifold_augmentation.samplers` use.

The convolutional encoder / decoder are MONAI's :class:`~monai.networks.nets.VarAutoEncoder`; this class adds
the metric network, the metric bank and the tempered generalised leapfrog integrator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Act, Norm
from monai.networks.nets import VarAutoEncoder

from ...io import atomic_write

__all__ = ["RiemannianLatentMetric", "RiemannianHamiltonianVAE", "RiemannianHamiltonianMLPVAE", "tempering_schedule", "load_rhvae"]


def _chol(a: torch.Tensor) -> torch.Tensor:
    """Cholesky factor in float64 (G^-1 spans lambda to exp(2 * max log-diag) and float32 fails on it), in
    ``a``'s dtype; see :func:`safe_cholesky`."""
    return safe_cholesky(a).to(a.dtype)


def safe_cholesky(a: torch.Tensor) -> torch.Tensor:
    """float64 Cholesky factor of the symmetric positive definite ``a`` ``(..., d, d)``.

    ``G^-1`` is summed in float32, whose rounding (about 6e-8 of the largest entry) can exceed ``lambda`` when
    some ``L_i L_i^T`` are large, so a matrix that is positive definite in exact arithmetic may fail the
    factorisation. Failed matrices get a jitter of 1e-7, then 1e-6 and 1e-5 times their largest diagonal entry
    (the float32 precision they carry). Non-finite matrices give a NaN factor, so that a diverging leapfrog
    trajectory in training makes a non-finite loss (skipped by :class:`monai_ext.engines.GradientGuard`)
    instead of an exception; a finite matrix that still fails raises ``torch.linalg.LinAlgError``."""
    a64 = a.double()
    chol, info = torch.linalg.cholesky_ex(a64)
    if not bool((info > 0).any()):
        return chol
    finite = torch.isfinite(a64).flatten(-2).all(-1)
    scale = a64.diagonal(dim1=-2, dim2=-1).abs().amax(-1).nan_to_num(0.0, 0.0, 0.0)[..., None, None]
    eye = torch.eye(a.shape[-1], dtype=torch.float64, device=a.device)
    safe = torch.where(finite[..., None, None], a64, eye)
    for jitter in (1e-7, 1e-6, 1e-5):
        chol, info = torch.linalg.cholesky_ex(safe + jitter * scale * eye)
        if not bool((info > 0).any()):
            return torch.where(finite[..., None, None], chol, torch.full_like(chol, float("nan")))
    raise torch.linalg.LinAlgError(
        f"Cholesky factorisation failed for {int((info > 0).sum())} matrices even with a jitter of 1e-5 x their "
        "largest diagonal entry: the inverse metric is not positive definite."
    )


def tempering_schedule(k: int, n_lf: int, beta_zero: float) -> float:
    """``sqrt(beta_k)`` of the quadratic tempering scheme: ``sqrt(beta_0)`` at ``k = 0``, exactly 1 at ``k = n_lf``."""
    inv0 = 1.0 / math.sqrt(beta_zero)
    return 1.0 / ((1.0 - inv0) * (k / n_lf) ** 2 + inv0)


class RiemannianLatentMetric:
    """The RHVAE inverse metric ``G^-1(z) = sum_i M_i exp(-||z - c_i||^2 / T^2) + lambda I`` on a latent space.

    Args:
        centroids: ``(N, d)`` latent centroids ``c_i`` (the encoded means of the training images).
        matrices: ``(N, d, d)`` symmetric positive semi-definite ``M_i = L_i L_i^T``.
        temperature: ``T``, in latent units.
        regularization: ``lambda`` (> 0), keeps ``G^-1`` positive definite; far from every centroid
            ``G^-1 -> lambda I``.

    All methods take ``z`` of shape ``(B, d)`` and are vectorised over ``B``; gradients are analytic so the
    samplers need no autograd.
    """

    def __init__(self, centroids: torch.Tensor, matrices: torch.Tensor, temperature: float, regularization: float):
        if centroids.ndim != 2 or centroids.shape[0] < 1:
            raise ValueError(f"centroids: expected shape (N >= 1, d), got {tuple(centroids.shape)}.")
        n, d = centroids.shape
        if matrices.shape != (n, d, d):
            raise ValueError(f"matrices: expected shape {(n, d, d)} to match centroids, got {tuple(matrices.shape)}.")
        if temperature <= 0 or regularization <= 0:
            raise ValueError(f"temperature and regularization must be > 0, got {temperature}, {regularization}.")
        self.centroids = centroids
        self.matrices = matrices
        self.temperature = float(temperature)
        self.regularization = float(regularization)

    @property
    def latent_size(self) -> int:
        return int(self.centroids.shape[1])

    def _weights(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = z[:, None, :] - self.centroids[None]  # (B, N, d)
        w = torch.exp(-(diff**2).sum(-1) / self.temperature**2)  # (B, N)
        return w, diff

    def inverse_metric(self, z: torch.Tensor) -> torch.Tensor:
        """``G^-1(z)``, shape ``(B, d, d)``, symmetric positive definite."""
        w, _ = self._weights(z)
        eye = torch.eye(self.latent_size, dtype=z.dtype, device=z.device)
        return torch.einsum("bn,nij->bij", w, self.matrices) + self.regularization * eye

    def metric(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)``, shape ``(B, d, d)``."""
        return torch.cholesky_inverse(safe_cholesky(self.inverse_metric(z))).to(z.dtype)

    def log_sqrt_det_inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``log sqrt(det G^-1(z))``, shape ``(B,)``: the log-density (up to a constant) the manifold sampler targets."""
        chol = _chol(self.inverse_metric(z))
        return torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)

    def grad_log_sqrt_det_inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(``log sqrt(det G^-1(z))``, its gradient w.r.t. ``z``), shapes ``(B,)`` and ``(B, d)``.

        ``d/dz_k log det A = tr(A^-1 dA/dz_k)`` with ``dA/dz_k = -2/T^2 sum_i w_i (z_k - c_ik) M_i``."""
        w, diff = self._weights(z)
        eye = torch.eye(self.latent_size, dtype=z.dtype, device=z.device)
        a = torch.einsum("bn,nij->bij", w, self.matrices) + self.regularization * eye
        chol = safe_cholesky(a)
        a_inv = torch.cholesky_inverse(chol).to(z.dtype)
        chol = chol.to(z.dtype)
        tr = torch.einsum("bij,nji->bn", a_inv, self.matrices)  # tr(A^-1 M_i)
        grad = -(1.0 / self.temperature**2) * torch.einsum("bn,bnk->bk", w * tr, diff)
        value = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return value, grad

    def quadratic_form_gradient(self, z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Gradient w.r.t. ``z`` of ``0.5 q^T G^-1(z) q`` (``q`` fixed), shape ``(B, d)``."""
        w, diff = self._weights(z)
        qmq = torch.einsum("bi,nij,bj->bn", q, self.matrices, q)
        return -(1.0 / self.temperature**2) * torch.einsum("bn,bnk->bk", w * qmq, diff)


class RiemannianHamiltonianVAE(VarAutoEncoder):
    """RHVAE with MONAI's convolutional VAE encoder/decoder, for ``spatial_dims`` 2 or 3.

    Args:
        spatial_dims: 2 or 3.
        in_shape: ``(C, *spatial)`` of the images; every spatial size must be divisible by ``prod(strides)``.
        latent_size: ``d``.
        channels, strides, kernel_size, num_res_units, act, norm: the encoder/decoder, as in
            :class:`~monai.networks.nets.VarAutoEncoder` (use per-sample norms only: instance, not batch, since
            the leapfrog gradients are taken per sample).
        metric_hidden: width of the hidden layer of the metric network (its input is the flattened encoder
            feature map; outputs: ``d`` log-diagonal entries and ``d(d-1)/2`` strictly-lower entries of ``L``).
        n_lf: leapfrog steps (paper: 3).
        eps_lf: leapfrog step size (paper: 0.01).
        beta_zero: initial tempering ``beta_0`` in (0, 1] (authors' code: 0.3).
        temperature: ``T`` of the metric (paper: 0.8).
        regularization: ``lambda`` of the metric (paper: 1e-3).
        min_centroids: the smallest number of training images the metric bank accepts.
        detach_metric_features: the metric network reads the encoder features without sending gradients
            back into the encoder (the authors use a separate network on the image; sharing the trunk
            without this let the metric terms swamp the reconstruction gradients in our runs).
        max_log_diag: bound on ``|log L_ii|``, so ``M_i = L_i L_i^T`` stays below ``exp(2 max_log_diag)``. The
            default 8 keeps earlier checkpoints loading unchanged; 4 (the VAE bundle's setting) stopped the
            leapfrog blow-ups that 8 allowed on some training seeds of the 64x64 brain benchmark (the inverse
            metric's largest eigenvalue grew 15 -> 6.5e5 in five steps, then the loss went non-finite).

    ``forward(x)`` (``x`` in [0, 1], ``(B, C, *spatial)``) returns a dict with ``recon`` (sigmoid output),
    ``logits``, ``z`` (``z_K``), ``z0``, ``rho`` (``rho_K``), ``eps0``, ``mu``, ``logvar`` and ``inverse_metric``
    (``G^-1(z_K)``, ``(B, d, d)``): what :class:`monai_ext.apps.vae_manifold_augmentation.RHVAEElboLoss` needs. In training mode the
    metric is built from the batch; in eval mode from the metric bank.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_shape: Sequence[int],
        latent_size: int = 10,
        channels: Sequence[int] = (16, 32, 64),
        strides: Sequence[int] = (2, 2, 2),
        kernel_size: Sequence[int] | int = 3,
        num_res_units: int = 0,
        act: tuple | str | None = Act.PRELU,
        norm: tuple | str = Norm.INSTANCE,
        metric_hidden: int = 256,
        n_lf: int = 3,
        eps_lf: float = 0.01,
        beta_zero: float = 0.3,
        temperature: float = 0.8,
        regularization: float = 1e-3,
        min_centroids: int = 2,
        detach_metric_features: bool = True,
        max_log_diag: float = 8.0,
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if len(in_shape) != spatial_dims + 1:
            raise ValueError(f"in_shape must be (C, *spatial) with {spatial_dims} spatial sizes, got {in_shape}.")
        factor = int(math.prod(strides))
        if any(int(s) % factor for s in in_shape[1:]):
            raise ValueError(f"in_shape {tuple(in_shape)}: spatial sizes must be divisible by prod(strides) = {factor}.")
        super().__init__(
            spatial_dims=spatial_dims,
            in_shape=in_shape,
            out_channels=int(in_shape[0]),
            latent_size=latent_size,
            channels=channels,
            strides=strides,
            kernel_size=kernel_size,
            num_res_units=num_res_units,
            act=act,
            norm=norm,
            use_sigmoid=True,
        )
        self.hparams = dict(
            spatial_dims=spatial_dims, in_shape=[int(s) for s in in_shape], latent_size=latent_size,
            channels=list(channels), strides=list(strides), kernel_size=kernel_size, num_res_units=num_res_units,
            act=act, norm=norm, metric_hidden=metric_hidden, n_lf=n_lf, eps_lf=eps_lf, beta_zero=beta_zero,
            temperature=temperature, regularization=regularization, min_centroids=min_centroids,
            detach_metric_features=detach_metric_features, max_log_diag=max_log_diag,
        )  # fmt: skip
        self.detach_metric_features = bool(detach_metric_features)
        self._init_hamiltonian(latent_size, n_lf, eps_lf, beta_zero, temperature, regularization, min_centroids, max_log_diag)
        d = latent_size
        self.metric_net = nn.Sequential(nn.Linear(self.mu.in_features, metric_hidden), nn.ReLU(), nn.Linear(metric_hidden, d + d * (d - 1) // 2))

    def _init_hamiltonian(self, latent_size, n_lf, eps_lf, beta_zero, temperature, regularization, min_centroids, max_log_diag) -> None:
        """Settings of the metric and the leapfrog integrator, and the (empty) metric bank."""
        if not 0 < beta_zero <= 1:
            raise ValueError(f"beta_zero must be in (0, 1], got {beta_zero}.")
        if n_lf < 0 or eps_lf <= 0 or temperature <= 0 or regularization <= 0:
            raise ValueError("n_lf >= 0 and eps_lf, temperature, regularization > 0 are required.")
        if max_log_diag <= 0:
            raise ValueError(f"max_log_diag must be > 0, got {max_log_diag}.")
        self.n_lf = int(n_lf)
        self.eps_lf = float(eps_lf)
        self.beta_zero = float(beta_zero)
        self.temperature = float(temperature)
        self.regularization = float(regularization)
        self.min_centroids = int(min_centroids)
        self.max_log_diag = float(max_log_diag)
        d = int(latent_size)
        self.register_buffer("tril_index", torch.tril_indices(d, d, offset=-1), persistent=False)
        self.register_buffer("bank_centroids", torch.zeros(0, d))
        self.register_buffer("bank_matrices", torch.zeros(0, d, d))
        #: True for a checkpoint saved without the metric network (``save_generator(generation_only=True)``): it
        #: samples and decodes from its metric bank but cannot encode, so it can neither train nor rebuild the bank.
        self.generation_only = False

    # ---- encoder / metric network ----
    def encode_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mu, logvar, L)`` with shapes ``(B, d)``, ``(B, d)``, ``(B, d, d)`` (``L`` lower triangular)."""
        self._check_input(x)
        h = self.intermediate(self.encode(x)).flatten(1)
        low = self._lower_triangular(self.metric_net(h.detach() if self.detach_metric_features else h))
        return self.mu(h), self.logvar(h), low

    def _lower_triangular(self, out: torch.Tensor) -> torch.Tensor:
        """``L`` ``(B, d, d)`` from the metric network's output ``(B, d + d(d-1)/2)``: clamped log-diagonal, free
        strictly-lower part."""
        d = self.latent_size
        low = torch.diag_embed(torch.exp(out[:, :d].clamp(-self.max_log_diag, self.max_log_diag)))
        rows = torch.arange(out.shape[0], device=out.device)[:, None]
        return low.index_put((rows, self.tril_index[0][None], self.tril_index[1][None]), out[:, d:])

    def _check_input(self, x: torch.Tensor) -> None:
        """Refuse to encode without a metric network, or images not of ``(B, C, *spatial)``."""
        if self.generation_only:
            raise RuntimeError(
                "this RHVAE was saved for generation only (without its metric network): it samples and decodes, but "
                "cannot encode images or train; use a full checkpoint written by train_vae.yaml."
            )
        want = (self.in_channels, *self.in_shape)
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != tuple(want):
            raise ValueError(f"RHVAE input: expected shape (B, {', '.join(map(str, want))}), got {tuple(x.shape)}.")

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``(B, C, *spatial)`` for latent codes ``z`` ``(B, d)``."""
        return self.decode_forward(z, use_sigmoid=False)

    def decode_images(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded images in [0, 1], ``(B, C, *spatial)``."""
        return torch.sigmoid(self.decode_logits(z))

    # ---- metric ----
    def latent_metric(self) -> RiemannianLatentMetric:
        """The frozen metric built from the metric bank (after :meth:`update_metric_bank`)."""
        n = self.bank_centroids.shape[0]
        if n < self.min_centroids:
            raise RuntimeError(
                f"RHVAE metric bank holds {n} centroid(s); at least {self.min_centroids} are needed: call "
                "update_metric_bank(training images) after training (or load a checkpoint that has one)."
            )
        return RiemannianLatentMetric(self.bank_centroids, self.bank_matrices, self.temperature, self.regularization)

    def inverse_metric(self, z: torch.Tensor) -> torch.Tensor:
        """``G^-1(z)`` from the metric bank, ``(B, d, d)``."""
        return self.latent_metric().inverse_metric(z)

    def metric(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` from the metric bank, ``(B, d, d)``."""
        return self.latent_metric().metric(z)

    @torch.no_grad()
    def update_metric_bank(self, images, batch_size: int = 64, image_key: str = "image") -> int:
        """Encode every training image and store the centroids ``c_i = mu(x_i)`` and ``M_i = L_i L_i^T``.

        Args:
            images: a tensor ``(N, C, *spatial)``, an iterable of such batches, or of dicts with ``image_key``
                (e.g. a MONAI ``DataLoader``).
        Returns:
            the number of centroids stored.
        Raises:
            ValueError: fewer than ``min_centroids`` images, or images of the wrong shape.
        """
        was_training = self.training
        self.eval()
        try:
            device = self.bank_centroids.device
            batches = torch.split(images, batch_size) if isinstance(images, torch.Tensor) else images
            cents, mats = [], []
            for b in batches:
                x = b[image_key] if isinstance(b, dict) else b
                x = torch.as_tensor(x, dtype=torch.float32).to(device)
                mu, _, low = self.encode_all(x)
                cents.append(mu)
                mats.append(low @ low.transpose(-1, -2))
            n = sum(c.shape[0] for c in cents)
            if n < self.min_centroids:
                raise ValueError(f"update_metric_bank: {n} training image(s) given; the metric needs at least {self.min_centroids}.")
            self.bank_centroids = torch.cat(cents).detach()
            self.bank_matrices = torch.cat(mats).detach()
        finally:
            self.train(was_training)
        return n

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the bank's size is only known from the checkpoint: resize before the copy
        for name in ("bank_centroids", "bank_matrices"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- Hamiltonian dynamics ----
    def _potential_grad(self, x: torch.Tensor, z: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoder logits at z, gradient w.r.t. z of -log p(x|z) - log N(z; 0, I))."""
        logits = self.decode_logits(z)
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") + 0.5 * (z**2).sum()
        (g,) = torch.autograd.grad(nll, z, create_graph=create_graph)
        return logits, g

    @staticmethod
    def _metric_grad(metric: RiemannianLatentMetric, z: torch.Tensor, rho: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """Partial derivative w.r.t. z of ``0.5 log det G(z) + 0.5 rho^T G^-1(z) rho`` at fixed ``rho``.

        ``rho`` itself depends on ``z`` (through the decoder gradient of earlier steps); differentiating w.r.t. a
        fresh node ``zv`` of ``z`` keeps that path out, as the generalised leapfrog's partial derivative asks (and
        keeps the decoder at second-order derivatives, which torch >= 2.14 requires of its normalisation layers).
        The graph from the result back to ``z`` is kept for training."""
        zv = z.view_as(z)
        g_inv = metric.inverse_metric(zv)
        value = 0.5 * torch.einsum("bi,bij,bj->", rho, g_inv, rho) - torch.log(torch.diagonal(_chol(g_inv), dim1=-2, dim2=-1)).sum()
        (g,) = torch.autograd.grad(value, zv, create_graph=create_graph)
        return g

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.enable_grad():
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        train = self.training
        mu, logvar, low = self.encode_all(x)
        if train:
            if x.shape[0] < self.min_centroids:
                raise ValueError(f"RHVAE training batch of {x.shape[0]}: the metric needs at least {self.min_centroids} images per batch.")
            metric = RiemannianLatentMetric(mu, low @ low.transpose(-1, -2), self.temperature, self.regularization)
        else:
            metric = self.latent_metric()
        eps0 = torch.randn_like(mu)
        z0 = mu + eps0 * torch.exp(0.5 * logvar)
        z = z0 if z0.requires_grad else z0.detach().requires_grad_(True)
        # rho_0 ~ N(0, G(z0) / beta_0): with G^-1 = C C^T, C^-T gamma has covariance G
        chol = _chol(metric.inverse_metric(z))
        gamma = torch.randn_like(z)
        rho = torch.linalg.solve_triangular(chol.transpose(-1, -2), gamma[..., None], upper=True)[..., 0] / math.sqrt(self.beta_zero)
        beta_sqrt_old = math.sqrt(self.beta_zero)
        logits, g_pot = self._potential_grad(x, z, create_graph=train)
        h = 0.5 * self.eps_lf
        for k in range(1, self.n_lf + 1):
            if not train:  # no graph is kept outside training: restart from leaves
                z, rho, g_pot = z.detach().requires_grad_(True), rho.detach(), g_pot.detach()
            # generalised leapfrog: implicit half step in rho, implicit full step in z, explicit half step in rho
            rho_half = rho
            for _ in range(3):
                rho_half = rho - h * (g_pot + self._metric_grad(metric, z, rho_half, train))
            v0 = torch.einsum("bij,bj->bi", metric.inverse_metric(z), rho_half)
            z_new = z
            for _ in range(3):
                z_new = z + h * (v0 + torch.einsum("bij,bj->bi", metric.inverse_metric(z_new), rho_half))
            z = z_new if train else z_new.detach().requires_grad_(True)
            rho_half = rho_half if train else rho_half.detach()
            logits, g_pot = self._potential_grad(x, z, create_graph=train)
            rho = rho_half - h * (g_pot + self._metric_grad(metric, z, rho_half, train))
            beta_sqrt = tempering_schedule(k, self.n_lf, self.beta_zero)
            rho = rho * (beta_sqrt_old / beta_sqrt)
            beta_sqrt_old = beta_sqrt
        if not train:
            z, rho, logits = z.detach(), rho.detach(), logits.detach()
        return {
            "recon": torch.sigmoid(logits),
            "logits": logits,
            "z": z,
            "z0": z0,
            "rho": rho,
            "eps0": eps0,
            "mu": mu,
            "logvar": logvar,
            "inverse_metric": metric.inverse_metric(z),
        }

    # ---- checkpoints ----
    def save_generator(self, path: str | Path, generation_only: bool = False, **extra) -> Path:
        """Write ``{"hparams", "state_dict", **extra}`` to ``path`` atomically (temp file, then rename).

        ``generation_only=True`` leaves out the metric network (about 90 % of the file at the bundle's size): what
        sampling and decoding need (the metric bank and the decoder) stays, and :func:`load_rhvae` gives a network
        that generates exactly as the full one but refuses to encode or train."""
        state = self.state_dict()
        if generation_only or self.generation_only:
            state = {k: v for k, v in state.items() if not k.startswith("metric_net.")}
            extra = {**extra, "generation_only": True}
        payload = {"hparams": self.hparams, "state_dict": state, **extra}
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))


class RiemannianHamiltonianMLPVAE(RiemannianHamiltonianVAE):
    """RHVAE with the authors' fully connected networks, for small images such as handwritten digits.

    As in the public code of Chadebec & Allassonniere (DGM4MICCAI 2021): encoder ``D -> hidden (ReLU) -> (mu,
    logvar)``, decoder ``d -> hidden (ReLU) -> D`` with a sigmoid output (Bernoulli likelihood), and a separate
    metric network on the image, ``D -> hidden (ReLU) -> (d log-diagonal, d(d-1)/2 strictly-lower entries of
    L)``; ``D = prod(in_shape)``. Everything else (metric, metric bank, tempered generalised leapfrog,
    checkpoints, samplers) is :class:`RiemannianHamiltonianVAE`'s.

    Args:
        in_shape: ``(C, *spatial)`` of the images (any number of spatial dimensions).
        latent_size: ``d`` (the authors' released models: 2 and 10).
        hidden: width of the hidden layers (authors: 400).
        n_lf, eps_lf, beta_zero, temperature, regularization, min_centroids, max_log_diag: as
            :class:`RiemannianHamiltonianVAE` (the authors' d = 10 models: 3, 0.01, 0.3, 1.5, 1e-3).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        latent_size: int = 10,
        hidden: int = 400,
        n_lf: int = 3,
        eps_lf: float = 0.01,
        beta_zero: float = 0.3,
        temperature: float = 1.5,
        regularization: float = 1e-3,
        min_centroids: int = 2,
        max_log_diag: float = 8.0,
    ) -> None:
        nn.Module.__init__(self)
        if len(in_shape) < 2 or any(int(s) < 1 for s in in_shape):
            raise ValueError(f"in_shape must be (C, *spatial) with positive sizes, got {tuple(in_shape)}.")
        self.in_channels = int(in_shape[0])
        self.in_shape = tuple(int(s) for s in in_shape[1:])
        self.latent_size = int(latent_size)
        self.hparams = dict(
            architecture="mlp", in_shape=[int(s) for s in in_shape], latent_size=latent_size, hidden=hidden, n_lf=n_lf,
            eps_lf=eps_lf, beta_zero=beta_zero, temperature=temperature, regularization=regularization,
            min_centroids=min_centroids, max_log_diag=max_log_diag,
        )  # fmt: skip
        self._init_hamiltonian(latent_size, n_lf, eps_lf, beta_zero, temperature, regularization, min_centroids, max_log_diag)
        size, d = int(math.prod(in_shape)), self.latent_size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, d)
        self.logvar = nn.Linear(hidden, d)
        self.decoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, size))
        self.metric_net = nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, d + d * (d - 1) // 2))

    def encode_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_input(x)
        h = self.encoder(x)
        return self.mu(h), self.logvar(h), self._lower_triangular(self.metric_net(x))

    def decode_forward(self, z: torch.Tensor, use_sigmoid: bool = True) -> torch.Tensor:
        out = self.decoder(z).reshape(z.shape[0], self.in_channels, *self.in_shape)
        return torch.sigmoid(out) if use_sigmoid else out


def load_rhvae(path: str | Path, map_location: str | torch.device = "cpu") -> RiemannianHamiltonianVAE:
    """Rebuild a :class:`RiemannianHamiltonianVAE` from a file written by :meth:`~RiemannianHamiltonianVAE.save_generator`
    (eval mode). Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or not such a file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: RHVAE checkpoint not found (expected a file written by the train_vae config).")
    ckpt = torch.load(str(p), map_location=map_location, weights_only=False)
    if not isinstance(ckpt, dict) or "hparams" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{p}: not an RHVAE checkpoint (expected keys 'hparams' and 'state_dict').")
    hparams = dict(ckpt["hparams"])
    arch = hparams.pop("architecture", "conv")
    if arch not in ("conv", "mlp"):
        raise ValueError(f"{p}: unknown RHVAE architecture {arch!r} (expected 'conv' or 'mlp').")
    net = RiemannianHamiltonianMLPVAE(**hparams) if arch == "mlp" else RiemannianHamiltonianVAE(**hparams)
    if ckpt.get("generation_only"):
        if len(ckpt["state_dict"].get("bank_centroids", ())) == 0:
            raise ValueError(f"{p}: a generation-only RHVAE checkpoint without a metric bank cannot generate.")
        missing, unexpected = net.load_state_dict(ckpt["state_dict"], strict=False)
        if unexpected or any(not k.startswith("metric_net.") for k in missing):
            raise ValueError(f"{p}: generation-only RHVAE checkpoint with missing {missing} / unexpected {unexpected} keys.")
        net.generation_only = True
    else:
        net.load_state_dict(ckpt["state_dict"])
    return net.to(map_location).eval()
