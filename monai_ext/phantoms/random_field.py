"""Smooth Gaussian random fields, the texture and the region shapes of the 2D phantoms (ultrasound tissue, IHC
stain patchiness, noisy regions of adaptive-optics visits)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["smooth_random_field"]


def smooth_random_field(rng: np.random.Generator, shape: Sequence[int], sigma: float | Sequence[float]) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field of ``shape`` with correlation length ``sigma`` (pixels, one per axis
    or one for all), periodic at the borders (white noise filtered with wrap-around)."""
    field = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)
