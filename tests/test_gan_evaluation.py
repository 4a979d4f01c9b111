"""The GAN evaluation suite ("Evaluating GANs in Medical Imaging"): its controlled self-tests on patches of the real
CT in ../shared/data, the metrics it is built from, its CLI, and its errors on bad input."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.cli.gan_report import load_image_slices, run_gan_report
from monai_ext.engines import gan_evaluation_report, gan_report_markdown
from monai_ext.metrics import MahalanobisDistanceMetric, MaxMSSSIMSimilarity, TemplateMatchingScore, image_mosaic
from monai_ext.networks import TwoSampleDiscriminatorCNN

SMALL = dict(epochs=5, min_iterations=150, repeats=1, channels=(8, 16, 32, 64), feature_dim=32, max_images=64, ms_ssim_kernel=5)


@pytest.fixture(scope="module")
def ct_patches(shared_data):
    """32 x 32 patches of the real CT (window [-1000, 500] HU) from three interleaved sets of axial slices:
    training, held-out, and a 'perfect generator' (new real patches)."""
    vol = nib.load(str(shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz")).get_fdata()
    x = np.clip((vol + 1000.0) / 1500.0, 0, 1)
    rng = np.random.default_rng(0)
    ks = np.arange(x.shape[2])

    def patches(slices, n, size=32):
        out = []
        for _ in range(n):
            k, i, j = rng.choice(slices), rng.integers(0, x.shape[0] - size), rng.integers(0, x.shape[1] - size)
            out.append(x[i : i + size, j : j + size, k])
        return torch.tensor(np.stack(out))[:, None].float()

    return {"train": patches(ks[ks % 3 == 0], 64), "test": patches(ks[ks % 3 == 1], 64), "new": patches(ks[ks % 3 == 2], 64)}


def test_self_tests_on_real_ct(ct_patches):
    tr, te = ct_patches["train"], ct_patches["test"]
    generators = {
        "real": ct_patches["new"],
        "copy": tr[torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))],
        "single": ct_patches["new"][:1].repeat(64, 1, 1, 1),
        "noise": torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)),
    }
    reports = {k: gan_evaluation_report(tr, te, v, title=k, **SMALL) for k, v in generators.items()}
    flags = {k: {f for f, on in r["flags"].items() if on} for k, r in reports.items()}
    assert flags["real"] == set()
    assert flags["copy"] == {"memorisation"} and reports["copy"]["memorised_fraction"] == 1.0
    assert {"mode_collapse", "less_diverse_than_real"} <= flags["single"] and "memorisation" not in flags["single"]
    assert reports["single"]["collapsed_fraction"] == 1.0
    assert "told_apart" in flags["noise"] and reports["noise"]["two_sample_test"]["recall_synthetic"] >= 0.9
    assert reports["noise"]["two_sample_test"]["roc_auc"] >= 0.95 and reports["real"]["two_sample_test"]["roc_auc"] < 0.8
    d = {k: r["feature_distances"] for k, r in reports.items()}
    assert d["noise"]["mahalanobis_synthetic"] > 3 * d["noise"]["mahalanobis_real_reference"]
    assert d["real"]["mahalanobis_synthetic"] < 1.5 * d["real"]["mahalanobis_real_reference"]
    assert reports["noise"]["template_matching"]["synthetic_vs_real_train"]["median"] < 0.5
    assert reports["copy"]["template_matching"]["synthetic_vs_real_train"]["median"] > 0.999
    table = gan_report_markdown(reports["copy"])
    assert "flags: memorisation" in table and "| measure | synthetic | real reference |" in table


def test_max_ms_ssim_finds_the_copy_and_skips_itself():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(6, 1, 40, 40, generator=g)
    query = ref[[4, 1]] + 0.01 * torch.rand(2, 1, 40, 40, generator=g)
    metric = MaxMSSSIMSimilarity(kernel_size=5)
    values, idx = metric.nearest(query.clamp(0, 1), ref)
    assert idx.tolist() == [4, 1] and (values > 0.95).all()
    within, _ = metric.nearest(ref)  # against the others only
    assert (within < 0.5).all()
    twins = torch.cat([ref[:3], ref[:1]])
    assert metric(twins)[[0, 3]].tolist() == pytest.approx([1.0, 1.0])
    slices = torch.cat([ref[:2], ref[:2] + 0.001, ref[2:4]]).clamp(0, 1)  # volume 0: two near-copies of volume 1
    volume_ids = torch.tensor([0, 0, 1, 1, 2, 2])
    assert (metric(slices, groups=volume_ids)[:4] > 0.99).all()  # across volumes they count
    assert (metric(slices, groups=torch.tensor([0, 1, 0, 1, 2, 2]))[:4] < 0.5).all()  # within one volume they do not
    with pytest.raises(ValueError, match="another group"):
        metric(slices, groups=torch.zeros(6))
    with pytest.raises(ValueError, match="too small"):
        MaxMSSSIMSimilarity(kernel_size=11, num_scales=5)(ref)
    with pytest.raises(ValueError, match="differ in shape"):
        metric(query, torch.rand(3, 1, 36, 36))


def test_template_matching_finds_a_shifted_crop():
    g = torch.Generator().manual_seed(1)
    big = torch.rand(1, 1, 48, 48, generator=g)
    quadrants = torch.cat([big[..., :24, :24], big[..., :24, 24:], big[..., 24:, :24], big[..., 24:, 24:]])
    assert torch.equal(torch.as_tensor(image_mosaic(quadrants)), big[0, 0].double())  # 2 x 2 tiles rebuild it
    shifted = big[..., 5:29, 3:27]  # a crop that straddles all four training images
    scores = TemplateMatchingScore()(torch.cat([shifted, torch.rand(1, 1, 24, 24, generator=g)]), quadrants)
    assert scores[0] > 0.999 and scores[1] < 0.6


def test_mahalanobis_against_the_reference_distribution():
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(400, 8, generator=g)
    same = MahalanobisDistanceMetric()(torch.randn(200, 8, generator=g), ref)
    shifted = MahalanobisDistanceMetric()(torch.randn(200, 8, generator=g) + 3.0, ref)
    assert abs(float(same) - 8**0.5) < 0.5 and float(shifted) > 2 * float(same)
    assert MahalanobisDistanceMetric(reduction="none")(ref[:5], ref).shape == (5,)
    with pytest.raises(ValueError, match="4 features"):
        MahalanobisDistanceMetric()(torch.randn(3, 4), ref)


def test_two_sample_network_shapes_and_torchscript():
    net = TwoSampleDiscriminatorCNN(channels=(4, 8, 8, 8), feature_dim=16)
    x = torch.rand(2, 1, 40, 40)
    assert net(x).shape == (2, 1) and net.features(x).shape == (2, 16)
    assert torch.allclose(torch.jit.script(net)(x), net(x))
    assert TwoSampleDiscriminatorCNN(spatial_dims=3, channels=(4, 8), feature_dim=8)(torch.rand(1, 1, 16, 16, 16)).shape == (1, 1)


def test_report_files_and_bad_input(tmp_path):
    g = torch.Generator().manual_seed(3)
    real, held, syn = (torch.rand(16, 1, 24, 24, generator=g) for _ in range(3))
    kw = dict(SMALL, min_iterations=5, ms_ssim_scales=2, ms_ssim_kernel=3)
    with pytest.raises(ValueError, match=r"synthetic: intensities must lie in \[0, 1\]"):
        gan_evaluation_report(real, held, syn * 2 - 1, out_dir=tmp_path / "a", **kw)
    with pytest.raises(ValueError, match="real_test: images of shape"):
        gan_evaluation_report(real, held[..., :20], syn, out_dir=tmp_path / "a", **kw)
    with pytest.raises(ValueError, match="take slices of volumes"):
        gan_evaluation_report(real, held, syn[..., None], out_dir=tmp_path / "a", **kw)
    assert not (tmp_path / "a").exists()
    out = tmp_path / "report"
    report = gan_evaluation_report(real, held, syn, out_dir=out, **kw)
    assert sorted(p.name for p in out.iterdir()) == ["feature_pca.png", "ms_ssim.png", "report.json", "report.md"]
    assert json.loads((out / "report.json").read_text())["flags"] == report["flags"]
    with pytest.raises(FileExistsError, match="not an empty folder"):
        gan_evaluation_report(real, held, syn, out_dir=out, **kw)


def _write_sets(root, g):
    from PIL import Image

    for name in ("train", "test", "syn"):
        (root / name).mkdir()
        for k in range(6):
            Image.fromarray((np.asarray(torch.rand(40, 40, generator=g)) * 255).astype(np.uint8)).save(root / name / f"{k}.png")
    vol = np.asarray(torch.rand(30, 30, 9, generator=g)) * 1500 - 1000
    nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), str(root / "train" / "volume.nii.gz"))


def test_cli_loads_folders(tmp_path):
    _write_sets(tmp_path, torch.Generator().manual_seed(4))
    assert load_image_slices(tmp_path / "train", size=32, slices="middle3").shape == (6 + 3, 1, 32, 32)
    images, groups = load_image_slices(tmp_path / "train", size=32, slices="all", return_groups=True)
    assert images.shape == (6 + 9, 1, 32, 32) and groups.tolist() == list(range(6)) + [6] * 9  # PNGs, then the volume
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match=r"synthetic: cannot read .*x\.nii\.gz"):
        run_gan_report(tmp_path / "train", tmp_path / "test", tmp_path / "bad", tmp_path / "out", size=32)
    with pytest.raises(FileNotFoundError, match="real_test: .*missing does not exist"):
        run_gan_report(tmp_path / "train", tmp_path / "missing", tmp_path / "syn", tmp_path / "out", size=32)
    assert not (tmp_path / "out").exists()
    r = subprocess.run(
        [sys.executable, "-m", "monai_ext", "gan-report", "--real_train", str(tmp_path / "train"), "--real_test",
         str(tmp_path / "test"), "--synthetic", str(tmp_path / "syn"), "--out", str(tmp_path / "out"), "--size", "32",
         "--epochs", "1", "--max_images", "6", "--repeats", "1", "--min_iterations", "5"],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"] == {**report["counts"], "real_train": 9, "real_test": 6, "synthetic": 6}
    assert report["settings"]["grouped"] == {"real_train": True, "synthetic": False}  # 3 slices of one volume
