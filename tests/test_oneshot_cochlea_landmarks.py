"""One-shot 3D landmark detection (issue 35): the temporal-bone CT phantom, landmark files in world coordinates, the
landmark error metric, the slice sampling, localisation, inertia alignment and demons registration, and the
bundle's training, evaluation and inference through the bundle runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from monai_ext.apps.oneshot_cochlea_landmarks import (
    AXIS_PLANES,
    OneShotLandmarkLocator,
    RandPerturbedPlanesd,
    ShallowSliceUNet,
    crop_cube,
    demons_displacement,
    displacement_at,
    inertia_rotation,
    iterative_centroid,
    oneshot_datalist,
    target_items,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.io import read_landmarks, voxel_to_world, world_to_voxel, write_landmarks
from monai_ext.metrics import LandmarkErrorMetric
from monai_ext.phantoms import (
    COCHLEA_LANDMARKS,
    render_temporal_bone_case,
    sample_temporal_bone_params,
    synthesize_temporal_bone_dataset,
)
from monai_ext.transforms import ObliquePlane
from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "oneshot_cochlea_landmarks"
SMALL_GRID = dict(shape=(48, 48, 48), spacing=(0.6, 0.6, 0.6))
TINY = dict(spacing=[0.6, 0.6, 0.6], slice_size=24, features=4, max_epochs=1, iterations_per_epoch=2, batch_size=4,
            max_shift=4.0, registration_size=32)


# --- phantom and landmark files ---------------------------------------------------------------------------------------

def test_phantom_is_reproducible_and_its_landmarks_sit_on_the_cochlea():
    params = sample_temporal_bone_params(7)
    image, mask, landmarks, affine = render_temporal_bone_case(params, **SMALL_GRID)
    again = render_temporal_bone_case(sample_temporal_bone_params(7), **SMALL_GRID)
    assert np.array_equal(image, again[0]) and np.array_equal(mask, again[1])
    assert image.dtype == np.int16 and mask.dtype == np.uint8 and image.shape == (48, 48, 48)
    assert list(landmarks) == list(COCHLEA_LANDMARKS)
    # cochlear fluid (~0 HU) in dense bone: the mask's voxels are darker than the capsule around them (on this
    # coarse grid the 1-2 mm tube is blurred by partial volume)
    ring = ndi.binary_dilation(mask > 0, iterations=2) & ~ndi.binary_dilation(mask > 0)
    assert np.median(image[mask > 0]) + 400 < np.median(image[ring]) and np.median(image[ring]) > 1200
    # the apex and round window lie on the spiral's centre line: within a voxel of the mask; the centre on the axis
    dist = ndi.distance_transform_edt(mask == 0, sampling=0.6)
    for name in ("top", "round_window"):
        vox = np.round(world_to_voxel(landmarks[name], affine)[0]).astype(int)
        assert dist[tuple(vox)] <= 0.6 * 1.8, name
    spread = np.ptp(np.stack(list(landmarks.values())), axis=0).max()
    assert 3.0 < spread < 10.0  # mm: a cochlea, not a point nor the whole field of view
    other = render_temporal_bone_case(sample_temporal_bone_params(8), **SMALL_GRID)[2]
    assert np.linalg.norm(other["centre"] - landmarks["centre"]) > 0.5  # poses differ between cases


def test_dataset_is_written_atomically_with_its_list(tmp_path):
    with pytest.raises(ValueError, match="test must be a positive integer"):
        synthesize_temporal_bone_dataset(tmp_path / "none", test=0, **SMALL_GRID)
    assert not (tmp_path / "none").exists()
    doc = synthesize_temporal_bone_dataset(tmp_path / "data", test=2, progress=False, **SMALL_GRID)
    assert doc["landmarks"] == list(COCHLEA_LANDMARKS) and len(doc["test"]) == 2
    data = oneshot_datalist(tmp_path / "data")
    assert Path(data["reference"]["mask"]).is_file() and Path(data["validation"]["mask"]).is_file()
    assert [Path(t["image"]).name for t in data["test"]] == ["case_000.nii.gz", "case_001.nii.gz"]
    assert set(read_landmarks(data["test"][1]["landmarks"])) == set(COCHLEA_LANDMARKS)
    with pytest.raises(FileExistsError):
        synthesize_temporal_bone_dataset(tmp_path / "data", test=1, **SMALL_GRID)
    from monai_ext.io import case_name

    assert case_name("/x/p1.2.nii.gz") == "p1.2" and case_name(tmp_path / "data" / "test") == "test"


@pytest.mark.parametrize("suffix", [".mrk.json", ".fcsv"])
def test_landmark_files_round_trip_in_world_coordinates(tmp_path, suffix):
    points = {"top": np.array([1.5, -2.0, 30.25]), "round_window": np.array([-7.0, 4.0, 0.0])}
    path = write_landmarks(tmp_path / f"case{suffix}", points)
    back = read_landmarks(path)
    assert list(back) == ["top", "round_window"]
    for name in points:
        np.testing.assert_allclose(back[name], points[name])
    # stored as LPS, as 3D Slicer writes them: x and y negated in the file
    text = path.read_text()
    assert "LPS" in text and ("-1.5" in text)
    affine = np.diag([0.3, 0.4, 0.5, 1.0])
    affine[:3, 3] = [10.0, -5.0, 2.0]
    np.testing.assert_allclose(world_to_voxel(voxel_to_world([[3, 4, 5]], affine), affine), [[3, 4, 5]])


def test_bad_landmark_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.mrk.json"
    bad.write_text('{"markups": []}')
    with pytest.raises(ValueError, match="bad.mrk.json"):
        read_landmarks(bad)
    with pytest.raises(FileNotFoundError, match="missing.fcsv"):
        read_landmarks(tmp_path / "missing.fcsv")
    with pytest.raises(ValueError, match="3 finite coordinates"):
        write_landmarks(tmp_path / "x.fcsv", {"top": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match="markups"):
        write_landmarks(tmp_path / "x.txt", {"top": [1.0, 2.0, 3.0]})
    assert not (tmp_path / "x.fcsv").exists() and not (tmp_path / "x.txt").exists()


def test_landmark_error_metric():
    metric = LandmarkErrorMetric(["a", "b"], failure_radius=1.0)
    errors = metric(torch.zeros(2, 2, 3), torch.tensor([[[0, 0, 0.5], [0, 3.0, 4.0]], [[0, 0, 0], [0, 0, 2.0]]]))
    torch.testing.assert_close(errors, torch.tensor([[0.5, 5.0], [0.0, 2.0]], dtype=torch.float64))
    out = metric.aggregate()
    assert out["mean"] == pytest.approx(1.875) and out["failure_rate"] == 0.5 and out["cases"] == 2
    assert out["a_mean"] == pytest.approx(0.25) and out["b_mean"] == pytest.approx(3.5)
    metric(torch.full((1, 2, 3), float("nan")), torch.zeros(1, 2, 3))  # a landmark not found is a failure
    assert metric.aggregate()["mean"] == float("inf")
    with pytest.raises(ValueError, match="expected 2 landmarks"):
        metric(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))


# --- the method's steps -----------------------------------------------------------------------------------------

def test_axis_slices_of_training_match_the_slicing_at_inference():
    """The network is trained on ObliquePlane slices and applied to volume.movedim(axis, 0) slices: same pixels."""
    vol = torch.rand(20, 22, 24)
    cube = crop_cube(vol, [9.5, 10.5, 11.5], 8)
    for axis, base in enumerate(AXIS_PLANES):
        center = np.array([9.5, 10.5, 11.5])
        center[axis] += -3.5 + 2  # the third slice of the cube along this axis
        plane = ObliquePlane(base, center, 8)(vol[None])[0]
        torch.testing.assert_close(plane, cube.movedim(axis, 0)[2], atol=1e-5, rtol=0)


def test_random_planes_are_slices_through_the_structure_and_replayable():
    vol = torch.zeros(1, 32, 32, 32)
    vol[0, 12:20, 12:20, 12:20] = 1.0
    t = RandPerturbedPlanesd(["image", "label"], center_key="label", size=16, num_samples=5, max_rotation_deg=30,
                             max_shift=2, nearest_keys="label")
    t.set_random_state(3)
    out = t({"image": MetaTensor(vol * 100.0), "label": MetaTensor(vol)})
    assert len(out) == 5 and all(o["image"].shape == (1, 16, 16) for o in out)
    for o in out:
        assert set(torch.unique(o["label"]).tolist()) <= {0.0, 1.0} and o["label"].sum() > 10
        replay = ObliquePlane(**o["image"].meta["oblique_plane"])(vol * 100.0)
        torch.testing.assert_close(replay, o["image"].as_tensor())
    with pytest.raises(ValueError, match="structure-of-interest mask is empty"):
        t({"image": vol, "label": torch.zeros_like(vol)})


class _BrightBlobNet(torch.nn.Module):
    """A stand-in for the trained network: logits high where the slice is bright."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return (x - 0.5) * 40.0 + self.dummy


