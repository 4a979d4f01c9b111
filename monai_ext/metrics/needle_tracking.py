"""Needle localisation in a 2D ultrasound image and its error, as HPI evaluates inpainting for needle tracking
(Hung et al., DGM4MICCAI 2021, Sect. 3.3): bright ridge pixels (intensity threshold and Sobel edge strength) are the
candidates, a polynomial ``row = f(column)`` is fitted to them by RANSAC (scikit-image), and the tip is the deepest
end of the inliers. Errors are in pixels (multiply by the pixel spacing for mm): tip distance and mean shaft distance.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

__all__ = ["fit_needle", "needle_errors"]


class _PolynomialRowModel:
    """``row = polyval(params, column)`` for scikit-image's ``ransac`` (data: ``(N, 2)`` of row, column)."""

    degree = 2

    def __init__(self) -> None:
        self.params: np.ndarray | None = None

    def estimate(self, data: np.ndarray) -> bool:
        if len(np.unique(data[:, 1])) <= self.degree:
            return False
        self.params = np.polyfit(data[:, 1], data[:, 0], self.degree)
        return True

    def residuals(self, data: np.ndarray) -> np.ndarray:
        return np.abs(np.polyval(self.params, data[:, 1]) - data[:, 0])


def fit_needle(image: np.ndarray | torch.Tensor, threshold: float | None = None, degree: int = 2,
               residual_threshold: float = 1.5, edge_quantile: float = 0.8, seed: int = 0) -> dict | None:
    """Fit a needle to a grey image ``(H, W)`` or ``(1, H, W)`` (rows = depth).

    Candidates: pixels at or above ``threshold`` (default: mean + 3 SD of the image) whose Sobel gradient magnitude
    is in the top ``1 - edge_quantile`` of the image's. Returns ``{"coefficients", "tip" (row, col), "columns"
    (first, last inlier column), "inliers"}`` or ``None`` when fewer than ``degree + 2`` candidates exist (or the
    image is constant).
    """
    from skimage.measure import ransac

    a = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float64).squeeze()
    if a.ndim != 2:
        raise ValueError(f"image: expected a grey 2D image (H, W) or (1, H, W), got shape {np.shape(image)}.")
    if a.std() == 0:
        return None  # a constant image holds no needle
    thr = a.mean() + 3 * a.std() if threshold is None else float(threshold)
    edge = np.hypot(ndimage.sobel(a, axis=0), ndimage.sobel(a, axis=1))
    cand = np.argwhere((a >= thr) & (edge >= np.quantile(edge, float(edge_quantile))) & (edge > 0))
    if len(cand) < int(degree) + 2:
        return None
    model_class = type("_Model", (_PolynomialRowModel,), {"degree": int(degree)})
    with warnings.catch_warnings():  # scikit-image >= 0.26 prefers a from_estimate constructor; estimate() still works
        warnings.filterwarnings("ignore", message=".*from_estimate.*")
        model, inliers = ransac(cand.astype(np.float64), model_class, min_samples=int(degree) + 1,
                                residual_threshold=float(residual_threshold), max_trials=500, rng=int(seed))
    if model is None or inliers is None or not inliers.any():
        return None
    pts = cand[inliers]
    first, last = int(pts[:, 1].min()), int(pts[:, 1].max())
    ends = [(float(np.polyval(model.params, c)), float(c)) for c in (first, last)]
    tip = max(ends, key=lambda p: p[0])  # the needle enters from the skin: its tip is the deeper end
    return {"coefficients": model.params.tolist(), "tip": list(tip), "columns": [first, last], "inliers": int(inliers.sum())}


def needle_errors(fit: dict | None, centreline: Sequence[Sequence[float]], step: float = 0.5) -> dict[str, float]:
    """``{"tip", "shaft"}`` errors (pixels) of a :func:`fit_needle` result against the true centreline ``(P, 2)``
    (row, column; e.g. :func:`monai_ext.transforms.needle_centreline`, tip last): the distance between the tips and
    the mean distance of the true centreline's points to the fitted curve (sampled every ``step`` pixels over the
    fitted columns). A missed needle (``fit`` None) gives ``inf``."""
    true = np.asarray(centreline, dtype=np.float64)
    if true.ndim != 2 or true.shape[1] != 2 or len(true) < 2:
        raise ValueError(f"centreline: expected (P >= 2, 2) points (row, column), got shape {true.shape}.")
    if fit is None:
        return {"tip": float("inf"), "shaft": float("inf")}
    cols = np.arange(fit["columns"][0], fit["columns"][1] + step, step)
    curve = np.stack([np.polyval(fit["coefficients"], cols), cols], axis=1)
    shaft = np.sqrt(((true[:, None, :] - curve[None, :, :]) ** 2).sum(-1)).min(axis=1).mean()
    return {"tip": float(np.hypot(*(np.asarray(fit["tip"]) - true[-1]))), "shaft": float(shaft)}
