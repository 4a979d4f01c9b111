"""Mean Mahalanobis distance of samples to a Gaussian fitted on reference features, as in "Evaluating GANs in Medical
Imaging" (Wang et al., DGM4MICCAI 2021, Sect. 2.2): how far generated images lie from the real ones in the feature
space of a domain-trained network. With its Frechet distance (MONAI's ``FIDMetric``) it replaces ImageNet features.

The covariance is the Ledoit-Wolf shrinkage estimate (scikit-learn), so it stays invertible when there are fewer
reference samples than feature dimensions.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MahalanobisDistanceMetric"]


def _features(x: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected features of shape (N, F), got {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: features contain NaN or infinite values.")
    return a


class MahalanobisDistanceMetric:
    """``metric(y_pred, y)``: the mean over the rows of ``y_pred`` ``(N, F)`` of ``sqrt((x - mu)^T S^-1 (x - mu))``,
    where ``mu`` and ``S`` are the mean and (Ledoit-Wolf) covariance of the reference features ``y`` ``(M, F)``,
    ``M >= 2``. ``reduction="none"`` returns the ``(N,)`` distances instead of their mean.

    A sample drawn from the reference distribution lies at about ``sqrt(F)``; compare a generator's value with that
    of held-out real samples rather than with zero.
    """

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
        self.reduction = reduction

    def __call__(self, y_pred: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> torch.Tensor:
        from sklearn.covariance import LedoitWolf

        x = _features(y_pred, "y_pred")
        ref = _features(y, "y")
        if x.shape[1] != ref.shape[1]:
            raise ValueError(f"y_pred has {x.shape[1]} features, y has {ref.shape[1]}.")
        if len(ref) < 2:
            raise ValueError(f"y: need at least 2 reference samples to fit a covariance, got {len(ref)}.")
        fit = LedoitWolf().fit(ref)
        d = x - fit.location_
        squared = np.einsum("nf,fg,ng->n", d, fit.precision_, d)
        dist = torch.as_tensor(np.sqrt(np.clip(squared, 0.0, None)), dtype=torch.float32)
        return dist if self.reduction == "none" else dist.mean()
