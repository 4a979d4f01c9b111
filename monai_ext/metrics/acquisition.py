"""Active-learning acquisition scores of unlabelled images from a model's softmax output (higher = more worth
labelling), as benchmarked by Chong et al., "Evaluation of active learning techniques on medical image
classification with unbalanced data" (DGM4MICCAI/DALI 2021): least confidence, margin and expected model change
(the expected gradient length of the last layer, Huang et al. 2016).

Inputs are class probabilities, channel first: (N, C) for classification or (N, C, *spatial) for segmentation, where
each voxel's score is computed and averaged (``reduction="mean"``) or maximised (``"max"``) per image. numpy or torch
in, a float64 numpy array (N,) out.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import NdarrayOrTensor

__all__ = ["ACQUISITION_SCORES", "acquisition_score", "expected_gradient_length_score", "least_confidence_score",
           "margin_score"]


def _probabilities(probs: NdarrayOrTensor) -> torch.Tensor:
    p = torch.as_tensor(probs).detach().to("cpu", torch.float64)
    if p.ndim < 2 or p.shape[1] < 2:
        raise ValueError(f"expected class probabilities (N, C >= 2[, spatial...]), got shape {tuple(p.shape)}.")
    sums = p.sum(1)
    if bool((p < -1e-6).any()) or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise ValueError("expected class probabilities (non-negative, summing to 1 over axis 1); apply a softmax to "
                         "logits first.")
    return p


def _reduce(per_voxel: torch.Tensor, reduction: str) -> np.ndarray:
    if reduction not in ("mean", "max"):
        raise ValueError(f"reduction must be 'mean' or 'max', got {reduction!r}.")
    flat = per_voxel.reshape(per_voxel.shape[0], -1)
    return (flat.mean(1) if reduction == "mean" else flat.amax(1)).numpy()


def least_confidence_score(probs: NdarrayOrTensor, reduction: str = "mean") -> np.ndarray:
    """``1 - max_c p_c`` per image (per voxel, then reduced): 0 for a certain prediction, up to ``1 - 1/C``."""
    p = _probabilities(probs)
    return _reduce(1.0 - p.amax(1), reduction)


def margin_score(probs: NdarrayOrTensor, reduction: str = "mean") -> np.ndarray:
    """``1 - (p_first - p_second)`` of the two most probable classes per image (per voxel, then reduced): 0 when
    one class has all the probability, 1 when the top two tie."""
    p = _probabilities(probs)
    top = p.topk(2, dim=1).values
    return _reduce(1.0 - (top[:, 0] - top[:, 1]), reduction)


def expected_gradient_length_score(
    probs: NdarrayOrTensor, embeddings: NdarrayOrTensor, mode: str = "max", reduction: str = "mean"
) -> np.ndarray:
    """Length of the cross-entropy gradient of a last linear layer (weights and bias) that maps ``embeddings`` to
    the logits, had the image the label ``y``: ``||p - e_y|| * sqrt(||h||^2 + 1)``.

    Args:
        probs: class probabilities (N, C[, spatial...]).
        embeddings: the last layer's inputs, (N, D) (one per image; for segmentation the same embedding serves every
            voxel, e.g. the pooled bottleneck).
        mode: ``"max"``: ``y`` = the most probable class (the benchmark's reading of expected model change);
            ``"expected"``: sum over ``y`` weighted by ``p_y`` (Settles' expected gradient length).
        reduction: per-image reduction over voxels.
    """
    p = _probabilities(probs)
    h = torch.as_tensor(embeddings).detach().to("cpu", torch.float64).reshape(p.shape[0], -1)
    if h.shape[0] != p.shape[0]:
        raise ValueError(f"{h.shape[0]} embeddings for {p.shape[0]} probability vectors.")
    scale = torch.sqrt((h ** 2).sum(1) + 1.0).reshape(-1, *([1] * (p.ndim - 2)))
    # ||p - e_y||^2 = sum_c p_c^2 - 2 p_y + 1
    sq = (p ** 2).sum(1, keepdim=True)
    per_class = torch.sqrt(torch.clamp(sq - 2.0 * p + 1.0, min=0.0))          # (N, C, ...)
    if mode == "max":
        length = per_class.gather(1, p.argmax(1, keepdim=True)).squeeze(1)
    elif mode == "expected":
        length = (p * per_class).sum(1)
    else:
        raise ValueError(f"mode must be 'max' or 'expected', got {mode!r}.")
    return _reduce(length * scale, reduction)


#: the score names :func:`acquisition_score` takes (the active-learning configs' ``score``)
ACQUISITION_SCORES = ("least_confidence", "margin", "expected_gradient_length")


def acquisition_score(name: str, probs: NdarrayOrTensor, embeddings: NdarrayOrTensor | None = None,
                      reduction: str = "mean") -> np.ndarray:
    """The score ``name`` (one of :data:`ACQUISITION_SCORES`) of every image; ``embeddings`` is needed by
    ``expected_gradient_length`` only."""
    if name == "least_confidence":
        return least_confidence_score(probs, reduction)
    if name == "margin":
        return margin_score(probs, reduction)
    if name == "expected_gradient_length":
        if embeddings is None:
            raise ValueError("expected_gradient_length needs the embeddings (the last layer's inputs).")
        return expected_gradient_length_score(probs, embeddings, reduction=reduction)
    raise ValueError(f"unknown acquisition score {name!r}; expected one of {ACQUISITION_SCORES}.")
