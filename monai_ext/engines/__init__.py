"""Training-engine helpers that MONAI lacks, generic across methods.
"""

from __future__ import annotations

from .distributed import average_gradients, broadcast_module, is_distributed
from .gradient_guard import GradientGuard

__all__ = [
    "average_gradients",
    "broadcast_module",
    "is_distributed",
    "GradientGuard",
]
