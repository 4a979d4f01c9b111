"""HPI's conditional hierarchical VAE for ultrasound inpainting (Hung, Sun, Chen, Galeotti, "Hierarchical Probabilistic
Ultrasound Image Inpainting via Variational Inference", DGM4MICCAI 2021, Sect. 2.1-2.2).

Two U-Net-like branches of the same shape: the prior sees the masked image and the hole mask, the posterior also the
complete image. Every decoder level holds a Gaussian latent: the prior gives ``p(z_i | x, z_>i) = N(mu_i, sigma_i^2)``,
the posterior a residual of it, ``q = N(mu_i + delta_mu_i, (sigma_i * delta_sigma_i)^2)`` (NVAE). In training the
posterior's latents drive the prior's decoder (as the hierarchical probabilistic U-Net does; the paper does not say
which decoder produces the reconstruction); at inference the prior is sampled top-down and the output composited with
the known pixels: ``mask * x + (1 - mask) * y_hat``. Each level is HPI's convolution block (conv -> batch norm ->
Swish -> CBAM, :class:`~monai_ext.networks.ConvNormSwishCBAM`); max-pooling and transposed convolutions at the
dilation-1 levels, dilated convolutions without resampling at the deeper ones. ``latent_channels=0`` gives the same
network without latents, a deterministic U-Net inpainter (the paper's HPI-woVI).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_ext.networks import ConvNormSwishCBAM

__all__ = ["HPIBranch", "HPIInpaintingNet", "hpi_network_input"]


def hpi_network_input(image: torch.Tensor, hole_mask: torch.Tensor) -> torch.Tensor:
    """The bundle network's input ``(B, C + 1, H, W)``: the image channels, then the hole mask (1 = missing)."""
    if image.ndim != 4 or hole_mask.ndim != 4 or hole_mask.shape[1] != 1 or image.shape[2:] != hole_mask.shape[2:] \
            or image.shape[0] != hole_mask.shape[0]:
        raise ValueError(f"image {tuple(image.shape)} and hole mask {tuple(hole_mask.shape)}: expected (B, C, H, W) and "
                         f"(B, 1, H, W) on one grid.")
    return torch.cat([image, hole_mask.to(image.dtype)], dim=1)


