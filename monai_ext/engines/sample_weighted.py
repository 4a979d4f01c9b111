"""Supervised training with a weight per sample from the batch: ``L = mean_i(w_i * l_i)``, e.g. the AdaptOR joint
training ``sum MSE_intraop + lambda_sim * sum MSE_sim`` (a source-domain sample weighs ``lambda_sim``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.engines import SupervisedTrainer

__all__ = ["SampleWeightedTrainer"]


class SampleWeightedTrainer(SupervisedTrainer):
    """MONAI's ``SupervisedTrainer`` (AMP, events, handlers unchanged) whose loss is weighted per sample by
    ``batch[weight_key]`` (shape (B,)).

    ``loss_function(pred, label)`` must return unreduced losses whose first axis is the batch (e.g. MONAI's
    ``DiceLoss(reduction="none")`` or ``torch.nn.MSELoss(reduction="none")``); they are averaged per sample, weighted
    and averaged over the batch. A batch without ``weight_key`` raises ``KeyError`` naming it.

    Args:
        args, kwargs: ``SupervisedTrainer``'s.
        weight_key: the batch key of the weights.
    """

    def __init__(self, *args: Any, weight_key: str = "weight", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_key = weight_key
        self.per_sample_loss: Callable[..., torch.Tensor] = self.loss_function
        self.loss_function = self._weighted_loss
        self._weights: torch.Tensor | None = None

    def batch_vector(self, batchdata: dict[str, Any], key: str, what: str) -> torch.Tensor:
        """``batchdata[key]`` as a float32 (B,) tensor; ``KeyError`` naming the trainer, the key and ``what`` it
        holds when the batch lacks it."""
        if key not in batchdata:
            raise KeyError(f"{type(self).__name__}: the batch has no {key!r} ({what}); keys: "
                           f"{sorted(map(str, batchdata))}.")
        return torch.as_tensor(batchdata[key], dtype=torch.float32).reshape(-1)

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict:
        self._weights = self.batch_vector(batchdata, self.weight_key, "one weight per sample")
        return super()._iteration(engine, batchdata)

    def _weighted_loss(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        per = self.per_sample_loss(pred, label)
        if per.ndim == 0 or per.shape[0] != pred.shape[0]:
            raise ValueError("SampleWeightedTrainer: loss_function must return unreduced per-sample losses "
                             f"(first axis = batch {pred.shape[0]}), got shape {tuple(per.shape)}; use reduction='none'.")
        per = per.reshape(per.shape[0], -1).mean(dim=1)
        return (self._weights.to(per) * per).mean()
