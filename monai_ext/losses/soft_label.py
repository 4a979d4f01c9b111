"""Dice + cross-entropy for soft labels (mixup, label smoothing): MONAI's ``DiceCELoss`` with its Dice term in
MONAI's soft-label form."""

from __future__ import annotations

from monai.losses import DiceCELoss

__all__ = ["SoftLabelDiceCELoss"]


class SoftLabelDiceCELoss(DiceCELoss):
    """:class:`monai.losses.DiceCELoss` whose targets may be soft (B, C, ...) class probabilities, e.g. mixed
    one-hot labels from :class:`monai_ext.engines.MixupPrepareBatch`. Same arguments as ``DiceCELoss``.

    Why: in MONAI 1.6.1 ``DiceCELoss`` builds its ``DiceLoss`` without ``soft_label``, so the Dice term is
    ``2 sum(p t) / (sum(p) + sum(t))``, which for a soft target ``t`` is not minimal at ``p = t`` (one voxel with
    ``t = 0.5``: ``p / (p + 0.5)`` keeps growing up to ``p = 1``): it pushes the prediction to hard labels. Here the
    Dice term is ``DiceLoss(soft_label=True)`` (Wang et al. 2023, JDT losses): ``1 - |p - t|_1 / (|p|_1 + |t|_1)``
    per class, zero at ``p = t`` and equal to the usual Dice loss for hard (0/1) targets. The cross-entropy term
    already takes class probabilities as targets (``torch.nn.CrossEntropyLoss``; with class ``weight`` it is then
    averaged over the voxels, not over the weights as for class-index targets, so weighted values are on another
    scale than ``DiceCELoss`` with hard labels). Targets of class indices (B, 1, ...) with ``to_onehot_y`` work as
    in ``DiceCELoss``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dice.soft_label = True
