"""MetaHistoSeg: meta-learning (MAML) against instance-level transfer learning across histopathology segmentation
tasks with different label sets, leave-one-task-out with fine-tuning on the held-out task (DGM4MICCAI/DALI 2021;
seeds/002). The generic pieces are ``monai_ext.engines`` (``MAMLTrainer``, ``EpisodeBatchSampler``,
``EqualizedTaskSampler``), ``monai_ext.networks.MultiHeadSegNet`` and ``monai_ext.metrics.PooledIoUMetric``.
Bundle: ``bundles/metahistoseg``.
"""

from __future__ import annotations

from .data import (
    METHODS,
    PrepareTaskBatch,
    check_finetune_setup,
    check_method,
    task_test_items,
    metahistoseg_datalist,
    task_tiles,
)

__all__ = [
    "METHODS",
    "PrepareTaskBatch",
    "check_finetune_setup",
    "check_method",
    "task_test_items",
    "metahistoseg_datalist",
    "task_tiles",
]
