"""CT-SGAN: networks, gradient penalty, bundle train / inference / evaluate, dataset lists."""

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import monai_ext
from monai_ext.apps.ctsgan_chest_ct_synthesis import (
    CTSGANCritics,
    CTSGANGenerator,
    CTSGANSlabCritic,
    CTSGANSliceCritic,
    ct_volume_transforms,
    ctsgan_datalist,
    load_ct_volumes,
    slice_overlap_disagreement,
    slices_to_volume,
    volume_to_slices,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import lidc_idri_datalist, nlst_datalist, read_lidc_nodules
from monai_ext.losses import critic_gradient_penalty
from monai_ext.metrics import (
    adjacent_slice_mad,
    highpass_z_correlation,
    seam_ratio,
    slice_mean_std,
    slicewise_fid,
    train_slice_level_classifier,
)
from monai_ext.phantoms import phantom_affine, write_dicom_series

torch.set_num_threads(1)

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "ctsgan_chest_ct_synthesis"
TINY = dict(image_size=16, num_slices=10, pixdim=[24.0, 24.0, 30.0], patient_dim=8, eps_dim=4, slice_dim=4,
            lstm_hidden=8, g_base_channels=8)
TINY_TRAIN = dict(TINY, d_base_channels=8, slab_base_channels=8, slab_size=4, slices_per_slab=2, batch_size=2, num_holdout=2, seed=0)


# ------------------------------------------------------------------------------------------------ networks


def test_generator_shapes_and_volume_bookkeeping():
    g = CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, slice_dim=4, lstm_hidden=8, base_channels=8)
    noise = g.sample_noise(2, 12, generator=torch.Generator().manual_seed(0))
    assert noise.shape == (2, 12, 10)
    vol = g(noise)
    assert vol.shape == (2, 1, 16, 16, 12)
    assert float(vol.abs().max()) <= 1.0
    sl = g.slices(noise)
    assert sl.shape == (2, 10, 3, 16, 16)
    # centre channels are the inner slices, the outer channels of the end slices the first / last slice
    assert torch.equal(vol[0, 0, :, :, 5], sl[0, 4, 1])
    assert torch.equal(vol[0, 0, :, :, 0], sl[0, 0, 0])
    assert torch.equal(vol[0, 0, :, :, -1], sl[0, -1, 2])
    # a slab rendered alone equals the same slab of the whole volume (R_v runs over the whole sequence)
    assert torch.allclose(g.slices(noise, 3, 7), sl[:, 3:7], atol=1e-6)
    # volume -> 3-channel slices -> volume is the identity
    assert torch.equal(slices_to_volume(volume_to_slices(vol)), vol)
    # the patient code changes the whole volume, the slice noise of one slice changes its neighbours too (BiLSTM)
    n2 = noise.clone()
    n2[:, 8:, 0] += 1.0
    d = (g.slices(n2) - sl).abs().flatten(2).amax(2)
    assert float(d[0, 0]) > 0 and float(d[0, 5]) > 0
    # TorchScript export gives the same volumes
    ts = torch.jit.script(g)
    assert torch.allclose(ts(noise), vol, atol=1e-5)


def test_generator_and_critics_reject_bad_input():
    g = CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, slice_dim=4, lstm_hidden=8, base_channels=8)
    with pytest.raises(ValueError, match="noise must have shape"):
        g(torch.zeros(1, 11, 5))
    with pytest.raises(ValueError, match="image_size"):
        CTSGANGenerator(image_size=24)
    with pytest.raises(ValueError, match="num_slices"):
        g.sample_noise(1, 2)
    with pytest.raises(ValueError, match="position_features"):
        CTSGANGenerator(image_size=16, position_features=3)
    paper = CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, position_features=0)  # eps_i only
    assert paper(paper.sample_noise(1, 6)).shape == (1, 1, 16, 16, 6)
    ds = CTSGANSliceCritic(image_size=16, base_channels=8)
    db = CTSGANSlabCritic(image_size=16, slab_size=4, base_channels=8)
    assert ds(torch.zeros(3, 3, 16, 16), torch.rand(3)).shape == (3,)
    assert db(torch.zeros(3, 1, 16, 16, 4), torch.rand(3)).shape == (3,)
    with pytest.raises(ValueError, match="D_slice expects"):
        ds(torch.zeros(3, 1, 16, 16), torch.rand(3))
    with pytest.raises(ValueError, match="position"):
        ds(torch.zeros(3, 3, 16, 16))
    with pytest.raises(ValueError, match="D_slab expects"):
        db(torch.zeros(3, 1, 16, 16, 5), torch.rand(3))
    # the position channel matters
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(ds(x, torch.zeros(2)), ds(x, torch.ones(2)))


def test_gradient_penalty_values():
    w = torch.tensor([3.0, 4.0])  # ||w|| = 5
    critic = lambda x: x @ w  # noqa: E731 - gradient w everywhere
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert float(critic_gradient_penalty(critic, real, fake, "wgan-gp")) == pytest.approx(16.0, rel=1e-5)
    assert float(critic_gradient_penalty(critic, real, mode="r1")) == pytest.approx(12.5, rel=1e-5)
    # quadratic critic: R1 at x is 0.5 * ||2x||^2; differentiable w.r.t. the critic's parameters
    a = torch.tensor(1.0, requires_grad=True)
    pen = critic_gradient_penalty(lambda x: a * x.pow(2).sum(1), real, mode="r1")
    assert float(pen) == pytest.approx(float(0.5 * (2 * real).pow(2).sum(1).mean()), rel=1e-5)
    pen.backward()
    assert a.grad is not None and float(a.grad) > 0
    with pytest.raises(ValueError, match="needs the generated"):
        critic_gradient_penalty(critic, real, None, "wgan-gp")
    with pytest.raises(ValueError, match="mode"):
        critic_gradient_penalty(critic, real, fake, "lp")


