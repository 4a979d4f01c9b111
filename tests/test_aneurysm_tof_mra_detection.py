"""The aneurysm TOF-MRA detection bundle and its generic pieces: sphere labels from two points, vessel-guided
patches, lattice spline warps, central-crop tiling, component detections, the ADAM / FROC / kappa scores, the
detections writer and the bundle's train / inference / evaluate configs on a tiny synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from error_chain import error_text

from monai.networks.nets import UNet
from monai_ext.apps.aneurysm_tof_mra_detection import AneurysmPatchDataset, aneurysm_inference_items, tile_confusion
from monai_ext.bundle_helpers import run_bundle
from monai_ext.inferers import CentralCropTilingInferer
from monai_ext.metrics import (
    ADAMDetectionMetric,
    CohenKappaMetric,
    adam_detection_counts,
    froc_candidates,
    froc_summary,
    kappa_from_counts,
)
from monai_ext.phantoms import synthesize_tof_mra_dataset
from monai_ext.transforms import (
    ComponentDetections,
    LatticeSplineDeform,
    RandLatticeSplineDeformd,
    TwoPointSphereLabel,
    VesselGuidedPatchSamples,
    VesselGuidedPatchSamplesd,
)

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "aneurysm_tof_mra_detection"
TINY = dict(synth_cases=4, num_val=1, num_test=1, max_epochs=1, features=[4, 8, 16, 32], num_duplicates=2,
            num_bright=2, num_mid=2, batch_size=4, patch_size=16, crop_size=20, tile_margin=2)


def _ball(shape, centre, radius):
    grid = np.indices(shape).astype(float)
    return (np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre))) <= radius).astype(np.float32)


@pytest.fixture(scope="module")
def adam_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("tof") / "data"
    synthesize_tof_mra_dataset(out, cases=4, seed=3, shape=(48, 48, 40), progress=False)
    return out


def test_two_point_sphere_label_is_the_ball_through_both_points():
    affine = np.diag([0.5, 0.5, 0.4, 1.0])
    affine[:3, 3] = [-10.0, 5.0, 2.0]
    img = torch.zeros(1, 60, 60, 60)
    neck, dome = np.array([-2.0, 17.0, 14.0]), np.array([2.0, 17.0, 14.0])     # 4 mm apart: radius 2 mm
    label = TwoPointSphereLabel()(img, [[neck, dome]], affine=affine)
    assert label.shape == (1, 60, 60, 60) and label.dtype == torch.uint8
    volume_mm3 = float(label.sum()) * 0.5 * 0.5 * 0.4
    assert abs(volume_mm3 - 4 / 3 * np.pi * 8) / (4 / 3 * np.pi * 8) < 0.1
    centre_vox = np.rint((0.5 * (neck + dome) - affine[:3, 3]) / np.diag(affine)[:3]).astype(int)
    assert label[0][tuple(centre_vox)] == 1
    with pytest.raises(ValueError, match=r"outside the image grid \(60, 60, 60\)"):
        TwoPointSphereLabel()(img, [[neck + 100, dome + 100]], affine=affine)
    assert TwoPointSphereLabel(outside="skip")(img, [[neck + 100, dome + 100]], affine=affine).sum() == 0
    with pytest.raises(ValueError, match="coincide"):
        TwoPointSphereLabel()(img, [[neck, neck]], affine=affine)


def test_lattice_warp_keeps_the_centre_and_the_sphere_on_the_bright_anatomy():
    shape = (40, 40, 40)
    label = _ball(shape, (20, 20, 20), 5)[None]
    image = (0.2 + 0.8 * label).astype(np.float32)
    warp = RandLatticeSplineDeformd(["image", "label"], max_displacement=6.0, mode=["bilinear", "nearest"])
    warp.set_random_state(4)
    out = warp({"image": image, "label": label})
    disp = np.asarray(warp.last_params["displacements"])
    assert disp.shape == (3, 3, 3, 3) and np.all(disp[:, 1, 1, 1] == 0) and np.abs(disp).max() > 2
    assert not np.array_equal(out["label"], label)                       # the shape changed ...
    assert out["label"][0, 20, 20, 20] == 1                               # ... the centre did not move
    inside = out["image"][out["label"] > 0]                               # the label stays on the bright sphere
    assert inside.mean() > 0.85 and np.mean(inside > 0.5) > 0.95
    np.testing.assert_array_equal(LatticeSplineDeform(**warp.last_params)(image, mode="nearest") > 0.5, out["label"] > 0)
    replay = LatticeSplineDeform(**warp.last_params, mode="nearest")(label)
    np.testing.assert_array_equal(replay, out["label"])
    np.testing.assert_array_equal(LatticeSplineDeform(np.zeros((3, 2, 2, 2)))(image), image)


def test_vessel_guided_patches_centre_positives_and_keep_negatives_apart():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.3, 0.5, (1, 50, 50, 50)).astype(np.float32)
    image[0, 5:45, 24:27, 24:27] = 1.0                                     # a bright vessel along axis 0
    label = _ball((50, 50, 50), (30, 30, 25), 3)[None]
    t = VesselGuidedPatchSamplesd(["image", "label"], patch_size=12, num_duplicates=3, num_bright=4, num_mid=5,
                                  min_distance=8.0, bright_quantile=0.998)
    t.set_random_state(1)
    samples = t({"image": image, "label": label, "case": "a"})
    assert t.last_counts == {"positive": 3, "bright": 4, "mid": 5}
    assert [s["positive"] for s in samples] == [1] * 3 + [0] * 9 and samples[0]["case"] == "a"
    for s in samples[:3]:
        assert s["patch_center"] == [30, 30, 25] and s["label"][0, 6, 6, 6] == 1 and s["image"].shape == (1, 12, 12, 12)
    negatives = np.array([s["patch_center"] for s in samples[3:]])
    dist = np.linalg.norm(negatives[:, None] - negatives[None], axis=-1) + np.eye(len(negatives)) * 99
    assert dist.min() >= 8.0
    assert all(image[(0, *c)] == 1.0 for c in negatives[:4])              # the bright ones sit on the vessel
    again = VesselGuidedPatchSamples(3, 4, 5, 8.0, 0.998, patch_size=12).set_random_state(1)
    np.testing.assert_array_equal(again.draw_centers(image, label), np.array([s["patch_center"] for s in samples]))


def test_patch_dataset_has_a_fixed_length_and_redraws_negatives():
    image = np.random.default_rng(1).uniform(0, 1, (1, 30, 30, 30)).astype(np.float32)
    label = _ball((30, 30, 30), (15, 15, 15), 2)[None]
    ds = AneurysmPatchDataset([{"image": image, "label": label}], VesselGuidedPatchSamples(2, 3, 3, 4.0, patch_size=10),
                              crop_size=10, seed=0)
    n, first = len(ds), [p[1].tolist() for p in ds.patches]
    ds.resample()
    assert len(ds) == n == 8 and [p[1].tolist() for p in ds.patches] != first
    item = ds[0]
    assert item["positive"] == 1 and item["image"].shape == (1, 10, 10, 10) and item["label"][0, 5, 5, 5] == 1


def test_central_crop_tiling_keeps_each_tile_centre():
    inferer = CentralCropTilingInferer(16, margin=4)

    def tile_position(x):   # the index of each voxel along axis 0 inside its tile
        return torch.arange(x.shape[2], dtype=torch.float32).view(1, 1, -1, 1, 1).expand_as(x).clone()

    out = inferer(torch.zeros(1, 1, 40, 20, 20), tile_position)[0, 0, :, 3, 3]
    inner = out[4:-4]
    assert torch.all(inner >= 3.99) and torch.all(inner <= 11.01), out          # only central voxels were kept
    assert torch.allclose(out[:4], torch.arange(4.0)) and torch.allclose(out[-4:], torch.arange(12.0, 16.0))
    with pytest.raises(ValueError, match="margin"):
        CentralCropTilingInferer(16, margin=8)


def test_component_detections_in_world_mm():
    prob = np.zeros((1, 40, 40, 40), np.float32)
    prob[0] += 0.9 * _ball((40, 40, 40), (10, 10, 10), 3) + 0.7 * _ball((40, 40, 40), (30, 28, 20), 2)
    affine = np.diag([0.4, 0.4, 0.4, 1.0])
    affine[:3, 3] = [5.0, -3.0, 1.0]
    det = ComponentDetections(0.5)(prob, affine=affine)
    assert det.shape == (2, 5)
    np.testing.assert_allclose(det[0, :3], [9.0, 1.0, 5.0], atol=1e-6)           # highest score first
    np.testing.assert_allclose(det[1, :3], [17.0, 8.2, 9.0], atol=1e-6)
    assert abs(det[0, 3] - 1.2) < 0.1 and det[0, 4] == pytest.approx(0.9) and det[1, 4] == pytest.approx(0.7)
    assert ComponentDetections(0.95)(prob).shape == (0, 5)
    prob[0, 35:37, 2, 2] = 0.8                                                  # 2 voxels of 0.064 mm^3 each
    assert len(ComponentDetections(0.5)(prob, affine=affine)) == 3
    kept = ComponentDetections(0.5, min_volume_mm3=0.2)(prob, affine=affine)
    assert len(kept) == 2 and kept[0, 4] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="min_volume_mm3"):
        ComponentDetections(0.5, min_volume_mm3=-1.0)


def test_adam_counts_froc_and_kappa():
    ref = _ball((40, 40, 40), (10, 10, 10), 3) + _ball((40, 40, 40), (30, 30, 30), 3)
    pred = 0.8 * _ball((40, 40, 40), (11, 10, 10), 2) + 0.6 * _ball((40, 40, 40), (25, 5, 30), 2)
    assert adam_detection_counts(pred, ref) == (1, 1, 1)
    fp, tp, n = froc_candidates(pred, ref, 0.1)
    assert n == 2 and tp.tolist() == pytest.approx([0.8]) and fp.tolist() == pytest.approx([0.6])
    summary = froc_summary([(fp, tp, n)], fp_rates=(0.5, 1.0))
    assert summary["sensitivity_at"][1.0] == pytest.approx(0.5) and summary["sensitivity_at"][0.5] == pytest.approx(0.5)
    metric = ADAMDetectionMetric()
    metric(torch.as_tensor(pred)[None, None], torch.as_tensor(ref)[None, None])
    metric(torch.zeros(1, 1, 40, 40, 40), torch.zeros(1, 1, 40, 40, 40))
    agg = metric.aggregate()
    assert (agg["tp"], agg["fp"], agg["fn"], agg["cases"]) == (1, 1, 1, 2) and agg["fp_per_case"] == 0.5
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    a, b = rng.random((2, 1, 8, 8, 8)) > 0.7, rng.random((2, 1, 8, 8, 8)) > 0.6
    k = CohenKappaMetric()
    k(torch.as_tensor(a).float(), torch.as_tensor(b).float())
    assert k.aggregate() == pytest.approx(sk.cohen_kappa_score(b.ravel(), a.ravel()))
    assert kappa_from_counts(5, 0, 0, 5) == 1.0
    assert tile_confusion(pred > 0.5, ref > 0, (20, 20, 20)) == {"tp": 1, "fp": 1, "fn": 1, "tn": 5}


def test_bundle_trains_infers_on_the_input_grid_and_evaluates(adam_folder, tmp_path):
    root = tmp_path / "run"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(adam_folder), **TINY)
    ckpt = root / "models" / "model.pt"
    assert ckpt.is_file() and (root / "models" / "model_final.pt").is_file()
    net = {k: v for k, v in TINY.items() if k in ("features", "patch_size", "tile_margin")}
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(adam_folder), threshold=0.05,
               output_dir=str(tmp_path / "out"), **net)
    case = sorted(p.name for p in adam_folder.iterdir() if p.is_dir())[0]
    src = nib.load(adam_folder / case / "orig" / "TOF.nii.gz")
    prob = nib.load(tmp_path / "out" / case / "orig" / "TOF_prob.nii.gz")
    assert prob.shape == src.shape and np.allclose(prob.affine, src.affine, atol=1e-4)
    doc = json.loads((tmp_path / "out" / f"{case}.json").read_text())
    assert doc["units"] == "mm" and doc["frame"] == "RAS" and isinstance(doc["detections"], list)
    label = nib.load(tmp_path / "out" / case / "orig" / "TOF_label.nii.gz").get_fdata()
    assert doc["label_fraction"] == pytest.approx(float((label > 0).mean()), abs=1e-5)
    assert (tmp_path / "out" / "detections.csv").read_text().startswith("case,image,index,x_mm")
    run_bundle(BUNDLE, ["inference.yaml", "evaluate.yaml"], bundle_root=str(root), dataset_dir=str(adam_folder),
               eval_dir=str(tmp_path / "eval"), synth_cases=4, num_val=1, num_test=1, min_volume_mm3=0.25, **net)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["cases"] == 1 and metrics["aneurysms"] >= 1 and 0.0 <= metrics["sensitivity"] <= 1.0
    assert metrics["aneurysms_small"] + metrics["aneurysms_large"] == metrics["aneurysms"]
    assert metrics["min_volume_mm3"] == 0.25
    assert set(metrics["tiles"]) == {"tp", "fp", "fn", "tn"} and sum(metrics["tiles"].values()) > 0


def test_inference_names_bad_input(adam_folder, tmp_path):
    assert len(aneurysm_inference_items(adam_folder)) == 4              # the ADAM layout: orig/TOF.nii.gz only
    with pytest.raises(Exception) as info:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(adam_folder),
                   output_dir=str(tmp_path / "out"))
    assert "model.pt" in error_text(info)
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((30, 30), np.float32), np.eye(4)), str(flat))
    (tmp_path / "models").mkdir()
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "models" / "model.pt")
    with pytest.raises(Exception) as info:                               # weights of another network
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), input_dir=str(flat),
                   output_dir=str(tmp_path / "out"))
    assert "model.pt" in error_text(info) and "do not fit" in error_text(info)
    torch.save(UNet(3, 1, 1, (16, 32, 64, 128), (2, 2, 2), num_res_units=0, norm="batch").state_dict(),
               tmp_path / "models" / "model.pt")
    with pytest.raises(Exception) as info:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), input_dir=str(flat),
                   output_dir=str(tmp_path / "out"))
    assert "flat.nii.gz" in error_text(info) and "3" in error_text(info)
    assert not (tmp_path / "out").exists()


def test_training_patches_keep_the_sphere_on_the_bright_aneurysm(adam_folder, tmp_path):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.yaml"))
    parser.update({**TINY, "bundle_root": str(tmp_path), "dataset_dir": str(adam_folder), "crop_size": 28,
                   "patch_size": 20, "num_duplicates": 3})
    dataset = parser.get_parsed_content("train#dataset")
    assert dataset.counts["positive"] > 0 and len(dataset) == dataset.counts["positive"] + 4 * len(dataset.volumes)
    positives = [dataset[i] for i in range(len(dataset)) if dataset.patches[i][2]]
    for item in positives:                         # warped, rotated, shifted and cropped: still on the aneurysm
        image, label = np.asarray(item["image"][0]), np.asarray(item["label"][0]) > 0
        assert item["image"].shape == (1, 20, 20, 20) and set(np.unique(label)) <= {False, True}
        if label.any():
            assert image[label].mean() > image[~label].mean() + 0.2
    assert sum(np.asarray(p["label"]).any() for p in positives) >= 0.8 * len(positives)
