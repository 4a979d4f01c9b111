"""A generation-only RHVAE checkpoint (no metric network) samples exactly as the full one and refuses to train."""

from __future__ import annotations

import pytest
import torch

from monai_ext.apps.vae_manifold_augmentation import RiemannianHamiltonianVAE, generate_images, load_rhvae

torch.set_num_threads(1)


def _trained_like(seed: int = 0) -> RiemannianHamiltonianVAE:
    torch.manual_seed(seed)
    net = RiemannianHamiltonianVAE(2, (1, 16, 16), latent_size=3, channels=(4, 8), strides=(2, 2), metric_hidden=32)
    net.update_metric_bank(torch.rand(6, 1, 16, 16))
    return net.eval()


def test_generation_only_checkpoint_generates_identically_and_is_smaller(tmp_path):
    net = _trained_like()
    full, light = tmp_path / "full.pt", tmp_path / "light.pt"
    net.save_generator(full, image_class=0)
    net.save_generator(light, generation_only=True, image_class=0)
    assert light.stat().st_size < full.stat().st_size
    a, b = load_rhvae(full), load_rhvae(light)
    assert not a.generation_only and b.generation_only
    for sampler in ("hmc", "prior", "rrw"):
        assert torch.equal(generate_images(a, 5, sampler, seed=3)[0], generate_images(b, 5, sampler, seed=3)[0]), sampler


def test_generation_only_checkpoint_refuses_to_encode_or_train(tmp_path):
    path = _trained_like().save_generator(tmp_path / "light.pt", generation_only=True)
    net = load_rhvae(path)
    with pytest.raises(RuntimeError, match="generation only"):
        net.encode_all(torch.rand(2, 1, 16, 16))
    with pytest.raises(RuntimeError, match="generation only"):
        net.update_metric_bank(torch.rand(4, 1, 16, 16))
    # saving it again keeps it generation-only (its metric network was never loaded)
    again = load_rhvae(net.save_generator(tmp_path / "again.pt"))
    assert again.generation_only


def test_generation_only_checkpoint_without_a_bank_is_rejected(tmp_path):
    torch.manual_seed(0)
    net = RiemannianHamiltonianVAE(2, (1, 16, 16), latent_size=3, channels=(4, 8), strides=(2, 2), metric_hidden=32)
    path = net.save_generator(tmp_path / "nobank.pt", generation_only=True)
    with pytest.raises(ValueError, match="nobank.pt.*metric bank"):
        load_rhvae(path)


def test_shipped_rhvaes_of_seeds_1_to_4_are_generation_only():
    from pathlib import Path

    models = Path(__file__).resolve().parents[1] / "bundles" / "vae_manifold_augmentation" / "models"
    for c in (0, 1):
        assert not load_rhvae(models / f"rhvae_class{c}_seed0.pt").generation_only
        for s in (1, 2, 3, 4):
            assert load_rhvae(models / f"rhvae_class{c}_seed{s}.pt").generation_only