def _blob_volume(center, shape=(48, 48, 48), radii=(5.0, 3.0, 2.0), rotation=None):
    idx = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"), axis=-1)
    rel = idx - np.asarray(center)
    if rotation is not None:
        rel = rel @ rotation  # coordinates in the blob's own frame
    inside = np.sum((rel / np.asarray(radii)) ** 2, axis=-1) <= 1.0
    bump = np.sum((rel - [4.0, 1.5, 0.0]) ** 2, axis=-1) <= 2.0 ** 2  # breaks the ellipsoid's symmetry
    return torch.as_tensor((inside | bump).astype(np.float32))


def test_iterative_centroid_walks_to_the_structure():
    vol = _blob_volume([30.0, 20.0, 26.0])
    search = iterative_centroid(_BrightBlobNet(), vol, start=[22.0, 25.0, 22.0], size=24, spacing=[0.5] * 3,
                                tolerance_mm=0.2)
    truth = np.argwhere(vol.numpy() > 0).mean(0)
    assert search.converged and np.linalg.norm(search.center - truth) < 1.0
    assert 2 <= len(search.path) <= 10 and float(search.probabilities.max()) > 0.9
    lost = iterative_centroid(_BrightBlobNet(), torch.zeros(40, 40, 40), [20, 20, 20], 16, [1.0] * 3)
    assert not lost.converged and len(lost.path) == 1


