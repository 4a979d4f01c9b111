"""Per-instance scores of an instance segmentation (cells) against a reference: detection and per-cell shape.

Instances are matched one to one by maximum total IoU (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``);
a pair counts as a detection when its IoU is at least ``min_iou`` (0.5 makes the match unique, as in panoptic quality).
Over the detected pairs: area overlap (IoU), Dice, area difference (|A_pred - A_ref| / A_ref, %), and the symmetric
contour distances between the two cells' boundaries: average (ASD), root mean square (RSD) and maximum (MSD), in
pixels (or in the units of ``spacing``; MONAI's ``get_edge_surface_distance``). These are the cell metrics of the adaptive-optics segmentation papers of Liu
et al. (OMIA 2019; DGM4MICCAI/DALI 2021); MONAI's ``compute_panoptic_quality`` gives the detection counts but not the
per-cell shape scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics.utils import get_edge_surface_distance
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

__all__ = ["INSTANCE_SHAPE_SCORES", "instance_overlap_scores", "match_instances"]

#: the per-cell scores of :func:`instance_overlap_scores`, averaged over the detected pairs
INSTANCE_SHAPE_SCORES = ("area_overlap", "dice", "area_difference_pct", "asd", "rsd", "msd")


def _as_labels(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim not in (2, 3) or not np.issubdtype(a.dtype, np.integer) and not np.all(np.mod(a, 1) == 0):
        raise ValueError(f"{name}: an instance label image (2D or 3D, integer labels) expected, got shape {a.shape}, "
                         f"dtype {a.dtype}.")
    if a.min() < 0:
        raise ValueError(f"{name}: negative labels; 0 is background, 1, 2, ... are instances.")
    return a.astype(np.int64)


def match_instances(pred: np.ndarray, ref: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """``[(pred_label, ref_label, iou)]`` of the one-to-one matching of maximum total IoU, pairs below ``min_iou``
    dropped. ``pred`` and ``ref``: instance label images of one shape (0 background)."""
    p, r = _as_labels(pred, "pred"), _as_labels(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred and ref must have the same shape, got {p.shape} and {r.shape}.")
    pid, pinv = np.unique(p, return_inverse=True)
    rid, rinv = np.unique(r, return_inverse=True)
    inter = np.zeros((len(pid), len(rid)), np.int64)
    np.add.at(inter, (pinv.ravel(), rinv.ravel()), 1)
    inter = inter[pid > 0][:, rid > 0]
    pid, rid = pid[pid > 0], rid[rid > 0]
    if not len(pid) or not len(rid):
        return []
    area_p, area_r = np.bincount(p.ravel())[pid], np.bincount(r.ravel())[rid]
    iou = inter / (area_p[:, None] + area_r[None, :] - inter)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(pid[i]), int(rid[j]), float(iou[i, j])) for i, j in zip(rows, cols) if iou[i, j] >= min_iou]


def instance_overlap_scores(pred: np.ndarray, ref: np.ndarray, min_iou: float = 0.5,
                            spacing: Sequence[float] | float = 1.0) -> dict[str, float]:
    """Detection counts and mean per-cell scores of ``pred`` against ``ref`` (see the module docstring).

    Returns ``{"detected", "missed" (reference cells without a match), "false" (predicted cells without a match),
    "precision", "recall", *INSTANCE_SHAPE_SCORES}``; the shape scores are NaN when nothing is detected.
    """
    p, r = _as_labels(pred, "pred"), _as_labels(ref, "ref")
    pairs = match_instances(p, r, min_iou)
    n_pred, n_ref = len(np.unique(p[p > 0])), len(np.unique(r[r > 0]))
    sp = np.broadcast_to(np.asarray(spacing, float), (p.ndim,))
    per: dict[str, list[float]] = {k: [] for k in INSTANCE_SHAPE_SCORES}
    slices_p, slices_r = ndimage.find_objects(p), ndimage.find_objects(r)
    for lp, lr, iou in pairs:
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(slices_p[lp - 1], slices_r[lr - 1]))
        mp, mr = np.pad(p[box] == lp, 1), np.pad(r[box] == lr, 1)
        ap, ar = int(mp.sum()), int(mr.sum())
        _, dists, _ = get_edge_surface_distance(torch.as_tensor(mp), torch.as_tensor(mr), distance_metric="euclidean",
                                                spacing=tuple(sp), symmetric=True)
        d = torch.cat([t.flatten() for t in dists]).double().numpy()
        per["area_overlap"].append(iou)
        per["dice"].append(2.0 * iou / (1.0 + iou))
        per["area_difference_pct"].append(100.0 * abs(ap - ar) / ar)
        per["asd"].append(float(d.mean()))
        per["rsd"].append(float(np.sqrt((d**2).mean())))
        per["msd"].append(float(d.max()))
    n = len(pairs)
    out = {"detected": float(n), "missed": float(n_ref - n), "false": float(n_pred - n),
           "precision": n / n_pred if n_pred else float("nan"), "recall": n / n_ref if n_ref else float("nan")}
    out.update({k: float(np.mean(v)) if v else float("nan") for k, v in per.items()})
    return out