class _EncoderLevel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dilation: int, pool: bool, reduction: int) -> None:
        super().__init__()
        self.pool = bool(pool)
        self.block = ConvNormSwishCBAM(2, in_channels, out_channels, dilation=dilation, reduction=reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool:
            x = F.max_pool2d(x, 2)
        return self.block(x)


class _DecoderLevel(nn.Module):
    """One decoder level: a Gaussian head on the incoming features ``d`` (``2 * latent`` channels: mean and log
    standard deviation), the block on ``[d, z]``, then up-sampling to the next level and concatenation of its skip."""

    def __init__(self, in_channels: int, out_channels: int, latent: int, dilation: int, next_channels: int,
                 upsample: bool, reduction: int, has_block: bool = True) -> None:
        super().__init__()
        self.latent = int(latent)
        self.head = nn.Conv2d(in_channels, 2 * self.latent, 1) if self.latent else nn.Identity()
        self.has_block = bool(has_block)
        self.block = (ConvNormSwishCBAM(2, in_channels + self.latent, out_channels, dilation=dilation, reduction=reduction)
                      if has_block else nn.Identity())
        self.has_up = bool(has_block and next_channels > 0)
        if not self.has_up:
            self.up: nn.Module = nn.Identity()
        elif upsample:
            self.up = nn.ConvTranspose2d(out_channels, next_channels, 2, stride=2)
        else:
            self.up = nn.Conv2d(out_channels, next_channels, 1)

    def gaussian(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log standard deviation ``(B, latent, h, w)`` of this level's Gaussian."""
        mu, log_sigma = self.head(d).chunk(2, dim=1)
        return mu, log_sigma.clamp(-7.0, 3.0)

    def decode(self, d: torch.Tensor, z: Optional[torch.Tensor], skip: Optional[torch.Tensor]) -> torch.Tensor:
        """Features for the next level (``[up(block([d, z])), skip]``), or the block's output at the last level."""
        h = self.block(torch.cat([d, z], dim=1) if z is not None else d)
        if self.has_up and skip is not None:
            return torch.cat([self.up(h), skip], dim=1)
        return h

    def forward(self, d: torch.Tensor, skip: Optional[torch.Tensor], temperature: float) -> torch.Tensor:
        """Decode with ``z`` drawn from this level's Gaussian at ``temperature`` (0: its mean)."""
        z: Optional[torch.Tensor] = None
        if self.latent > 0:
            mu, log_sigma = self.gaussian(d)
            z = mu + temperature * torch.exp(log_sigma) * torch.randn_like(mu) if temperature > 0 else mu
        return self.decode(d, z, skip)


class HPIBranch(nn.Module):
    """One U-Net-like branch (prior or posterior): ``encode(x)`` gives the level features, deepest last; ``decoder``
    holds the levels deepest first. The posterior branch (``decode_last=False``) needs no block at the top level.

    Args:
        in_channels: input channels.
        channels: features per level (e.g. ``(16, 32, 64, 128)``).
        dilations: per level; a dilation-1 level is followed by max-pooling, deeper levels keep the grid.
        latent_channels: Gaussian latent channels per decoder level (0: none).
        reduction: CBAM channel-MLP reduction.
        decode_last: build the top level's block (the prior's output features).
    """

    def __init__(self, in_channels: int, channels: Sequence[int], dilations: Sequence[int], latent_channels: int,
                 reduction: int = 4, decode_last: bool = True) -> None:
        super().__init__()
        ch, dil = [int(c) for c in channels], [int(d) for d in dilations]
        n = len(ch)
        pools = [k > 0 and dil[k - 1] == 1 for k in range(n)]
        self.encoder = nn.ModuleList(
            _EncoderLevel(in_channels if k == 0 else ch[k - 1], ch[k], dil[k], pools[k], reduction) for k in range(n))
        levels = []
        for k in reversed(range(n)):
            d_in = ch[k] if k == n - 1 else 2 * ch[k]
            levels.append(_DecoderLevel(d_in, ch[k], latent_channels, dil[k], ch[k - 1] if k > 0 else 0,
                                        upsample=pools[k], reduction=reduction, has_block=decode_last or k > 0))
        self.decoder = nn.ModuleList(levels)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of every encoder level, shallowest first."""
        feats: list[torch.Tensor] = []
        for level in self.encoder:
            x = level(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor, temperature: float = 0.0) -> torch.Tensor:
        """Encode, then decode top-down with latents drawn from this branch's own Gaussians (the prior's path)."""
        skips = self.encode(x)
        n = len(skips)
        d = skips[n - 1]
        for i, level in enumerate(self.decoder):
            skip: Optional[torch.Tensor] = skips[n - 2 - i] if i < n - 1 else None
            d = level(d, skip, temperature)
        return d


class HPIInpaintingNet(nn.Module):
    """HPI: prior and posterior :class:`HPIBranch` and an output convolution (sigmoid: images in [0, 1]).

    ``forward(x)``, with ``x`` = :func:`hpi_network_input` ``(B, C + 1, H, W)`` (image, then hole mask; ``H, W``
    multiples of ``2 ** (number of dilation-1 levels)``), returns one completion ``(B, C, H, W)`` composited with the
    known pixels, decoded with the prior's latents at :attr:`temperature` (0 by default: each level's prior mean, the
    deterministic "most likely" completion that TorchScript export and verification use). :meth:`sample` draws
    several completions, :meth:`reconstruct` is the training path.

    Args:
        in_channels: image channels (1 for grey B-mode).
        channels: features per level (the paper: 64-128-256-512-1024-1024 over 6 levels; the CPU reproduction 16-32-64-128).
        dilations: per level (the paper: 1 at the outer levels, 2 and 4 in the middle).
        latent_channels: Gaussian latent channels per decoder level; 0 builds no posterior (HPI-woVI).
        reduction: CBAM channel-MLP reduction.
        temperature: latent sampling temperature of :meth:`forward`.
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128),
                 dilations: Sequence[int] = (1, 1, 2, 4), latent_channels: int = 4, reduction: int = 4,
                 temperature: float = 0.0) -> None:
        super().__init__()
        if len(channels) != len(dilations) or len(channels) < 2:
            raise ValueError(f"channels {list(channels)} and dilations {list(dilations)}: need one dilation per level, >= 2 levels.")
        if int(latent_channels) < 0 or int(in_channels) < 1:
            raise ValueError(f"in_channels >= 1 and latent_channels >= 0 expected, got {in_channels}, {latent_channels}.")
        self.in_channels, self.latent_channels = int(in_channels), int(latent_channels)
        self.temperature = float(temperature)
        self.prior = HPIBranch(self.in_channels + 1, channels, dilations, self.latent_channels, reduction)
        self.posterior = (HPIBranch(2 * self.in_channels + 1, channels, dilations, self.latent_channels, reduction,
                                    decode_last=False) if self.latent_channels else None)
        self.output = nn.Conv2d(int(channels[0]), self.in_channels, 1)
        self.grid_multiple = 2 ** sum(1 for d in list(dilations)[:-1] if int(d) == 1)
        self.config = {"in_channels": self.in_channels, "channels": [int(c) for c in channels],
                       "dilations": [int(d) for d in dilations], "latent_channels": self.latent_channels,
                       "reduction": int(reduction)}

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.in_channels
        image, hole = x[:, :c], (x[:, c:c + 1] > 0.5).to(x.dtype)
        return image, hole, torch.cat([image * (1 - hole), hole], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One completion of ``x`` (image channels, then the hole mask), composited with the known pixels."""
        image, hole, inp = self._split(x)
        y_hat = torch.sigmoid(self.output(self.prior(inp, self.temperature)))
        return hole * y_hat + (1 - hole) * image

    def sample(self, x: torch.Tensor, num_samples: int = 8, temperature: float = 1.0) -> torch.Tensor:
        """``num_samples`` completions ``(K, B, C, H, W)`` from the prior at ``temperature``, composited; the encoder
        runs once."""
        image, hole, inp = self._split(x)
        skips = self.prior.encode(inp)
        n = len(skips)
        out = []
        for _ in range(int(num_samples)):
            d = skips[-1]
            for i, level in enumerate(self.prior.decoder):
                d = level(d, skips[n - 2 - i] if i < n - 1 else None, float(temperature))
            y_hat = torch.sigmoid(self.output(d))
            out.append(hole * y_hat + (1 - hole) * image)
        return torch.stack(out)

    def reconstruct(self, image: torch.Tensor, hole_mask: torch.Tensor, target: torch.Tensor
                    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """Training path: ``(y_hat, kl_terms)``. ``y_hat`` ``(B, C, H, W)`` (not composited) is the prior decoder's
        output with latents drawn from the posterior (which sees ``target``); ``kl_terms`` holds per level
        ``(delta_mu, log_delta_sigma, prior_log_sigma)`` for :class:`~monai_ext.losses.ResidualGaussianKLLoss`
        (empty without latents)."""
        x = hpi_network_input(image, hole_mask)
        _, hole, inp = self._split(x)
        if target.shape != image.shape:
            raise ValueError(f"target {tuple(target.shape)} must have the image's shape {tuple(image.shape)}.")
        sp = self.prior.encode(inp)
        n = len(sp)
        kl_terms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        if self.posterior is None:
            d = sp[-1]
            for i, level in enumerate(self.prior.decoder):
                d = level.decode(d, None, sp[n - 2 - i] if i < n - 1 else None)
            return torch.sigmoid(self.output(d)), kl_terms
        sq = self.posterior.encode(torch.cat([inp, target], dim=1))
        dp, dq = sp[-1], sq[-1]
        for i, (lp, lq) in enumerate(zip(self.prior.decoder, self.posterior.decoder)):
            mu, log_sigma = lp.gaussian(dp)
            delta_mu, log_delta = lq.gaussian(dq)
            z = mu + delta_mu + torch.exp(log_sigma + log_delta) * torch.randn_like(mu)
            kl_terms.append((delta_mu, log_delta, log_sigma))
            dp = lp.decode(dp, z, sp[n - 2 - i] if i < n - 1 else None)
            if i < n - 1:
                dq = lq.decode(dq, z, sq[n - 2 - i])
        return torch.sigmoid(self.output(dp)), kl_terms
