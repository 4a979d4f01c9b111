"""Per image, the highest multi-scale SSIM to any image of a set: the structural check of "Evaluating GANs in
Medical Imaging" (Wang et al., DGM4MICCAI 2021, Sect. 2.3) for memorisation (a synthetic image with a training
image at MS-SSIM about 1) and mode collapse (synthetic images more alike among themselves than real ones are).

Built on MONAI's :func:`~monai.metrics.regression.compute_ms_ssim`; the number of scales is a parameter because
the 5 scales of the original MS-SSIM need images of at least 161 pixels with an 11-pixel window.
"""

from __future__ import annotations

import torch
from monai.metrics.regression import compute_ms_ssim

__all__ = ["MS_SSIM_SCALE_WEIGHTS", "MaxMSSSIMSimilarity"]

MS_SSIM_SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli, Bovik 2003


class MaxMSSSIMSimilarity:
    """For every image of a query set, its highest MS-SSIM to an image of a reference set, and which image that is.

    Args:
        spatial_dims: 2 (images ``(N, C, H, W)``) or 3 (volumes ``(N, C, H, W, D)``).
        data_range: intensity range of the images (1.0 for images in [0, 1]).
        kernel_size: Gaussian window size in pixels.
        kernel_sigma: Gaussian window sigma in pixels.
        num_scales: 1-5 scales; the first ``num_scales`` of the standard weights, renormalised to sum 1.
        chunk_size: image pairs per call of MONAI's MS-SSIM (memory: ``chunk_size`` x image size x about 20 floats).

    Calling it with ``(query, reference)`` returns the ``(N,)`` maxima; with ``reference=None`` each query image is
    compared with every *other* query image (the within-set similarity that reveals mode collapse).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        data_range: float = 1.0,
        kernel_size: int = 7,
        kernel_sigma: float = 1.5,
        num_scales: int = 3,
        chunk_size: int = 2048,
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if not 1 <= int(num_scales) <= len(MS_SSIM_SCALE_WEIGHTS):
            raise ValueError(f"num_scales must be 1-{len(MS_SSIM_SCALE_WEIGHTS)}, got {num_scales}.")
        self.spatial_dims = int(spatial_dims)
        self.data_range = float(data_range)
        self.kernel_size = int(kernel_size)
        self.kernel_sigma = float(kernel_sigma)
        w = MS_SSIM_SCALE_WEIGHTS[: int(num_scales)]
        self.weights = tuple(x / sum(w) for x in w)
        self.chunk_size = max(1, int(chunk_size))

    def _check(self, images: torch.Tensor, what: str) -> torch.Tensor:
        images = torch.as_tensor(images, dtype=torch.float32)
        if images.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{what}: expected a batch of shape (N, C, {', '.join('HWD'[: self.spatial_dims])}), got {tuple(images.shape)}."
            )
        smallest = (self.kernel_size - 1) * 2 ** (len(self.weights) - 1)
        if min(images.shape[2:]) <= smallest:
            raise ValueError(
                f"{what}: images of {tuple(images.shape[2:])} pixels are too small for {len(self.weights)} MS-SSIM scales "
                f"with a {self.kernel_size}-pixel window (need more than {smallest}); use fewer scales or a smaller kernel."
            )
        return images

    def nearest(
        self, query: torch.Tensor, reference: torch.Tensor | None = None, groups: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, indices)``: per query image the highest MS-SSIM to a reference image and that image's index.

        ``groups`` (within-set comparison only, ``(N,)`` integers): images of one group (e.g. slices of one volume)
        are not compared with each other, so neighbouring slices do not count as near-duplicates."""
        query = self._check(query, "query")
        exclude_self = reference is None
        reference = query if reference is None else self._check(reference, "reference")
        if query.shape[1:] != reference.shape[1:]:
            raise ValueError(
                f"query images {tuple(query.shape[1:])} and reference images {tuple(reference.shape[1:])} differ in shape."
            )
        n, m = query.shape[0], reference.shape[0]
        if m < 1 or (exclude_self and m < 2):
            raise ValueError(f"need at least {2 if exclude_self else 1} reference images, got {m}.")
        scores = torch.empty(n, m)
        pairs = torch.cartesian_prod(torch.arange(n), torch.arange(m))
        for start in range(0, len(pairs), self.chunk_size):
            i, j = pairs[start : start + self.chunk_size].T
            s = compute_ms_ssim(
                query[i], reference[j], self.spatial_dims, self.data_range, kernel_size=self.kernel_size,
                kernel_sigma=self.kernel_sigma, weights=self.weights,
            )
            scores[i, j] = s.reshape(-1).cpu().float()
        if exclude_self:
            scores.fill_diagonal_(float("-inf"))
            if groups is not None:
                groups = torch.as_tensor(groups).reshape(-1)
                if len(groups) != n:
                    raise ValueError(f"groups: {len(groups)} ids for {n} images.")
                scores[groups[:, None] == groups[None, :]] = float("-inf")
                if torch.isinf(scores).all(dim=1).any():
                    raise ValueError("groups: every image needs at least one image of another group to compare with.")
        elif groups is not None:
            raise ValueError("groups apply only to the within-set comparison (reference=None).")
        values, indices = scores.max(dim=1)
        return values, indices

    def __call__(self, query: torch.Tensor, reference: torch.Tensor | None = None, groups: torch.Tensor | None = None) -> torch.Tensor:
        return self.nearest(query, reference, groups)[0]
