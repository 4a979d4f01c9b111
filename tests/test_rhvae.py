"""RHVAE, its loss, the manifold samplers, ManifoldAugmentedDataset and the vae_manifold_augmentation bundle."""

from __future__ import annotations

import json
import math
from pathlib import Path

import monai
import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.apps.vae_manifold_augmentation import (
    ManifoldAugmentedDataset,
    MetricHMCSampler,
    PriorLatentSampler,
    RHVAEElboLoss,
    RiemannianHamiltonianVAE,
    RiemannianLatentMetric,
    RiemannianRandomWalkSampler,
    class_items,
    generate_images,
    geodesic_shoot,
    load_rhvae,
    manifold_augmented_items,
    tempering_schedule,
)

torch.set_num_threads(1)
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "vae_manifold_augmentation"


def _random_metric(n=6, d=3, seed=0, t=0.8, lam=1e-3):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, d, generator=g)
    low = torch.tril(torch.randn(n, d, d, generator=g))
    return RiemannianLatentMetric(c, low @ low.transpose(1, 2), t, lam)


def _tiny_vae(**kw):
    torch.manual_seed(0)
    args = dict(spatial_dims=2, in_shape=(1, 16, 16), latent_size=3, channels=(4, 8), strides=(2, 2), metric_hidden=16, eps_lf=0.001)
    args.update(kw)
    return RiemannianHamiltonianVAE(**args)


