"""HPI ultrasound inpainting (issue 34): the hierarchical VAE network, its objective, the evaluation holes and
needles, the baselines, and the bundle's configs end to end (train, evaluate, inference, GAN report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_ext.apps.us_inpainting_hpi import (
    HPIInpaintingLoss,
    HPIInpaintingNet,
    biharmonic_inpaint,
    evaluate_inpainting,
    free_form_examples,
    hidden_needle_examples,
    hpi_network_input,
    inpaint,
    load_hpi_network,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.io import save_weights
from monai_ext.phantoms import generate_us_anatomy, simulate_bmode

from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "us_inpainting_hpi"
TINY = dict(image_size=64, num_subjects=10, channels=[4, 8, 8], dilations=[1, 1, 2], latent_channels=2,
            batch_size=4, max_epochs=2, num_val_images=2, device="cpu")


def _bmode(seed: int, size: int = 32) -> torch.Tensor:
    """A simulated B-mode image (1, size, size) in [0, 1] (rendered at 64 x 64, then area-resized)."""
    full = torch.as_tensor(simulate_bmode(generate_us_anatomy(seed, (64, 64)), "linear_mid_freq", seed)).float()
    return torch.nn.functional.interpolate(full[None], size=(size, size), mode="area")[0]


def _load(d: dict) -> dict:
    return {"image": _bmode(int(d["image"]))}


def _tiny_net(latent: int = 2) -> HPIInpaintingNet:
    torch.manual_seed(0)
    return HPIInpaintingNet(channels=(4, 8, 8), dilations=(1, 1, 2), latent_channels=latent).eval()


def test_network_keeps_known_pixels_and_samples_differ_only_in_the_hole():
    net = _tiny_net()
    image = _bmode(1)[None]
    hole = torch.zeros_like(image)
    hole[..., 10:20, 8:24] = 1
    x = hpi_network_input(image, hole)
    mean = net(x)
    assert mean.shape == image.shape and torch.equal(mean * (1 - hole), image * (1 - hole))
    assert torch.equal(net(x), mean), "temperature 0: the prior-mean completion is deterministic"
    samples = net.sample(x, num_samples=3, temperature=1.0)
    assert samples.shape == (3, 1, 1, 32, 32)
    assert torch.equal(samples[:, :, :, hole[0, 0] == 0], samples[:1, :, :, hole[0, 0] == 0].expand(3, -1, -1, -1))
    assert (samples[0] - samples[1]).abs()[hole > 0].mean() > 1e-4, "completions must differ inside the hole"
    scripted = torch.jit.script(net)
    assert torch.allclose(scripted(x), mean, atol=1e-6)


def test_reconstruct_gives_one_residual_kl_term_per_level_and_none_without_latents():
    image = _bmode(2)[None].repeat(2, 1, 1, 1)
    hole = (torch.rand_like(image) > 0.8).float()
    net = _tiny_net().train()
    y_hat, kl = net.reconstruct(image * (1 - hole), hole, image)
    assert y_hat.shape == image.shape and len(kl) == 3
    assert [t[0].shape[-1] for t in kl] == [8, 16, 32]  # deepest level first
    assert all(t[0].shape == t[1].shape == t[2].shape and t[0].shape[1] == 2 for t in kl)
    det = _tiny_net(latent=0).train()
    assert det.posterior is None and det.reconstruct(image, hole, image)[1] == []
    with pytest.raises(ValueError, match="hole mask"):
        net.reconstruct(image, hole[:, :, :16], image)


def test_objective_is_zero_for_a_perfect_output_and_grows_with_the_error():
    from monai_ext.losses import random_feature_extractor

    y = _bmode(3)[None]
    hole = torch.zeros_like(y)
    hole[..., 8:16, 8:16] = 1
    loss = HPIInpaintingLoss(rec_weight=100.0, levels=3, extractor=random_feature_extractor(1, (4, 8)),
                             perceptual_weights=[1.0, 1.0], style_weights=[1e6, 1e6], kl_weight=10.0)
    zero = torch.zeros(1, 2, 8, 8)
    assert float(loss(y, y, hole, [(zero, zero, zero)])) == pytest.approx(0.0, abs=1e-6)
    blurred = torch.nn.functional.avg_pool2d(y, 3, 1, 1)
    worse = loss(blurred, y, hole, [(zero + 1, zero, zero)])
    assert float(worse) > 0 and loss.last_terms["kl"] == pytest.approx(0.5, rel=1e-5)  # 0.5 * delta_mu^2 per element
    assert loss.last_terms["rec"] > 0 and loss.last_terms["perceptual"] > 0 and loss.last_terms["style"] >= 0


def test_evaluation_holes_and_needles_replay_and_hide_what_they_claim():
    items = [{"image": str(i)} for i in range(4)]
    a, b = free_form_examples(items, _load, seed=5), free_form_examples(items, _load, seed=5)
    assert all(torch.equal(x["mask"], y["mask"]) for x, y in zip(a, b))
    assert all(0 < float(x["mask"].mean()) < 0.9 and torch.equal(x["image"][:1] * x["mask"], torch.zeros_like(x["mask"]))
               for x in a)
    needles = hidden_needle_examples(items, _load, seed=3, hide_tip_prob=1.0)
    for ex in needles:
        hole = ex["mask"][0] > 0
        assert hole.any() and ex["tip_hidden"]
        assert ex["needle"]["dropout"][-1][1] == 1.0  # the last hidden segment ends at the tip
        # inside the hole the complete image shows the needle the observed one lacks; outside they agree (the echoes
        # of the hidden stretch are inside the hole too)
        diff = ex["label"][0] - ex["observed"][0]
        assert float(diff[hole].max()) > 0.3 and float(diff.abs()[~hole].max()) < 0.02
        tip = np.round(ex["centreline"][-1]).astype(int).clip(0, 31)
        assert hole[tip[0], tip[1]]


def test_biharmonic_fills_the_hole_smoothly_and_keeps_known_pixels():
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    image = (0.2 + 0.5 * x * y)[None]
    hole = torch.zeros_like(image)
    hole[:, 10:20, 12:22] = 1
    out = biharmonic_inpaint(image * (1 - hole), hole)
    assert torch.equal(out[hole == 0], image[hole == 0])
    assert float((out - image).abs()[hole > 0].max()) < 0.02
    for method in ("biharmonic", "none"):
        assert inpaint(method, image, hole).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="one size"):
        inpaint("biharmonic", image, hole[:, :16])
    with pytest.raises(ValueError, match="needs a trained network"):
        inpaint("hpi", image, hole)


def test_evaluate_inpainting_scores_spread_speckle_and_needles(tmp_path):
    items = [{"image": str(i)} for i in range(3)]
    ff, nd = free_form_examples(items, _load, seed=0), hidden_needle_examples(items, _load, seed=0)
    net = _tiny_net()
    res = evaluate_inpainting("hpi", ff, nd, network=net, out_file=tmp_path / "m.json", num_samples=3, pixel_mm=0.5,
                              progress=False)
    assert json.loads((tmp_path / "m.json").read_text())["psnr"] == pytest.approx(res["psnr"])
    assert res["num_images"] == 3 and res["num_samples"] == 3 and res["spread"] > 0
    assert 0 <= res["ssim"] <= 1 and res["l1"] > 0 and res["snr_truth_hole"] > 0
    assert res["num_needle_images"] == 3 and 0 <= res["needle_missed"] <= 3 * 3  # 3 completions per image
    none = evaluate_inpainting("none", ff, nd, pixel_mm=0.5, progress=False)  # the tracker on the images with the gap
    assert "spread" not in none and none["needle_missed"] < 3
    assert none["needle_tip_mm"] == pytest.approx(none["needle_tip_px"] * 0.5) and none["needle_shaft_px"] < 5
    with pytest.raises(ValueError, match="no posterior|has none"):
        evaluate_inpainting("hpi", ff, network=_tiny_net(latent=0), progress=False)


def test_load_hpi_network_names_missing_or_mismatched_files(tmp_path):
    net = _tiny_net()
    path = Path(save_weights(net, tmp_path / "model.pt", trained_on="test"))
    loaded = load_hpi_network(path)
    x = hpi_network_input(_bmode(4)[None], (torch.rand(1, 1, 32, 32) > 0.7).float())
    assert torch.equal(loaded(x), net(x))
    (tmp_path / "model.json").write_text(json.dumps({"config": {**net.config, "latent_channels": 3}}))
    with pytest.raises(ValueError, match="do not fit"):
        load_hpi_network(path)
    (tmp_path / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match="architecture"):
        load_hpi_network(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_hpi_network(tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The bundle's train configs (HPI and the deterministic U-Net) on a tiny synthetic data set."""
    root = tmp_path_factory.mktemp("hpi")
    common = dict(TINY, bundle_root=str(root), dataset_dir=str(root / "data"))
    run_bundle(BUNDLE, ["train.yaml"], **common)
    run_bundle(BUNDLE, ["train.yaml", "train_deterministic.yaml"], **{k: v for k, v in common.items() if k != "latent_channels"})
    return root, common