def test_inertia_rotation_recovers_a_rotation_and_its_sign():
    true_rot = Rotation.from_euler("xyz", [20, -30, 40], degrees=True).as_matrix()
    ref = _blob_volume([24.0, 24.0, 24.0])
    target = _blob_volume([22.0, 26.0, 25.0], rotation=true_rot)
    ref_cube = crop_cube(ref, [24.0, 24.0, 24.0], 32)
    tgt_cube = crop_cube(target, [22.0, 26.0, 25.0], 32)
    rot, costs = inertia_rotation(ref_cube, tgt_cube, [1.0] * 3, ref_cube, target, [24.0, 24.0, 24.0],
                                  [22.0, 26.0, 25.0])
    angle = np.degrees(np.arccos(np.clip((np.trace(rot.T @ true_rot) - 1) / 2, -1, 1)))
    assert angle < 5.0 and len(costs) == 4 and min(costs) < sorted(costs)[1]


def test_rotation_search_about_the_axis_fixes_an_in_plane_rotation():
    """A flat disk with a bump: its in-plane inertia axes say little; the search about its axis finds the turn."""
    from monai_ext.apps.oneshot_cochlea_landmarks import search_rotation_about_axis

    idx = np.stack(np.meshgrid(*[np.arange(40.0)] * 3, indexing="ij"), axis=-1)

    def disk(turn_deg):
        rot = Rotation.from_euler("z", turn_deg, degrees=True).as_matrix()
        rel = (idx - 19.5) @ rot
        flat = (np.hypot(rel[..., 0], rel[..., 1]) <= 8) & (np.abs(rel[..., 2]) <= 2)
        bump = np.sum((rel - [7.0, 0.0, 0.0]) ** 2, axis=-1) <= 9
        return torch.as_tensor((flat.astype(np.float32) + bump))

    ref, target = disk(0.0), disk(100.0)
    center = [19.5, 19.5, 19.5]
    best, cost = search_rotation_about_axis(np.eye(3), np.array([0.0, 0.0, 1.0]), ref, torch.ones_like(ref), target,
                                            center, center, step_deg=10.0)
    expected = Rotation.from_euler("z", 100.0, degrees=True).as_matrix()
    angle = np.degrees(np.arccos(np.clip((np.trace(best.T @ expected) - 1) / 2, -1, 1)))
    assert angle <= 5.0 and cost < 0.05
    with pytest.raises(ValueError, match="step_deg must be positive"):
        search_rotation_about_axis(np.eye(3), np.array([0.0, 0.0, 1.0]), ref, ref, target, center, center, 0.0)


