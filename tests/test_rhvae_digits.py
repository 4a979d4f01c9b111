"""The reduced-data digits protocol of the RHVAE augmentation bundle: data split, fully connected RHVAE,
classic augmentation, one protocol run, and the errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from monai_ext.apps.vae_manifold_augmentation import (
    RHVAEElboLoss,
    RiemannianHamiltonianMLPVAE,
    classic_augmentation,
    generate_images,
    load_rhvae,
    run_digits_arm,
    train_class_generator,
)
from monai_ext.datalists import digit_class_counts, load_sklearn_digits, reduced_digits_split, stack_images


def test_balanced_split_is_disjoint_and_covers_every_digit():
    s = reduced_digits_split(seed=3)
    assert np.bincount(s["train_labels"]).tolist() == [40] * 10
    assert np.bincount(s["val_labels"]).tolist() == [10] * 10
    assert len(s["test_labels"]) == 1797 - 500
    images, _ = load_sklearn_digits()
    flat = {im.tobytes(): i for i, im in enumerate(images)}  # a few digits are pixel-identical; compare counts
    all_drawn = np.concatenate([s["train_images"], s["val_images"], s["test_images"]])
    assert len(all_drawn) == 1797 and len({im.tobytes() for im in all_drawn}) == len(flat)
    assert s["train_images"].shape[1:] == (1, 8, 8) and 0 <= s["train_images"].min() and s["train_images"].max() <= 1


def test_unbalanced_split_follows_the_ratio_and_the_seed():
    a, b = reduced_digits_split(seed=1, balance="unbalanced"), reduced_digits_split(seed=1, balance="unbalanced")
    counts = a["class_counts"]
    assert counts.sum() == 500 and 8 <= counts.max() / counts.min() <= 12
    np.testing.assert_array_equal(a["train_labels"], b["train_labels"])
    np.testing.assert_array_equal(a["train_images"], b["train_images"])
    assert not np.array_equal(reduced_digits_split(seed=2, balance="unbalanced")["class_counts"], counts)
    assert reduced_digits_split(seed=0, size=16)["train_images"].shape[1:] == (1, 16, 16)


def test_bad_digit_inputs_are_named():
    with pytest.raises(ValueError, match="empty"):
        digit_class_counts(500, imbalance_ratio=1000)
    with pytest.raises(ValueError, match="mixed sizes"):
        stack_images([np.zeros((1, 8, 8)), np.zeros((1, 16, 16))], "my digits")
    with pytest.raises(ValueError, match="digit class 7.*at least 2"):
        train_class_generator(np.zeros((1, 1, 8, 8), np.float32), epochs=1, name="digit class 7")
    with pytest.raises(ValueError, match="balance"):
        reduced_digits_split(balance="skewed")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_class_generator(np.full((4, 1, 8, 8), 16.0, np.float32), epochs=1)


def test_mlp_rhvae_trains_saves_and_generates(tmp_path):
    images, labels = load_sklearn_digits()
    model, hist = train_class_generator(images[labels == 4][:30], latent_size=4, epochs=60, seed=0)
    assert hist["loss_last"] < 0.7 * hist["loss_first"] and hist["skipped_steps"] == 0
    assert model.bank_centroids.shape == (30, 4)
    out = model.train()(torch.as_tensor(images[:6]))
    assert out["recon"].shape == (6, 1, 8, 8) and out["inverse_metric"].shape == (6, 4, 4)
    assert torch.isfinite(RHVAEElboLoss()(out, torch.as_tensor(images[:6])))
    model.eval()
    for generation_only in (False, True):
        path = model.save_generator(tmp_path / f"m{generation_only}.pt", generation_only=generation_only)
        loaded = load_rhvae(path)
        assert isinstance(loaded, RiemannianHamiltonianMLPVAE)
        a, za = generate_images(model, 5, "hmc", seed=2, n_steps=5)
        b, zb = generate_images(loaded, 5, "hmc", seed=2, n_steps=5)
        torch.testing.assert_close(a, b)
    with pytest.raises(RuntimeError, match="generation only"):
        loaded.encode_all(torch.as_tensor(images[:2]))


def test_classic_augmentation_keeps_the_originals_and_replays():
    images, _ = load_sklearn_digits()
    x = images[:12]
    a, b = classic_augmentation(x, 5, seed=4), classic_augmentation(x, 5, seed=4)
    assert a.shape == (60, 1, 8, 8) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a[:12], x)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[12:] - np.tile(x, (4, 1, 1, 1))).mean() > 0.01
    with pytest.raises(ValueError, match="factor"):
        classic_augmentation(x, 0)


def test_one_protocol_run_writes_its_metrics_and_checks_the_rhvaes(tmp_path):
    kw = dict(work=str(tmp_path / "work"), seed=0, mode="manifold", num_per_class=4, latent_size=2, vae_epochs=3,
              classifier_steps=10, hmc_steps=2)
    res = run_digits_arm(str(tmp_path / "run"), require_trained=False, generated_only=True, **kw)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["train_images"] == 40 and saved["test_images"] == 1297 and len(saved["rhvae"]) == 10
    assert 0 <= saved["test_accuracy"] <= 1 and saved == json.loads(json.dumps(res))
    # the cached three-epoch RHVAEs are refused when training must have happened
    with pytest.raises(RuntimeError, match="did not train"):
        run_digits_arm(str(tmp_path / "run2"), **kw)
    assert not (tmp_path / "run2" / "metrics.json").exists()
    with pytest.raises(ValueError, match="generated_only"):
        run_digits_arm(str(tmp_path / "run3"), work=str(tmp_path), seed=0, mode="raw", generated_only=True)


def test_plain_vae_baseline_trains_and_generates():
    from monai_ext.apps.vae_manifold_augmentation import MLPVariationalAutoEncoder

    images, labels = load_sklearn_digits()
    model, hist = train_class_generator(images[labels == 1][:30], latent_size=4, epochs=150, seed=0, kind="vae")
    assert isinstance(model, MLPVariationalAutoEncoder) and hist["loss_last"] < 0.8 * hist["loss_first"]
    a, _ = generate_images(model, 6, "prior", seed=1)
    b, _ = generate_images(model, 6, "prior", seed=1)
    assert a.shape == (6, 1, 8, 8) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    with pytest.raises(TypeError, match="RHVAE"):
        generate_images(model, 2, "hmc")
    with pytest.raises(ValueError, match="kind"):
        train_class_generator(images[:4], epochs=1, kind="gan")


def test_generated_grid_needs_the_study_generators(tmp_path):
    from monai_ext.apps.vae_manifold_augmentation import digits_generated_grid

    with pytest.raises(FileNotFoundError, match="run the digits study"):
        digits_generated_grid(str(tmp_path), str(tmp_path / "grid.png"))
    assert not (tmp_path / "grid.png").exists()