def test_bundle_trains_both_networks_and_keeps_the_best_epoch(trained):
    root, _ = trained
    info = json.loads((root / "models" / "model.json").read_text())
    assert info["config"]["latent_channels"] == 2 and 1 <= info["best_epoch"] <= info["epochs"] == 2
    assert "6 images of" in info["trained_on"]  # 10 anatomies: 6 / 2 / 2
    det = load_hpi_network(root / "models" / "deterministic.pt")
    assert det.latent_channels == 0 and det.posterior is None
    assert (root / "logs" / "best_model.pt").is_file() and (root / "logs" / "deterministic" / "best_model.pt").is_file()


def test_bundle_evaluates_every_method(trained):
    root, common = trained
    kw = {k: v for k, v in common.items() if k not in ("batch_size", "max_epochs", "num_val_images", "channels",
                                                         "dilations", "latent_channels")}
    for method in ("hpi", "deterministic", "biharmonic"):
        run_bundle(BUNDLE, ["evaluate.yaml"], method=method, num_images=2, num_needle_images=2, num_samples=2, **kw)
        res = json.loads((root / "eval" / f"{method}_seed0" / "metrics.json").read_text())
        assert res["method"] == method and res["num_images"] == 2 and "needle_tip_px" in res
        assert res["pixel_mm"] == pytest.approx(45.0 / 64)
    with pytest.raises(Exception) as err:
        run_bundle(BUNDLE, ["evaluate.yaml"], method="telea", **kw)
    assert "telea" in error_text(err) and "biharmonic" in error_text(err)
    run_bundle(BUNDLE, ["evaluate_gan.yaml"], epochs=1, min_iterations=2, repeats=1, max_images=4, **kw)
    report = json.loads((root / "eval" / "gan_report_hpi" / "report.json").read_text())
    assert report["counts"]["synthetic"] == report["counts"]["real_test"] == 4  # validation + test


