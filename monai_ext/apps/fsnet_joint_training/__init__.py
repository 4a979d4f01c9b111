"""FS-Net: data expansion by joint multi-dataset training (DGM4MICCAI/DALI 2021; seeds/002): dataset channel coding,
labels over the union of classes, per-data-set feature-space branches with channel attention in front of one shared
U-Net, a dataset-weighted loss; the baselines (target only, pre-training then fine-tuning, plain joint training).
Bundle: ``bundles/fsnet_joint_training``.
"""

from __future__ import annotations

from .data import (
    SAMPLING_MODES,
    TRAINING_MODES,
    PrepareJointBatch,
    check_training_switches,
    dataset_sampling_weights,
    fsnet_datalist,
)
from .evaluation import class_channel_output
from .loss import DatasetWeightedSegLoss
from .network import DANetChannelAttention, DatasetHead, FeatureSpaceBranch, FSNet

__all__ = [
    "SAMPLING_MODES",
    "TRAINING_MODES",
    "DANetChannelAttention",
    "DatasetHead",
    "DatasetWeightedSegLoss",
    "FSNet",
    "FeatureSpaceBranch",
    "PrepareJointBatch",
    "check_training_switches",
    "class_channel_output",
    "dataset_sampling_weights",
    "fsnet_datalist",
]
