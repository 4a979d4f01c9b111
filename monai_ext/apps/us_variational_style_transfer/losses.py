"""Losses of ultrasound variational style transfer (Hung & Galeotti, DGM4MICCAI 2021, Sec. 2.4).

- :class:`ContentFeatureLoss`: perceptual (content) loss, Eq. 3: ``sum_k p_k * mean((psi_k(I_c) - psi_k(I))^2)``.
- :class:`GramStyleLoss`: style loss, Eqs. 4-5: ``sum_k s_k * mean(0.5 * (G_k(I_s) - G_k(I))^2)`` with the
  Gram matrix ``G_k = F F^T / (C_k H_k W_k)`` of layer ``k``'s features ``F`` (:func:`gram_matrix`).
- :class:`MultiScaleKLLoss`: the KL term summed over latent scales, Eq. 6.
- :class:`VariationalStyleTransferLoss`: their weighted sum (+ an optional identity term), as used by
  :class:`~monai_ext.apps.us_variational_style_transfer.USStyleTransferIteration`.

The feature extractor ``psi`` is pluggable (:class:`StyleFeatureExtractor`). The paper uses an ImageNet VGG16
(``block1_conv1`` ... ``block5_conv1``); no weights can be downloaded here, so the default in the bundle is the
project's own content encoder pre-trained as an autoencoder on ultrasound, frozen. Any ``torch.nn.Module``
works: one returning a list of feature maps, or an ``nn.Sequential`` (e.g. torchvision's ``vgg16().features``
loaded from a checkpoint the user provides) tapped at given indices. The paper's layer weights
(``p = [0, 0, 0, 0, 0.01]``, ``s = [0.1, 0.002, 0.001, 0.01, 10]``) assume VGG16 feature scales; with another
extractor they must be re-tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "StyleFeatureExtractor",
    "random_feature_extractor",
    "gram_matrix",
    "ContentFeatureLoss",
    "GramStyleLoss",
    "MultiScaleKLLoss",
    "VariationalStyleTransferLoss",
]


class StyleFeatureExtractor(nn.Module):
    """Frozen multi-layer features ``psi_k(x)`` for perceptual and Gram losses.

    Args:
        network: any module. If it returns a list/tuple of tensors (e.g.
            :class:`~monai_ext.apps.us_variational_style_transfer.USContentEncoder`), those are the layers; if it is an
            ``nn.Sequential``, the outputs of the modules at ``layers`` are tapped (e.g. torchvision VGG16
            ``features`` with ``layers=(1, 6, 11, 18, 25)``: the ReLUs after block1_conv1 ... block5_conv1);
            otherwise its single output is the only layer.
        layers: indices of the layers to keep (of the returned list, or of the Sequential's modules).
        repeat_channels: repeat a 1-channel input to this many channels (3 for ImageNet networks).
        mean, std: per-channel normalisation applied to the input first (e.g. ImageNet statistics).
        freeze: no gradients to the extractor's weights and always in eval mode (batch norm statistics fixed).
    """

    def __init__(
        self,
        network: nn.Module,
        layers: Sequence[int] | None = None,
        repeat_channels: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        freeze: bool = True,
    ):
        super().__init__()
        if not isinstance(network, nn.Module):
            raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}.")
        self.network = network
        self.layers = None if layers is None else [int(i) for i in layers]
        self.repeat_channels = repeat_channels
        self.register_buffer("_mean", None if mean is None else torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("_std", None if std is None else torch.tensor(std, dtype=torch.float32))
        self.freeze = bool(freeze)
        if self.freeze:
            for p in self.network.parameters():
                p.requires_grad_(False)
            self.network.eval()
        if isinstance(network, nn.Sequential) and self.layers is not None:
            bad = [i for i in self.layers if not -len(network) <= i < len(network)]
            if bad:
                raise ValueError(f"layers {bad} out of range for a Sequential of {len(network)} modules.")

    def train(self, mode: bool = True) -> StyleFeatureExtractor:
        super().train(mode)
        if self.freeze:
            self.network.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.repeat_channels and x.shape[1] == 1:
            x = x.repeat(1, int(self.repeat_channels), *([1] * (x.dim() - 2)))
        if self._mean is not None:
            shape = [1, -1] + [1] * (x.dim() - 2)
            x = (x - self._mean.reshape(shape).to(x)) / self._std.reshape(shape).to(x)
        if isinstance(self.network, nn.Sequential) and self.layers is not None:
            wanted = {i % len(self.network) for i in self.layers}
            taps: dict[int, torch.Tensor] = {}
            for i, module in enumerate(self.network):
                x = module(x)
                if i in wanted:
                    taps[i] = x
                if len(taps) == len(wanted):
                    break
            return [taps[i % len(self.network)] for i in self.layers]
        out = self.network(x)
        feats = list(out) if isinstance(out, (list, tuple)) else [out]
        if self.layers is not None:
            feats = [feats[i] for i in self.layers]
        return feats


def random_feature_extractor(
    in_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128), seed: int = 0, spatial_dims: int = 2
) -> StyleFeatureExtractor:
    """A fixed, randomly initialised VGG-like extractor (conv3x3 + ReLU per block, max-pooling between blocks),
    tapped after each block's ReLU. Random-feature Gram matrices still carry texture statistics; a fallback
    when neither a pre-trained content encoder nor a VGG checkpoint is available."""
    conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
    gen = torch.Generator().manual_seed(int(seed))
    modules: list[nn.Module] = []
    taps = []
    c_in = in_channels
    for k, c in enumerate(channels):
        if k > 0:
            modules.append(pool(2))
        layer = conv(c_in, int(c), 3, padding=1)
        with torch.no_grad():
            fan_in = c_in * 3**spatial_dims
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            layer.bias.zero_()
        modules += [layer, nn.ReLU()]
        taps.append(len(modules) - 1)
        c_in = int(c)
    return StyleFeatureExtractor(nn.Sequential(*modules), layers=taps)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix (B, C, C) of features (B, C, *spatial), divided by ``C * prod(spatial)`` (Eq. 4)."""
    b, c = features.shape[:2]
    f = features.reshape(b, c, -1)
    return torch.bmm(f, f.transpose(1, 2)) / float(c * f.shape[2])


def _weights(weights: Sequence[float] | None, n: int, name: str) -> list[float]:
    if weights is None:
        return [1.0] * n
    w = [float(v) for v in weights]
    if len(w) != n:
        raise ValueError(f"{name}: {len(w)} layer weights given for {n} feature layers.")
    return w


def _channel_normalize(f: torch.Tensor) -> torch.Tensor:
    dims = list(range(2, f.dim()))
    return (f - f.mean(dim=dims, keepdim=True)) / (f.std(dim=dims, keepdim=True) + 1e-5)


def _feature_distance(
    fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor], weights: Sequence[float], normalize: bool = False
) -> torch.Tensor:
    total = fa[0].new_zeros(())
    for w, a, b in zip(weights, fa, fb):
        if w:
            if normalize:
                a, b = _channel_normalize(a), _channel_normalize(b)
            total = total + w * torch.mean((a - b) ** 2)
    return total