@pytest.mark.slow  # loading ITK's registration module takes ~10 s
def test_demons_recovers_a_smooth_shift():
    rng = np.random.default_rng(0)
    moving = ndi.gaussian_filter(rng.normal(size=(32, 32, 32)), 3)
    fixed = ndi.shift(moving, (2.0, -1.0, 1.5), order=1)
    field = demons_displacement(fixed, moving, (40, 20))
    np.testing.assert_allclose(displacement_at(field, [[16, 16, 16]])[0], [-2.0, 1.0, -1.5], atol=0.4)


def test_locator_refuses_bad_references_and_targets():
    img = MetaTensor(torch.rand(1, 16, 16, 16), affine=torch.diag(torch.tensor([0.5, 0.5, 0.5, 1.0])))
    with pytest.raises(ValueError, match="structure-of-interest mask is empty"):
        OneShotLandmarkLocator(_BrightBlobNet(), img, MetaTensor(torch.zeros(1, 16, 16, 16)), {"a": [0, 0, 0]})
    mask = MetaTensor(torch.zeros(1, 16, 16, 16))
    mask[0, 6:10, 6:10, 6:10] = 1
    with pytest.raises(ValueError, match="method must be one of"):
        OneShotLandmarkLocator(_BrightBlobNet(), img, mask, {"a": [0, 0, 0]}, method="best")
    flat = MetaTensor(torch.rand(1, 16, 16, 16), affine=torch.diag(torch.tensor([0.5, 0.5, 1.0, 1.0])))
    with pytest.raises(ValueError, match="isotropic voxels"):
        OneShotLandmarkLocator(_BrightBlobNet(), flat, mask, {"a": [0, 0, 0]})
    loc = OneShotLandmarkLocator(_BrightBlobNet(), img, mask, {"a": [0, 0, 0]}, method="translation", cube_size=8)
    coarse = MetaTensor(torch.rand(1, 8, 8, 8), affine=torch.eye(4), meta={"filename_or_obj": "coarse.nii.gz"})
    with pytest.raises(ValueError, match="coarse.nii.gz: voxel size .* resample it first"):
        loc(coarse)


