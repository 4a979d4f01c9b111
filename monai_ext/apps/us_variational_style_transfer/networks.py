"""Variational style transfer for B-mode ultrasound (Hung & Galeotti, "Ultrasound Variational Style Transfer
to Generate Images Beyond the Observed Domain", DGM4MICCAI 2021).

Three parts, all U-Net pieces built from :class:`SwishConvBlock` (two ``conv3x3 -> batch norm -> swish``):

- :class:`USContentEncoder` ``E_c``: a U-Net encoder; its feature maps at every scale are the content
  ``f_c^(i)``. Pre-trained as the encoder of :class:`USContentAutoencoder`.
- :class:`USStyleEncoder` ``E_s``: the encoder of a VAE with latent variables at every scale: a head per
  scale gives ``q(z_i | I_s) = N(mu_i, sigma_i^2)``; ``z_i`` is mapped to the style statistics (per-channel
  mean and standard deviation, what AdaIN takes from ``f_s^(i)``).
- :class:`USAdaINDecoder` ``D``: a U-Net decoder that re-normalises its features with
  :func:`adaptive_instance_norm` (Eq. 2 of the paper) at every scale, with the content features as skips.

:class:`USVariationalStyleTransfer` wires them together: a content image plus a style image (``z`` drawn
from ``q``), a style sampled from the prior ``N(0, spread^2 I)`` (styles beyond the observed ones for
``spread > 1``), or an interpolation of two styles' means.

Deliberate deviation from the paper: the paper's latents are spatial maps (millions of numbers per image),
of which AdaIN only uses per-channel means and standard deviations; drawing such maps from ``N(0, I)``
gives nearly the same statistics every time. Here each scale's latent is a vector of ``latent_dims``
numbers (global-average-pooled head), so that prior samples and interpolations do change the style.
Widths are configurable (paper: 64, 128, 256, 512, 1024 at 256x256; default here: 16, 32, 64, 128, which
trains on a CPU at 64x64).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution

from ...engines.distributed import synced_optimizer_step
from ...io import save_weights, weights_info_path

__all__ = [
    "SwishConvBlock",
    "adaptive_instance_norm",
    "USContentEncoder",
    "USContentAutoencoder",
    "USStyleEncoder",
    "USAdaINDecoder",
    "USVariationalStyleTransfer",
    "USStyleTransferIteration",
    "save_us_style_checkpoint",
    "checkpoint_info_path",
    "load_us_style_transfer",
    "load_us_content_encoder",
]

PathLike = Union[str, "os.PathLike[str]"]


class SwishConvBlock(nn.Sequential):
    """The paper's ConvBlock: ``[conv3x3 -> batch norm -> swish] x 2`` (MONAI ``Convolution`` units).

    Args:
        spatial_dims: 2 for images (3 works too).
        in_channels: input channels.
        out_channels: output channels of both convolutions.
        act: MONAI activation name (``"swish"``: Ramachandran et al. 2017; scriptable).
        norm: MONAI normalisation name.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, act: str = "swish", norm: str = "batch"):
        super().__init__(
            Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, act=act, norm=norm),
            Convolution(spatial_dims, out_channels, out_channels, kernel_size=3, act=act, norm=norm),
        )