def _tiny_trainer(overlap_weight: float, iterations: int, seam_weight: float = 0.0, slab_size: int = 4,
                  zspec_weight: float = 0.0, zspec_scales=(1,), critic_warmup: int = 0, generator=None,
                  return_trainer: bool = False, zspec_bone_weight: float = 0.0):
    from monai_ext.apps.ctsgan_chest_ct_synthesis import CTSGANTrainer

    torch.manual_seed(0)
    z = torch.linspace(-1, 1, 10)
    real = (0.5 * torch.sin(3 * z) + 0.2 * torch.randn(8, 1, 16, 16, 10)).clamp(-1, 1)  # texture varies along z
    loader = torch.utils.data.DataLoader([{"image": v} for v in real], batch_size=2, shuffle=True)
    g = generator or CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, slice_dim=4, lstm_hidden=8,
                                     base_channels=8)
    d = CTSGANCritics(CTSGANSliceCritic(image_size=16, base_channels=8),
                      CTSGANSlabCritic(image_size=16, slab_size=slab_size, base_channels=8))
    trainer = CTSGANTrainer("cpu", 1, loader, g, torch.optim.Adam(g.parameters(), 1e-3, betas=(0.0, 0.9)), d,
                            torch.optim.Adam(d.parameters(), 1e-3, betas=(0.0, 0.9)), slab_size=slab_size,
                            slices_per_slab=2, overlap_weight=overlap_weight, seam_weight=seam_weight,
                            zspec_weight=zspec_weight, zspec_scales=zspec_scales, critic_warmup=critic_warmup,
                            zspec_bone_weight=zspec_bone_weight, epoch_length=iterations, seed=0)
    trainer.run()
    assert set(trainer.state.output) >= {"overlap", "seam", "zspec", "zspec_bone", "g_loss"}
    if return_trainer:
        return g, trainer
    with torch.no_grad():
        return g, float(slice_overlap_disagreement(g.slices(g.sample_noise(4, 10, torch.Generator().manual_seed(1)))))


def test_slice_overlap_disagreement_and_its_generator_term():
    vol = torch.randn(2, 1, 8, 8, 7)
    assert float(slice_overlap_disagreement(volume_to_slices(vol))) == 0.0  # real volumes: one value per slice
    sl = volume_to_slices(vol).clone()
    sl[:, 2, 0] += 0.3  # slice 2's first channel contradicts slice 1's centre channel
    assert float(slice_overlap_disagreement(sl)) == pytest.approx(0.5 * 0.3 / 4, rel=1e-5)
    with pytest.raises(ValueError, match="L >= 2"):
        slice_overlap_disagreement(sl[:, :1])
    # the term is in the generator loss: with it, adjacent 3-channel slices agree far better after training
    _, free = _tiny_trainer(0.0, 40)
    _, tied = _tiny_trainer(50.0, 40)
    assert tied < 0.6 * free, (tied, free)
    with pytest.raises(ValueError, match="overlap_weight"):
        _tiny_trainer(-1.0, 1)


def test_seam_spikiness_and_excess_loss():
    from monai_ext.losses import seam_excess_loss, seam_spikiness

    z = torch.linspace(0, 1, 12)
    ramp = z.expand(2, 1, 4, 4, 12).clone()  # changes by the same amount between every pair of slices
    assert torch.allclose(seam_spikiness(ramp), torch.zeros(2), atol=1e-6)
    seamed = ramp.clone()
    seamed[..., 6:] += 0.5  # one jump between slices 5 and 6
    d_jump, d_even = 1 / 11 + 0.5, 1 / 11
    expected = math.log(d_jump / d_even) / 9  # one of the 9 neighbour ratios is spiky
    assert seam_spikiness(seamed) == pytest.approx(torch.full((2,), expected), rel=1e-4)
    assert seam_spikiness(10 * seamed - 3) == pytest.approx(seam_spikiness(seamed), rel=1e-4)  # no unit dependence
    # the loss asks only for the spikiness of the real batch, and its gradient reaches the generated side only
    fake = seamed.clone().requires_grad_(True)
    real = ramp.clone().requires_grad_(True)
    loss = seam_excess_loss(fake, real)
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    loss.backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0 and real.grad is None
    assert float(seam_excess_loss(ramp, seamed)) == 0.0
    with pytest.raises(ValueError, match="D >= 4"):
        seam_spikiness(ramp[..., :3])
    with pytest.raises(ValueError, match="same depth"):
        seam_excess_loss(ramp, ramp[..., :6])
    with pytest.raises(ValueError, match="seam_weight"):
        _tiny_trainer(0.0, 1, seam_weight=-1.0)
    with pytest.raises(ValueError, match="slab_size >= 4"):
        _tiny_trainer(0.0, 1, seam_weight=1.0, slab_size=3)


