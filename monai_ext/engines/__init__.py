"""Training-engine helpers that MONAI lacks, generic across methods (distributed averaging, gradient guard, mixup
and FGSM adversarial batches, a history pool of generated images, active-learning query strategies and the loop
that runs any bundle's training through budget cycles, MAML meta-learning and episode / equalised task samplers), the classifier two-sample test and GAN evaluation report.
"""

from __future__ import annotations

from .active_learning import ActiveLearningLoop, budget_schedule, pool_predictions
from .active_queries import (
    ACTIVE_QUERIES,
    KCenterGreedyQuery,
    KNNQuery,
    MixtureQuery,
    RandomQuery,
    TopNQuery,
    make_query,
    unlabelled_indices,
)
from .adversarial_examples import FGSMPrepareBatch
from .cycle_gan import CycleGANTrainer, discriminator_logits
from .distributed import average_gradients, broadcast_module, is_distributed, synced_optimizer_step
from .gradient_guard import GradientGuard
from .history_pool import HistoryImagePool
from .labelled_batch import labelled_batch_tensors
from .maml import MAMLTrainer
from .optimizer_step import step_with_loss
from .mixup import MixupPrepareBatch, mixup_partners
from .sample_weighted import SampleWeightedTrainer
from .task_sampling import EpisodeBatchSampler, EqualizedTaskSampler, task_groups
from .gan_evaluation import GAN_REPORT_FLAGS, gan_evaluation_report, gan_report_markdown
from .two_sample_test import classifier_two_sample_test, network_features

__all__ = [
    "step_with_loss",
    "CycleGANTrainer",
    "discriminator_logits",
    "SampleWeightedTrainer",
    "MAMLTrainer",
    "EpisodeBatchSampler",
    "EqualizedTaskSampler",
    "task_groups",
    "ActiveLearningLoop",
    "budget_schedule",
    "pool_predictions",
    "ACTIVE_QUERIES",
    "KCenterGreedyQuery",
    "KNNQuery",
    "MixtureQuery",
    "RandomQuery",
    "TopNQuery",
    "make_query",
    "unlabelled_indices",
    "GAN_REPORT_FLAGS",
    "gan_evaluation_report",
    "gan_report_markdown",
    "classifier_two_sample_test",
    "network_features",
    "average_gradients",
    "broadcast_module",
    "is_distributed",
    "synced_optimizer_step",
    "GradientGuard",
    "HistoryImagePool",
    "labelled_batch_tensors",
    "FGSMPrepareBatch",
    "MixupPrepareBatch",
    "mixup_partners",
]
