"""Cohen's kappa of a binary segmentation, voxel-wise and pooled over everything accumulated: the chance-corrected
agreement kappa = (p_o - p_e) / (1 - p_e) that Assis et al. (DGM4MICCAI / DALI 2021) report beside Dice for their
patch-trained aneurysm U-Nets (p_o: the fraction of voxels on which prediction and reference agree; p_e: the
agreement expected by chance from the two foreground fractions).
"""

from __future__ import annotations

import torch
from monai.metrics import CumulativeIterationMetric

__all__ = ["CohenKappaMetric", "kappa_from_counts"]


def kappa_from_counts(tp: float, fp: float, fn: float, tn: float) -> float:
    """Cohen's kappa from the counts of a binary confusion matrix; 1.0 when both raters say the same thing on every
    voxel of one class only (p_e = 1)."""
    n = tp + fp + fn + tn
    if n <= 0:
        raise ValueError("kappa_from_counts: no voxels counted.")
    p_o = (tp + tn) / n
    p_e = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    return 1.0 if p_e >= 1.0 else float((p_o - p_e) / (1.0 - p_e))


class CohenKappaMetric(CumulativeIterationMetric):
    """Pooled voxel-wise Cohen's kappa of binary predictions.

    Call with ``y_pred`` and ``y`` (B, 1, spatial...) (values 0/1; ``y_pred`` probabilities are cut at 0.5).
    ``aggregate()`` returns kappa over every voxel accumulated since the last ``reset()``; ``counts()`` the pooled
    ``(tp, fp, fn, tn)``.
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if y_pred.shape != y.shape or y_pred.ndim < 3:
            raise ValueError(f"{type(self).__name__}: y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} must have the "
                             "same shape (B, C, spatial...).")
        p, t = y_pred > 0.5, y > 0.5
        dims = tuple(range(1, p.ndim))
        return torch.stack([(p & t).sum(dims), (p & ~t).sum(dims), (~p & t).sum(dims), (~p & ~t).sum(dims)],
                           dim=-1).double()

    def counts(self) -> tuple[float, float, float, float]:
        """Pooled ``(tp, fp, fn, tn)`` voxel counts."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError(f"{type(self).__name__}: nothing accumulated yet.")
        tp, fp, fn, tn = data.reshape(-1, 4).sum(0).tolist()
        return tp, fp, fn, tn

    def aggregate(self) -> float:  # type: ignore[override]
        return kappa_from_counts(*self.counts())
