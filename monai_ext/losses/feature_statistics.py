"""Feature-statistics losses of neural style transfer, used by the ultrasound style-transfer and inpainting methods:
a frozen multi-layer feature extractor ``psi_k``, the perceptual (content) loss ``sum_k w_k mean((psi_k(a) -
psi_k(b))^2)`` (Johnson et al., ECCV 2016) and the Gram-matrix style loss ``sum_k w_k mean(0.5 (G_k(a) - G_k(b))^2)``
with ``G_k = F F^T / (C_k H_k W_k)`` (Gatys et al., 2015), as Hung & Galeotti's style transfer (Eqs. 3-5) and HPI's
inpainting objective (Hung et al., DGM4MICCAI 2021, Sect. 2.3) use them.

The extractor is pluggable (:class:`StyleFeatureExtractor`): the papers use ImageNet VGG16 (``block1_conv1`` ...
``block5_conv1``); no weights can be downloaded here, so :func:`random_feature_extractor` gives a fixed random-weight
VGG-like network, and any ``torch.nn.Module`` (a list of feature maps, or an ``nn.Sequential`` tapped at indices,
e.g. torchvision's ``vgg16().features`` loaded from a checkpoint the user has) works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = [
    "StyleFeatureExtractor",
    "random_feature_extractor",
    "gram_matrix",
    "layer_weights",
    "feature_distance",
    "gram_distance",
    "ContentFeatureLoss",
    "GramStyleLoss",
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
    """Gram matrix (B, C, C) of features (B, C, *spatial), divided by ``C * prod(spatial)``."""
    b, c = features.shape[:2]
    f = features.reshape(b, c, -1)
    return torch.bmm(f, f.transpose(1, 2)) / float(c * f.shape[2])


def layer_weights(weights: Sequence[float] | None, n: int, name: str) -> list[float]:
    """``weights`` as floats, checked to hold one per feature layer (``n``); ``None`` gives 1 per layer.
    ``name`` labels the error."""
    if weights is None:
        return [1.0] * n
    w = [float(v) for v in weights]
    if len(w) != n:
        raise ValueError(f"{name}: {len(w)} layer weights given for {n} feature layers.")
    return w


def _channel_normalize(f: torch.Tensor) -> torch.Tensor:
    dims = list(range(2, f.dim()))
    return (f - f.mean(dim=dims, keepdim=True)) / (f.std(dim=dims, keepdim=True) + 1e-5)


def feature_distance(
    fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor], weights: Sequence[float], normalize: bool = False
) -> torch.Tensor:
    """``sum_k w_k mean((fa_k - fb_k)^2)`` over feature layers (layers of weight 0 are skipped); ``normalize``
    compares each channel after removing its spatial mean and standard deviation."""
    total = fa[0].new_zeros(())
    for w, a, b in zip(weights, fa, fb):
        if w:
            if normalize:
                a, b = _channel_normalize(a), _channel_normalize(b)
            total = total + w * torch.mean((a - b) ** 2)
    return total


def gram_distance(fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """``sum_k w_k mean(0.5 (G(fa_k) - G(fb_k))^2)`` with :func:`gram_matrix` (layers of weight 0 are skipped)."""
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
        w = layer_weights(self.weights, len(fo), "ContentFeatureLoss")
        return feature_distance(fo, [f.detach() for f in ft], w, self.normalize)


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
        return gram_distance(fo, [f.detach() for f in fs], layer_weights(self.weights, len(fo), "GramStyleLoss"))
