"""Mixup for segmentation as a MONAI ``prepare_batch``: images and one-hot labels mixed with Beta-drawn weights.

Zhang et al., "mixup: Beyond Empirical Risk Minimization" (ICLR 2018): train on convex combinations
``x = lam * x_i + (1 - lam) * x_j``, ``y = lam * y_i + (1 - lam) * y_j`` of pairs of samples, ``lam ~ Beta(alpha,
alpha)``. For segmentation ``y`` is the one-hot label map, so the mixed label is a soft label per voxel (it sums
to 1 over the classes); the loss must take such targets (e.g. :class:`monai_ext.losses.SoftLabelDiceCELoss`,
``DiceLoss(soft_label=True)``, cross-entropy with class probabilities).

MONAI's :class:`monai.transforms.MixUp` does the mixing but is not used here: it needs the batch size when it is
built, draws with its own numpy ``RandomState`` (not seeded by ``set_determinism``) and shuffles with a random
permutation, which with the two patches of one volume leaves each sample paired with itself half of the time
(no mixing at all). :class:`MixupPrepareBatch` pairs every sample with another one (a random cyclic shift of a
random order: a derangement) and draws from torch's global generator, so ``monai.utils.set_determinism`` makes
it reproducible.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.networks.utils import one_hot

from .labelled_batch import labelled_batch_tensors

__all__ = ["MixupPrepareBatch", "mixup_partners"]


def mixup_partners(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices ``partner`` (length ``n`` >= 2) with ``partner[i] != i`` for every ``i``: a random order, each
    sample paired with the next one in it (cyclically). Drawn with ``generator`` (default: torch's global one)."""
    if n < 2:
        raise ValueError(f"mixup needs at least 2 samples to pair, got {n}.")
    order = torch.randperm(n, generator=generator)
    partner = torch.empty(n, dtype=torch.long)
    partner[order] = torch.roll(order, -1)
    return partner


class MixupPrepareBatch(PrepareBatch):
    """``prepare_batch`` for :class:`monai.engines.SupervisedTrainer` that returns mixup samples.

    Per batch (with probability ``prob``; otherwise the batch is returned with one-hot labels, unmixed): the
    labels (B, 1, ...) of class indices become one-hot (B, ``num_classes``, ...) float labels; each sample ``i`` is
    mixed with a partner ``j != i`` of the same batch, ``lam_i ~ Beta(alpha, alpha)`` drawn per sample:
    ``image_i <- lam_i image_i + (1 - lam_i) image_j`` and the same for the one-hot labels. Labels that already
    have ``num_classes`` channels are taken as one-hot (or soft) labels.

    Args:
        num_classes: number of classes of the one-hot labels (the network's output channels).
        alpha: Beta(alpha, alpha) parameter (> 0). 0.4 is the upper end of the range Zhang et al. (ICLR 2018) found
            to improve ImageNet (alpha in [0.1, 0.4]; larger values underfit there); paper 000 (the project
            proposal) gives no value. Small alpha: most weights near 0 or 1 (mild mixing); alpha = 1: uniform.
        prob: probability of mixing a batch, in [0, 1].

    The batch must hold at least 2 samples (``batch_size`` volumes x patches per volume); a smaller one raises a
    ``ValueError`` that says so. Returns plain tensors (image, label) on ``device``; the last draw is kept in
    ``last_lambda`` (B,) and ``last_partner`` (B,) (``None`` when the batch was not mixed). Randomness: torch's
    global generator (``monai.utils.set_determinism`` seeds it), so it does not depend on the data loader's
    workers.
    """

    def __init__(self, num_classes: int, alpha: float = 0.4, prob: float = 1.0) -> None:
        if int(num_classes) < 2:
            raise ValueError(f"MixupPrepareBatch: num_classes must be >= 2, got {num_classes!r}.")
        if not float(alpha) > 0.0:
            raise ValueError(f"MixupPrepareBatch: alpha must be > 0 (Beta(alpha, alpha)), got {alpha!r}.")
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"MixupPrepareBatch: prob must be in [0, 1], got {prob!r}.")
        self.num_classes = int(num_classes)
        self.alpha = float(alpha)
        self.prob = float(prob)
        self.last_lambda: torch.Tensor | None = None
        self.last_partner: torch.Tensor | None = None

    def one_hot_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, 1, ...) class indices -> (B, num_classes, ...) float one-hot; (B, num_classes, ...) passes as float."""
        if labels.shape[1] == self.num_classes and self.num_classes > 1 and torch.is_floating_point(labels):
            return labels
        if labels.shape[1] != 1:
            raise ValueError(
                f"MixupPrepareBatch: labels of shape {tuple(labels.shape)}: expected (B, 1, ...) class indices or "
                f"(B, {self.num_classes}, ...) float one-hot labels."
            )
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.num_classes:
            raise ValueError(
                f"MixupPrepareBatch: label values {lo}..{hi} outside 0..{self.num_classes - 1} (num_classes "
                f"{self.num_classes})."
            )
        return one_hot(labels.long(), self.num_classes, dtype=torch.float32, dim=1)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Move the batch to ``device`` (as MONAI's default), then return the mixed images and soft labels."""
        images, labels = labelled_batch_tensors(
            batchdata, device, non_blocking, "MixupPrepareBatch", "mixup needs labels", **kwargs
        )
        labels = self.one_hot_labels(labels)
        n = images.shape[0]
        if n < 2:
            raise ValueError(
                f"MixupPrepareBatch: a batch of {n} sample; mixup mixes samples of one batch and needs at least 2 "
                "(batch_size x samples_per_volume >= 2)."
            )
        self.last_lambda = self.last_partner = None
        if self.prob < 1.0 and float(torch.rand(())) >= self.prob:
            return images, labels
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((n,)).clamp(0.0, 1.0)
        partner = mixup_partners(n)
        self.last_lambda, self.last_partner = lam, partner
        shape = (n,) + (1,) * (images.ndim - 1)
        lam_i = lam.to(device=images.device, dtype=images.dtype).view(shape)
        lam_l = lam.to(device=labels.device, dtype=labels.dtype).view(shape)
        idx_i, idx_l = partner.to(images.device), partner.to(labels.device)
        mixed_images = lam_i * images + (1.0 - lam_i) * images[idx_i]
        mixed_labels = lam_l * labels + (1.0 - lam_l) * labels[idx_l]
        return mixed_images, mixed_labels
