"""BrainNetGAN (Cao et al., "BrainNetGAN: Data Augmentation of Brain Connectivity Using Generative Adversarial Network
for Dementia Classification", DGM4MICCAI/DALI 2021): a class-conditional WGAN-GP generating structural connectivity
matrices, trained with a BrainNetCNN critic and classifier, to augment the training set of an AD / CN classifier;
SMOTE and ADASYN as the paper's baselines. Bundle: ``bundles/brainnetgan_connectome``.
"""

from __future__ import annotations

from .augmentation import (
    AUGMENTATIONS,
    TRAIN_MODES,
    connectome_training_set,
    fake_connectome_set,
    gan_connectomes,
    load_connectome_set,
    oversampled_connectomes,
    write_generated_connectomes,
)
from .data import brainnetgan_datalist
from .graph_report import fake_set_divergence
from .networks import ConnectomeGenerator
from .trainer import BrainNetGANTrainer

__all__ = [
    "AUGMENTATIONS",
    "TRAIN_MODES",
    "BrainNetGANTrainer",
    "brainnetgan_datalist",
    "ConnectomeGenerator",
    "connectome_training_set",
    "fake_connectome_set",
    "fake_set_divergence",
    "gan_connectomes",
    "load_connectome_set",
    "oversampled_connectomes",
    "write_generated_connectomes",
]
