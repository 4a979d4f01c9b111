"""Losses of ultrasound variational style transfer (Hung & Galeotti, DGM4MICCAI 2021, Sec. 2.4).

- :class:`ContentFeatureLoss`: perceptual (content) loss, Eq. 3: ``sum_k p_k * mean((psi_k(I_c) - psi_k(I))^2)``.
- :class:`GramStyleLoss`: style loss, Eqs. 4-5: ``sum_k s_k * mean(0.5 * (G_k(I_s) - G_k(I))^2)`` with the
  Gram matrix ``G_k = F F^T / (C_k H_k W_k)`` of layer ``k``'s features ``F`` (:func:`gram_matrix`).
- :class:`MultiScaleKLLoss`: the KL term summed over latent scales, Eq. 6.
- :class:`VariationalStyleTransferLoss`: their weighted sum (+ an optional identity term), as used by
  :class:`~monai_ext.apps.us_variational_style_transfer.USStyleTransferIteration`.

The feature losses and extractor are the generic ones of :mod:`monai_ext.losses.feature_statistics` (re-exported
here). The feature extractor ``psi`` is pluggable (:class:`StyleFeatureExtractor`). The paper uses an ImageNet VGG16
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

from monai_ext.losses.feature_statistics import (
    ContentFeatureLoss,
    GramStyleLoss,
    StyleFeatureExtractor,
    feature_distance,
    gram_distance,
    gram_matrix,
    layer_weights,
    random_feature_extractor,
)

__all__ = [
    "StyleFeatureExtractor",
    "random_feature_extractor",
    "gram_matrix",
    "ContentFeatureLoss",
    "GramStyleLoss",
    "MultiScaleKLLoss",
    "VariationalStyleTransferLoss",
]


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
        w = layer_weights(self.weights, len(mus), "MultiScaleKLLoss")
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
        cw = layer_weights(self.content_weights, len(fo_content), "content_weights")
        lp = feature_distance(fo_content, fc, cw, self.content_normalize)
        ls = gram_distance(fo, fs, layer_weights(self.style_weights, len(fo), "style_weights"))
        kl = self.kl(mus, logvars)
        total = lp + ls + self.kl_weight * kl
        terms: dict[str, Any] = {"content_loss": float(lp.detach()), "style_loss": float(ls.detach()), "kl": float(kl.detach())}
        if self.identity_weight and identity is not None and bool(identity.any()):
            rec = torch.mean(torch.abs(output[identity] - content[identity]))
            total = total + self.identity_weight * rec
            terms["identity_l1"] = float(rec.detach())
        self.last_terms = terms
        return total
