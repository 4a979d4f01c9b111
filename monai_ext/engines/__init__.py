"""Training-engine helpers that MONAI lacks, generic across methods (distributed averaging, gradient guard, mixup
and FGSM adversarial batches, a history pool of generated images).
"""

from __future__ import annotations

from .adversarial_examples import FGSMPrepareBatch
from .distributed import average_gradients, broadcast_module, is_distributed
from .gradient_guard import GradientGuard
from .history_pool import HistoryImagePool
from .labelled_batch import labelled_batch_tensors
from .mixup import MixupPrepareBatch, mixup_partners

__all__ = [
    "average_gradients",
    "broadcast_module",
    "is_distributed",
    "GradientGuard",
    "HistoryImagePool",
    "labelled_batch_tensors",
    "FGSMPrepareBatch",
    "MixupPrepareBatch",
    "mixup_partners",
]
