"""Data augmentation with a Riemannian Hamiltonian VAE and manifold sampling (Chadebec & Allassonniere,
DGM4MICCAI 2021). Bundle: ``bundles/vae_manifold_augmentation``.
"""

from __future__ import annotations

from .dataset import (
    ManifoldAugmentedDataset,
    brain_ad_split_lists,
    class_items,
    manifold_augmented_items,
)
from .digits import (
    MLPVariationalAutoEncoder,
    classic_augmentation,
    digit_classifier,
    digits_generated_grid,
    run_digits_arm,
    train_class_generator,
    train_digit_classifier,
)
from .loss import RHVAEElboLoss
from .rhvae import (
    RiemannianHamiltonianMLPVAE,
    RiemannianHamiltonianVAE,
    RiemannianLatentMetric,
    load_rhvae,
    tempering_schedule,
)
from .samplers import (
    MetricHMCSampler,
    PriorLatentSampler,
    RiemannianRandomWalkSampler,
    generate_images,
    geodesic_shoot,
    make_latent_sampler,
)
from .study import (
    check_generated_images,
    prepare_brain_ad_benchmark,
    real_vs_generated_grid,
    score_brain_classifier,
)

__all__ = [
    "brain_ad_split_lists",
    "class_items",
    "manifold_augmented_items",
    "ManifoldAugmentedDataset",
    "RHVAEElboLoss",
    "MLPVariationalAutoEncoder",
    "classic_augmentation",
    "digit_classifier",
    "digits_generated_grid",
    "run_digits_arm",
    "train_class_generator",
    "train_digit_classifier",
    "load_rhvae",
    "RiemannianHamiltonianVAE",
    "RiemannianHamiltonianMLPVAE",
    "RiemannianLatentMetric",
    "tempering_schedule",
    "generate_images",
    "geodesic_shoot",
    "make_latent_sampler",
    "MetricHMCSampler",
    "PriorLatentSampler",
    "RiemannianRandomWalkSampler",
    "check_generated_images",
    "prepare_brain_ad_benchmark",
    "real_vs_generated_grid",
    "score_brain_classifier",
]
