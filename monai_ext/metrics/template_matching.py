"""Template matching of generated images against a mosaic of real ones: the second memorisation check of
"Evaluating GANs in Medical Imaging" (Wang et al., DGM4MICCAI 2021, Sect. 2.3). A generated image that is a (shifted)
copy of a training image reaches a normalised cross-correlation of about 1 somewhere in the mosaic.

The correlation is scikit-image's FFT-based :func:`skimage.feature.match_template`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["image_mosaic", "TemplateMatchingScore"]


def _grey_2d(images: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images, dtype=np.float64)
    if a.ndim != 4:
        raise ValueError(f"{what}: expected 2D images (N, C, H, W), got shape {a.shape}.")
    return a.mean(axis=1)


def image_mosaic(images: torch.Tensor | np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tile 2D images ``(N, C, H, W)`` (channels averaged) into one ``(rows * H, columns * W)`` array, row-major;
    empty tiles hold the mean intensity so they match nothing in particular."""
    a = _grey_2d(images, "images")
    n, h, w = a.shape
    cols = int(columns) if columns else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    mosaic = np.full((rows * h, cols * w), a.mean())
    for k in range(n):
        r, c = divmod(k, cols)
        mosaic[r * h : (r + 1) * h, c * w : (c + 1) * w] = a[k]
    return mosaic


class TemplateMatchingScore:
    """Per query image, the highest normalised cross-correlation (in [-1, 1]) with any position of a mosaic of the
    reference images: about 1 for a copy (or a shifted crop) of a reference image.

    Args:
        pad_input: also match positions where the query overhangs the mosaic edge (``match_template``'s option).
    """

    def __init__(self, pad_input: bool = False) -> None:
        self.pad_input = bool(pad_input)

    def __call__(self, query: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray) -> torch.Tensor:
        from skimage.feature import match_template

        q = _grey_2d(query, "query")
        ref = _grey_2d(reference, "reference")
        if q.shape[1:] != ref.shape[1:]:
            raise ValueError(f"query images {q.shape[1:]} and reference images {ref.shape[1:]} differ in size.")
        mosaic = image_mosaic(ref[:, None])
        scores = []
        for image in q:
            if np.ptp(image) == 0:  # a constant image has no defined correlation
                scores.append(0.0)
                continue
            scores.append(float(match_template(mosaic, image, pad_input=self.pad_input).max()))
        return torch.tensor(scores)
