"""Detection scores of the ADAM aneurysm challenge (Timmins et al., NeuroImage 2021), as Assis et al. (DGM4MICCAI /
DALI 2021) report them, on connected components (CCs):

- a reference CC is found (TP) when the centre of gravity of some predicted CC lies inside it; otherwise it is
  missed (FN);
- a predicted CC whose centre lies in no reference CC is a false positive (FP).

Sensitivity = TP / (TP + FN) and false positives per case. For the FROC curve every case's candidates (the CCs of
the probability map at a low threshold, scored by their highest probability) are split into hits and false
positives by the same rule (a reference keeps the highest score of the candidates that hit it); MONAI's
``compute_froc_curve_data`` / ``compute_froc_score`` then sweep the score threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.froc import compute_froc_curve_data, compute_froc_score
from scipy import ndimage

from ..transforms import probability_components

__all__ = [
    "ADAMDetectionMetric",
    "adam_detection_counts",
    "adam_reference_hits",
    "froc_candidates",
    "froc_summary",
]


def _reference_components(reference: np.ndarray) -> tuple[np.ndarray, int]:
    ref = np.asarray(reference) != 0
    return ndimage.label(ref, structure=np.ones((3,) * ref.ndim))


def _hits(centres: np.ndarray, ref_labels: np.ndarray) -> np.ndarray:
    """The reference CC (0: none) holding each centre (voxel coordinates, rounded)."""
    if len(centres) == 0:
        return np.zeros(0, np.int64)
    idx = np.clip(np.rint(centres).astype(int), 0, np.array(ref_labels.shape) - 1)
    return ref_labels[tuple(idx.T)]


def adam_reference_hits(prediction: np.ndarray, reference: np.ndarray, threshold: float = 0.5,
                        min_voxels: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """Per reference CC of one case whether it was found and its size: ``(found (R,) bool, voxels (R,) int,
    false_positives)``; ``prediction`` a probability (or binary) map and ``reference`` a binary label, both spatial
    (H, W[, D]) on one grid; predicted CCs at ``prediction >= threshold`` of at least ``min_voxels`` voxels."""
    pred, ref = np.asarray(prediction, dtype=np.float32), np.asarray(reference)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} must have the same spatial shape.")
    ref_labels, n_ref = _reference_components(ref)
    _, rows = probability_components(pred, threshold, min_voxels=min_voxels)
    hit = _hits(rows[:, :pred.ndim], ref_labels)
    found = np.isin(np.arange(1, n_ref + 1), hit[hit > 0])
    voxels = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)[1:]
    return found, voxels, int(np.sum(hit == 0))


def adam_detection_counts(prediction: np.ndarray, reference: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` of one case (see :func:`adam_reference_hits`)."""
    found, _, fp = adam_reference_hits(prediction, reference, threshold)
    return int(found.sum()), fp, int((~found).sum())


def froc_candidates(prob: np.ndarray, reference: np.ndarray, threshold: float = 0.05,
                    min_voxels: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """``(fp_scores, tp_scores, num_targets)`` of one case for the FROC: the scores of the candidate CCs (at
    ``prob >= threshold``, at least ``min_voxels`` voxels) that hit no reference CC, the best score per reference CC that was hit, and the number of
    reference CCs."""
    ref_labels, n_ref = _reference_components(reference)
    _, rows = probability_components(np.asarray(prob, dtype=np.float32), threshold, min_voxels=min_voxels)
    hit = _hits(rows[:, :np.ndim(prob)], ref_labels)
    scores = rows[:, -1]
    tp = [scores[hit == r].max() for r in range(1, n_ref + 1) if np.any(hit == r)]
    return scores[hit == 0], np.asarray(tp, dtype=np.float64), n_ref


def froc_summary(cases: Sequence[tuple[np.ndarray, np.ndarray, int]],
                 fp_rates: Sequence[float] = (0.125, 0.25, 0.5, 1, 2, 4, 8)) -> dict[str, object]:
    """FROC of the :func:`froc_candidates` of several cases: ``{"froc_score"`` (mean sensitivity at ``fp_rates``
    false positives per case), ``"sensitivity_at"`` ({rate: sensitivity}), ``"fps_per_case"`` and
    ``"sensitivity"`` (the curve)}."""
    if not cases:
        raise ValueError("froc_summary: no cases.")
    fp = np.concatenate([np.asarray(c[0], np.float64) for c in cases])
    tp = np.concatenate([np.asarray(c[1], np.float64) for c in cases])
    n_targets = int(sum(c[2] for c in cases))
    if n_targets == 0:
        raise ValueError("froc_summary: the cases hold no reference object.")
    if len(fp) + len(tp) == 0:
        return {"froc_score": 0.0, "sensitivity_at": {float(r): 0.0 for r in fp_rates}, "fps_per_case": [],
                "sensitivity": []}
    fps, sens = compute_froc_curve_data(fp, tp, n_targets, len(cases))
    at = {float(r): float(compute_froc_score(fps, sens, (r,))) for r in fp_rates}
    return {"froc_score": float(compute_froc_score(fps, sens, tuple(fp_rates))), "sensitivity_at": at,
            "fps_per_case": np.asarray(fps).tolist(), "sensitivity": np.asarray(sens).tolist()}


class ADAMDetectionMetric(CumulativeIterationMetric):
    """ADAM detection counts over the cases accumulated since the last ``reset()``.

    Call with ``y_pred`` probabilities and ``y`` binary references, (B, 1, H, W, D) (or 2D); every batch item is one
    case. ``aggregate()`` returns ``{"sensitivity"`` (pooled TP / (TP + FN); NaN without references),
    ``"case_sensitivity"`` (mean over the cases with a reference), ``"fp_per_case"``, ``"tp"``, ``"fp"``, ``"fn"``,
    ``"cases"}``.

    Args:
        threshold: probability at or above which a voxel is predicted (the ADAM scoring: a binary map; 0.5).
    """

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if y_pred.shape != y.shape or y_pred.ndim < 4 or y_pred.shape[1] != 1:
            raise ValueError(f"{type(self).__name__}: y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} must both "
                             "be (B, 1, spatial...).")
        p, t = y_pred.detach().float().cpu().numpy(), y.detach().cpu().numpy()
        return torch.tensor([adam_detection_counts(p[b, 0], t[b, 0], self.threshold) for b in range(len(p))],
                            dtype=torch.float64)

    def aggregate(self) -> dict[str, float]:  # type: ignore[override]
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError(f"{type(self).__name__}: nothing accumulated yet.")
        c = data.double().reshape(-1, 3).numpy()
        tp, fp, fn = c.sum(0)
        with_ref = (c[:, 0] + c[:, 2]) > 0
        return {
            "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
            "case_sensitivity": float(np.mean(c[with_ref, 0] / (c[with_ref, 0] + c[with_ref, 2])))
            if with_ref.any() else float("nan"),
            "fp_per_case": float(fp / len(c)), "tp": int(tp), "fp": int(fp), "fn": int(fn), "cases": len(c),
        }
