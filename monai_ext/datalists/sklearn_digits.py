"""Real handwritten digits from scikit-learn, in the reduced-data protocol of the RHVAE augmentation paper.

Chadebec & Allassonniere (DGM4MICCAI 2021, Sect. 5.1) draw 500 MNIST images, balanced or with "some classes
far more represented", split them 80 % training (the *raw data*) / 20 % validation, and test on the official
test set. MNIST cannot be downloaded here; scikit-learn ships the UCI optical-recognition digits
(``sklearn.datasets.load_digits``: 1,797 real handwritten digits of 43 writers, 8 x 8 pixels of 0-16, about 180
per class), read from the installed package. :func:`reduced_digits_split` draws the paper's 500-image training
sets from them and keeps every image it did not draw as the test set (1,297 images, about 130 per class).

Images are channel-first float32 in [0, 1] (pixel / 16), ``(N, 1, size, size)``; ``size > 8`` upsamples
bilinearly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["load_sklearn_digits", "digit_class_counts", "reduced_digits_split", "stack_images"]

NUM_DIGIT_CLASSES = 10


def stack_images(images: Sequence[np.ndarray] | np.ndarray, name: str = "images") -> np.ndarray:
    """``images`` as one float32 array ``(N, C, H, W)``; raises ``ValueError`` naming ``name`` for images of
    different sizes or a wrong number of dimensions."""
    if isinstance(images, np.ndarray):
        arr = images
    else:
        shapes = sorted({tuple(np.shape(i)) for i in images})
        if len(shapes) > 1:
            raise ValueError(f"{name}: images of mixed sizes {shapes[:4]}; all images must have one shape (C, H, W).")
        arr = np.stack([np.asarray(i) for i in images]) if len(images) else np.zeros((0, 1, 8, 8))
    if arr.ndim != 4:
        raise ValueError(f"{name}: expected an array (N, C, H, W), got shape {tuple(arr.shape)}.")
    return arr.astype(np.float32, copy=False)


def load_sklearn_digits(size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: images ``(1797, 1, size, size)`` float32 in [0, 1] and labels ``(1797,)`` int64."""
    if int(size) < 8:
        raise ValueError(f"size must be >= 8 (the digits are 8 x 8 pixels), got {size}.")
    from sklearn.datasets import load_digits  # the data file ships inside scikit-learn

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None]
    if int(size) != 8:
        t = F.interpolate(torch.from_numpy(images), size=(int(size), int(size)), mode="bilinear", align_corners=False)
        images = t.clamp(0, 1).numpy()
    return images, bunch.target.astype(np.int64)


def digit_class_counts(n_images: int = 500, imbalance_ratio: float = 1.0, seed: int = 0,
                       available: Sequence[int] | None = None) -> np.ndarray:
    """Images per class for a draw of ``n_images``: equal for ``imbalance_ratio`` 1, otherwise a geometric
    profile from the largest class to the smallest (``imbalance_ratio`` = largest / smallest) over a class order
    permuted by ``seed``. Raises ``ValueError`` when a class would get no image or more than ``available``."""
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be >= 1 (largest / smallest class), got {imbalance_ratio}.")
    k = NUM_DIGIT_CLASSES
    weights = float(imbalance_ratio) ** (-np.arange(k) / (k - 1))
    raw = n_images * weights / weights.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: n_images - counts.sum()]] += 1  # largest remainders: sum is n_images
    order = np.random.default_rng(seed).permutation(k) if imbalance_ratio > 1 else np.arange(k)
    per_class = np.empty(k, dtype=int)
    per_class[order] = counts
    if (per_class < 1).any():
        raise ValueError(
            f"imbalance_ratio {imbalance_ratio} with {n_images} images leaves class(es) "
            f"{np.flatnonzero(per_class < 1).tolist()} empty; lower the ratio or draw more images."
        )
    if available is not None and (per_class > np.asarray(available)).any():
        bad = np.flatnonzero(per_class > np.asarray(available)).tolist()
        raise ValueError(f"class(es) {bad} would need {per_class[bad].tolist()} images but only {np.asarray(available)[bad].tolist()} exist.")
    return per_class


def reduced_digits_split(
    seed: int = 0,
    n_images: int = 500,
    balance: str = "balanced",
    imbalance_ratio: float = 10.0,
    val_fraction: float = 0.2,
    size: int = 8,
) -> dict[str, np.ndarray]:
    """The paper's reduced training set drawn from the scikit-learn digits.

    Args:
        seed: the draw (which images, which classes are large in the unbalanced set).
        n_images: training + validation images (paper: 500).
        balance: ``"balanced"`` (``n_images / 10`` per class) or ``"unbalanced"`` (the geometric profile of
            :func:`digit_class_counts` with ``imbalance_ratio``).
        val_fraction: share of each class held out for validation (paper: 20 %); every class keeps at least one
            training and one validation image.
        size: image size in pixels (8 = native).

    Returns:
        ``train_images``, ``train_labels``, ``val_images``, ``val_labels``, ``test_images``, ``test_labels``
        (every digit not drawn) and ``class_counts`` (drawn per class).
    """
    if balance not in ("balanced", "unbalanced"):
        raise ValueError(f"balance must be 'balanced' or 'unbalanced', got {balance!r}.")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    images, labels = load_sklearn_digits(size)
    available = np.bincount(labels, minlength=NUM_DIGIT_CLASSES)
    counts = digit_class_counts(n_images, imbalance_ratio if balance == "unbalanced" else 1.0, seed, available)
    if (counts < 2).any():
        raise ValueError(f"class(es) {np.flatnonzero(counts < 2).tolist()} get fewer than 2 images: no training and validation image each.")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in range(NUM_DIGIT_CLASSES):
        drawn = rng.permutation(np.flatnonzero(labels == c))[: counts[c]]
        n_val = min(max(1, int(round(val_fraction * counts[c]))), counts[c] - 1)
        val_idx += drawn[:n_val].tolist()
        train_idx += drawn[n_val:].tolist()
    test_mask = np.ones(len(labels), dtype=bool)
    test_mask[train_idx + val_idx] = False
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return {
        "train_images": images[train_idx], "train_labels": labels[train_idx],
        "val_images": images[val_idx], "val_labels": labels[val_idx],
        "test_images": images[test_mask], "test_labels": labels[test_mask],
        "class_counts": counts,
    }  # fmt: skip