def test_seam_term_lowers_generated_seams():
    from monai_ext.losses import seam_spikiness

    def spikiness(g):
        with torch.no_grad():
            vols = slices_to_volume(g.slices(g.sample_noise(8, 10, torch.Generator().manual_seed(1))))
        return float(seam_spikiness(vols).mean())

    free, _ = _tiny_trainer(0.0, 40, slab_size=6)
    tied, _ = _tiny_trainer(0.0, 40, seam_weight=20.0, slab_size=6)
    assert spikiness(tied) < 0.7 * spikiness(free), (spikiness(tied), spikiness(free))


def test_z_power_spectrum_and_loss():
    from monai_ext.losses import z_spectrum_loss
    from monai_ext.metrics import z_power_spectrum

    z = torch.arange(16, dtype=torch.float32)
    wave = (0.5 * torch.cos(2 * torch.pi * z / 4)).expand(2, 1, 4, 4, 16).clone()  # period 4 slices
    p = z_power_spectrum(wave, segment=16)
    assert p.shape == (9,) and int(p.argmax()) == 4  # 16 / 4 = 4 cycles per segment
    assert float(p[4]) > 50 * float(torch.cat([p[:3], p[6:]]).max())
    assert float(z_power_spectrum(torch.zeros(1, 1, 4, 4, 16)).abs().max()) == 0.0  # constant along z
    # every column is in the body here; a column with one background voxel is left out
    masked = wave.clone()
    masked[:, :, 0, 0, 5] = -1.0
    assert torch.allclose(z_power_spectrum(masked, segment=16), p)
    # two segments (hop 8) of a 24-slice volume: the same spectrum for a stationary signal
    long = (0.5 * torch.cos(2 * torch.pi * torch.arange(24.0) / 4)).expand(1, 1, 2, 2, 24)
    assert torch.allclose(z_power_spectrum(long, segment=16), p, rtol=1e-4, atol=1e-6)

    noise = 0.1 * torch.randn(2, 1, 4, 4, 16, generator=torch.Generator().manual_seed(0))
    assert float(z_spectrum_loss(noise, noise)) == 0.0
    # twice the amplitude is 4x the power at every frequency: |log 4| everywhere
    fake = (2 * noise).requires_grad_(True)
    loss = z_spectrum_loss(fake, noise)
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(4.0))), rel=1e-3)
    real = noise.clone().requires_grad_(True)
    z_spectrum_loss(fake, real).backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0 and real.grad is None
    with pytest.raises(ValueError, match="same depth"):
        z_spectrum_loss(noise, noise[..., :8])
    with pytest.raises(ValueError, match="segment"):
        z_power_spectrum(noise[..., :3], segment=3)
    with pytest.raises(ValueError, match="background"):
        z_power_spectrum(torch.full((1, 1, 4, 4, 16), -1.0))
    # columns: only the selected columns count; the spectrum of the others does not change it
    mixed = wave.clone()
    mixed[:, :, 2:] = 0.1 * torch.randn(2, 1, 2, 4, 16, generator=torch.Generator().manual_seed(1))
    sel = torch.zeros(4, 4, dtype=torch.bool)
    sel[:2] = True
    assert torch.allclose(z_power_spectrum(mixed, segment=16, columns=sel), p)
    assert not torch.allclose(z_power_spectrum(mixed, segment=16), p)
    with pytest.raises(ValueError, match="columns"):
        z_power_spectrum(mixed, columns=sel[:3])
    with pytest.raises(ValueError, match="selected columns"):
        z_power_spectrum(mixed, columns=torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="zspec_weight"):
        _tiny_trainer(0.0, 1, zspec_weight=-1.0)
    with pytest.raises(ValueError, match="zspec_weight"):
        _tiny_trainer(0.0, 1, zspec_weight=1.0, slab_size=3)


def test_zspec_term_brings_the_generated_spectrum_towards_the_real_one():
    from monai_ext.losses import z_spectrum_loss

    torch.manual_seed(0)
    zz = torch.linspace(-1, 1, 10)
    real = (0.5 * torch.sin(3 * zz) + 0.2 * torch.randn(8, 1, 16, 16, 10)).clamp(-1, 1)  # as in _tiny_trainer

    def distance(g):
        with torch.no_grad():
            vols = slices_to_volume(g.slices(g.sample_noise(8, 10, torch.Generator().manual_seed(1))))
        return float(z_spectrum_loss(vols, real))

    free, _ = _tiny_trainer(0.0, 40, slab_size=6)
    tied, _ = _tiny_trainer(0.0, 40, slab_size=6, zspec_weight=5.0)
    assert distance(tied) < 0.7 * distance(free), (distance(tied), distance(free))


