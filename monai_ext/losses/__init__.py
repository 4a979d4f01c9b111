"""Losses that MONAI lacks."""

from .dice_hausdorff import DiceHausdorffDTLoss
