"""Sparse planar annotation and the multi-planar U-Net (Laprade et al., DGM4MICCAI/DALI 2021): plane transforms,
the ignore-masked loss, the multi-planar inferer, the EM phantom, the run's sparse data, the regression and the
bundle's configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.networks.nets import BasicUNet

from monai_ext.apps.multiplanar_unet_sparse import (
    annotated_only,
    annotation_regression_report,
    check_sparse_switches,
    fit_log_linear,
    load_volume,
    multiplanar_datalist,
    planes_per_volume,
    sparse_training_data,
    sparse_validation_volumes,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.inferers import MultiPlanarInferer
from monai_ext.losses import IgnoreMaskedCELoss
from monai_ext.phantoms import generate_em_mitochondria_case, synthesize_em_mitochondria_dataset
from monai_ext.transforms import (
    ObliquePlane,
    RandObliquePlane,
    RandObliquePlaned,
    RandSparsePlaneAnnotation,
    RandSparsePlaneAnnotationd,
    SparsePlaneAnnotation,
    annotated_plane_mask,
    plane_coordinates,
)

from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "multiplanar_unet_sparse"
# normal along the first voxel axis: the plane is the slice x = const (rows along y, columns along z)
X_PLANE = np.eye(3)[:, [1, 2, 0]]


# --- plane transforms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("convert", [np.asarray, torch.as_tensor])
def test_an_axis_aligned_plane_is_the_slice_and_its_record_replays_it(convert):
    vol = np.random.default_rng(0).random((2, 9, 10, 11)).astype(np.float32)
    out = ObliquePlane(X_PLANE, center=[3.0, 4.5, 5.0], size=(10, 11))(convert(vol))
    np.testing.assert_allclose(np.asarray(out), vol[:, 3], atol=1e-5)
    rand = RandObliquePlane(size=12, center_range=0.8).set_random_state(4)
    first = rand(MetaTensor(torch.as_tensor(vol)))
    record = first.meta["oblique_plane"]
    assert rand.last_params["rotation"] == record["rotation"] and record["size"] == [12, 12]
    again = ObliquePlane(record["rotation"], record["center"], record["size"])(torch.as_tensor(vol))
    torch.testing.assert_close(torch.as_tensor(first.as_tensor()), again)


def test_a_random_plane_takes_image_and_label_from_one_plane_and_pads_the_label_as_not_annotated():
    vol = torch.arange(16.0**3).reshape(1, 16, 16, 16)
    label = (vol % 3 == 0).float()
    sampler = RandObliquePlaned(["image", "label"], size=30, center_range=0.0, mode=["bilinear", "nearest"],
                                padding_value=[0.0, -1.0]).set_random_state(1)
    d = sampler({"image": vol, "label": label})
    assert d["image"].shape == (1, 30, 30) and d["label"].shape == (1, 30, 30)
    assert set(torch.unique(d["label"]).tolist()) == {-1.0, 0.0, 1.0}    # a 30 px plane leaves the 16^3 volume
    p = sampler.last_params
    coords = plane_coordinates(p["rotation"], p["center"], p["size"])
    far = ((coords < -1.0) | (coords > 16.0)).any(0)                      # over a voxel outside: padding only
    assert bool(far.any()) and bool((d["image"][0][far] == 0).all()) and bool((d["label"][0][far] == -1).all())
    inside = ((coords > 0.5) & (coords < 14.5)).all(0)
    assert bool((d["label"][0][inside] >= 0).all())
    with pytest.raises(ValueError, match="share their grid"):
        RandObliquePlaned(["image", "label"])({"image": vol, "label": label[:, :8]})
    with pytest.raises(ValueError, match="orthonormal"):
        ObliquePlane(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        ObliquePlane(X_PLANE)(np.zeros((16, 16)))


@pytest.mark.parametrize("convert", [np.asarray, torch.as_tensor])
def test_sparse_annotation_keeps_the_label_on_its_planes_only_and_replays(convert):
    label = (np.random.default_rng(2).random((1, 12, 12, 12)) > 0.5).astype(np.uint8)
    plane = {"rotation": X_PLANE.tolist(), "center": [5.0, 5.5, 5.5]}
    out = np.asarray(SparsePlaneAnnotation([plane])(convert(label)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 5], label[0, 5])
    assert (np.delete(out[0], 5, axis=0) == -1).all()
    rand = RandSparsePlaneAnnotation(3).set_random_state(0)
    sparse = rand(MetaTensor(torch.as_tensor(label, dtype=torch.float32)))
    replay = SparsePlaneAnnotation(**rand.last_params)(label)
    np.testing.assert_array_equal(sparse.numpy(), replay)
    assert sparse.meta["sparse_planes"] == rand.last_params["planes"]
    known = annotated_plane_mask(label.shape[1:], rand.last_params["planes"]).numpy()
    np.testing.assert_array_equal(replay[0][known], label[0][known])
    assert (replay[0][~known] == -1).all() and 0.1 < known.mean() < 0.5   # 3 planes through 12 voxels
    d = RandSparsePlaneAnnotationd("label", 2).set_random_state(5)({"label": label})
    assert len(d["annotation_planes"]) == 2
    with pytest.raises(ValueError, match="center"):
        SparsePlaneAnnotation([{"rotation": X_PLANE.tolist(), "center": [1.0, 2.0]}])
    with pytest.raises(ValueError, match="num_planes"):
        RandSparsePlaneAnnotation(0)


# --- loss and inferer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_ignore_masked_ce_averages_annotated_pixels_and_gives_ignored_ones_no_gradient(channels):
    torch.manual_seed(0)
    logits = torch.randn(2, channels, 6, 7, requires_grad=True)
    target = torch.randint(-1, max(channels, 2), (2, 1, 6, 7)).float()
    loss = IgnoreMaskedCELoss()(logits, target)
    loss.backward()
    ignored = (target == -1).expand_as(logits)
    assert bool((logits.grad[ignored] == 0).all()) and bool((logits.grad[~ignored] != 0).any())
    known = target[:, 0] >= 0
    if channels == 1:
        ref = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0][known], target[:, 0][known])
    else:
        ref = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[known], target[:, 0][known].long())
    torch.testing.assert_close(loss, ref)
    none = IgnoreMaskedCELoss()(logits, torch.full_like(target, -1.0))
    assert float(none.detach()) == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="annotated target values"):
        IgnoreMaskedCELoss()(logits, target + 5)


def test_ignore_masked_ce_can_weight_the_rare_foreground():
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.full((1, 1, 4, 4), -1.0)
    target[0, 0, 0] = 1.0                                   # 4 foreground, 8 background annotated pixels
    target[0, 0, 1:3] = 0.0
    plain = float(IgnoreMaskedCELoss()(logits, target))
    balanced = float(IgnoreMaskedCELoss(pos_weight="balanced")(logits, target))
    assert balanced == pytest.approx(plain * (4 * 2 + 8) / 12)  # foreground weighted 8 / 4 = 2
    assert float(IgnoreMaskedCELoss(pos_weight=2.0)(logits, target)) == pytest.approx(balanced)
    with pytest.raises(ValueError, match="pos_weight"):
        IgnoreMaskedCELoss(pos_weight="inverse")
    with pytest.raises(ValueError, match="one output channel"):
        IgnoreMaskedCELoss(pos_weight=2.0)(torch.zeros(1, 3, 4, 4), target.clamp(min=0))


def test_multi_planar_inferer_predicts_every_voxel_from_its_rotated_views():
    vol = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 20, 24, 16), 5, 1, 2) * 4 - 2
    inferer = MultiPlanarInferer(num_views=3, seed=1)
    assert not np.allclose(inferer.rotations[0], np.eye(3))
    out = inferer(vol, lambda x: x)                                   # the "network" returns its input as logits
    assert out.shape == vol.shape
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3), slice(3, -3))
    err = (out[inner] - torch.sigmoid(vol)[inner]).abs()                 # two trilinear resamplings blur a little
    assert float(err.max()) < 0.05 and float(err.mean()) < 0.01
    transposed = MultiPlanarInferer(num_views=1, seed=1)
    transposed.rotations = [inferer.rotations[0].T]                       # another orientation, same answer
    assert float((transposed(vol, lambda x: x) - torch.sigmoid(vol))[inner].abs().mean()) < 0.01
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=(4, 4, 4, 4, 4, 4), norm="batch").eval()
    with torch.no_grad():
        pred = MultiPlanarInferer(num_views=2)(torch.rand(1, 1, 12, 12, 12), net)
    assert pred.shape == (1, 1, 12, 12, 12) and float(pred.min()) >= 0 and float(pred.max()) <= 1
    with pytest.raises(ValueError, match="num_views"):
        MultiPlanarInferer(num_views=0)


# --- the EM phantom and the run's data ------------------------------------------------------------------------


def test_em_phantom_is_seeded_and_dark_mitochondria_cover_a_few_percent(tmp_path):
    img, lab, rec = generate_em_mitochondria_case(3, shape=(40, 40, 40))
    img2, lab2, _ = generate_em_mitochondria_case(3, shape=(40, 40, 40))
    np.testing.assert_array_equal(img, img2)
    np.testing.assert_array_equal(lab, lab2)
    assert 0.01 < lab.mean() < 0.25 and 0.0 <= img.min() and img.max() <= 255.0
    assert img[lab == 1].mean() < img[lab == 0].mean() - 40                  # membrane-bound, darker
    assert len(rec["mitochondria"]) >= 1 and "organelles" in rec
    synthesize_em_mitochondria_dataset(tmp_path / "em", cases=2, shape=(24, 24, 24), progress=False)
    header = nib.load(next((tmp_path / "em" / "imagesTr").glob("*.nii.gz"))).header
    np.testing.assert_allclose(header.get_zooms(), [2e-5] * 3, rtol=1e-4)    # 20 nm, as mm
    with pytest.raises(FileExistsError):
        synthesize_em_mitochondria_dataset(tmp_path / "em", cases=1)


@pytest.fixture(scope="module")
def em(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("mp_sparse")
    synthesize_em_mitochondria_dataset(tmp / "data", cases=5, shape=(24, 24, 24), progress=False)
    return tmp


def test_planes_are_dealt_to_the_volumes_and_n_t_zero_trains_on_the_annotated_planes(em):
    assert planes_per_volume(6, 4) == [2, 2, 1, 1] and planes_per_volume(2, 4) == [1, 1, 0, 0]
    cases = multiplanar_datalist(em / "data", num_val=1, num_test=1)["training"]
    annotated = sparse_training_data(cases, "mp", "sparse", 3, 0, seed=0)
    assert len(annotated) == 3 and {s["kind"] for s in annotated} == {"annotated"}
    centre = (slice(None), slice(8, 16), slice(8, 16))                      # inside the volume: fully labelled
    assert all(bool((s["label"][centre] >= 0).all()) for s in annotated)
    report = em / "annotation.json"
    training = sparse_training_data(cases, "mp", "sparse", 3, 10, seed=0, report_path=report)
    assert len(training) == 10 and {s["kind"] for s in training} == {"training"}
    assert {s["case"] for s in training} == {c["case"] for c in cases[:3]}   # only volumes with annotated planes
    rep = json.loads(report.read_text())
    assert 0 < rep["labelled_plane_pixel_fraction"] < 0.5 and rep["num_annotated"] == 3
    volumes = sparse_training_data(cases, "unet3d", "sparse", 3, 10, seed=0)
    assert len(volumes) == 3 and [len(v["planes"]) for v in volumes] == [1, 1, 1]
    for v, plane in zip(volumes, annotated):                                 # the same planes, same seed
        assert v["planes"][0]["rotation"] == plane["plane"]["rotation"]
    other = sparse_training_data(cases, "unet3d", "sparse", 3, 10, seed=1)
    assert other[0]["planes"][0]["rotation"] != volumes[0]["planes"][0]["rotation"]
    dense = sparse_training_data(cases, "unet3d", "dense", 3, 0, seed=0)
    assert all(bool((v["label"] >= 0).all()) for v in dense)
    val = sparse_validation_volumes(multiplanar_datalist(em / "data", num_val=1, num_test=1)["validation"], 4, 0)
    assert 0 < float((val[0]["label"] >= 0).float().mean()) < 0.25


def test_switches_anisotropic_voxels_and_two_channel_images_are_named(em, tmp_path):
    with pytest.raises(ValueError, match="model must be one of"):
        check_sparse_switches("unet2d", "sparse", 4, 0)
    with pytest.raises(ValueError, match="num_annotated"):
        check_sparse_switches("mp", "sparse", 0, 0)
    with pytest.raises(ValueError, match="no validation would run"):
        check_sparse_switches("mp", "sparse", 4, 0, max_epochs=2, val_interval=4)
    src = nib.load(next((em / "data" / "imagesTr").glob("*.nii.gz")))
    aff = src.affine.copy()
    aff[2, 2] *= 3
    nib.save(nib.Nifti1Image(src.get_fdata().astype(np.float32), aff), str(tmp_path / "thick.nii.gz"))
    case = {"case": "thick", "image": str(tmp_path / "thick.nii.gz"), "label": str(tmp_path / "thick.nii.gz")}
    with pytest.raises(Exception) as e:
        load_volume(case)
    assert "thick.nii.gz" in error_text(e) and "isotropic" in error_text(e)
    two = np.stack([src.get_fdata()] * 2, -1).astype(np.float32)
    nib.save(nib.Nifti1Image(two, src.affine), str(tmp_path / "two.nii.gz"))
    with pytest.raises(Exception) as e:
        load_volume({"case": "two", "image": str(tmp_path / "two.nii.gz"), "label": case["label"]})
    assert "two.nii.gz" in error_text(e) and "channel" in error_text(e)


def test_annotated_only_scores_the_annotated_voxels():
    pred = torch.ones(1, 4, 4, 4)
    label = torch.full((1, 4, 4, 4), -1.0)
    label[0, 0] = 1.0
    label[0, 1] = 0.0
    preds, labels = annotated_only([{"pred": pred, "label": label}])
    assert float(preds[0].sum()) == 32 and float(labels[0].sum()) == 16 and float(labels[0].min()) == 0


# --- the regression -------------------------------------------------------------------------------------------


def test_log_linear_fit_recovers_its_coefficients_and_tests_them():
    rng = np.random.default_rng(0)
    n_a, n_t = np.meshgrid([2, 4, 8, 16], [64, 128, 256, 512], indexing="ij")
    n_a, n_t = np.repeat(n_a.ravel(), 3), np.repeat(n_t.ravel(), 3)
    dice = 0.02 * np.log(n_a) + 0.0 * np.log(n_t) + 0.8 + rng.normal(0, 0.005, n_a.size)
    fit = fit_log_linear(n_a, n_t, dice)
    assert abs(fit["coefficients"]["alpha_a"] - 0.02) < 0.003 and abs(fit["coefficients"]["beta"] - 0.8) < 0.02
    assert fit["tests"]["alpha_a = 0"]["p"] < 1e-6 and fit["tests"]["alpha_t = 0"]["p"] > 0.01
    assert fit["tests"]["both = 0"]["df"] == [2, n_a.size - 3]
    one = fit_log_linear(n_a, None, dice)
    assert set(one["coefficients"]) == {"alpha_a", "beta"} and set(one["tests"]) == {"alpha_a = 0"}
    with pytest.raises(ValueError, match="too few"):
        fit_log_linear([2, 4], [8, 8], [0.5, 0.6])


def test_regression_report_reads_the_study_runs(tmp_path):
    for k, (n_a, n_t, dice) in enumerate([(2, 64, 0.7), (4, 64, 0.75), (8, 64, 0.8), (2, 128, 0.72), (4, 128, 0.77),
                                          (8, 128, 0.83), (2, 0, 0.6)]):
        run = tmp_path / "runs" / "study" / f"run{k}"
        run.mkdir(parents=True)
        ov = {"model": "mp", "num_annotated": n_a, "num_training_planes": n_t}
        (run / "study_run.json").write_text(json.dumps({"arm": f"a{n_a}_t{n_t}", "seed": 0, "metrics": {"test_dice": dice},
                                                       "settings": [{"configs": ["train.yaml"], "overrides": ov}]}))
    result = annotation_regression_report(tmp_path, tmp_path / "docs")
    assert result["fits"]["mp"]["n"] == 6 and result["fits"]["mp"]["coefficients"]["alpha_a"] > 0
    assert "not fitted" in (tmp_path / "docs" / "study_fit.md").read_text()      # no 3D U-Net runs


# --- the bundle -------------------------------------------------------------------------------------------------

TINY = {"num_val": 1, "num_test": 1, "max_epochs": 2, "iterations_per_epoch": 3, "val_interval": 1,
        "mp_features": [4, 4, 8, 8, 8, 4], "unet3d_features": [4, 4, 4, 4, 4, 4], "crop_size": [16, 16, 16],
        "num_annotated": 3, "num_training_planes": 6, "device": "$torch.device('cpu')"}


@pytest.mark.parametrize("model", ["mp", "unet3d"])
def test_bundle_trains_evaluates_and_infers_on_the_input_grid(em, model, tmp_path):
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(em / "data"), "model": model, **TINY}
    if model == "unet3d":
        common["batch_size"] = 2                # 16^3 crops pool to 1 voxel: batch norm needs two of them
    run_bundle(BUNDLE, ["train.yaml"], **common)
    assert (tmp_path / "models" / "model.pt").is_file() and any((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert len((tmp_path / "eval" / "metric_history.csv").read_text().splitlines()) == 3
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **common)
    rows = dict(csv.reader(open(tmp_path / "eval" / "metrics.csv")))
    assert 0.0 <= float(rows["test_mean_dice"]) <= 1.0 and 0.0 <= float(rows["test_specificity"]) <= 1.0
    image = sorted((em / "data" / "imagesTr").glob("*.nii.gz"))[0]
    out = tmp_path / "inferred"
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(image), output_dir=str(out),
               model=model, mp_features=TINY["mp_features"], unet3d_features=TINY["unet3d_features"],
               crop_size=TINY["crop_size"], device=TINY["device"])
    seg, src = nib.load(next(out.glob("*_seg.nii.gz"))), nib.load(image)
    assert seg.shape == src.shape and np.allclose(seg.affine, src.affine, rtol=1e-4, atol=1e-9)
    assert set(np.unique(seg.get_fdata())) <= {0.0, 1.0}


def test_bundle_names_a_bad_switch_and_missing_weights(em, tmp_path):
    common = {"bundle_root": str(tmp_path), "dataset_dir": str(em / "data"), **TINY}
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["train.yaml"], **{**common, "annotation": "scribbles"})
    assert "annotation must be one of" in error_text(e)
    with pytest.raises(Exception) as e:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(em / "data" / "imagesTr"),
                   output_dir=str(tmp_path / "out"), device=TINY["device"])
    assert "run configs/train.yaml first" in error_text(e)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