def test_bundle_inference_writes_completions_and_names_bad_masks(trained, tmp_path):
    root, _ = trained
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for i in range(2):
        Image.fromarray((_bmode(i, 48).numpy()[0] * 255).astype(np.uint8)).save(images / f"us{i}.png")
        m = np.zeros((48, 48), np.uint8)
        m[10:20, 15:30] = 255
        Image.fromarray(m).save(masks / f"us{i}.png")
    out = tmp_path / "out"
    kw = dict(bundle_root=str(root), dataset_dir=str(images), mask_dir=str(masks), output_dir=str(out), image_size=64,
              num_samples=3, channels=[4, 8, 8], dilations=[1, 1, 2], latent_channels=2, device="cpu")
    run_bundle(BUNDLE, ["inference.yaml"], **kw)
    listing = json.loads((out / "inpainting.json").read_text())
    assert listing["method"] == "hpi" and len(listing["images"]) == 2
    original = np.asarray(Image.open(images / "us0.png"))
    done = [np.asarray(Image.open(out / f"us0_completion{k}.png")) for k in range(3)]
    assert all(np.array_equal(d[:10], original[:10]) for d in done), "known pixels unchanged"
    assert any(not np.array_equal(done[0][10:20, 15:30], d[10:20, 15:30]) for d in done[1:])
    assert (out / "us0_spread.png").is_file()
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(masks / "us1.png")
    with pytest.raises(Exception) as err:
        run_bundle(BUNDLE, ["inference.yaml"], **dict(kw, output_dir=str(tmp_path / "out2")))
    assert "us1" in error_text(err) and not (tmp_path / "out2").exists()
    (masks / "us1.png").unlink()
    with pytest.raises(Exception) as err:
        run_bundle(BUNDLE, ["inference.yaml"], **dict(kw, output_dir=str(tmp_path / "out3")))
    assert "us1" in error_text(err) and not (tmp_path / "out3").exists()


