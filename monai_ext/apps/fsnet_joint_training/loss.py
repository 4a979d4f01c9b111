"""FS-Net's dataset-weighted loss: ``R = sum_m delta_m * l(g^m(x), y_m)`` over the data sets in the batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import torch
from monai.losses import DiceLoss
from torch import nn

from ...transforms.union_labels import dataset_union_labels

__all__ = ["DatasetWeightedSegLoss"]


class DatasetWeightedSegLoss(nn.Module):
    """Per-data-set segmentation loss on each data set's own output channels, weighted by ``dataset_weights``.

    For every data set ``m`` present in the batch, its samples' logits are cut to the background channel and
    ``m``'s classes (so the softmax of ``m`` never sees another data set's classes), their union labels are mapped
    back to ``0..K_m``, and ``loss`` is applied; the result is ``sum_m dataset_weights[m] * loss_m``.

    Args:
        class_counts: foreground classes of each data set (as the network's).
        dataset_weights: ``delta_m`` per data set (the paper: 0.95 for the target, 0.05 for the auxiliary set).
        loss: loss of one data set's (logits, labels); default MONAI ``DiceLoss(to_onehot_y=True, softmax=True,
            batch=True)``.

    ``forward(pred, target)``: ``pred`` union logits (B, 1 + sum K, *spatial); ``target`` a pair ``(label,
    dataset_index)`` (as :class:`PrepareJointBatch` builds it) with union labels (B, 1, *spatial) and (B,) indices.
    """

    def __init__(self, class_counts: Sequence[int], dataset_weights: Sequence[float],
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.class_counts = [int(k) for k in class_counts]
        self.dataset_labels = [dataset_union_labels(self.class_counts, m) for m in range(len(self.class_counts))]
        if len(dataset_weights) != len(self.class_counts) or any(float(w) < 0 for w in dataset_weights):
            raise ValueError(f"DatasetWeightedSegLoss: one non-negative weight per data set expected "
                             f"({len(self.class_counts)}), got {list(dataset_weights)}.")
        self.weights = [float(w) for w in dataset_weights]
        self.loss = loss if loss is not None else DiceLoss(to_onehot_y=True, softmax=True, batch=True)

    def forward(self, pred: torch.Tensor, target: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if not isinstance(target, (tuple, list)) or len(target) != 2:
            raise ValueError("DatasetWeightedSegLoss: target must be (label, dataset_index), as PrepareJointBatch "
                             "gives it.")
        label, index = target
        index = torch.as_tensor(index, device=pred.device).reshape(-1).long()
        total = pred.float().sum() * 0.0
        for m, labels in enumerate(self.dataset_labels):
            rows = torch.nonzero(index == m).flatten()
            if rows.numel() == 0 or self.weights[m] == 0.0:
                continue
            o, k = labels[1], len(labels) - 1
            channels = torch.tensor(labels, device=pred.device)
            lab = label[rows]
            local = torch.where(lab > 0, lab - (o - 1), torch.zeros_like(lab))
            if bool(((local < 0) | (local > k)).any()):
                raise ValueError(f"DatasetWeightedSegLoss: data set {m}'s samples hold union labels outside its "
                                 f"classes {o}..{o + k - 1} (was the label union-encoded with the same class counts?).")
            total = total + self.weights[m] * self.loss(pred[rows].index_select(1, channels), local)
        return total