def test_pooled_z_spectrum_tells_coherent_from_per_column_variation():
    from monai_ext.losses import z_spectrum_loss
    from monai_ext.metrics import z_power_spectrum

    rng = torch.Generator().manual_seed(0)
    z = torch.arange(16, dtype=torch.float32)
    # every voxel column has a period-4 wave; in `coherent` all columns of each 4 x 4 block share its phase,
    # in `scattered` each column has its own phase
    block_phase = torch.rand(2, 1, 2, 2, 1, generator=rng).repeat_interleave(4, 2).repeat_interleave(4, 3)
    column_phase = torch.rand(2, 1, 8, 8, 1, generator=rng)
    coherent = 0.5 * torch.cos(2 * torch.pi * (z / 4 + block_phase))
    scattered = 0.5 * torch.cos(2 * torch.pi * (z / 4 + column_phase))
    p1c, p1s = z_power_spectrum(coherent, pool=1), z_power_spectrum(scattered, pool=1)
    assert torch.allclose(p1c[4], p1s[4], rtol=1e-4)  # voxel columns: the same spectrum
    p4c, p4s = z_power_spectrum(coherent, pool=4), z_power_spectrum(scattered, pool=4)
    assert torch.allclose(p4c, p1c, rtol=1e-4, atol=1e-6)  # block means of a coherent block: unchanged
    assert float(p4s[4]) < 0.3 * float(p4c[4])  # independent columns average out
    assert float(z_spectrum_loss(scattered, coherent, scales=(1,))) < 0.05
    assert float(z_spectrum_loss(scattered, coherent, scales=(1, 4))) > 0.5
    # a block with one background voxel is left out: only 3 of the 4 blocks per volume count
    holed = coherent.clone()
    holed[:, :, 0, 0, 3] = -1.0
    right, lower_left = z_power_spectrum(coherent[:, :, :, 4:], pool=4), z_power_spectrum(coherent[:, :, 4:, :4], pool=4)
    assert torch.allclose(z_power_spectrum(holed, pool=4), (2 * right + lower_left) / 3, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="pool"):
        z_power_spectrum(coherent, pool=9)
    with pytest.raises(ValueError, match="pool"):
        z_power_spectrum(coherent, pool=0)
    with pytest.raises(ValueError, match="scales"):
        z_spectrum_loss(coherent, coherent, scales=())
    with pytest.raises(ValueError, match="zspec_scales"):
        _tiny_trainer(0.0, 1, zspec_weight=1.0, zspec_scales=(1, 32))


def test_critic_warmup_leaves_the_generator_unchanged():
    torch.manual_seed(0)
    g0 = CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, slice_dim=4, lstm_hidden=8, base_channels=8)
    start = {k: v.clone() for k, v in g0.state_dict().items()}
    warm, trainer = _tiny_trainer(0.0, 3, critic_warmup=3, generator=g0, return_trainer=True)
    assert all(torch.equal(start[k], v) for k, v in warm.state_dict().items())
    assert all(math.isnan(trainer.state.output[k]) for k in ("g_loss", "zspec", "seam"))
    assert math.isfinite(trainer.state.output["d_loss"])
    # one iteration past the warm-up updates the generator
    g1 = CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, slice_dim=4, lstm_hidden=8, base_channels=8)
    g1.load_state_dict(start)
    moved, trainer = _tiny_trainer(0.0, 4, critic_warmup=3, generator=g1, return_trainer=True)
    assert any(not torch.equal(start[k], v) for k, v in moved.state_dict().items())
    assert math.isfinite(trainer.state.output["g_loss"])
    with pytest.raises(ValueError, match="critic_warmup"):
        _tiny_trainer(0.0, 1, critic_warmup=-1)


