"""Predictive uncertainty of a segmentation network, per voxel and per case, for active learning.

Paper 003 (``shared/seeds/003_lits_liver_tumor_unet.txt``) selects the unlabelled cases to annotate next by the
model's uncertainty. Two estimates:

- :func:`predictive_entropy`: the entropy of the softmax (or sigmoid) output of one forward pass, per voxel;
- :func:`mc_dropout_probabilities` + :func:`mutual_information`: Monte-Carlo dropout (Gal & Ghahramani 2016):
  ``T`` forward passes with dropout active; the mutual information between the prediction and the weights
  (BALD, Houlsby et al. 2011) is the part of the entropy that comes from the model's uncertainty, and the
  variance of the class probabilities across the passes is the simpler estimate paper 003 names.

:func:`case_uncertainty` reduces a voxel map to one number per case (mean over a mask, e.g. the voxels the
model does not call background with certainty, so a large background does not dilute the score), and
:func:`rank_by_uncertainty` orders cases by it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = [
    "case_uncertainty",
    "mc_dropout_probabilities",
    "mc_variance",
    "mutual_information",
    "predictive_entropy",
    "rank_by_uncertainty",
]

_EPS = 1e-8
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _check_probs(probs: torch.Tensor, name: str) -> None:
    if not isinstance(probs, torch.Tensor) or probs.ndim < 2:
        raise ValueError(f"{name}: expected a tensor of class probabilities with a channel axis, got "
                         f"{type(probs).__name__} of shape {tuple(getattr(probs, 'shape', ()))}.")
    if not torch.is_floating_point(probs):
        raise ValueError(f"{name}: expected floating-point probabilities, got {probs.dtype}.")
    lo, hi = float(probs.min()), float(probs.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(f"{name}: values in [{lo:.3g}, {hi:.3g}]; expected probabilities in [0, 1] "
                         "(apply softmax or sigmoid to the logits first).")


def predictive_entropy(probs: torch.Tensor, dim: int = 1, multilabel: bool = False) -> torch.Tensor:
    """Entropy (nats) of the predicted distribution at each voxel.

    Args:
        probs: class probabilities, e.g. ``(B, C, H, W[, D])``; softmax output (the channels sum to 1) or, with
            ``multilabel``, independent sigmoid outputs (one binary entropy per channel, summed).
        dim: the channel axis.
        multilabel: treat each channel as its own binary variable.

    Returns:
        ``probs`` with ``dim`` reduced to size 1; 0 for a certain prediction, at most ``log(C)`` (softmax) or
        ``C log 2`` (multilabel).
    """
    _check_probs(probs, "predictive_entropy")
    p = probs.clamp(_EPS, 1.0)
    if multilabel:
        q = (1.0 - probs).clamp(_EPS, 1.0)
        return -(p * p.log() + q * q.log()).sum(dim=dim, keepdim=True)
    return -(p * p.log()).sum(dim=dim, keepdim=True)


def mc_dropout_probabilities(
    network: nn.Module,
    inputs: torch.Tensor,
    samples: int = 8,
    predictor: Callable[[torch.Tensor, nn.Module], torch.Tensor] | None = None,
    activation: str = "softmax",
) -> torch.Tensor:
    """Class probabilities from ``samples`` forward passes with dropout active (Monte-Carlo dropout).

    The network is put in eval mode (batch norm uses its running statistics) with only its dropout modules in
    training mode; the modes are restored afterwards. Runs under ``torch.no_grad``. The network must contain
    dropout (e.g. MONAI ``UNet(..., dropout=0.1)``); otherwise every pass is the same and a ``ValueError`` says so.

    Args:
        network: the segmentation network.
        inputs: its input batch.
        samples: number of passes ``T`` (>= 2).
        predictor: ``predictor(inputs, network) -> logits``, e.g. a MONAI inferer (sliding window); default:
            ``network(inputs)``.
        activation: ``"softmax"`` (channels are exclusive classes) or ``"sigmoid"``.

    Returns:
        ``(T, B, C, ...)`` probabilities.
    """
    if int(samples) < 2:
        raise ValueError(f"samples={samples}: Monte-Carlo dropout needs at least 2 passes.")
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(f"activation={activation!r}: expected 'softmax' or 'sigmoid'.")
    drops = [m for m in network.modules() if isinstance(m, _DROPOUT) and m.p > 0]
    if not drops:
        raise ValueError(f"{type(network).__name__} has no dropout layer with p > 0: Monte-Carlo dropout needs "
                         "one (e.g. MONAI UNet(..., dropout=0.1)).")
    modes = {m: m.training for m in network.modules()}
    run = predictor if predictor is not None else (lambda x, net: net(x))
    out = []
    try:
        network.eval()
        for m in drops:
            m.train()
        with torch.no_grad():
            for _ in range(int(samples)):
                logits = run(inputs, network)
                out.append(logits.softmax(1) if activation == "softmax" else logits.sigmoid())
    finally:
        for m, mode in modes.items():
            m.train(mode)
    return torch.stack(out)


def mutual_information(mc_probs: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """BALD mutual information per voxel from Monte-Carlo probabilities ``(T, B, C, ...)``: the entropy of the
    mean prediction minus the mean entropy of the passes (nats, >= 0); returns ``(B, 1, ...)``."""
    if mc_probs.ndim < 3:
        raise ValueError(f"mutual_information: expected (T, B, C, ...) probabilities, got {tuple(mc_probs.shape)}.")
    mean_entropy = torch.stack([predictive_entropy(p, multilabel=multilabel) for p in mc_probs]).mean(0)
    return (predictive_entropy(mc_probs.mean(0), multilabel=multilabel) - mean_entropy).clamp(min=0.0)


def mc_variance(mc_probs: torch.Tensor) -> torch.Tensor:
    """Variance of the class probabilities across the Monte-Carlo passes, summed over the classes:
    ``(T, B, C, ...)`` -> ``(B, 1, ...)``."""
    if mc_probs.ndim < 3:
        raise ValueError(f"mc_variance: expected (T, B, C, ...) probabilities, got {tuple(mc_probs.shape)}.")
    return mc_probs.var(dim=0, unbiased=False).sum(dim=1, keepdim=True)


def case_uncertainty(uncertainty: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One score per case: the mean of a voxel uncertainty map ``(B, 1, ...)`` over ``mask`` (same shape, bool;
    e.g. the voxels whose background probability is below 0.99), or over all voxels without a mask. A case whose
    mask is empty scores 0. Returns ``(B,)``."""
    if uncertainty.ndim < 2:
        raise ValueError(f"case_uncertainty: expected (B, 1, ...) maps, got {tuple(uncertainty.shape)}.")
    flat = uncertainty.reshape(uncertainty.shape[0], -1).double()
    if mask is None:
        return flat.mean(1)
    if mask.shape != uncertainty.shape:
        raise ValueError(f"case_uncertainty: mask shape {tuple(mask.shape)} differs from the map's "
                         f"{tuple(uncertainty.shape)}.")
    m = mask.reshape(mask.shape[0], -1).double()
    return (flat * m).sum(1) / m.sum(1).clamp(min=1.0)


def rank_by_uncertainty(scores: Mapping[str, float], descending: bool = True) -> list[dict]:
    """Cases ordered for annotation: ``[{"case", "uncertainty", "rank"}]``, most uncertain first (ties by name,
    so the order is reproducible). NaN scores are refused (they would sort arbitrarily)."""
    bad = [k for k, v in scores.items() if not math.isfinite(float(v))]
    if bad:
        raise ValueError(f"rank_by_uncertainty: non-finite uncertainty for {bad[:5]}.")
    order: Sequence[tuple[str, float]] = sorted(
        scores.items(), key=lambda kv: ((-1 if descending else 1) * float(kv[1]), kv[0]))
    return [{"case": k, "uncertainty": float(v), "rank": i + 1} for i, (k, v) in enumerate(order)]
