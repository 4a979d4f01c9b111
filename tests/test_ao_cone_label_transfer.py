"""Iterative label transfer for AO cone segmentation (Liu et al., DGM4MICCAI/DALI 2021): alignment, graph matching,
label transfer, a transfer round, the scores, the data list and the bundle's configs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from monai_ext.apps.ao_cone_label_transfer import (
    CellGraphMatching,
    ConeLabelTransferRound,
    ConeMapUNet,
    affine_point_error,
    cell_feature_blocks,
    cone_datalist,
    cone_image_scores,
    cone_pairs,
    estimate_visit_affine,
    iterate_label_transfer,
    match_cells,
    score_cone_segmentation,
    transfer_cell_labels,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.phantoms import generate_cone_pair, synthesize_cone_dataset

from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "ao_cone_label_transfer"
TINY = {"features": [4, 4, 8, 8, 8, 4], "batch_size": 2, "patch_size": [32, 32], "num_val": 2, "val_interval": 1}


def _centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(labels[labels > 0])
    return ids, np.asarray(ndimage.center_of_mass(np.ones_like(labels), labels, ids))


@pytest.fixture(scope="module")
def pair():
    return generate_cone_pair(3)


@pytest.fixture(scope="module")
def cones(tmp_path_factory):
    root = tmp_path_factory.mktemp("ao") / "data"
    synthesize_cone_dataset(root, labelled=6, pairs=2, test=2, size=64, progress=False)
    return root


# --- alignment, matching, transfer ------------------------------------------------------------------------------

def test_alignment_recovers_the_visit_affine_from_cell_centres(pair):
    (_, c1), (_, c2) = _centres(pair["labels"][0]), _centres(pair["labels"][1])
    affine, info = estimate_visit_affine(c1, c2, pair["images"][0], pair["images"][1])
    assert info["method"] == "ransac" and info["inliers"] > 100
    assert affine_point_error(affine, pair["affine"], (128, 128)) < 0.5
    assert affine_point_error(np.eye(3), pair["affine"], (128, 128)) > 2.0          # the pair is really moved
    shift_only, info = estimate_visit_affine(c1[:2], c2[:2], pair["images"][0], pair["images"][1])
    assert info["method"] == "translation" and np.allclose(shift_only[:2, :2], np.eye(2))
    with pytest.raises(ValueError, match="same shape"):
        estimate_visit_affine(c1, c2, pair["images"][0], pair["images"][1][:100])


def test_alignment_searches_rotations_and_flags_visits_of_different_retinas(pair):
    (_, c1), (_, c2) = _centres(pair["labels"][0]), _centres(pair["labels"][1])
    a, c = np.deg2rad(15.0), np.full(2, 63.5)
    rot = np.eye(3)
    rot[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    rot[:2, 2] = c - rot[:2, :2] @ c
    inv = np.linalg.inv(rot)
    image2 = ndimage.affine_transform(pair["images"][1], inv[:2, :2], offset=inv[:2, 2], order=1)
    inside = np.all((c2 @ rot[:2, :2].T + rot[:2, 2] >= 0) & (c2 @ rot[:2, :2].T + rot[:2, 2] <= 127), axis=1)
    moved2 = (c2 @ rot[:2, :2].T + rot[:2, 2])[inside]
    affine, info = estimate_visit_affine(c1, moved2, pair["images"][0], image2)
    assert info["rotation_search"] and info["reliable"]
    assert affine_point_error(affine, rot @ pair["affine"], (128, 128)) < 1.0
    plain, plain_info = estimate_visit_affine(c1, moved2, pair["images"][0], image2, max_rotation_deg=0)
    assert not plain_info["reliable"]                                      # without the search: one cell off
    rng = np.random.default_rng(0)
    scattered = rng.uniform(0, 127, (140, 2))                              # no mosaic in common with visit 1
    _, info = estimate_visit_affine(c1, scattered, pair["images"][0], rng.random((128, 128)))
    assert not info["reliable"] and info["rotation_search"]


def test_matching_finds_the_true_correspondences(pair):
    (ids1, c1), (ids2, c2) = _centres(pair["labels"][0]), _centres(pair["labels"][1])
    feats = [cell_feature_blocks(im[None], c, 8) for im, c in zip(pair["images"], (c1, c2))]
    matches, info = match_cells(c1, c2, feats[0], feats[1], pair["affine"])
    correct = ids1[matches[:, 0]] == ids2[matches[:, 1]]
    assert correct.mean() > 0.95 and len(matches) > 0.7 * len(np.intersect1d(ids1, ids2))
    assert len(set(matches[:, 0])) == len(set(matches[:, 1])) == len(matches)           # one to one
    assert info["energy"] <= info["energy_start"] and info["topology_pairs"] > 0
    # far away: no candidates, no matches
    none, info = match_cells(c1, c2 + 500, feats[0], feats[1], np.eye(3))
    assert len(none) == 0 and info["candidates"] == 0


def test_graph_matching_energy_deltas_and_local_optimum():
    rng = np.random.default_rng(0)
    cand = np.array([(i, j) for i in range(4) for j in range(4) if abs(i - j) <= 1])
    unary = rng.normal(-0.5, 1.0, len(cand))
    pairs = np.array([(a, b) for a, b in itertools.combinations(range(len(cand)), 2) if rng.random() < 0.4])
    costs = rng.uniform(0, 2, len(pairs))
    problem = CellGraphMatching(unary, cand, pairs, costs, topology_weight=1.0)
    for _ in range(50):
        m = rng.random(len(cand)) < 0.3
        add, remove = [int(a) for a in np.flatnonzero(~m)[:1]], [int(a) for a in np.flatnonzero(m)[:2]]
        after = m.copy()
        after[add], after[remove] = True, False
        assert problem.delta(m, add, remove) == pytest.approx(problem.energy(after) - problem.energy(m))
    m, info = problem.solve(4, 4)
    assert len(set(cand[m, 0])) == m.sum() == len(set(cand[m, 1]))                    # one to one
    feasible = [np.array(bits, bool) for bits in itertools.product((0, 1), repeat=len(cand))
                if len(set(cand[np.array(bits, bool), 0])) == sum(bits) == len(set(cand[np.array(bits, bool), 1]))]
    best = min(problem.energy(b) for b in feasible)
    assert best - 1e-9 <= info["energy"] <= info["energy_start"] + 1e-9
    for a in range(len(cand)):                                       # no single switch (with displacement) improves
        i, j = cand[a]
        remove = [a] if m[a] else [int(c) for c in np.flatnonzero(m & ((cand[:, 0] == i) | (cand[:, 1] == j)))]
        assert problem.delta(m, [] if m[a] else [a], remove) >= -1e-9


def test_transfer_adds_missed_cells_and_replaces_implausible_ones():
    truth = np.zeros((40, 60), np.int32)
    for k, c in enumerate(range(5, 56, 10)):
        for r in (8, 20, 32):
            truth[r - 3:r + 4, c - 3:c + 4] = k * 3 + r // 12 + 1                    # 18 cells of 7 x 7 px
    target = truth.copy()
    target[truth == 5] = 0                                          # a missed cell
    merged = (truth == 1) | (truth == 2)
    target[ndimage.binary_closing(merged, np.ones((15, 3)))] = 1    # two cells merged into one big cell
    target[truth == 2] = 1
    shift = np.eye(3)
    shift[:2, 2] = (1.0, 2.0)                                        # the source visit sits 1 px down, 2 px right
    source = ndimage.shift(truth, (1, 2), order=0)
    src_ids, tgt_ids = np.unique(source[source > 0]), set(np.unique(target[target > 0]))
    matches = np.array([(t, t) for t in src_ids if t in tgt_ids])
    out, rec = transfer_cell_labels(target, source, matches, np.linalg.inv(shift))
    assert rec["added"] >= 2 and rec["replaced"] == 1                # cells 5 and 2 added, the merged cell replaced
    assert out.max() == len(np.unique(out[out > 0]))                 # renumbered 1..n
    ids, _ = _centres(out)
    assert len(ids) == 18
    overlap = (out > 0) & (truth > 0)
    assert overlap.sum() / (truth > 0).sum() > 0.95 and (out > 0).sum() <= (truth > 0).sum() * 1.05


def test_robust_size_test_removes_fragments_the_papers_mean_and_sd_keep():
    lab = np.zeros((60, 60), np.int32)
    n = 0
    for r in range(6, 55, 12):
        for c in range(6, 55, 12):
            n += 1
            lab[r - 3:r + 4, c - 3:c + 4] = n                                         # 25 cells of 49 px
    for k, (r, c) in enumerate(itertools.product((12, 36), (12, 24, 36, 48, 30))):
        lab[r, c] = n + 1 + k                                                         # 10 one-pixel fragments
    robust, rec_r = transfer_cell_labels(lab, np.zeros_like(lab), np.zeros((0, 2)), np.eye(3))
    paper, rec_p = transfer_cell_labels(lab, np.zeros_like(lab), np.zeros((0, 2)), np.eye(3), size_statistics="mean")
    assert rec_r["removed"] == 10 and robust.max() == 25                             # fragments gone, cells kept
    assert rec_p["removed"] == 0 and paper.max() == 35                               # the sd lets them all pass
    with pytest.raises(ValueError, match="size_statistics"):
        transfer_cell_labels(lab, lab, np.zeros((0, 2)), np.eye(3), size_statistics="median")


# --- scores and data list ---------------------------------------------------------------------------------------

def test_scores_of_perfect_and_half_missing_segmentations(pair):
    ref = pair["labels"][0]
    perfect = cone_image_scores(ref, ref)
    assert perfect["dice"] == perfect["area_overlap"] == perfect["detection_recall"] == 1.0
    assert perfect["asd"] == 0.0 and perfect["area_difference_pct"] == 0.0
    ids = np.unique(ref[ref > 0])
    half = np.where(np.isin(ref, ids[::2]), ref, 0)
    s = cone_image_scores(half, ref)
    assert s["detection_recall"] == pytest.approx(len(ids[::2]) / len(ids)) and s["detection_precision"] == 1.0
    assert 0.55 < s["dice"] < 0.75 and s["area_overlap"] == pytest.approx(s["dice"] / (2 - s["dice"]))


def test_score_files_name_missing_predictions(tmp_path, pair):
    lab = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(pair["labels"][0], np.eye(4)), str(lab))
    item = {"image": str(tmp_path / "img.nii.gz"), "label": str(lab), "noisy": True}
    with pytest.raises(FileNotFoundError, match="img_cells"):
        score_cone_segmentation([item], tmp_path / "preds", tmp_path / "out")
    (tmp_path / "preds").mkdir()
    nib.save(nib.Nifti1Image(pair["labels"][0], np.eye(4)), str(tmp_path / "preds" / "img_cells.nii.gz"))
    m = score_cone_segmentation([item, {**item, "noisy": False}], tmp_path / "preds", tmp_path / "out")
    assert m["test_dice"] == m["test_dice_noisy"] == m["test_dice_clean"] == 1.0
    assert (tmp_path / "out" / "test_scores_raw.csv").read_text().count("\n") == 3


def test_datalist_layout_and_refusals(cones, tmp_path):
    d = cone_datalist(cones, num_val=2)
    assert len(d["training"]) == 4 and len(d["validation"]) == 2 and len(d["pairs"]) == 2
    assert [t["noisy"] for t in d["testing"]] == [True, False]
    assert set(d["pairs"][0]) == {"pair", "image1", "image2"}
    folder = tmp_path / "pairs"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), str(folder / "p_v1.nii.gz"))
    with pytest.raises(ValueError, match="both visits"):
        cone_pairs(folder)
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), str(folder / "odd.nii.gz"))
    with pytest.raises(ValueError, match="_v1 or <pair>_v2"):
        cone_pairs(folder)
    with pytest.raises(FileNotFoundError, match="transferred labels"):
        cone_datalist(cones, pseudo_label_dir=str(tmp_path / "nothing"), num_val=2)


# --- network and transfer round ---------------------------------------------------------------------------------

def test_network_gives_two_maps_and_its_last_decoder_features():
    net = ConeMapUNet(features=(4, 4, 8, 8, 8, 6)).eval()
    x = torch.rand(2, 1, 48, 32)
    logits, feats = net.forward_with_features(x)
    assert logits.shape == (2, 2, 48, 32) and feats.shape == (2, 6, 48, 32)
    assert torch.allclose(net(x), logits)
    scripted = torch.jit.script(net)
    assert torch.allclose(scripted(x), logits, atol=1e-5)


def _round(net, **kw):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    return ConeLabelTransferRound(net, Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")]),
                                  progress=False, **kw)


def test_transfer_round_refuses_visits_of_different_sizes_and_rgb(tmp_path):
    net = ConeMapUNet(features=(4, 4, 8, 8, 8, 4))
    a, b, rgb = (tmp_path / f"{n}.nii.gz" for n in ("a", "b", "rgb"))
    nib.save(nib.Nifti1Image(np.random.rand(64, 64).astype(np.float32), np.eye(4)), str(a))
    nib.save(nib.Nifti1Image(np.random.rand(64, 48).astype(np.float32), np.eye(4)), str(b))
    nib.save(nib.Nifti1Image(np.random.rand(64, 64, 3).astype(np.float32), np.eye(4)), str(rgb))
    with pytest.raises(ValueError, match=r"differ in size.*\(64, 64\).*\(64, 48\)"):
        _round(net).run([{"pair": "p", "image1": str(a), "image2": str(b)}], tmp_path / "round")
    with pytest.raises(ValueError, match="single-channel 2D"):
        _round(net).run([{"pair": "p", "image1": str(a), "image2": str(rgb)}], tmp_path / "round")
    with pytest.raises(ValueError, match="mode"):
        _round(net, mode="oracle")
    assert not (tmp_path / "round").exists()


def test_transfer_round_writes_labels_on_each_visits_grid(cones, tmp_path):
    torch.manual_seed(0)
    net = ConeMapUNet(features=(4, 4, 8, 8, 8, 4))
    pairs = cone_datalist(cones, num_val=2)["pairs"]
    record = json.loads((cones / "dataset.json").read_text())
    summary = _round(net, mode="self_training").run(pairs, tmp_path / "r", cones / "pairs_reference", record)
    assert summary["pairs"] == 2 and "dice_after_v1" in summary
    written = sorted(p.name for p in (tmp_path / "r" / "labels").iterdir())
    assert written == ["pair_000_v1.nii.gz", "pair_000_v2.nii.gz", "pair_001_v1.nii.gz", "pair_001_v2.nii.gz"]
    assert nib.load(str(tmp_path / "r" / "labels" / written[0])).shape == (64, 64)
    with pytest.raises(FileExistsError):
        _round(net).run(pairs, tmp_path / "r")
    with pytest.raises(ValueError, match="aligned reliably"):          # an untrained model finds no cells to align
        _round(net).run(pairs, tmp_path / "r2")
    assert not (tmp_path / "r2").exists()


# --- the bundle -------------------------------------------------------------------------------------------------

def test_bundle_trains_transfers_evaluates_and_infers(cones, tmp_path):
    # round 0 fine-tunes the committed model for one epoch, so that the pairs' cells are found and the visits align
    ov = dict(TINY, features=[16, 32, 64, 128, 128, 16], bundle_root=str(tmp_path), dataset_dir=str(cones))
    rows = iterate_label_transfer(BUNDLE, tmp_path / "chain", rounds=1, baseline_epochs=1, round_epochs=1,
                                  overrides=ov, final_ckpt=str(tmp_path / "models" / "model.pt"),
                                  initial_ckpt=str(BUNDLE / "models" / "model.pt"))
    assert [r["round"] for r in rows] == [0, 1] and "test_dice_noisy" in rows[1] and rows[1]["transfer_matches"] > 20
    assert rows[1]["transfer_pairs_skipped"] == 0 and rows[0]["test_dice"] > 0.8
    round_json = json.loads((tmp_path / "chain" / "round_1" / "pseudo_labels" / "round.json").read_text())
    assert round_json["summary"]["mode"] == "transfer" and len(round_json["pairs"]) == 2
    assert (tmp_path / "chain" / "rounds.csv").read_text().count("\n") == 3
    assert (tmp_path / "models" / "model.pt").is_file()
    # inference keeps the input's grid: an odd-sized crop with a non-identity affine
    img = nib.load(str(cones / "test" / "images" / "test_000.nii.gz"))
    affine = np.diag([0.8, 0.8, 1.0, 1.0])
    affine[:3, 3] = (5.0, -3.0, 0.0)
    folder = tmp_path / "infer_in"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:50, :37], affine), str(folder / "crop.nii.gz"))
    run_bundle(BUNDLE, "inference.yaml", dataset_dir=str(folder), output_dir=str(tmp_path / "out"),
               ckpt_path=str(tmp_path / "models" / "model.pt"))
    out = nib.load(str(tmp_path / "out" / "crop_cells.nii.gz"))
    assert out.shape[:2] == (50, 37) and np.allclose(out.affine, affine)
    assert np.issubdtype(out.get_data_dtype(), np.integer)


def test_bundle_refuses_rgb_images_and_missing_weights(cones, tmp_path):
    folder = tmp_path / "rgb"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.random.rand(32, 32, 3).astype(np.float32), np.eye(4)), str(folder / "rgb.nii.gz"))
    net = tmp_path / "model.pt"
    torch.save(ConeMapUNet(features=TINY["features"]).state_dict(), net)
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, "inference.yaml", dataset_dir=str(folder), output_dir=str(tmp_path / "out"),
                   ckpt_path=str(net), features=TINY["features"])
    assert "rgb.nii.gz" in error_text(e)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml", "transfer.yaml"], bundle_root=str(tmp_path), dataset_dir=str(cones),
                   ckpt_path=str(tmp_path / "missing.pt"), **TINY)
    assert "missing.pt" in error_text(e)


def test_inference_refuses_a_real_3d_scan_naming_it(tmp_path):
    from monai_ext.bundle_helpers import shared_data_dir

    shared = shared_data_dir()
    if shared is None or not (shared / "mr" / "abdomen_mr_3mm.nii.gz").is_file():
        pytest.skip("../shared/data not available")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "abdomen_mr_3mm.nii.gz").symlink_to(shared / "mr" / "abdomen_mr_3mm.nii.gz")
    net = tmp_path / "model.pt"
    torch.save(ConeMapUNet(features=TINY["features"]).state_dict(), net)
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, "inference.yaml", dataset_dir=str(folder), output_dir=str(tmp_path / "out"),
                   ckpt_path=str(net), features=TINY["features"])
    text = error_text(e)
    assert "abdomen_mr_3mm.nii.gz" in text and "2D" in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_perturbation_check_scores_every_perturbation(cones, tmp_path):
    from monai_ext.apps.ao_cone_label_transfer import CONE_PERTURBATIONS, cone_perturbation_check

    net = tmp_path / "model.pt"
    torch.save(ConeMapUNet(features=TINY["features"]).state_dict(), net)
    out = cone_perturbation_check(net, cones, tmp_path / "check.json", features=TINY["features"], rotations=(5,))
    assert set(out["segmentation"]) == set(CONE_PERTURBATIONS) and set(out["alignment"]) == {"5 deg"}
    assert json.loads((tmp_path / "check.json").read_text()) == out
    assert set(out["segmentation"]["as is"]) == {"dice_noisy", "dice_clean", "recall_noisy", "recall_clean"}


def test_rounds_report_tabulates_rounds_over_seeds_with_a_paired_test(tmp_path):
    from monai_ext.apps.ao_cone_label_transfer import rounds_report

    rng = np.random.default_rng(0)
    for seed in (0, 1):
        run = tmp_path / "runs" / "study" / f"transfer_seed{seed}"
        (run / "chain").mkdir(parents=True)
        (run / "study_run.json").write_text(json.dumps({"arm": "transfer", "seed": seed}))
        base = rng.uniform(0.8, 0.9, 12)
        rows = {}
        for k, gain in ((0, 0.0), (1, 0.03)):
            ev = run / "chain" / f"round_{k}" / "eval"
            ev.mkdir(parents=True)
            ev.joinpath("test_scores_raw.csv").write_text(
                "image,dice\n" + "".join(f"v{i},{d + gain + rng.normal(0, 0.002)}\n" for i, d in enumerate(base)))
            rows[f"round_{k}"] = {"round": k, "test_dice": float(base.mean() + gain), "test_area_overlap": 0.8}
        (run / "chain" / "rounds.json").write_text(json.dumps(rows))
    out = rounds_report(tmp_path, tmp_path / "docs")
    assert out["rounds"]["transfer"]["1"]["test_dice"]["n"] == 2
    assert out["rounds"]["transfer"]["1"]["test_dice"]["mean"] > out["rounds"]["transfer"]["0"]["test_dice"]["mean"] + 2.5
    assert all(t["p"] < 1e-6 and t["mean_gain"] == pytest.approx(0.03, abs=0.003) for t in out["paired_t_tests"]["transfer"])
    assert "| 1 | 2 |" in (tmp_path / "docs" / "study_rounds.md").read_text()