def _toy_images(n=8, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r = 0.3 + 0.4 * torch.rand(n, generator=g)
    return ((xx**2 + yy**2)[None] < r[:, None, None] ** 2).float()[:, None] * 0.9


# ---- metric ----------------------------------------------------------------------------------------------------


def test_inverse_metric_spd_and_lambda_far_away():
    m = _random_metric()
    z = torch.randn(20, 3)
    g_inv = m.inverse_metric(z)
    assert torch.allclose(g_inv, g_inv.transpose(1, 2))
    assert (torch.linalg.eigvalsh(g_inv) > 0).all()
    far = m.inverse_metric(torch.full((2, 3), 50.0))
    assert torch.allclose(far, 1e-3 * torch.eye(3).expand(2, 3, 3), atol=1e-9)
    # G is the inverse of G^-1
    assert torch.allclose(m.metric(z) @ g_inv, torch.eye(3).expand(20, 3, 3), atol=1e-3)


def test_analytic_gradients_match_autograd():
    m = _random_metric(t=1.0, lam=0.1)
    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    m = RiemannianLatentMetric(m.centroids.double(), m.matrices.double(), 1.0, 0.1)
    value, grad = m.grad_log_sqrt_det_inverse(z.detach())
    auto = torch.autograd.grad(m.log_sqrt_det_inverse(z).sum(), z)[0]
    assert torch.allclose(value, m.log_sqrt_det_inverse(z.detach()))
    assert torch.allclose(grad, auto, atol=1e-8)
    q = torch.randn(5, 3, dtype=torch.float64)
    auto_q = torch.autograd.grad(0.5 * torch.einsum("bi,bij,bj->", q, m.inverse_metric(z), q), z)[0]
    assert torch.allclose(m.quadratic_form_gradient(z.detach(), q), auto_q, atol=1e-8)


def test_geodesic_shoot_constant_metric_is_straight_line():
    m = RiemannianLatentMetric(torch.zeros(2, 3), torch.zeros(2, 3, 3), 0.8, 0.5)
    p, v = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(geodesic_shoot(m, p, v), p + v, atol=1e-5)
    # a curved metric bends the path but keeps it finite
    assert torch.isfinite(geodesic_shoot(_random_metric(), p, v)).all()


def test_tempering_schedule_ends_at_one():
    assert tempering_schedule(0, 3, 0.3) == pytest.approx(math.sqrt(0.3))
    assert tempering_schedule(3, 3, 0.3) == pytest.approx(1.0)
    vals = [tempering_schedule(k, 3, 0.3) for k in range(4)]
    assert vals == sorted(vals)


# ---- network and loss ------------------------------------------------------------------------------------------


def test_forward_outputs_and_loss_decreases():
    net = _tiny_vae()
    x = _toy_images()
    loss_fn = RHVAEElboLoss()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    losses = []
    for _ in range(15):
        out = net(x)
        loss = loss_fn(out, x)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert out["recon"].shape == x.shape and out["z"].shape == (8, 3) and out["inverse_metric"].shape == (8, 3, 3)
    assert 0 <= float(out["recon"].min()) and float(out["recon"].max()) <= 1
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    # eval mode uses the metric bank; without one the error says what to do
    net.eval()
    with pytest.raises(RuntimeError, match="update_metric_bank"):
        net(x)
    assert net.update_metric_bank(x) == 8
    with torch.no_grad():
        out = net(x)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_plain_vae_baseline_loss():
    from monai.networks.nets import VarAutoEncoder

    vae = VarAutoEncoder(2, (1, 16, 16), 1, 3, channels=(4, 8), strides=(2, 2))
    x = _toy_images()
    assert torch.isfinite(RHVAEElboLoss()(vae(x), x))


def test_3d_forward():
    net = _tiny_vae(spatial_dims=3, in_shape=(1, 8, 8, 8))
    x = torch.rand(2, 1, 8, 8, 8)
    out = net(x)
    assert out["recon"].shape == x.shape and torch.isfinite(RHVAEElboLoss()(out, x))


def test_bad_inputs():
    net = _tiny_vae()
    with pytest.raises(ValueError, match="expected shape"):
        net(torch.rand(2, 1, 12, 12))
    with pytest.raises(ValueError, match="at least 2"):
        net(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="needs at least 2"):
        net.update_metric_bank(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        RiemannianHamiltonianVAE(2, (1, 15, 16), channels=(4, 8), strides=(2, 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RHVAEElboLoss()(net(torch.rand(2, 1, 16, 16)), torch.rand(2, 1, 16, 16) * 3)


def test_max_log_diag_bounds_metric_and_roundtrips(tmp_path):
    net = _tiny_vae(max_log_diag=2.0)
    with torch.no_grad():  # push every log L_ii far past the bound
        net.metric_net[-1].bias[:3] = 50.0
        net.metric_net[-1].bias[:3] += torch.tensor([0.0, -100.0, 0.0])
    _, _, low = net.encode_all(_toy_images(4))
    diag = torch.diagonal(low, dim1=1, dim2=2)
    assert torch.isfinite(low).all()
    assert torch.allclose(diag[:, [0, 2]], torch.full_like(diag[:, [0, 2]], math.exp(2.0)), rtol=1e-5)
    assert torch.allclose(diag[:, 1], torch.full_like(diag[:, 1], math.exp(-2.0)), rtol=1e-5)
    net.update_metric_bank(_toy_images(4))
    again = load_rhvae(net.save_generator(tmp_path / "g.pt"))
    assert again.max_log_diag == 2.0 and again.hparams["max_log_diag"] == 2.0
    assert _tiny_vae().max_log_diag == 8.0  # class default keeps older checkpoints' behaviour
    with pytest.raises(ValueError, match="max_log_diag"):
        _tiny_vae(max_log_diag=0.0)


# ---- samplers ----------------------------------------------------------------------------------------------------


def _trained_bank_vae():
    net = _tiny_vae()
    net.update_metric_bank(_toy_images(6))
    return net.eval()


def test_samplers_shapes_determinism_acceptance():
    m = _random_metric()
    for sampler in (MetricHMCSampler(n_steps=10), RiemannianRandomWalkSampler(n_steps=5, sigma=0.3), PriorLatentSampler()):
        a, b = sampler(m, 50, seed=3), sampler(m, 50, seed=3)
        assert a.shape == (50, 3) and torch.isfinite(a).all()
        assert torch.equal(a, b)
        assert not torch.equal(a, sampler(m, 50, seed=4))
        assert 0.0 < sampler.acceptance_rate <= 1.0
    # manifold samples stay where sqrt(det G^-1) is high, the prior does not care
    hmc = MetricHMCSampler(n_steps=30)(m, 200, seed=0)
    prior = PriorLatentSampler()(m, 200, seed=0)
    assert m.log_sqrt_det_inverse(hmc).mean() > m.log_sqrt_det_inverse(prior).mean()


def test_generate_images_and_checkpoint_roundtrip(tmp_path):
    net = _trained_bank_vae()
    imgs, z = generate_images(net, 10, "hmc", seed=1, n_steps=5)
    assert imgs.shape == (10, 1, 16, 16) and z.shape == (10, 3)
    assert 0 <= float(imgs.min()) and float(imgs.max()) <= 1
    path = net.save_generator(tmp_path / "g.pt")
    again = load_rhvae(path)
    assert torch.equal(again.bank_centroids, net.bank_centroids)
    imgs2, _ = generate_images(again, 10, "hmc", seed=1, n_steps=5)
    assert torch.allclose(imgs, imgs2)
    with pytest.raises(FileNotFoundError, match="RHVAE checkpoint"):
        load_rhvae(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown sampler"):
        generate_images(net, 2, "gibbs")


# ---- dataset -----------------------------------------------------------------------------------------------------


def _write_items(folder: Path, n_per_class=3, size=16, shape=None) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for c in (0, 1):
        for i in range(n_per_class):
            arr = np.random.default_rng(10 * c + i).random(shape or (size, size)).astype(np.float32)
            p = folder / f"c{c}_{i}.nii.gz"
            nib.save(nib.Nifti1Image(arr, np.diag([1.5, 1.5, 1.0, 1.0])), str(p))
            items.append({"image": str(p), "label": c})
    return items


def test_dataset_mixing_caching_and_transforms(tmp_path):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    items = _write_items(tmp_path / "real")
    gens = {0: _trained_bank_vae(), 1: _trained_bank_vae()}
    chain = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")])
    ds = ManifoldAugmentedDataset(items, gens, chain, ratio=2.0, sampler="hmc", sampler_kwargs={"n_steps": 3}, seed=5, cache_dir=tmp_path / "cache")
    assert len(ds) == 6 + 12 and ds.num_synthetic == 12
    labels = [d["label"] for d in ds.data if d["synthetic"]]
    assert labels.count(0) == labels.count(1) == 6
    sample = ds[len(ds) - 1]
    assert sample["image"].shape == (1, 16, 16) and sample["synthetic"] == 1
    assert np.allclose(sample["image"].affine.numpy()[:2, :2], np.diag([1.5, 1.5]))  # training geometry
    first = [d["image"] for d in ds.data if d["synthetic"]]
    content = nib.load(first[0]).get_fdata()
    # same seed: the cache is reused; another seed: new images
    again = ManifoldAugmentedDataset(items, gens, chain, ratio=2.0, sampler_kwargs={"n_steps": 3}, seed=5, cache_dir=tmp_path / "cache")
    assert [d["image"] for d in again.data if d["synthetic"]] == first
    other = manifold_augmented_items(items, gens, mode="generated", ratio=2.0, sampler_kwargs={"n_steps": 3}, seed=6, cache_dir=tmp_path / "cache")
    assert len(other) == 12 and not np.allclose(nib.load(other[0]["image"]).get_fdata(), content)
    # memory mode: the loading transforms are skipped for generated images; the images match the cached ones
    mem = ManifoldAugmentedDataset(items, gens, chain, mode="generated", ratio=2.0, sampler_kwargs={"n_steps": 3}, seed=5)
    assert len(mem) == 12
    assert np.allclose(mem[0]["image"].numpy()[0], content, atol=1e-6)
    assert len(ManifoldAugmentedDataset(items, None, chain, mode="real")) == 6


def test_dataset_splits_count_over_a_generator_list(tmp_path):
    items = _write_items(tmp_path / "real")
    a = _trained_bank_vae()
    torch.manual_seed(1)
    b = _tiny_vae()
    b.update_metric_bank(_toy_images(6, seed=1))
    b.eval()
    out = manifold_augmented_items(items, {0: [a, b], 1: a}, num_per_class=5, sampler="prior", seed=2, cache_dir=tmp_path / "c")
    gen0 = [d["image"] for d in out if d["synthetic"] and d["label"] == 0]
    assert len(gen0) == 5 and len({str(Path(f).parent) for f in gen0}) == 2  # 3 from a, 2 from b
    sizes = sorted(len(json.loads((Path(f) / "manifest.json").read_text())["files"]) for f in {str(Path(g).parent) for g in gen0})
    assert sizes == [2, 3]
    with pytest.raises(ValueError, match="generator list of class 0 is empty"):
        manifold_augmented_items(items, {0: [], 1: a}, num_per_class=2, sampler="prior")


def test_dataset_errors(tmp_path):
    items = _write_items(tmp_path / "real")
    gens = {0: _trained_bank_vae(), 1: _trained_bank_vae()}
    with pytest.raises(ValueError, match="no real samples"):
        manifold_augmented_items([d for d in items if d["label"] == 0], gens, ratio=1.0)
    with pytest.raises(ValueError, match="no generator"):
        manifold_augmented_items(items, {0: gens[0]}, ratio=1.0)
    odd = _write_items(tmp_path / "odd", n_per_class=1, shape=(16, 12))
    with pytest.raises(ValueError, match="share one shape"):
        manifold_augmented_items(items + odd, gens, ratio=1.0)
    big = _write_items(tmp_path / "big", size=32)
    with pytest.raises(ValueError, match="generator of class 0 makes images of shape"):
        manifold_augmented_items(big, gens, ratio=1.0)
    empty = _tiny_vae()
    with pytest.raises(RuntimeError, match="metric bank holds 0"):
        manifold_augmented_items(items, {0: empty, 1: gens[1]}, ratio=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        manifold_augmented_items(items, gens)
    with pytest.raises(ValueError, match="no training sample of class 3"):
        class_items(items, 3)


# ---- bundle ------------------------------------------------------------------------------------------------------


def _tiny_dataset(root: Path, n_train: int = 4, n_test: int = 2) -> Path:
    data = root / "data"
    rng = np.random.default_rng(0)
    ds = {}
    yy, xx = np.mgrid[:64, :64] / 64 - 0.5
    for split, n in (("training", n_train), ("validation", 2), ("test", n_test)):
        ds[split] = []
        for c in (0, 1):
            for i in range(n):
                r = 0.3 + 0.1 * c + 0.02 * rng.standard_normal()
                arr = (0.8 * ((xx**2 + yy**2) < r**2) + 0.05 * rng.random((64, 64))).astype(np.float32)
                name = f"{split}_{c}_{i}.nii.gz"
                data.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(arr, np.diag([2.0, 2.0, 1.0, 1.0])), str(data / name))
                ds[split].append({"image": name, "label": c})
    (data / "dataset.json").write_text(json.dumps(ds))
    return data


def test_bundle_configs_run(tmp_path):
    from monai_ext.bundle_helpers import run_bundle

    data = _tiny_dataset(tmp_path, n_test=4)
    common = dict(bundle_root=str(tmp_path), dataset_dir=str(data))
    for c in (0, 1):
        for seed in (0, 1):  # a pool of two RHVAEs per class
            run_bundle(BUNDLE, ["train_vae.yaml"], vae_class=c, seed=seed, vae_epochs=1, vae_batch_size=4, **common)
            assert (tmp_path / "models" / f"rhvae_class{c}_seed{seed}.pt").is_file()
    pool = dict(vae_seeds=[0, 1], sampler_kwargs={"n_steps": 2})
    run_bundle(BUNDLE, ["generate.yaml"], gen_class=1, num_samples=3, **pool, **common)
    folders = sorted((tmp_path / "eval" / "generated").glob("class1_hmc_*"))
    assert [len(list(f.glob("gen_*.nii.gz"))) for f in folders] in ([2, 1], [1, 2])  # 3 images split over 2 RHVAEs
    assert nib.load(str(next(folders[0].glob("gen_*.nii.gz")))).shape == (64, 64)
    gan = dict(gen_class=1, num_samples=8, epochs=1, min_iterations=2, repeats=1, max_images=4, **pool, **common)
    run_bundle(BUNDLE, ["evaluate_gan.yaml"], **gan)
    report = json.loads((tmp_path / "eval" / "gan_report_class1_hmc" / "report.json").read_text())
    assert report["counts"] == {**report["counts"], "real_train": 4, "real_test": 4, "synthetic": 8}
    assert set(report["flags"]) == {"told_apart", "memorisation", "mode_collapse", "less_diverse_than_real"}
    with pytest.raises(Exception) as err:  # the report folder is written once, never overwritten
        run_bundle(BUNDLE, ["evaluate_gan.yaml"], **gan)
    assert "not an empty folder" in _error_chain(err.value)
    train = dict(max_epochs=1, iters_per_epoch=2, batch_size=4, num_generated_per_class=4, **pool, **common)
    run_bundle(BUNDLE, ["train.yaml"], train_mode="real+generated", **train)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert sorted(len(list(f.glob("gen_*.nii.gz"))) for f in (tmp_path / "eval" / "generated").glob("class0_hmc_*")) == [2, 2]
    with pytest.raises(Exception) as err:  # a seed of the pool that was never trained: named before any generation
        run_bundle(BUNDLE, ["train.yaml"], **dict(train, vae_seeds=[0, 7], num_generated_per_class=6))
    assert "rhvae_class0_seed7.pt" in _error_chain(err.value)
    assert not list((tmp_path / "eval" / "generated").glob("class0_hmc_*/gen_00002.nii.gz"))
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **train)
    rows = dict(line.split(",")[:2] for line in (tmp_path / "eval" / "metrics.csv").read_text().splitlines())
    assert 0.0 <= float(rows["test_balanced_accuracy"]) <= 1.0
    run_bundle(BUNDLE, ["inference.yaml"], dataset_dir=str(data / "test_1_0.nii.gz"), bundle_root=str(tmp_path), output_dir=str(tmp_path / "inf"))
    pred = (tmp_path / "inf" / "predictions.csv").read_text().strip().split(",")
    assert pred[0].endswith("test_1_0.nii.gz") and abs(float(pred[1]) + float(pred[2]) - 1) < 1e-4
    with pytest.raises(Exception) as err:
        run_bundle(BUNDLE, ["train_vae.yaml"], vae_class=5, vae_epochs=1, **common)
    assert "no training sample of class 5" in _error_chain(err.value)


def _error_chain(e: BaseException | None) -> str:
    """The messages of an exception and its causes (the bundle runner wraps the original error)."""
    chain = []
    while e is not None:
        chain.append(str(e))
        e = e.__cause__
    return "\n".join(chain)


def test_shipped_weights_generate_valid_images():
    """Every RHVAE that train.yaml pools by default is committed: each loads, holds a metric bank of the 50
    training images of its class, differs from the other seeds' and generates images of the training data's
    shape with values in [0, 1]; the committed classifier loads into the inference network."""
    from monai.bundle import ConfigParser

    train = ConfigParser.load_config_file(str(BUNDLE / "configs" / "train.yaml"))
    assert len(train["vae_seeds"]) > 1
    for c in (0, 1):
        first_weights = None
        for seed in train["vae_seeds"]:
            path = BUNDLE / "models" / f"rhvae_class{c}_seed{seed}.pt"
            assert path.stat().st_size < 5 * 2**20
            ckpt = torch.load(str(path), weights_only=False)
            assert ckpt["image_class"] == c and ckpt["hparams"]["max_log_diag"] == 4.0
            if first_weights is None:
                first_weights = ckpt["state_dict"]
            else:
                assert any(not torch.equal(first_weights[k], v) for k, v in ckpt["state_dict"].items())
            model = load_rhvae(path)
            assert model.bank_centroids.shape == (50, model.latent_size)
            imgs, z = generate_images(model, 4, "hmc", seed=0, n_steps=2)
            assert imgs.shape == (4, 1, 64, 64) and z.shape == (4, model.latent_size)
            assert float(imgs.min()) >= 0.0 and float(imgs.max()) <= 1.0 and float(imgs.std()) > 0.01
    from monai.networks.nets import Classifier

    net = Classifier(in_shape=(1, 64, 64), classes=2, channels=(8, 16, 32, 64), strides=(2, 2, 2, 2), num_res_units=1)
    net.load_state_dict(torch.load(str(BUNDLE / "models" / "model.pt"), weights_only=True))
    with torch.no_grad():
        assert net(torch.rand(2, 1, 64, 64)).shape == (2, 2)


def test_gradient_guard_skips_non_finite_steps():
    """A non-finite gradient leaves the weights and Adam's moments untouched; a finite one is clipped and applied."""
    from monai.engines import SupervisedTrainer

    from monai_ext.engines import GradientGuard

    net = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    poison = {"on": False}

    def loss_fn(pred, target):
        loss = ((pred - target) ** 2).mean()
        return loss * float("inf") if poison["on"] else loss * 1e6  # 1e6: a norm far above max_norm

    data = [{"image": torch.ones(2, 3), "label": torch.zeros(2, 1)}]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=data, network=net, optimizer=opt,
        loss_function=loss_fn, decollate=False,
    )  # fmt: skip
    guard = GradientGuard(net.parameters(), max_norm=1.0)
    guard.attach(trainer)
    norms = []
    trainer.add_event_handler(
        monai.engines.IterationEvents.BACKWARD_COMPLETED,
        lambda e: norms.append(float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in net.parameters()])))),
    )
    before = [p.detach().clone() for p in net.parameters()]
    trainer.run()
    assert trainer.state.skipped_steps == 0 and norms[0] <= 1.0 + 1e-5  # clipped, then applied
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))

    poison["on"] = True
    after_good = [p.detach().clone() for p in net.parameters()]
    moments = [opt.state[p]["exp_avg"].clone() for p in net.parameters()]
    trainer2 = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=data, network=net, optimizer=opt,
        loss_function=loss_fn, decollate=False,
    )  # fmt: skip
    GradientGuard(net.parameters(), max_norm=1.0).attach(trainer2)
    trainer2.run()
    assert trainer2.state.skipped_steps == 1
    for a, p, m in zip(after_good, net.parameters(), moments):
        assert torch.equal(a, p) and torch.isfinite(p).all()
        assert torch.equal(opt.state[p]["exp_avg"], m)
    trainer3 = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=data * 25, network=net, optimizer=opt,
        loss_function=loss_fn, decollate=False,
    )  # fmt: skip
    GradientGuard(net.parameters(), max_norm=1.0).attach(trainer3)
    with pytest.raises(FloatingPointError, match="diverges"):  # every step non-finite: stop, do not spin
        trainer3.run()
    with pytest.raises(ValueError, match="max_norm"):
        GradientGuard(net.parameters(), max_norm=0)