@pytest.mark.parametrize("kind", ["fov_cut_30pct", "voxels_0.5mm", "slices_0.75mm"])
def test_robustness_perturbations_keep_the_anatomy_in_world_coordinates(kind):
    from monai_ext.apps.oneshot_cochlea_landmarks import perturb_volume

    affine = np.diag([0.3, 0.3, 0.3, 1.0])
    affine[:3, 3] = -7.0
    hu = np.zeros((48, 48, 48))
    hu[36, 20, 30] = 1000.0
    out, new_affine = perturb_volume(hu, affine, kind, np.random.default_rng(0))
    peak = np.unravel_index(np.argmax(out), out.shape)
    moved = voxel_to_world([peak], new_affine)[0] - voxel_to_world([[36, 20, 30]], affine)[0]
    assert np.abs(moved).max() <= 0.4  # mm: within half of the coarsest voxel
    assert out.shape != hu.shape


def test_slice_network_shapes():
    net = ShallowSliceUNet(features=4)
    assert net(torch.zeros(3, 1, 24, 24)).shape == (3, 1, 24, 24)
    with pytest.raises(ValueError, match="even slice size"):
        net(torch.zeros(1, 1, 23, 24))


# --- the bundle -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("oneshot")
    synthesize_temporal_bone_dataset(root / "data", test=2, progress=False, **SMALL_GRID)
    run_bundle(BUNDLE, "train.yaml", bundle_root=str(root), dataset_dir=str(root / "data"), **TINY)
    return root


def test_train_writes_weights_and_history(trained):
    assert (trained / "models" / "model.pt").is_file() and (trained / "models" / "model_final.pt").is_file()
    state = torch.load(trained / "models" / "model.pt", map_location="cpu", weights_only=True)
    ShallowSliceUNet(features=4).load_state_dict(state)
    assert "val_bce" in (trained / "eval" / "metric_history.csv").read_text()
    assert any((trained / "logs").iterdir())  # TensorBoard


def test_evaluate_writes_landmarks_and_errors(trained):
    tiny = {k: v for k, v in TINY.items() if k in ("spacing", "slice_size", "features", "registration_size")}
    run_bundle(BUNDLE, ["inference.yaml", "evaluate.yaml"], bundle_root=str(trained), dataset_dir=str(trained / "data"),
               method="translation", **tiny)
    out = trained / "eval" / "translation"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cases"] == 2 and metrics["method"] == "translation"
    assert set(metrics) >= {"mean", "failure_rate", "top_mean", "centre_mean", "round_window_mean", "mean_voxels"}
    assert np.isfinite(metrics["mean"]) and metrics["mean_voxels"] == pytest.approx(metrics["mean"] / 0.6)
    rows = (out / "landmarks.csv").read_text().splitlines()
    assert rows[0] == "case,landmark,x_mm,y_mm,z_mm" and len(rows) == 1 + 2 * 3
    assert set(read_landmarks(out / "case_001.fcsv")) == set(COCHLEA_LANDMARKS)
    errors = (out / "errors.csv").read_text().splitlines()
    assert errors[0] == "case,top,centre,round_window" and len(errors) == 3