def test_needle_gap_holes_join_the_training_mask_and_replay():
    from monai.data import MetaTensor

    from monai_ext.apps.us_inpainting_hpi import RandNeedleGapMaskd, needle_gap_mask
    from monai_ext.transforms import RandNeedleReverberationd

    image = _bmode(6, 64)
    draw = RandNeedleReverberationd(keys="image", prob=1.0, needle_mask_key=None, artifact_mask_key=None, num_dropout=(0, 0))
    draw.set_random_state(1)
    d = draw({"image": image})
    gap = RandNeedleGapMaskd(keys="image", prob=1.0, hide_tip_prob=1.0)
    gap.set_random_state(2)
    out = gap(dict(d, mask=torch.zeros(1, 64, 64)))
    seg = gap.last_params["segments"][0]
    assert seg[1] == pytest.approx(1.0) and 0.15 <= seg[1] - seg[0] <= 0.3
    needle = d["image_meta_dict"]["needle_reverberation"][-1]
    expected = needle_gap_mask(needle, [seg], (64, 64))
    assert torch.equal(out["mask"][0], expected) and expected.sum() > 10
    tip = np.round(needle_centreline_tip(needle)).astype(int).clip(0, 63)
    assert expected[tip[0], tip[1]] == 1
    # no needle drawn: the mask is left as it was (created when missing); MetaTensor records are read too
    assert gap({"image": image})["mask"].sum() == 0
    meta = MetaTensor(image)
    meta.meta["needle_reverberation"] = [needle]
    assert gap({"image": meta})["mask"].sum() > 0
    # the record beside an image that a later transform (e.g. RandFlipd) turned into a MetaTensor
    assert gap({"image": MetaTensor(image), "image_meta_dict": d["image_meta_dict"]})["mask"].sum() > 0
    with pytest.raises(ValueError, match="mask"):
        gap({"image": image, "mask": torch.zeros(1, 32, 32)})


def needle_centreline_tip(needle: dict) -> np.ndarray:
    from monai_ext.transforms import needle_centreline

    return needle_centreline(needle["entry"], needle["angle_deg"], needle["length"], needle["curvature"])[-1]


def test_inference_runs_on_its_generated_examples_without_arguments(tmp_path):
    """The plain command (no --dataset_dir) writes 4 example images and masks, then inpaints them with the
    committed weights."""
    root = tmp_path / "b"
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), ckpt_path=str(BUNDLE / "models" / "model.pt"),
               num_samples=2, device="cpu")
    assert len(list((root / "data" / "examples" / "masks").glob("*.png"))) == 4
    listing = json.loads((root / "eval" / "inpainted" / "inpainting.json").read_text())
    assert [e["image"] for e in listing["images"]] == [f"example{i}" for i in range(4)]