def adaptive_instance_norm(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017; Eq. 2 of Hung & Galeotti): ``std * (x - mu(x)) / sigma(x) + mean``.

    Args:
        x: features (B, C, *spatial); normalised per sample and channel over space.
        mean: target per-channel mean (B, C).
        std: target per-channel standard deviation (B, C).
        eps: added to the variance of ``x``.
    """
    dims = [d for d in range(2, x.dim())]
    mu = x.mean(dim=dims, keepdim=True)
    sigma = torch.sqrt(x.var(dim=dims, keepdim=True, unbiased=False) + eps)
    shape = [x.shape[0], x.shape[1]] + [1] * (x.dim() - 2)
    return std.reshape(shape) * (x - mu) / sigma + mean.reshape(shape)


def _as_list(value: int | Sequence[int], n: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [int(value)] * n
    out = [int(v) for v in value]
    if len(out) != n:
        raise ValueError(f"{name} must be an int or {n} ints (one per scale), got {list(value)}.")
    return out


def _check_channels(channels: Sequence[int]) -> list[int]:
    chans = [int(c) for c in channels]
    if len(chans) < 2 or min(chans) < 1:
        raise ValueError(f"channels must list >= 2 positive widths (one per scale), got {list(channels)}.")
    return chans


class USContentEncoder(nn.Module):
    """U-Net encoder ``E_c``: a :class:`SwishConvBlock` per scale, max-pooling between them.

    ``forward(x)`` returns the feature maps of every scale, finest first: ``channels[i]`` channels at
    ``1 / 2**i`` of the input size (the input size must be divisible by ``2 ** (len(channels) - 1)``).
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        chans = _check_channels(channels)
        self.spatial_dims = int(spatial_dims)
        self.in_channels = int(in_channels)
        self.channels = chans
        pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        self.pool = pool(2)
        self.blocks = nn.ModuleList(
            [SwishConvBlock(spatial_dims, c_in, c_out) for c_in, c_out in zip([in_channels] + chans[:-1], chans)]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = self.pool(x)
            x = block(x)
            feats.append(x)
        return feats


class _UpStage(nn.Module):
    """Upsample x2 (bilinear / trilinear) -> conv3x3 + swish to ``out`` channels -> [concat skip] -> ConvBlock."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, skip_channels: int):
        super().__init__()
        self.mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.up_conv = Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, act="swish", norm=None)
        self.block = SwishConvBlock(spatial_dims, out_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode=self.mode, align_corners=False)
        x = self.up_conv(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.block(x)


class USContentAutoencoder(nn.Module):
    """Content autoencoder for pre-training ``E_c``: :class:`USContentEncoder` + a mirrored decoder.

    The decoder has no skip connections (``use_skips=False``, default) so that the deepest content features
    must carry the image; with skips the first scale alone could copy it. Output: sigmoid, same shape as
    the input (images in [0, 1]).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        use_skips: bool = False,
    ):
        super().__init__()
        chans = _check_channels(channels)
        self.use_skips = bool(use_skips)
        self.encoder = USContentEncoder(spatial_dims, in_channels, chans)
        rev = chans[::-1]
        self.stages = nn.ModuleList(
            [_UpStage(spatial_dims, c_in, c_out, c_out if use_skips else 0) for c_in, c_out in zip(rev[:-1], rev[1:])]
        )
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.head = conv(chans[0], in_channels, kernel_size=1)
        self.config: dict[str, Any] = {"spatial_dims": int(spatial_dims), "in_channels": int(in_channels), "channels": chans}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        n = len(feats)
        y = feats[n - 1]
        for j, stage in enumerate(self.stages):
            skip: torch.Tensor | None = feats[n - 2 - j] if self.use_skips else None
            y = stage(y, skip)
        return torch.sigmoid(self.head(y))


class _StyleHead(nn.Module):
    """One scale of ``E_s``: ConvBlock -> global average -> (mu, logvar) of ``latent`` dims; and the map from a
    sampled ``z`` to the AdaIN statistics (per-channel mean, std) of the decoder features at that scale."""

    def __init__(self, spatial_dims: int, channels: int, latent: int, target_channels: int):
        super().__init__()
        self.block = SwishConvBlock(spatial_dims, channels, channels)
        self.to_moments = nn.Linear(channels, 2 * latent)
        self.to_stats = nn.Sequential(nn.Linear(latent, channels), nn.SiLU(), nn.Linear(channels, 2 * target_channels))

    def moments(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.block(feat).flatten(2).mean(dim=2)
        mu, logvar = self.to_moments(h).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)

    def stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_std = self.to_stats(z).chunk(2, dim=1)
        return mean, F.softplus(raw_std) + 1e-3


