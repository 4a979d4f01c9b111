"""Classifier two-sample test of generated images (Lopez-Paz and Oquab 2017), as "Evaluating GANs in Medical
Imaging" (Wang et al., DGM4MICCAI 2021, Sect. 2.1) runs it: a CNN learns real vs synthetic on the real training
images and synthetic images of one sample, and is tested on held-out real images and a second synthetic sample.
The less well it tells them apart (recall of the synthetic class, specificity for the real one), the better the
generator. The trained network's penultimate features are the feature space of the Frechet/Mahalanobis distances.

Training is MONAI's ``SupervisedTrainer``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from monai.data import DataLoader
from monai.engines import SupervisedTrainer
from monai.metrics import compute_roc_auc
from monai.utils import set_determinism

from ..networks.two_sample_cnn import TwoSampleDiscriminatorCNN

__all__ = ["classifier_two_sample_test", "network_features"]


def _images(x: torch.Tensor, what: str, like: torch.Tensor | None = None) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim not in (4, 5) or len(x) < 2:
        raise ValueError(f"{what}: expected at least 2 images as (N, C, H, W) or (N, C, H, W, D), got {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what}: images contain NaN or infinite values.")
    if like is not None and x.shape[1:] != like.shape[1:]:
        raise ValueError(f"{what}: images of shape {tuple(x.shape[1:])}, expected {tuple(like.shape[1:])} as the real training images.")
    return x


@torch.no_grad()
def network_features(network: TwoSampleDiscriminatorCNN, images: torch.Tensor, device: torch.device,
                     batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, F), probability of synthetic (N,))`` of ``images`` under a trained two-sample network."""
    network.eval()
    feats, probs = [], []
    for start in range(0, len(images), batch_size):
        f = network.features(images[start : start + batch_size].to(device))
        feats.append(f.cpu())
        probs.append(torch.sigmoid(network.classifier(f)).reshape(-1).cpu())
    return torch.cat(feats), torch.cat(probs)


def classifier_two_sample_test(
    real_train: torch.Tensor,
    synthetic_train: torch.Tensor,
    real_test: torch.Tensor,
    synthetic_test: torch.Tensor,
    epochs: int = 20,
    min_iterations: int = 200,
    batch_size: int = 64,
    lr: float = 1e-3,
    channels: tuple[int, ...] = (32, 64, 128, 256),
    feature_dim: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict:
    """Train :class:`~monai_ext.networks.TwoSampleDiscriminatorCNN` (BCE, Adam ``lr``, ``epochs``, more when
    needed for at least ``min_iterations`` steps: small sets give few steps per epoch) on
    ``real_train`` (label 0) and ``synthetic_train`` (label 1), images ``(N, C, ...)`` in [0, 1], and test it on
    ``real_test`` and ``synthetic_test`` at threshold 0.5.

    Returns ``{"recall_synthetic", "specificity_real", "accuracy", "roc_auc"}`` (floats; a perfect generator gives
    0.5, 0.5, 0.5, 0.5 on balanced sets, a useless one 1.0 each) plus ``"features"``
    (``{"real_test", "synthetic_test"}`` penultimate features) and the trained ``"network"``.
    """
    real_train = _images(real_train, "real_train")
    synthetic_train = _images(synthetic_train, "synthetic_train", real_train)
    real_test = _images(real_test, "real_test", real_train)
    synthetic_test = _images(synthetic_test, "synthetic_test", real_train)
    device = torch.device(device) if device is not None else torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    set_determinism(seed=seed)
    try:
        network = TwoSampleDiscriminatorCNN(
            spatial_dims=real_train.ndim - 2, in_channels=real_train.shape[1], channels=channels, feature_dim=feature_dim,
        ).to(device)
        images = torch.cat([real_train, synthetic_train])
        labels = torch.cat([torch.zeros(len(real_train), 1), torch.ones(len(synthetic_train), 1)])
        loader = DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=int(batch_size), shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        epochs = max(int(epochs), math.ceil(int(min_iterations) / len(loader)))
        trainer = SupervisedTrainer(
            device=device, max_epochs=epochs, train_data_loader=loader, network=network,
            optimizer=torch.optim.Adam(network.parameters(), lr=float(lr)), loss_function=nn.BCEWithLogitsLoss(),
        )
        trainer.run()
    finally:
        set_determinism(seed=None)
    feats_real, p_real = network_features(network, real_test, device)
    feats_syn, p_syn = network_features(network, synthetic_test, device)
    recall = float((p_syn >= 0.5).float().mean())
    specificity = float((p_real < 0.5).float().mean())
    scores = torch.cat([p_real, p_syn])
    truth = torch.cat([torch.zeros(len(p_real)), torch.ones(len(p_syn))])
    return {
        "recall_synthetic": recall,
        "specificity_real": specificity,
        "accuracy": float(((scores >= 0.5).float() == truth).float().mean()),
        "roc_auc": float(compute_roc_auc(scores, truth)),
        "epochs": epochs,
        "features": {"real_test": feats_real, "synthetic_test": feats_syn},
        "network": network,
    }