def test_inference_reads_dicom_and_writes_nothing_on_a_bad_volume(trained, tmp_path):
    from monai_ext.phantoms import write_dicom_series
    import nibabel as nib

    tiny = {k: v for k, v in TINY.items() if k in ("spacing", "slice_size", "features", "registration_size")}
    scans = tmp_path / "scans"
    scans.mkdir()
    nii = nib.load(str(trained / "data" / "test" / "case_000.nii.gz"))
    write_dicom_series(np.asarray(nii.dataobj), nii.affine, scans / "series_a")
    run_bundle(BUNDLE, "inference.yaml", bundle_root=str(trained), dataset_dir=str(trained / "data"),
               input_dir=str(scans), output_dir=str(tmp_path / "out"), method="translation", **tiny)
    got = read_landmarks(tmp_path / "out" / "series_a.mrk.json")
    truth = read_landmarks(trained / "data" / "test" / "case_000.mrk.json")
    nifti_run = tmp_path / "out_nifti"
    run_bundle(BUNDLE, "inference.yaml", bundle_root=str(trained), dataset_dir=str(trained / "data"),
               input_dir=str(trained / "data" / "test" / "case_000.nii.gz"), output_dir=str(nifti_run),
               method="translation", **tiny)
    from_nifti = read_landmarks(nifti_run / "case_000.mrk.json")
    for name in truth:  # the DICOM series lands in the same world coordinates as its NIfTI
        np.testing.assert_allclose(got[name], from_nifti[name], atol=0.05)
    (scans / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(Exception) as err:
        run_bundle(BUNDLE, "inference.yaml", bundle_root=str(trained), dataset_dir=str(trained / "data"),
                   input_dir=str(scans), output_dir=str(tmp_path / "out2"), method="translation", **tiny)
    assert "broken.nii.gz" in error_text(err)
    assert not (tmp_path / "out2").exists()


def test_bad_data_sets_are_refused_with_the_file_named(trained, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(trained / "data", data)
    doc = json.loads((data / "dataset.json").read_text())
    del doc["reference"]["mask"]
    (data / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="reference volume .* has no 'mask'"):
        oneshot_datalist(data)
    doc["reference"]["mask"] = "reference/missing_mask.nii.gz"
    (data / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(FileNotFoundError, match="missing_mask.nii.gz"):
        oneshot_datalist(data)
    (data / "dataset.json").unlink()
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        oneshot_datalist(data)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images found"):
        target_items(empty)


def test_a_whole_body_scan_is_refused_before_resampling(trained, tmp_path):
    import nibabel as nib

    big = tmp_path / "body.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((200, 200, 100), dtype=np.int16), np.diag([2.0, 2.0, 3.0, 1.0])), str(big))
    tiny = {k: v for k, v in TINY.items() if k in ("spacing", "slice_size", "features", "registration_size")}
    with pytest.raises(Exception) as err:
        run_bundle(BUNDLE, "inference.yaml", bundle_root=str(trained), dataset_dir=str(trained / "data"),
                   input_dir=str(big), output_dir=str(tmp_path / "out"), method="translation", **tiny)
    assert "body.nii.gz" in error_text(err) and "crop the volume" in error_text(err)
    assert not (tmp_path / "out").exists()


def test_landmark_names_must_match_the_reference(trained, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(trained / "data", data)
    write_landmarks(data / "test" / "case_001.mrk.json", {"top": [0, 0, 0], "apex": [1, 1, 1], "centre": [0, 1, 0]})
    tiny = {k: v for k, v in TINY.items() if k in ("spacing", "slice_size", "features", "registration_size")}
    with pytest.raises(Exception) as err:
        run_bundle(BUNDLE, ["inference.yaml", "evaluate.yaml"], bundle_root=str(trained), dataset_dir=str(data),
                   method="translation", output_dir=str(tmp_path / "eval"), **tiny)
    assert "case_001.mrk.json" in error_text(err) and "the reference has" in error_text(err)
    assert not (tmp_path / "eval").exists()


def test_train_and_inference_load_volumes_alike():
    import yaml

    train = yaml.safe_load((BUNDLE / "configs" / "train.yaml").read_text())
    infer = yaml.safe_load((BUNDLE / "configs" / "inference.yaml").read_text())
    assert train["volume_loading"] == infer["volume_loading"]
    for key in ("spacing", "hu_window", "features", "slice_size", "synth_test", "synth_seed"):
        assert train[key] == infer[key], key


@pytest.mark.slow  # the whole pipeline with demons (ITK's registration module loads in ~10 s)
def test_auto_method_runs_end_to_end(trained):
    tiny = {k: v for k, v in TINY.items() if k in ("spacing", "slice_size", "features", "registration_size")}
    run_bundle(BUNDLE, ["inference.yaml", "evaluate.yaml"], bundle_root=str(trained), dataset_dir=str(trained / "data"),
               method="auto", demons_iterations=[10, 5], **tiny)
    metrics = json.loads((trained / "eval" / "auto" / "metrics.json").read_text())
    assert metrics["cases"] == 2 and np.isfinite(metrics["mean"])