def _gram_distance(fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    total = fa[0].new_zeros(())
    for w, a, b in zip(weights, fa, fb):
        if w:
            total = total + w * torch.mean(0.5 * (gram_matrix(a) - gram_matrix(b)) ** 2)
    return total


class ContentFeatureLoss(nn.Module):
    """Perceptual (content) loss, Eq. 3: ``sum_k w_k * mean((psi_k(target) - psi_k(output))^2)``.

    Args:
        extractor: a :class:`StyleFeatureExtractor` (or any module returning a list of feature maps).
        weights: one per layer (default 1 each; the paper, with VGG16: ``[0, 0, 0, 0, 0.01]``).
        normalize: compare features after removing each channel's mean and standard deviation over space
            (the statistics AdaIN sets), so that the content term does not penalise a change of style.
    """

    def __init__(self, extractor: nn.Module, weights: Sequence[float] | None = None, normalize: bool = False):
        super().__init__()
        self.extractor = extractor
        self.weights = None if weights is None else [float(w) for w in weights]
        self.normalize = bool(normalize)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fo, ft = self.extractor(output), self.extractor(target)
        w = _weights(self.weights, len(fo), "ContentFeatureLoss")
        return _feature_distance(fo, [f.detach() for f in ft], w, self.normalize)


class GramStyleLoss(nn.Module):
    """Style loss, Eq. 5: ``sum_k w_k * mean(0.5 * (G_k(style) - G_k(output))^2)`` with :func:`gram_matrix`.

    Zero when ``output`` and ``style`` have the same features. The paper's VGG16 weights:
    ``[0.1, 0.002, 0.001, 0.01, 10]``.
    """

    def __init__(self, extractor: nn.Module, weights: Sequence[float] | None = None):
        super().__init__()
        self.extractor = extractor
        self.weights = None if weights is None else [float(w) for w in weights]

    def forward(self, output: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        fo, fs = self.extractor(output), self.extractor(style)
        return _gram_distance(fo, [f.detach() for f in fs], _weights(self.weights, len(fo), "GramStyleLoss"))


class MultiScaleKLLoss(nn.Module):
    """KL divergence of the per-scale posteriors ``N(mu_i, sigma_i^2)`` to ``N(0, I)``, averaged over each
    scale's elements and summed over scales (Eq. 6).

    Args:
        kl_form: ``"standard"``: ``0.5 * (mu^2 + sigma^2 - log sigma^2 - 1)``, the KL to ``N(0, 1)``;
            ``"paper"``: Eq. 6 as printed (and in the authors' code), ``0.5 * (mu^2 / sigma^2 + sigma^2 -
            log sigma^2 - 1)``, which is not the KL to ``N(0, 1)``.
        weights: per-scale weights (default 1 each).
    """

    def __init__(self, kl_form: str = "standard", weights: Sequence[float] | None = None):
        super().__init__()
        if kl_form not in ("standard", "paper"):
            raise ValueError(f"kl_form must be 'standard' or 'paper', got {kl_form!r}.")
        self.kl_form = kl_form
        self.weights = None if weights is None else [float(w) for w in weights]

    def forward(self, mus: Sequence[torch.Tensor], logvars: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(mus) != len(logvars) or not len(mus):
            raise ValueError(f"need one logvar per mu (>= 1 scale), got {len(mus)} mus and {len(logvars)} logvars.")
        w = _weights(self.weights, len(mus), "MultiScaleKLLoss")
        total = mus[0].new_zeros(())
        for wi, mu, lv in zip(w, mus, logvars):
            var = torch.exp(lv)
            m2 = mu**2 / var if self.kl_form == "paper" else mu**2
            total = total + wi * torch.mean(0.5 * (m2 + var - lv - 1.0))
        return total


class VariationalStyleTransferLoss(nn.Module):
    """``L = L_p + L_s + kl_weight * KL + identity_weight * L1`` (Sec. 2.4; the identity term is an addition).

    Features of the output are computed once for both feature losses when they share one extractor.

    Args:
        extractor: feature extractor ``psi`` (:class:`StyleFeatureExtractor`; frozen) of both terms, or of the
            style term alone when ``content_extractor`` is given.
        content_weights: per-layer weights of :class:`ContentFeatureLoss`.
        style_weights: per-layer weights of :class:`GramStyleLoss`.
        kl_weight: weight of :class:`MultiScaleKLLoss` (paper: 1).
        kl_form: see :class:`MultiScaleKLLoss`.
        identity_weight: weight of ``mean |output - content|`` on pairs whose style image is the content image
            itself (the ``identity`` mask of :meth:`forward`); 0 in the paper.
        content_normalize: see :class:`ContentFeatureLoss` ``normalize`` (False in the paper).
        content_extractor: a second frozen extractor for the perceptual (content) term only, e.g. a network that
            sees anatomy while ``extractor`` sees texture (None: ``extractor`` for both, as in the paper).

    After each call, :attr:`last_terms` holds the float values of the terms (for logging).
    """

    def __init__(
        self,
        extractor: nn.Module,
        content_weights: Sequence[float] | None = None,
        style_weights: Sequence[float] | None = None,
        kl_weight: float = 1.0,
        kl_form: str = "standard",
        identity_weight: float = 0.0,
        content_normalize: bool = False,
        content_extractor: nn.Module | None = None,
    ):
        super().__init__()
        self.extractor = extractor
        self.content_extractor = content_extractor
        self.content_normalize = bool(content_normalize)
        self.content_weights = None if content_weights is None else [float(w) for w in content_weights]
        self.style_weights = None if style_weights is None else [float(w) for w in style_weights]
        self.kl = MultiScaleKLLoss(kl_form)
        self.kl_weight = float(kl_weight)
        self.identity_weight = float(identity_weight)
        self.last_terms: dict[str, float] = {}

    def forward(
        self,
        output: torch.Tensor,
        content: torch.Tensor,
        style: torch.Tensor,
        mus: Sequence[torch.Tensor],
        logvars: Sequence[torch.Tensor],
        identity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        fo = self.extractor(output)
        content_net = self.extractor if self.content_extractor is None else self.content_extractor
        fo_content = fo if self.content_extractor is None else content_net(output)
        with torch.no_grad():
            fc = content_net(content)
            fs = self.extractor(style)
        cw = _weights(self.content_weights, len(fo_content), "content_weights")
        lp = _feature_distance(fo_content, fc, cw, self.content_normalize)
        ls = _gram_distance(fo, fs, _weights(self.style_weights, len(fo), "style_weights"))
        kl = self.kl(mus, logvars)
        total = lp + ls + self.kl_weight * kl
        terms: dict[str, Any] = {"content_loss": float(lp.detach()), "style_loss": float(ls.detach()), "kl": float(kl.detach())}
        if self.identity_weight and identity is not None and bool(identity.any()):
            rec = torch.mean(torch.abs(output[identity] - content[identity]))
            total = total + self.identity_weight * rec
            terms["identity_l1"] = float(rec.detach())
        self.last_terms = terms
        return total
