"""Losses that MONAI lacks."""

from .dice_hausdorff import DiceHausdorffDTLoss
from .gradient_penalty import critic_gradient_penalty  # noqa: F401,E402