class USStyleEncoder(nn.Module):
    """Multi-scale VAE style encoder ``E_s``: a U-Net encoder trunk with a latent head at every scale.

    Args:
        spatial_dims: 2 for images.
        in_channels: image channels.
        channels: trunk widths per scale (finest first).
        latent_dims: latent size per scale (an int for all scales, or one per scale).
        target_channels: channels of the decoder features each scale's style statistics apply to
            (default: ``channels``).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        latent_dims: int | Sequence[int] = 8,
        target_channels: Sequence[int] | None = None,
    ):
        super().__init__()
        chans = _check_channels(channels)
        self.latent_dims = _as_list(latent_dims, len(chans), "latent_dims")
        targets = chans if target_channels is None else _as_list(list(target_channels), len(chans), "target_channels")
        self.trunk = USContentEncoder(spatial_dims, in_channels, chans)
        self.heads = nn.ModuleList(
            [_StyleHead(spatial_dims, c, z, t) for c, z, t in zip(chans, self.latent_dims, targets)]
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-scale ``(mu, logvar)`` lists, each (B, latent_dims[i]), finest scale first."""
        feats = self.trunk(x)
        mus: list[torch.Tensor] = []
        logvars: list[torch.Tensor] = []
        for i, head in enumerate(self.heads):
            mu, logvar = head.moments(feats[i])
            mus.append(mu)
            logvars.append(logvar)
        return mus, logvars

    def style_statistics(self, codes: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-scale AdaIN (mean, std), each (B, C_i), of latent codes ``z_i``."""
        means: list[torch.Tensor] = []
        stds: list[torch.Tensor] = []
        for i, head in enumerate(self.heads):
            m, s = head.stats(codes[i])
            means.append(m)
            stds.append(s)
        return means, stds


class USAdaINDecoder(nn.Module):
    """U-Net decoder ``D``: AdaIN on the deepest content features, then per scale: upsample, concat the
    content skip, ConvBlock, AdaIN with that scale's style statistics; 1x1 conv + sigmoid at the end.
    ``noise_maps`` (optional, finest scale first, each shaped like that scale's features) are added before each
    AdaIN, as in StyleGAN: a source of new texture that the content features do not hold."""

    def __init__(self, spatial_dims: int = 2, out_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        chans = _check_channels(channels)
        rev = chans[::-1]
        self.stages = nn.ModuleList([_UpStage(spatial_dims, c_in, c_out, c_out) for c_in, c_out in zip(rev[:-1], rev[1:])])
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.head = conv(chans[0], out_channels, kernel_size=1)

    def forward(
        self,
        feats: list[torch.Tensor],
        means: list[torch.Tensor],
        stds: list[torch.Tensor],
        noise_maps: Optional[list[torch.Tensor]] = None,
    ) -> torch.Tensor:
        n = len(feats)
        x = feats[n - 1]
        if noise_maps is not None:
            x = x + noise_maps[n - 1]
        x = adaptive_instance_norm(x, means[n - 1], stds[n - 1])
        for j, stage in enumerate(self.stages):
            i = n - 2 - j
            x = stage(x, feats[i])
            if noise_maps is not None:
                x = x + noise_maps[i]
            x = adaptive_instance_norm(x, means[i], stds[i])
        return torch.sigmoid(self.head(x))


class USVariationalStyleTransfer(nn.Module):
    """The full variational style-transfer network (``E_c``, ``E_s``, ``D``).

    Args:
        spatial_dims: 2 (B-mode images).
        in_channels: image channels (1: grey B-mode in [0, 1]).
        channels: widths per scale, finest first (paper: 64, 128, 256, 512, 1024). Input sizes must be
            divisible by ``2 ** (len(channels) - 1)`` (:attr:`size_divisor`).
        latent_dims: style latent size per scale.
        noise: per-pixel Gaussian noise, scaled by a learned gain per channel (initialised to 0, so a model
            without noise loads and behaves the same), added before every AdaIN of the decoder during training
            and by the transforms (seeded by their ``seed`` parameter, so restylings replay). ``forward`` and
            ``decode`` without ``noise_maps`` add none.

    ``forward(content, style=None)``: the content image restyled with the posterior mean of ``style``'s
    latents (eval) or a posterior sample (training); with ``style=None``, the prior mean (``z = 0``).
    Shapes: (B, in_channels, H, W) -> (B, in_channels, H, W), values in [0, 1].
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        latent_dims: int | Sequence[int] = 8,
        noise: bool = False,
    ):
        super().__init__()
        chans = _check_channels(channels)
        self.noise = bool(noise)
        self.noise_gains = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in chans] if self.noise else [])
        self.spatial_dims = int(spatial_dims)
        self.in_channels = int(in_channels)
        self.channels = chans
        self.size_divisor = 2 ** (len(chans) - 1)
        self.content_encoder = USContentEncoder(spatial_dims, in_channels, chans)
        self.style_encoder = USStyleEncoder(spatial_dims, in_channels, chans, latent_dims)
        self.latent_dims: list[int] = list(self.style_encoder.latent_dims)
        self.decoder = USAdaINDecoder(spatial_dims, in_channels, chans)
        self.config: dict[str, Any] = {
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "channels": list(chans),
            "latent_dims": list(self.latent_dims),
        }
        if self.noise:
            self.config["noise"] = True

    # ---------------------------------------------------------------- parts
    def encode_content(self, content: torch.Tensor) -> list[torch.Tensor]:
        """Content features ``f_c^(i)``, finest first."""
        return self.content_encoder(content)

    def encode_style(self, style: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-scale posterior ``(mu_i, logvar_i)`` of ``q(z_i | style)``, each (B, latent_dims[i])."""
        return self.style_encoder(style)

    def decode(
        self,
        content_feats: list[torch.Tensor],
        style_codes: list[torch.Tensor],
        noise_maps: Optional[list[torch.Tensor]] = None,
    ) -> torch.Tensor:
        """Image from content features and per-scale style codes ``z_i`` (B, latent_dims[i]); ``noise_maps``
        from :meth:`draw_noise` (None: no noise)."""
        means, stds = self.style_encoder.style_statistics(style_codes)
        return self.decoder(content_feats, means, stds, noise_maps)

    @torch.jit.unused
    def draw_noise(self, content_feats: list[torch.Tensor], seeds: Sequence[int] | None = None) -> list[torch.Tensor] | None:
        """Scaled noise maps for :meth:`decode` (None for a model without ``noise``): per scale, one N(0, 1) map
        per image (shared by the channels) times the learned per-channel gain. ``seeds``: one per image (each
        image's noise then depends on its seed only); None: the global random state (training)."""
        if not self.noise:
            return None
        b = content_feats[0].shape[0]
        if seeds is not None and len(seeds) != b:
            raise ValueError(f"draw_noise: {len(seeds)} seeds for {b} images.")
        gens = None if seeds is None else [torch.Generator().manual_seed(int(s) + 1_000_003) for s in seeds]
        maps = []
        for f, gain in zip(content_feats, self.noise_gains):
            shape = (1, 1) + tuple(f.shape[2:])
            if gens is None:
                z = torch.randn((b,) + shape[1:], device=f.device, dtype=f.dtype)
            else:
                z = torch.cat([torch.randn(shape, generator=g) for g in gens]).to(f.device, f.dtype)
            maps.append(z * gain.view((1, -1) + (1,) * (f.dim() - 2)))
        return maps

    @torch.jit.unused
    def sample_style(
        self,
        n: int,
        spread: float = 1.0,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> list[torch.Tensor]:
        """``n`` style codes from the prior ``N(0, spread^2 I)`` at every scale; ``spread > 1`` reaches styles
        beyond the observed ones. ``generator`` (a CPU ``torch.Generator``) makes the draw reproducible."""
        dev = torch.device(device) if device is not None else next(self.parameters()).device
        return [
            (torch.randn(int(n), d, generator=generator) * float(spread)).to(dev) for d in self.latent_dims
        ]

    @torch.jit.unused
    def sample_posterior(
        self,
        mus: list[torch.Tensor],
        logvars: list[torch.Tensor],
        spread: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """``z_i = mu_i + spread * sigma_i * eps`` (``spread = 0``: the posterior mean)."""
        out = []
        for mu, logvar in zip(mus, logvars):
            eps = torch.randn(mu.shape, generator=generator).to(mu.device, mu.dtype)
            out.append(mu + float(spread) * torch.exp(0.5 * logvar) * eps)
        return out

    @torch.jit.unused
    def transfer_with_posterior(
        self, content: torch.Tensor, style: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Training pass: (output, mus, logvars), ``z`` drawn from ``q(z | style)`` by reparameterisation."""
        mus, logvars = self.encode_style(style)
        codes = [mu + torch.exp(0.5 * lv) * torch.randn_like(mu) for mu, lv in zip(mus, logvars)]
        feats = self.encode_content(content)
        return self.decode(feats, codes, self.draw_noise(feats)), mus, logvars

    def forward(self, content: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.encode_content(content)
        codes: list[torch.Tensor] = []
        if style is None:
            for d in self.latent_dims:
                codes.append(torch.zeros(content.shape[0], d, device=content.device, dtype=content.dtype))
        else:
            mus, logvars = self.encode_style(style)
            for i in range(len(mus)):
                if self.training:
                    codes.append(mus[i] + torch.exp(0.5 * logvars[i]) * torch.randn_like(mus[i]))
                else:
                    codes.append(mus[i])
        return self.decode(feats, codes)

    # ---------------------------------------------------------------- checks and weights
    @torch.jit.unused
    def check_image(self, img: torch.Tensor, name: str = "image") -> None:
        """Raise ``ValueError`` naming ``name`` unless ``img`` is (B, in_channels, *spatial) with the model's
        number of spatial dimensions."""
        if img.dim() != self.spatial_dims + 2:
            raise ValueError(
                f"{name}: expected a batch (B, {self.in_channels}, {', '.join(['H', 'W', 'D'][: self.spatial_dims])}) "
                f"for this {self.spatial_dims}D model, got shape {tuple(img.shape)}."
            )
        if img.shape[1] != self.in_channels:
            raise ValueError(
                f"{name}: expected {self.in_channels} channel(s) (grey B-mode), got {img.shape[1]} in shape "
                f"{tuple(img.shape)}; convert colour images to grey first (LoadUltrasound does)."
            )

    @torch.jit.unused
    def load_content_encoder(self, path: PathLike) -> USVariationalStyleTransfer:
        """Initialise ``E_c`` from a :class:`USContentAutoencoder` checkpoint (pre-training stage)."""
        enc = load_us_content_encoder(path, map_location="cpu")
        self.content_encoder.load_state_dict(enc.state_dict())
        return self


# --------------------------------------------------------------------------------------------- training step


class USStyleTransferIteration:
    """``iteration_update`` of a MONAI ``SupervisedTrainer`` for :class:`USVariationalStyleTransfer`.

    Each batch of images (``batch[image_key]``, B >= 2) is paired with a random permutation of itself as
    style images (the paper pairs content and style at random, unrestricted). The first
    ``identity_fraction`` of the batch uses its own image as style (an identity pair). The trainer's
    ``loss_function`` must be a :class:`~monai_ext.apps.us_variational_style_transfer.VariationalStyleTransferLoss`.

    Returns ``{"loss": float, **loss terms, "pred": output}`` as the engine output.
    """

    def __init__(self, image_key: str = "image", identity_fraction: float = 0.25):
        if not 0.0 <= float(identity_fraction) <= 1.0:
            raise ValueError(f"identity_fraction must be in [0, 1], got {identity_fraction}.")
        self.image_key = image_key
        self.identity_fraction = float(identity_fraction)

    def __call__(self, engine: Any, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None or self.image_key not in batchdata:
            raise ValueError(f"the batch must hold '{self.image_key}' (B, C, H, W) images.")
        images = torch.as_tensor(batchdata[self.image_key]).to(engine.state.device, non_blocking=engine.non_blocking)
        b = images.shape[0]
        if b < 2:
            raise ValueError(f"style-transfer training needs batches of >= 2 images to pair them, got {b}.")
        perm = torch.randperm(b)
        n_id = int(round(self.identity_fraction * b))
        perm[:n_id] = torch.arange(n_id)
        style = images[perm.to(images.device)]
        identity = (perm == torch.arange(b)).to(images.device)
        # torchrun: the iteration calls model methods a DistributedDataParallel wrapper cannot see, so the
        # ranks are kept in step explicitly (see monai_ext.engines.distributed)

        def step() -> tuple[torch.Tensor, torch.Tensor]:
            out, mus, logvars = engine.network.transfer_with_posterior(images, style)
            return engine.loss_function(out, images, style, mus, logvars, identity), out

        loss, out = synced_optimizer_step(engine, step)
        terms = dict(getattr(engine.loss_function, "last_terms", {}))
        return {"loss": float(loss.detach()), **terms, "pred": out.detach()}


# ------------------------------------------------------------------------------------------ checkpoints


def checkpoint_info_path(path: PathLike) -> Path:
    """The JSON file beside a weight file that holds its architecture and provenance (``model.pt`` ->
    ``model.json``; :func:`monai_ext.io.weights_info_path`)."""
    return weights_info_path(path)


def save_us_style_checkpoint(module: nn.Module, path: PathLike, **info: Any) -> str:
    """Write the module's state dict to ``path`` and ``{"config": module.config, **info}`` to the JSON beside it,
    both atomically (:func:`monai_ext.io.save_weights`). Returns the weight file's path."""
    return save_weights(module, path, **info)


def resolve_model_file(path: PathLike) -> Path:
    """The checkpoint ``path`` names: the file itself, or ``model.pt`` / ``models/model.pt`` inside a folder."""
    p = Path(path).expanduser()
    candidates = [p]
    if p.is_dir():
        candidates = [p / "model.pt", p / "models" / "model.pt"]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"no trained style-transfer model at {p}: expected a checkpoint file, a bundle's models/ folder or a "
        f"bundle folder holding models/model.pt (written by bundles/us_variational_style_transfer/configs/train.yaml)."
    )


def _read_state(path: Path, map_location: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        ckpt = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e}).") from e
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):  # the format before bundle 0.3.2
        return ckpt["model"], dict(ckpt.get("config") or {})
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        info = checkpoint_info_path(path)
        config: dict[str, Any] = {}
        if info.is_file():
            try:
                config = dict(json.loads(info.read_text(encoding="utf-8")).get("config") or {})
            except (ValueError, AttributeError) as e:
                raise ValueError(f"{info}: not the JSON written with {path.name} ({e}).") from e
        return ckpt, config
    raise ValueError(f"{path}: expected a state dict (with its architecture in {checkpoint_info_path(path).name}), "
                     f"got {type(ckpt).__name__}.")


def load_us_style_transfer(
    path: PathLike, map_location: Any = "cpu", **overrides: Any
) -> USVariationalStyleTransfer:
    """A trained :class:`USVariationalStyleTransfer` in eval mode from a checkpoint file, a ``models/`` folder
    or a bundle folder. The architecture comes from the JSON beside the weights (``overrides`` win)."""
    file = resolve_model_file(path)
    state, config = _read_state(file, map_location)
    config.update(overrides)
    model = USVariationalStyleTransfer(**config)
    state = dict(state)
    for k, v in model.state_dict().items():  # weights of a model without noise: noise gains 0 (the same model)
        if k.startswith("noise_gains.") and k not in state:
            state[k] = torch.zeros_like(v)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"{file}: weights do not fit USVariationalStyleTransfer({config}); pass the architecture it was "
            f"trained with ({str(e).splitlines()[0]})."
        ) from e
    return model.to(map_location if not isinstance(map_location, dict) else "cpu").eval()


def load_us_content_encoder(path: PathLike, map_location: Any = "cpu", **overrides: Any) -> USContentEncoder:
    """The pre-trained :class:`USContentEncoder` of a :class:`USContentAutoencoder` checkpoint (or of a full
    :class:`USVariationalStyleTransfer` checkpoint), in eval mode."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"no pre-trained content autoencoder at {p}: run configs/train_autoencoder.yaml of the "
            f"us_variational_style_transfer bundle first (it writes models/content_autoencoder.pt)."
        )
    state, config = _read_state(p, map_location)
    config.update(overrides)
    prefix = "encoder." if any(k.startswith("encoder.") for k in state) else "content_encoder."
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not sub:
        raise ValueError(f"{p}: holds no content-encoder weights (no keys starting with 'encoder.' or 'content_encoder.').")
    enc = USContentEncoder(
        config.get("spatial_dims", 2), config.get("in_channels", 1), config.get("channels", (16, 32, 64, 128))
    )
    try:
        enc.load_state_dict(sub)
    except RuntimeError as e:
        raise ValueError(f"{p}: content-encoder weights do not fit channels={config.get('channels')}: {e}") from e
    return enc.eval()

