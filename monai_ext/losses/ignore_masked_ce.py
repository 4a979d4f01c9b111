"""Cross-entropy over annotated voxels only: the loss of sparse annotations (labels ``-1`` where nobody annotated).

Laprade et al., "How few annotations are needed for segmentation using a multi-planar U-Net?" (DGM4MICCAI/DALI
2021), train on planes that are labelled only where they cross the annotated planes; the loss is the
cross-entropy of the annotated pixels. MONAI's ``MaskedLoss`` multiplies prediction and target by the mask, so the
masked-out voxels still enter the loss as background; here they are left out of the sum and of the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

__all__ = ["IgnoreMaskedCELoss"]


class IgnoreMaskedCELoss(_Loss):
    """Cross-entropy averaged over the voxels whose target is not ``ignore_index``.

    Args:
        ignore_index: the target value of voxels that are not annotated.
        pos_weight: one output channel only: the weight of foreground voxels in the binary cross-entropy
            (``torch``'s ``pos_weight``); ``"balanced"``: background / foreground count of the batch's annotated
            voxels (1 without foreground), at most ``max_pos_weight``; ``None``: 1 (the paper's loss).
        max_pos_weight: the cap of the balanced weight.

    Call ``loss(input, target)``: ``input`` logits (B, C, *spatial), 2D or 3D; ``target`` class indices
    (B, 1, *spatial) or (B, *spatial), ``ignore_index`` where not annotated. One output channel: binary
    cross-entropy with logits (target 0 / 1); C >= 2: softmax cross-entropy (target 0 .. C-1). Ignored voxels get
    zero gradient. With no annotated voxel in the batch the loss is 0 (still attached to the graph, so a
    distributed step stays in step). Raises ``ValueError`` for a target of the wrong shape or an annotated value
    outside 0 .. C-1 (0 / 1 for one channel).
    """

    def __init__(self, ignore_index: int = -1, pos_weight: float | str | None = None, max_pos_weight: float = 100.0) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        if isinstance(pos_weight, str) and pos_weight != "balanced":
            raise ValueError(f"pos_weight must be a positive number, 'balanced' or None, got {pos_weight!r}.")
        if pos_weight is not None and not isinstance(pos_weight, str) and not float(pos_weight) > 0:
            raise ValueError(f"pos_weight must be a positive number, 'balanced' or None, got {pos_weight!r}.")
        self.pos_weight = pos_weight
        self.max_pos_weight = float(max_pos_weight)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy of the annotated voxels of ``input`` (B, C, *spatial)."""
        if target.ndim == input.ndim:
            if target.shape[1] != 1:
                raise ValueError(f"target must be class indices (B, 1, *spatial), got shape {tuple(target.shape)}.")
            target = target[:, 0]
        if target.shape != input.shape[:1] + input.shape[2:]:
            raise ValueError(f"target shape {tuple(target.shape)} does not match input {tuple(input.shape)} "
                             "(B, C, *spatial) without the channel.")
        target = torch.round(target.float()).long()
        annotated = target != self.ignore_index
        num_classes = max(input.shape[1], 2)
        values = target[annotated]
        if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
            raise ValueError(f"annotated target values must be in 0..{num_classes - 1} (or {self.ignore_index}: not "
                             f"annotated), got values in [{int(values.min())}, {int(values.max())}].")
        if not bool(annotated.any()):
            return input.sum() * 0.0
        if input.shape[1] == 1:
            logits, values = input[:, 0][annotated].float(), values.float()
            weight = None
            if self.pos_weight == "balanced":
                n_pos = values.sum()
                ratio = (values.numel() - n_pos) / n_pos if float(n_pos) > 0 else torch.ones((), device=values.device)
                weight = ratio.clamp(1.0, self.max_pos_weight)
            elif self.pos_weight is not None:
                weight = torch.tensor(float(self.pos_weight), device=values.device)
            return F.binary_cross_entropy_with_logits(logits, values, pos_weight=weight)
        if self.pos_weight is not None:
            raise ValueError("pos_weight is for one output channel (binary cross-entropy); got "
                             f"{input.shape[1]} channels.")
        return F.cross_entropy(input.float(), target, ignore_index=self.ignore_index)
