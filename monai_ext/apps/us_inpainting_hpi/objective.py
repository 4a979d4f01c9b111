"""HPI's training objective (Hung et al., DGM4MICCAI 2021, Sect. 2.3) and the trainer's ``iteration_update``.

``L = w_rec L_rec + L_p + L_s + w_KL sum_i KL_i``:

- ``L_rec``: :class:`~monai_ext.losses.DistanceWeightedLaplacianPyramidLoss` of the network output (Eq. 3);
- ``L_p`` / ``L_s``: perceptual and Gram style losses (:mod:`monai_ext.losses.feature_statistics`) of the composited
  completion. The paper taps ImageNet VGG (w_p = (0, 0, 0, 0, 0.1), w_s = (0.2, 0.005, 0.002, 0.02, 20)); nothing can
  be downloaded here, so the bundle taps a fixed random-weight VGG-like network and weights its layers to its scales
  (a documented deviation);
- ``KL_i``: :class:`~monai_ext.losses.ResidualGaussianKLLoss` of each level's residual posterior (per-level weight
  10 in the paper).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from monai_ext.engines.distributed import synced_optimizer_step
from monai_ext.losses import (
    DistanceWeightedLaplacianPyramidLoss,
    ResidualGaussianKLLoss,
    feature_distance,
    gram_distance,
    layer_weights,
)

__all__ = ["HPIInpaintingLoss", "HPIInpaintingIteration"]


class HPIInpaintingLoss(nn.Module):
    """``loss(y_hat, target, hole_mask, kl_terms)`` for ``(B, C, H, W)`` images in [0, 1] and a ``(B, 1, H, W)`` hole
    mask; ``kl_terms`` as :meth:`~monai_ext.apps.us_inpainting_hpi.HPIInpaintingNet.reconstruct` returns them.

    Args:
        rec_weight: ``w_rec`` (the paper: 100-500).
        levels, r, alpha: of the Laplacian-pyramid reconstruction loss.
        extractor: frozen feature network of the perceptual and style terms (None: no such terms).
        perceptual_weights, style_weights: per extractor layer (0 skips a layer).
        kl_weight: weight of each level's KL (the paper: 10 per level, on the KL per latent element): each level's
            KL is the mean over its latent elements, summed over a sample's levels, averaged over the batch.

    After each call, :attr:`last_terms` holds the float values of the terms (for logging).
    """

    def __init__(self, rec_weight: float = 100.0, levels: int = 4, r: float = 2.0, alpha: float = 1.1,
                 extractor: nn.Module | None = None, perceptual_weights: Sequence[float] | None = None,
                 style_weights: Sequence[float] | None = None, kl_weight: float = 10.0) -> None:
        super().__init__()
        self.rec = DistanceWeightedLaplacianPyramidLoss(levels=levels, r=r, alpha=alpha)
        self.rec_weight, self.kl_weight = float(rec_weight), float(kl_weight)
        self.extractor = extractor
        self.perceptual_weights = None if perceptual_weights is None else [float(w) for w in perceptual_weights]
        self.style_weights = None if style_weights is None else [float(w) for w in style_weights]
        self.kl = ResidualGaussianKLLoss()
        self.last_terms: dict[str, float] = {}

    def forward(self, y_hat: torch.Tensor, target: torch.Tensor, hole_mask: torch.Tensor,
                kl_terms: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        rec = self.rec(y_hat, target, hole_mask)
        total = self.rec_weight * rec
        terms = {"rec": float(rec.detach())}
        if self.extractor is not None:
            hole = (hole_mask > 0.5).to(y_hat.dtype)
            completed = hole * y_hat + (1 - hole) * target
            fo = self.extractor(completed)
            with torch.no_grad():
                ft = self.extractor(target)
            lp = feature_distance(fo, ft, layer_weights(self.perceptual_weights, len(fo), "perceptual_weights"))
            ls = gram_distance(fo, ft, layer_weights(self.style_weights, len(fo), "style_weights"))
            total = total + lp + ls
            terms.update(perceptual=float(lp.detach()), style=float(ls.detach()))
        if len(kl_terms):
            kl = sum(self.kl(*t) / t[0][0].numel() for t in kl_terms)
            total = total + self.kl_weight * kl
            terms["kl"] = float(kl.detach())
        self.last_terms = terms
        return total


class HPIInpaintingIteration:
    """``iteration_update`` of a MONAI ``SupervisedTrainer`` for
    :class:`~monai_ext.apps.us_inpainting_hpi.HPIInpaintingNet`: the batch's ``image_key`` images are the complete
    images ``y``, ``mask_key`` the hole masks (1 = missing); the network reconstructs ``y`` from the masked image
    through its posterior and the trainer's ``loss_function`` (:class:`HPIInpaintingLoss`) scores it.

    Under torchrun the ranks are kept in step here (the iteration calls a model method that a
    DistributedDataParallel wrapper would not see): rank 0's weights are broadcast once, gradients averaged, batch
    norm statistics broadcast after each step (:mod:`monai_ext.engines.distributed`).

    Returns ``{"loss", **loss terms, "pred": composited completion}`` as the engine output.
    """

    def __init__(self, image_key: str = "image", mask_key: str = "mask") -> None:
        self.image_key, self.mask_key = image_key, mask_key

    def __call__(self, engine: Any, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None or self.image_key not in batchdata or self.mask_key not in batchdata:
            raise ValueError(f"the batch must hold '{self.image_key}' (B, C, H, W) images and '{self.mask_key}' "
                             f"(B, 1, H, W) hole masks.")
        dev = engine.state.device
        target = torch.as_tensor(batchdata[self.image_key]).to(dev, non_blocking=engine.non_blocking).float()
        hole = (torch.as_tensor(batchdata[self.mask_key]).to(dev, non_blocking=engine.non_blocking) > 0.5).float()

        def step() -> tuple[torch.Tensor, torch.Tensor]:
            y_hat, kl_terms = engine.network.reconstruct(target * (1 - hole), hole, target)
            return engine.loss_function(y_hat, target, hole, kl_terms), y_hat

        loss, y_hat = synced_optimizer_step(engine, step)
        terms = dict(getattr(engine.loss_function, "last_terms", {}))
        pred = (hole * y_hat + (1 - hole) * target).detach()
        return {"loss": float(loss.detach()), **terms, "pred": pred}