def test_safe_cholesky_jitters_float32_rounding_and_marks_non_finite():
    from monai_ext.apps.vae_manifold_augmentation.rhvae import safe_cholesky

    v = torch.linspace(-1.0, 1.0, 8)[:, None] + 0.1
    a = ((v @ v.T) * 1e7 + 1e-3 * torch.eye(8)).float()[None].repeat(2, 1, 1)  # PD, but not after float32 rounding
    with pytest.raises(RuntimeError):
        torch.linalg.cholesky(a.double())
    chol = safe_cholesky(a)
    assert chol.dtype == torch.float64 and torch.isfinite(chol).all()
    assert ((chol @ chol.transpose(-1, -2)) - a.double()).abs().max() <= 1e-5 * a.abs().max()
    a[1, 0, 0] = float("nan")
    chol = safe_cholesky(a)
    assert torch.isfinite(chol[0]).all() and torch.isnan(chol[1]).all()
    with pytest.raises(torch.linalg.LinAlgError):
        safe_cholesky(-torch.eye(3)[None])  # not positive definite at all




def test_train_vae_config_logs_its_loss(tmp_path):
    """train_vae.yaml's trainer does not decollate: its loss handlers must read the output dict (a tuple from
    ``from_engine`` is silently ignored, which left the RHVAE training curves empty until 0.5.0)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from monai_ext.bundle_helpers import run_bundle
    from monai_ext.phantoms import synthesize_brain_ad_dataset

    synthesize_brain_ad_dataset(tmp_path / "data", train_per_class=4, val_per_class=1, test_per_class=1, progress=False)
    run_bundle(Path(__file__).resolve().parents[1] / "bundles" / "vae_manifold_augmentation", ["train_vae.yaml"],
               bundle_root=str(tmp_path), dataset_dir=str(tmp_path / "data"), ckpt_dir=str(tmp_path / "m"),
               vae_epochs=2, vae_batch_size=2, device="cpu")
    events = EventAccumulator(str(tmp_path / "logs" / "rhvae_class0_seed0"))
    events.Reload()
    assert len(events.Scalars("vae_loss")) == 4  # 2 epochs x 2 iterations