# ------------------------------------------------------------------------------------------------ bundle


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Embedded default: the train config generates the phantoms itself into an empty dataset_dir."""
    return tmp_path_factory.mktemp("ctsgan_data") / "synthetic"


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory, tiny_dataset):
    root = tmp_path_factory.mktemp("ctsgan_bundle")
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(tiny_dataset), max_epochs=2,
               synth_cases=5, **TINY_TRAIN)
    return root


def test_train_runs_through_bundle_runner(trained_root, tiny_dataset, tmp_path):
    assert len(list((tiny_dataset / "imagesTr").glob("*.nii.gz"))) == 5  # generated: 3 train, 2 held out
    model = trained_root / "models" / "model.pt"
    assert model.is_file()
    state = torch.load(model, weights_only=True)
    g = CTSGANGenerator(image_size=16, patient_dim=8, eps_dim=4, slice_dim=4, lstm_hidden=8, base_channels=8)
    g.load_state_dict(state)
    full = torch.load(trained_root / "logs" / "state" / "ctsgan_state.pt", weights_only=True)
    assert set(full) == {"generator", "critics", "g_optimizer", "d_optimizer"}
    assert all(torch.isfinite(v).all() for v in state.values())
    # more iterations give other weights: the alternating updates change the generator
    other = tmp_path / "more"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(other), dataset_dir=str(tiny_dataset), max_epochs=4,
               **TINY_TRAIN)
    state4 = torch.load(other / "models" / "model.pt", weights_only=True)
    assert any(not torch.equal(state[k], state4[k]) for k in state)


def _adam_steps(optimizer_state: dict) -> int:
    return int(max(float(v["step"]) for v in optimizer_state["state"].values()))


def test_train_resumes_from_saved_state(trained_root, tiny_dataset, tmp_path):
    saved = torch.load(trained_root / "logs" / "state" / "ctsgan_state.pt", weights_only=True)
    before = _adam_steps(saved["g_optimizer"])
    assert before > 1
    root = tmp_path / "resumed"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(tiny_dataset), max_epochs=1,
               epoch_length=1, resume_from=str(trained_root / "logs" / "state" / "ctsgan_state.pt"), **TINY_TRAIN)
    resumed = torch.load(root / "logs" / "state" / "ctsgan_state.pt", weights_only=True)
    # the optimisers carry on counting: one more generator step on top of the saved ones
    assert _adam_steps(resumed["g_optimizer"]) == before + 1
    with pytest.raises(Exception) as info:
        run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(tmp_path / "bad"), dataset_dir=str(tiny_dataset),
                   max_epochs=1, epoch_length=1, resume_from=str(tmp_path / "missing.pt"), **TINY_TRAIN)
    assert "missing.pt" in str(info.value) or "missing.pt" in str(info.value.__cause__)


def test_train_starts_from_a_generator_with_new_critics(trained_root, tiny_dataset, tmp_path):
    init = trained_root / "models" / "model.pt"
    start = torch.load(init, weights_only=True)
    root = tmp_path / "init"
    # 2 iterations, both critic warm-up: the saved generator is the one loaded
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(tiny_dataset), max_epochs=1,
               epoch_length=2, init_generator=str(init), critic_warmup=2, **TINY_TRAIN)
    after = torch.load(root / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(start[k], after[k]) for k in start)
    critics = torch.load(root / "logs" / "state" / "ctsgan_state.pt", weights_only=True)["d_optimizer"]
    assert _adam_steps(critics) == 2 * 2  # d_train_steps critic steps per iteration


def test_gan_evaluation_config(trained_root, tiny_dataset):
    settings = dict(TINY_TRAIN, bundle_root=str(trained_root), dataset_dir=str(tiny_dataset), num_generated=2,
                    gan_report_epochs=1, min_iterations=2, repeats=1, max_images=8, ms_ssim_scales=1, ms_ssim_kernel=3)
    run_bundle(BUNDLE, ["train.yaml", "evaluate_gan.yaml"], **settings)
    report = json.loads((trained_root / "eval" / "gan_report" / "report.json").read_text())
    # axial slices: 3 training and 2 held-out phantoms, 2 generated volumes, 10 slices each
    assert report["counts"] == {**report["counts"], "real_train": 30, "real_test": 20, "synthetic": 20}
    assert report["image_shape"] == [1, 16, 16] and report["settings"]["grouped"] == {"real_train": True, "synthetic": True}


def test_inference_writes_volumes(trained_root):
    out = trained_root / "gen"
    args = dict(TINY, bundle_root=str(trained_root), output_dir=str(out), num_volumes=3, seed=5)
    run_bundle(BUNDLE, ["inference.yaml"], **args)
    files = sorted(out.glob("ctsgan_5_*.nii.gz"))
    assert len(files) == 3
    img = nib.load(str(files[0]))
    assert img.shape == (16, 16, 10) and img.get_data_dtype() == np.int16
    assert np.allclose(nib.affines.voxel_sizes(img.affine), [24.0, 24.0, 30.0])
    hu = np.asarray(img.dataobj)
    assert hu.min() >= -1000 and hu.max() <= 500
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temporary files left
    # same seed, same volumes; resized output keeps the physical extent
    out2 = trained_root / "gen224"
    run_bundle(BUNDLE, ["inference.yaml"], **dict(args, output_dir=str(out2), num_volumes=1,
                                                  output_size=[20, 20, 25]))
    img2 = nib.load(str(out2 / "ctsgan_5_0000.nii.gz"))
    assert img2.shape == (20, 20, 25)
    assert np.allclose(nib.affines.voxel_sizes(img2.affine), [24.0 * 16 / 20, 24.0 * 16 / 20, 30.0 * 10 / 25])
    run_bundle(BUNDLE, ["inference.yaml"], **dict(args, output_dir=str(out2), num_volumes=1))
    assert np.array_equal(np.asarray(nib.load(str(out2 / "ctsgan_5_0000.nii.gz")).dataobj), hu)


def test_inference_without_weights_names_the_file(tmp_path):
    with pytest.raises(Exception) as info:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), output_dir=str(tmp_path / "o"), **TINY)
    err = info.value
    while err.__cause__ is not None:  # MONAI's config parser wraps the error
        err = err.__cause__
    assert isinstance(err, FileNotFoundError) and "models/model.pt" in str(err) and "train.yaml" in str(err)
    assert not (tmp_path / "o").exists()


def test_evaluate_reports_fid(trained_root, tiny_dataset):
    out = trained_root / "eval"
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], dataset_dir=str(tiny_dataset), output_dir=str(out),
               num_generated=2, num_pairs=2, feature_epochs=1, num_bins=4, **dict(TINY_TRAIN, bundle_root=str(trained_root)))
    m = json.loads((out / "metrics.json").read_text())
    for name in ("real", "ctsgan", "untrained"):
        assert np.isfinite(m[name]["fid_pooled"]) and m[name]["fid_pooled"] >= -1e-6
        assert np.isfinite(m[name]["fid_pairs_mean"])
        assert 1.0 - 1e-6 <= m[name]["is_mean"] <= 4.0 + 1e-6
    assert m["test_real"]["adjacent_slice_mad"] > 0 and m["test_real"]["slice_mean_std"] > 0
    assert all(-1.0 <= m[k]["highpass_z_correlation"] <= 1.0 for k in ("real", "ctsgan", "untrained", "test_real"))
    assert all(m[k]["seam_ratio"] >= 1.0 for k in ("real", "ctsgan", "untrained", "test_real"))
    assert m["test_real"]["z_spectrum_distance"] == 0.0  # the reference against itself
    assert m["untrained"]["z_spectrum_distance"] > m["real"]["z_spectrum_distance"] > 0.0
    assert m["test_real"]["z_spectrum_distance_blocks4"] == 0.0 and m["ctsgan"]["z_spectrum_distance_blocks4"] > 0.0
    assert m["test_real"]["z_spectrum_distance_bone"] == 0.0 and m["ctsgan"]["z_spectrum_distance_bone"] > 0.0
    assert m["ctsgan"]["overlap_disagreement"] >= 0 and m["real"]["overlap_disagreement"] == 0.0
    assert m["test_real"]["lung_fraction"] > 0.05 and -980.0 < m["test_real"]["lung_hu_p90"] < -400.0
    assert all("lung_texture_rms_hu" in m[k] for k in ("real", "ctsgan", "untrained"))
    assert (out / "montage.png").stat().st_size > 0


def test_highpass_z_correlation_separates_frozen_from_fresh_texture():
    g = torch.Generator().manual_seed(0)
    fresh = 0.3 * torch.randn(2, 1, 24, 24, 10, generator=g)                          # new texture every slice
    frozen = fresh[..., :1].expand_as(fresh) + 0.02 * torch.randn(fresh.shape, generator=g)  # one slice repeated
    ramp = torch.linspace(-0.5, 0.5, 24).view(1, 1, 24, 1, 1).expand_as(fresh)           # smooth: no texture
    assert abs(highpass_z_correlation(fresh)) < 0.05
    assert highpass_z_correlation(frozen) > 0.95
    assert highpass_z_correlation(fresh + ramp) < 0.05  # the in-plane high-pass ignores smooth structure
    assert adjacent_slice_mad(frozen) < adjacent_slice_mad(fresh) and slice_mean_std(ramp) < 1e-6
    # seams: one slice pair that jumps while the others change evenly
    even = torch.linspace(-0.5, 0.5, 10).view(1, 1, 1, 1, 10).expand(2, 1, 24, 24, 10).clone()
    assert seam_ratio(even) == pytest.approx(1.0, abs=1e-4)
    seamy = even.clone()
    seamy[..., 3:] += 0.5
    seamy[..., 7:] += 0.5
    assert seam_ratio(seamy) > 3.0
    with pytest.raises(ValueError, match="background"):
        highpass_z_correlation(torch.full((1, 1, 8, 8, 4), -1.0))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W, D\)"):
        highpass_z_correlation(fresh[:, 0])


def test_slicewise_fid_orders_distributions():
    torch.manual_seed(0)
    z = torch.linspace(-1, 1, 12)
    base = z.view(1, 1, 1, 1, 12).expand(6, 1, 16, 16, 12).clone()
    real = base + 0.05 * torch.randn_like(base)
    net = train_slice_level_classifier(real[:4], num_bins=4, epochs=3, batch_size=16, width=4, feature_dim=8)
    near = slicewise_fid(net, real[4:], real[:4], num_pairs=2)
    far = slicewise_fid(net, real[4:], torch.rand_like(real[:4]) * 2 - 1, num_pairs=2)
    assert far["fid_pooled"] > near["fid_pooled"]
    assert slicewise_fid(net, real, real, num_pairs=1)["fid_pooled"] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------ data


def test_ct_volume_transforms_on_real_ct(shared_data):
    ct = shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz"
    vol = load_ct_volumes([str(ct)], spatial_size=(32, 32, 24), pixdim=(12.0, 12.0, 6.0))
    assert vol.shape == (1, 1, 32, 32, 24) and vol.dtype == torch.float32
    assert float(vol.min()) >= -1.0 and float(vol.max()) <= 1.0
    assert float(vol.max()) > 0.0  # soft tissue / bone is present
    with pytest.raises(ValueError, match="hu_range"):
        ct_volume_transforms(hu_range=(500, -1000))
    with pytest.raises(ValueError, match="spatial_size"):
        ct_volume_transforms(spatial_size=(32, 32))


_NS = "http://www.nih.gov"


def _edge_xml(points):
    return "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in points)


def _circle(cx, cy, r):
    return [(int(round(cx + r * np.cos(a))), int(round(cy + r * np.sin(a)))) for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]


@pytest.fixture
def fake_lidc(tmp_path):
    """A 32x32x6 CT series (2 mm pixels, 2.5 mm slices) with an LIDC XML: one nodule outlined by two readers on
    two slices, one < 3 mm nodule (a single point), one exclusion outline."""
    import pydicom

    shape, spacing = (32, 32, 6), (2.0, 2.0, 2.5)
    affine = phantom_affine(shape, spacing)
    series = tmp_path / "LIDC-IDRI" / "LIDC-IDRI-0001" / "series"
    write_dicom_series(np.full(shape, -800, np.int16), affine, series, seed_uid="test-lidc")
    headers = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in sorted(series.glob("*.dcm"))]
    uid = str(headers[0].SeriesInstanceUID)
    sops = [str(h.SOPInstanceUID) for h in headers]
    zs = [float(h.ImagePositionPatient[2]) for h in headers]

    def roi(k, pts, inclusion="TRUE"):
        return (f"<roi><imageZposition>{zs[k]}</imageZposition><imageSOP_UID>{sops[k]}</imageSOP_UID>"
                f"<inclusion>{inclusion}</inclusion>{_edge_xml(pts)}</roi>")

    reader1 = (f"<unblindedReadNodule><noduleID>N1</noduleID>{roi(2, _circle(10, 20, 3))}{roi(3, _circle(10, 20, 3))}"
               f"{roi(3, _circle(10, 20, 1), 'FALSE')}</unblindedReadNodule>"
               f"<unblindedReadNodule><noduleID>small</noduleID>{roi(1, [(25, 5)])}</unblindedReadNodule>")
    reader2 = f"<unblindedReadNodule><noduleID>A</noduleID>{roi(2, _circle(11, 20, 3))}{roi(3, _circle(11, 20, 3))}</unblindedReadNodule>"
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><LidcReadMessage xmlns="{_NS}"><ResponseHeader>'
           f"<SeriesInstanceUid>{uid}</SeriesInstanceUid></ResponseHeader>"
           f"<readingSession>{reader1}</readingSession><readingSession>{reader2}</readingSession></LidcReadMessage>")
    (series / "069.xml").write_text(xml)
    # expected centre from the NIfTI affine: voxel (i = column 10.5, j = row 20, k = 2.5), RAS -> LPS
    ras = affine @ np.array([10.5, 20.0, 2.5, 1.0])
    return {"root": tmp_path, "series": series, "uid": uid, "lps": [-ras[0], -ras[1], ras[2]],
            "diameter": 6.0 * spacing[0]}


def test_lidc_xml_parsing(fake_lidc):
    rec = read_lidc_nodules(fake_lidc["series"] / "069.xml")
    assert rec["seriesuid"] == fake_lidc["uid"]
    assert len(rec["nodules"]) == 1  # two readers merged, the < 3 mm nodule dropped
    nod = rec["nodules"][0]
    assert nod["num_readers"] == 2
    assert np.allclose(nod["centre_lps_mm"], fake_lidc["lps"], atol=0.3)
    assert np.allclose(nod["centre_ras_mm"], [-fake_lidc["lps"][0], -fake_lidc["lps"][1], fake_lidc["lps"][2]], atol=0.3)
    assert nod["diameter_mm"] == pytest.approx(fake_lidc["diameter"], abs=1.0)
    assert len(read_lidc_nodules(fake_lidc["series"] / "069.xml", min_diameter_mm=0.0)["nodules"]) == 2
    items = lidc_idri_datalist(fake_lidc["root"] / "LIDC-IDRI")
    assert len(items) == 1 and items[0]["image"] == str(fake_lidc["series"].resolve())
    assert items[0]["source"] == "LIDC-IDRI" and len(items[0]["nodules"]) == 1


def test_lidc_csv_and_combined_lists(fake_lidc, tmp_path):
    csv_path = tmp_path / "annotations.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        w.writerow([fake_lidc["uid"], 1.5, -2.0, 3.0, 7.5])
        w.writerow(["1.2.3.missing", 0, 0, 0, 5])
    items = lidc_idri_datalist(fake_lidc["root"] / "LIDC-IDRI", annotations_csv=csv_path)
    assert len(items) == 1
    assert items[0]["nodules"] == [{"centre_lps_mm": [1.5, -2.0, 3.0], "centre_ras_mm": [-1.5, 2.0, 3.0],
                                    "diameter_mm": 7.5, "num_readers": None}]
    # NLST-style folder of nodule-free NIfTI scans beside it
    nlst = fake_lidc["root"] / "NLST"
    nlst.mkdir()
    for i in range(2):
        nib.save(nib.Nifti1Image(np.full((8, 8, 4), -1000, np.int16), np.eye(4)), str(nlst / f"scan{i}.nii.gz"))
    assert [it["nodules"] for it in nlst_datalist(nlst)] == [[], []]
    dl = ctsgan_datalist(fake_lidc["root"], num_holdout=1, synthesize_if_missing=False)
    assert len(dl["training"]) == 2 and len(dl["testing"]) == 1
    assert {it["source"] for it in dl["training"] + dl["testing"]} == {"LIDC-IDRI", "NLST"}


def test_dataset_list_errors(fake_lidc, tmp_path):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("seriesuid,x,y,z\n1,2,3,4\n")
    with pytest.raises(ValueError, match="coordX"):
        lidc_idri_datalist(fake_lidc["root"] / "LIDC-IDRI", annotations_csv=bad_csv)
    bad_csv.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1,2,3,four,5\n")
    with pytest.raises(ValueError, match="line 2"):
        lidc_idri_datalist(fake_lidc["root"] / "LIDC-IDRI", annotations_csv=bad_csv)
    not_lidc = fake_lidc["series"] / "other.xml"
    not_lidc.write_text("<Something/>")
    with pytest.raises(ValueError, match="LidcReadMessage"):
        read_lidc_nodules(not_lidc)
    with pytest.raises(FileNotFoundError, match="LIDC XML"):
        read_lidc_nodules(tmp_path / "missing.xml")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="no LIDC XML"):
        lidc_idri_datalist(tmp_path / "empty_dir")
    with pytest.raises(FileNotFoundError, match="NLST folder not found"):
        nlst_datalist(tmp_path / "nope")
    with pytest.raises(ValueError, match="num_holdout"):
        ctsgan_datalist(fake_lidc["root"] / "LIDC-IDRI", num_holdout=1, synthesize_if_missing=False)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(NotADirectoryError):
        ctsgan_datalist(f)


def test_public_names_importable():
    assert monai_ext.apps.ctsgan_chest_ct_synthesis.CTSGANTrainer.__mro__[1].__name__ == "GanTrainer"
    assert isinstance(CTSGANCritics(CTSGANSliceCritic(16), CTSGANSlabCritic(16, 4)), torch.nn.Module)


def test_slice_consistency_without_enough_slices_for_a_spectrum():
    from monai_ext.apps.ctsgan_chest_ct_synthesis.workflows import _slice_consistency

    vols = torch.rand(2, 1, 8, 8, 3) * 0.5
    m = _slice_consistency(vols, vols)
    assert np.isnan(m["z_spectrum_distance"]) and np.isnan(m["z_spectrum_distance_blocks4"])
    assert m["adjacent_slice_mad"] > 0
    four = _slice_consistency(torch.rand(2, 1, 8, 8, 4) * 0.5, vols.repeat(1, 1, 1, 1, 2))
    assert four["z_spectrum_distance"] >= 0 and four["z_spectrum_distance_blocks4"] >= 0
    # a body narrower than a 4 x 4 block has no block spectrum
    narrow = torch.full((2, 1, 8, 8, 4), -1.0)
    narrow[:, :, 2:5, 2:5] = 0.5 * torch.rand(2, 1, 3, 3, 4)
    m = _slice_consistency(narrow, narrow)
    assert m["z_spectrum_distance"] == 0.0 and np.isnan(m["z_spectrum_distance_blocks4"])
    # no bright column with a whole segment in the body: nan, not an error
    flat = torch.full((2, 1, 8, 8, 4), -1.0)
    flat[:, :, 2:5, 2:5] = 0.25
    flat[:, :, 7, 6:8] = 0.9  # the brightest voxels lie in columns outside the body in every other slice
    flat[:, :, 7, 6:8, ::2] = -1.0
    assert np.isnan(_slice_consistency(flat, flat)["z_spectrum_distance_bone"])


def test_bright_columns_finds_the_recurring_bright_structure():
    from monai_ext.metrics import bright_columns

    torch.manual_seed(0)
    vols = 0.2 * torch.rand(3, 1, 16, 16, 20) - 0.4
    vols[:, :, 4:6, 9:11, ::2] = 0.9  # a "spine" of bright blocks every other slice
    vols[0, :, 12, 3, 7] = 1.0  # one bright voxel: not a column
    m = bright_columns(vols, quantile=0.995, min_fraction=0.05)
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:6, 9:11] = True
    assert torch.equal(m, expected)
    with pytest.raises(ValueError, match="quantile"):
        bright_columns(vols, quantile=1.0)
    with pytest.raises(ValueError, match="shape"):
        bright_columns(vols[0])


def test_bone_z_spectrum_loss_compares_the_spines_wherever_they_lie():
    from monai_ext.losses import bone_z_spectrum_loss

    z = torch.arange(16, dtype=torch.float32)

    def chest(col: int, period: float, tissue_seed: int) -> torch.Tensor:
        v = 0.1 * torch.randn(4, 1, 16, 16, 16, generator=torch.Generator().manual_seed(tissue_seed)) - 0.2
        v[:, :, 8:10, col:col + 2] = (0.75 + 0.2 * torch.cos(2 * torch.pi * z / period))  # bright "vertebrae"
        return v

    real = chest(3, 4.0, 1)
    # the same spine elsewhere in-plane, other soft tissue: 0 (up to the noise's share of the bone columns)
    moved = bone_z_spectrum_loss(chest(10, 4.0, 2), real)
    slow = bone_z_spectrum_loss(chest(10, 16.0, 2), real)  # a spine that varies slowly instead of in blocks
    assert float(moved) < 0.05 and float(slow) > 1.0, (float(moved), float(slow))
    fake = chest(10, 16.0, 2).requires_grad_(True)
    bone_z_spectrum_loss(fake, real).backward()
    assert fake.grad is not None and float(fake.grad[:, :, 8:10, 10:12].abs().sum()) > 0
    assert float(fake.grad[:, :, :8].abs().sum()) == 0.0  # only the bone columns are compared
    # nothing inside the body: 0, not an error
    assert float(bone_z_spectrum_loss(torch.full_like(real, -1.0), real)) == 0.0
    with pytest.raises(ValueError, match="same depth"):
        bone_z_spectrum_loss(real[..., :8], real)
    with pytest.raises(ValueError, match="quantile"):
        bone_z_spectrum_loss(real, real, quantile=1.5)
    with pytest.raises(ValueError, match=">= 4 slices"):
        bone_z_spectrum_loss(real[..., :3], real[..., :3])
    with pytest.raises(ValueError, match="zspec_bone_weight"):
        _tiny_trainer(0.0, 1, zspec_bone_weight=-1.0)
    g, trainer = _tiny_trainer(0.0, 2, zspec_bone_weight=1.0, return_trainer=True)
    assert np.isfinite(trainer.state.output["zspec_bone"]) and trainer.state.output["zspec_bone"] > 0
