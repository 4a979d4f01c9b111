"""CaCL, class-aware codebook learning for weakly supervised segmentation (Deng et al., DGM4MICCAI/DALI 2021): the
IHC phantom, the patch data list, the codebook, losses, history pool, empty-aware metric, stain deconvolution, the
baselines and the bundle's configs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric
from PIL import Image

from monai_ext.apps.cacl_weak_segmentation import (
    CaCLNet,
    CaCLTrainer,
    ClassAwareCodebookQuantizer,
    CodebookMaskInferer,
    best_threshold,
    cacl_datalist,
    cacl_reconstruction_loss,
    class_code_margin_loss,
    discriminative_codebook_loss,
    evaluation_items,
    image_labels,
    run_study_method,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import labelled_patch_datalist, read_patch_labels
from monai_ext.engines import HistoryImagePool
from monai_ext.metrics import EmptyAwareOverlapMetric, empty_aware_overlap_scores
from monai_ext.phantoms import generate_ihc_patch, sample_ihc_slide, synthesize_ihc_dataset
from monai_ext.transforms import StainDeconvolution, StainDeconvolutiond

from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "cacl_weak_segmentation"


@pytest.fixture(scope="module")
def ihc(tmp_path_factory):
    root = tmp_path_factory.mktemp("ihc") / "data"
    synthesize_ihc_dataset(root, slides=8, patches_per_slide=8, size=32, progress=False)
    return root


# --- the phantom and the data list -------------------------------------------------------------------------------

def test_ihc_patches_are_seeded_and_only_expressing_slides_have_a_brush_border_mask():
    rng = np.random.default_rng(0)
    pos, neg = sample_ihc_slide(rng, True), sample_ihc_slide(rng, False)
    a, ma, ra = generate_ihc_patch(5, pos)
    b, mb, _ = generate_ihc_patch(5, pos)
    assert a.shape == (3, 64, 64) and a.dtype == np.uint8 and np.array_equal(a, b) and np.array_equal(ma, mb)
    labels = [generate_ihc_patch(s, pos)[2]["label"] for s in range(30)]
    assert 0 < sum(labels) < 30                            # deep / lumen patches of an expressing slide are negative
    assert all(generate_ihc_patch(s, neg)[1].sum() == 0 for s in range(10))
    img, mask, rec = next(generate_ihc_patch(s, pos) for s in range(30) if generate_ihc_patch(s, pos)[2]["label"])
    assert rec["mask_px"] == mask.sum() > 0
    dab = StainDeconvolution("dab")(img)[0]
    assert dab[mask > 0].mean() > 3 * np.median(dab[mask == 0])      # the brush border is brown


def test_ihc_dataset_layout_and_refusals(ihc, tmp_path):
    rows = list(csv.DictReader(open(ihc / "labels.csv")))
    assert len(rows) == 64 and set(rows[0]) == {"image", "label", "mask", "slide"}
    for r in rows[:5]:
        img, mask = np.asarray(Image.open(ihc / r["image"])), np.asarray(Image.open(ihc / r["mask"]))
        assert img.shape == (32, 32, 3) and mask.shape == (32, 32) and int(r["label"]) == int(mask.any())
    with pytest.raises(FileExistsError):
        synthesize_ihc_dataset(ihc, slides=2, patches_per_slide=1, progress=False)
    with pytest.raises(ValueError, match="size"):
        synthesize_ihc_dataset(tmp_path / "x", size=20)
    assert not (tmp_path / "x").exists()


def test_patch_list_splits_by_slide_and_balances_the_test_patches(ihc):
    split = labelled_patch_datalist(ihc, val_fraction=0.25, test_fraction=0.25)
    slides = {k: {i["slide"] for i in v} for k, v in split.items()}
    assert not (slides["training"] & slides["testing"]) and not (slides["validation"] & slides["testing"])
    assert sum(len(v) for v in split.values()) == 64
    for part in split.values():                              # stratified: both kinds of slide in every split
        assert {i["label"] for i in part} == {0, 1}
    balanced = cacl_datalist(ihc, val_fraction=0.25, test_fraction=0.25)["testing"]
    assert sum(i["label"] for i in balanced) * 2 == len(balanced)
    items = evaluation_items(balanced)
    assert all(Path(i["label"]).name == Path(i["image"]).name for i in items)


def test_patch_labels_csv_errors_name_the_file_and_row(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    cases = {
        "image,label\na.png,2\n": "line 2: label '2'",
        "image,class\na.png,1\n": "no ['label'] column",
        "image,label\nb.png,1\n": "do not exist",
        "image,label\na.png,1\na.png,0\n": "listed twice",
        "image,label\na.nii.gz,1\n": "not a patch image",
    }
    for text, message in cases.items():
        (tmp_path / "labels.csv").write_text(text)
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            read_patch_labels(tmp_path / "labels.csv")
        assert message in str(e.value) and "labels.csv" in str(e.value), (text, str(e.value))
    with pytest.raises(ValueError, match="without a mask"):
        evaluation_items([{"image": "x.png", "label": 0, "slide": "s"}])


# --- codebook, losses, pool, metric, stain ---------------------------------------------------------------------

def test_codebook_parts_use_their_channels_and_negatives_never_move_the_class_codes():
    torch.manual_seed(0)
    q = ClassAwareCodebookQuantizer(num_shared=6, num_class=3, embedding_dim=8, shared_channels=4,
                                    dead_code_threshold=0.0).train()
    z = torch.randn(4, 8, 5, 5)
    q(z, torch.tensor([1, 1, 0, 0]))                         # initialises from the batch
    assert torch.all(q.codes[:6, 4:] == 0) and torch.all(q.codes[6:, :4] == 0)
    before = q.codes[6:].clone()
    out = q(torch.randn(2, 8, 5, 5) * 3, torch.tensor([0, 0]))
    assert torch.equal(q.codes[6:], before), "a negative batch updates S only"
    assert int(out.index_n.max()) < 6
    assert torch.equal(out.class_margin > 0, out.index_p >= 6)
    q(torch.randn(2, 8, 5, 5) * 3, torch.tensor([1, 1]))
    # a positive batch moves the class codes its S + C quantisation picked (if it picked any)
    q.eval()
    zz = torch.randn(1, 8, 4, 4, requires_grad=True)
    res = q(zz)
    res.e_p.sum().backward()
    assert torch.allclose(zz.grad, torch.ones_like(zz)), "straight-through gradient"


def test_dead_class_codes_restart_at_features_that_the_shared_codes_explain_worst():
    torch.manual_seed(0)
    q = ClassAwareCodebookQuantizer(num_shared=4, num_class=2, embedding_dim=4, shared_channels=2,
                                    dead_code_threshold=0.5).train()
    z = torch.zeros(2, 4, 6, 6)
    z[0, 2:, :2, :2] = 5.0                                   # a few positive features that S cannot explain
    q(z, torch.tensor([1, 0]))
    assert (q.codes[4:, 2:].abs().sum(1) > 0).all(), "class codes sit on the unexplained features"


def test_losses_route_by_the_image_label():
    x = torch.rand(2, 3, 8, 8)
    r_p, r_n = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    pos = torch.tensor([1, 0])
    ref = cacl_reconstruction_loss(x, r_p, r_n, pos)
    r_n2 = r_n.clone()
    r_n2[0] = 0.0                                            # the positive's R_N is not reconstructed
    assert torch.isclose(cacl_reconstruction_loss(x, r_p, r_n2, pos), ref)
    q = {"z": torch.ones(2, 4, 2, 2), "e_n": torch.zeros(2, 4, 2, 2), "e_p": torch.zeros(2, 4, 2, 2),
         "class_margin": torch.tensor([[[0.5, -1.0], [-1.0, -1.0]], [[-0.5, -0.5], [-0.5, -0.5]]])}
    q["e_p"][:, 2:] = 10.0
    from monai_ext.apps.cacl_weak_segmentation import CodebookQuantization
    q = CodebookQuantization(q)
    paper = discriminative_codebook_loss(q, pos, slice(2, 4), margin=0.05)
    assert torch.isclose(paper, torch.tensor((-0.05 + 100.0) / 2)), "positives clamped, negatives not"
    assert torch.isclose(class_code_margin_loss(q, pos, delta=0.1, top_fraction=0.25), torch.tensor(0.0))
    q["class_margin"][1, 0, 0] = 0.3                         # a negative pixel on the C side
    assert class_code_margin_loss(q, pos, delta=0.1, top_fraction=0.25) > 0


def test_history_pool_returns_past_images_once_full():
    pool = HistoryImagePool(4, seed=0)
    first = torch.arange(4.0).reshape(4, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4
    out = pool.query(torch.full((20, 1), -1.0))
    assert (out >= 0).any() and (out == -1).any() and len(pool) == 4
    assert torch.equal(HistoryImagePool(0).query(first), first)


def test_empty_aware_overlap_follows_the_papers_rule_and_matches_monai_dice():
    y = torch.zeros(4, 1, 6, 6)
    y[0, 0, :3] = 1
    y[1, 0, :2] = 1
    p = torch.zeros_like(y)
    p[0, 0, :2] = 1                                          # 12 of 18 found, no false positive
    p[3, 0, 0, 0] = 1                                        # one pixel on a negative patch
    s = empty_aware_overlap_scores(p, y)
    assert torch.allclose(s[0], torch.tensor([24 / 30, 12 / 18, 1.0]))
    assert torch.equal(s[1], torch.zeros(3)) and torch.equal(s[2], torch.ones(3)) and torch.equal(s[3], torch.zeros(3))
    ref = DiceMetric(include_background=True, ignore_empty=False, reduction="none")(p, y)
    assert torch.allclose(s[:, 0:1], ref)
    m = EmptyAwareOverlapMetric("recall")
    m(list(p), list(y))
    assert torch.isclose(m.aggregate(), s[:, 1].mean())


def test_stain_deconvolution_separates_dab_from_haematoxylin():
    rgb = np.zeros((3, 1, 2), np.float32)
    rgb[:, 0, 0] = np.exp(-np.array([0.27, 0.57, 0.78]))     # DAB-coloured
    rgb[:, 0, 1] = np.exp(-np.array([0.65, 0.70, 0.29]))     # haematoxylin-coloured
    hd = StainDeconvolution(("haematoxylin", "dab"), max_value=1.0)(rgb)
    assert hd[1, 0, 0] > hd[1, 0, 1] and hd[0, 0, 1] > hd[0, 0, 0]
    out = StainDeconvolutiond("image")({"image": torch.as_tensor(rgb * 255).to(torch.uint8)})["image"]
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1, 2)
    with pytest.raises(ValueError, match="channel-first RGB"):
        StainDeconvolution()(np.zeros((1, 4, 4)))


def test_best_threshold_finds_the_threshold_of_a_perfect_map():
    ref = (torch.rand(6, 1, 8, 8) > 0.7).float()
    ref[3:] = 0
    maps = ref * 2.0 + (torch.rand_like(ref) > 0.5).float()  # foreground 2 or 3, background 0 or 1
    best = best_threshold(maps, ref, [1, 1, 1, 0, 0, 0])
    assert best["dice"] == 1.0 and 1.0 <= best["threshold"] < 2.0
    assert best_threshold(maps * 0, ref, [1, 1, 1, 0, 0, 0])["dice"] == 0.5      # nothing to find: empty masks


# --- network, trainer, inferer ---------------------------------------------------------------------------------

def test_network_names_grayscale_input_and_segments_on_the_input_grid():
    net = CaCLNet(channels=(8, 16), num_res_channels=(8, 16), num_res_layers=1).eval()
    with pytest.raises(ValueError, match="grayscale"):
        net(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="multiple of 2"):
        net(torch.rand(1, 3, 15, 16))
    x = torch.rand(2, 3, 16, 12)
    assert torch.allclose(net(x), net.decode(net.encode_quantize(x).e_p))      # forward: R_P, no code update
    assert torch.allclose(torch.jit.script(net)(x), net(x), atol=1e-6)
    masks = CodebookMaskInferer("difference", threshold=0.0)(x, net)
    assert masks.shape == (2, 1, 16, 12) and set(masks.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(TypeError, match="CaCLNet"):
        CodebookMaskInferer()(torch.rand(1, 3, 8, 8), torch.nn.Identity())


def test_trainer_runs_both_steps_and_rejects_labels_that_are_not_zero_or_one():
    torch.manual_seed(0)
    from monai.networks.nets import ResNet

    net = CaCLNet(channels=(8, 16), num_res_channels=(8, 16), num_res_layers=1)
    cls = ResNet("basic", [1, 1, 1, 1], [4, 8, 8, 8], spatial_dims=2, n_input_channels=3, num_classes=4)
    data = [{"image": torch.rand(3, 16, 16), "label": k % 2} for k in range(8)]
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    before = [p.clone() for p in cls.parameters()]
    trainer = CaCLTrainer("cpu", 1, loader, net, torch.optim.Adam(net.parameters(), 1e-3), cls,
                          torch.optim.Adam(cls.parameters(), 1e-3), classifier_interval=1, pool_size=4)
    trainer.run()
    out = trainer.state.output
    assert {"recons", "commitment", "codebook", "mapping", "classifier"} <= set(out)
    assert np.isfinite(out["classifier"]) and any(not torch.equal(a, b) for a, b in zip(before, cls.parameters()))
    with pytest.raises(ValueError, match="0 .pattern absent. or 1"):
        image_labels(torch.tensor([0, 2]))


# --- the bundle -------------------------------------------------------------------------------------------------

TINY = {"val_fraction": 0.25, "test_fraction": 0.25, "channels": [8, 16], "num_res_channels": [8, 16],
        "num_res_layers": 1, "batch_size": 4, "max_epochs": 2, "val_interval": 1, "classifier_interval": 1,
        "device": "$torch.device('cpu')"}
NET = {k: TINY[k] for k in ("channels", "num_res_channels", "num_res_layers", "device")}


def test_bundle_trains_evaluates_and_writes_masks_on_the_input_grid(ihc, tmp_path):
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(ihc), **TINY}
    run_bundle(BUNDLE, ["train.yaml"], **common)
    assert (tmp_path / "models" / "model.pt").is_file() and any((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert len((tmp_path / "eval" / "metric_history.csv").read_text().splitlines()) == 3
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **common, dilation=1)
    rows = dict(csv.reader(open(tmp_path / "eval" / "metrics.csv")))
    assert {"test_dice", "test_recall", "test_precision"} <= set(rows)
    assert all(0.0 <= float(rows[k]) <= 1.0 for k in ("test_dice", "test_recall", "test_precision"))
    image = sorted((ihc / "images").glob("*.png"))[3]
    out = tmp_path / "masks"
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(image), output_dir=str(out),
               **NET)
    mask = np.asarray(Image.open(out / f"{image.stem}_mask.png"))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    mixed = tmp_path / "mixed_sizes"                   # real patches come in any size, odd ones included
    mixed.mkdir()
    rgb8 = np.asarray(Image.open(image))
    Image.fromarray(rgb8[:31, :29].copy()).save(mixed / "odd.png")
    Image.fromarray(rgb8).save(mixed / "even.png")
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(mixed),
               output_dir=str(tmp_path / "mixed_out"), **NET)
    assert np.asarray(Image.open(tmp_path / "mixed_out" / "odd_mask.png")).shape == (31, 29)
    assert np.asarray(Image.open(tmp_path / "mixed_out" / "even_mask.png")).shape == (32, 32)
    net = CaCLNet(channels=(8, 16), num_res_channels=(8, 16), num_res_layers=1)
    net.load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True))
    rgb = np.asarray(Image.open(image), np.float32) / 255.0
    # MONAI reads PNGs as (x, y): the network sees the transposed array; the mask is written back in image order
    expected = net.eval().segment(torch.as_tensor(rgb.transpose(2, 1, 0).copy())[None])[0, 0].numpy().T
    assert np.array_equal(mask > 0, expected > 0)


def test_baselines_and_study_step_score_the_same_test_patches(ihc, tmp_path):
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(ihc), **TINY, "classifier_epochs": 1}
    run_study_method("gradcam", str(BUNDLE), {**common, "ckpt_dir": str(tmp_path / "run")}, str(tmp_path / "run"))
    for folder in (tmp_path / "run", tmp_path / "run" / "dilated"):
        rows = dict(csv.reader(open(folder / "metrics.csv")))
        assert 0.0 <= float(rows["test_dice"]) <= 1.0 and "threshold" in rows
    run_bundle(BUNDLE, ["train.yaml", "evaluate_baselines.yaml"], **common, baseline="empty_mask",
               output_dir=str(tmp_path / "empty"))
    rows = dict(csv.reader(open(tmp_path / "empty" / "metrics.csv")))
    assert float(rows["test_dice"]) == pytest.approx(0.5), "doing nothing scores the negative half"


def test_bundle_names_missing_weights_and_grayscale_patches(ihc, tmp_path):
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(ihc / "images"),
                   output_dir=str(tmp_path / "out"), **NET)
    assert "run configs/train.yaml first" in error_text(e)
    torch.save(CaCLNet(channels=(8, 16), num_res_channels=(8, 16), num_res_layers=1).state_dict(),
               tmp_path / "model.pt")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(mixed / "a_rgb.png")       # segmented first if unchecked
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(mixed / "b_gray.png")
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(mixed),
                   output_dir=str(tmp_path / "out"), ckpt_path=str(tmp_path / "model.pt"), **NET)
    assert "expects RGB images" in error_text(e) and "b_gray.png (L)" in error_text(e)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(ValueError, match="grayscale"):                  # the network's own check, for tensors
        CaCLNet()(torch.rand(1, 1, 16, 16))
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml", "evaluate_baselines.yaml"], bundle_root=str(tmp_path), dataset_dir=str(ihc),
                   **TINY, baseline="gradcam")
    assert "run configs/train_classifier.yaml first" in error_text(e)


def test_real_ihc_and_perturbation_checks_write_their_reports(ihc, tmp_path):
    from monai_ext.apps.cacl_weak_segmentation import perturbation_check, real_ihc_check

    torch.manual_seed(0)
    net = CaCLNet(channels=(8, 16), num_res_channels=(8, 16), num_res_layers=1)
    res = real_ihc_check(net, tmp_path, scales=(8,), tile=32)
    assert res["downsampled_8x"]["pixels"] == [64, 64] and (tmp_path / "real_ihc_overlay.png").is_file()
    assert 0.0 <= res["downsampled_8x"]["marked_fraction"] <= 1.0
    items = evaluation_items(cacl_datalist(ihc, val_fraction=0.25, test_fraction=0.25)["testing"])
    out = perturbation_check(net, items, tmp_path / "pert.json")
    assert set(out) == {"clean", "noise_0.02", "noise_0.05", "blur_1px", "upsampled_2x"}
    assert all(0.0 <= v["dice"] <= 1.0 for v in out.values()) and (tmp_path / "pert.json").is_file()
