"""Few-shot DAG landmarks on radiographs (issue 35): the hand and pelvis phantoms, the landmark tables (CSV, JSON,
ISBI-style text files), the Deep Adaptive Graph network, its losses and training iteration, the landmark writer,
and the bundle's training (both stages), evaluation and inference through the bundle runner."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from monai_ext.apps.fewshot_dag_xray_landmarks import DAGIteration, dag_datalist, labelled_ratio_weights
from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import landmark_table_datalist, radiograph_images, read_landmark_table
from monai_ext.handlers import LandmarkWriter, ema_teacher
from monai_ext.io import read_metrics_rows
from monai_ext.losses import ChannelSoftmaxJSDivergenceLoss, MarginL1LandmarkLoss
from monai_ext.networks import DeepAdaptiveGraph
from monai_ext.phantoms import XRAY_LANDMARK_NAMES, generate_xray_image, synthesize_xray_landmark_dataset
from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "fewshot_dag_xray_landmarks"
SMALL_NET = dict(feature_channels=4, channels=[4, 8, 8, 8], graph_channels=8, local_steps=1)
TINY = dict(SMALL_NET, labelled=2, validation=1, test=2, image_size=[64, 64], max_epochs=1, iterations_per_epoch=2,
            batch_size=2)


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory):
    root = tmp_path_factory.mktemp("xray") / "data"
    synthesize_xray_landmark_dataset(root, "pelvis", labelled=6, unlabelled=3, size=64, progress=False)
    return root


@pytest.mark.parametrize("anatomy", ["hand", "pelvis"])
def test_phantom_is_reproducible_and_its_landmarks_sit_on_bone(anatomy):
    image, points = generate_xray_image(3, anatomy)
    again, points_again = generate_xray_image(3, anatomy)
    other, _ = generate_xray_image(4, anatomy)
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(points, points_again)
    assert not np.array_equal(image, other)
    assert points.shape == (len(XRAY_LANDMARK_NAMES[anatomy]), 2)
    assert points.min() >= 0 and points.max() <= 127
    # bone is bright: the pixels at the landmarks are brighter than the image's median
    at = image[np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)].astype(float)
    assert np.median(at) > np.median(image) + 20


def test_landmark_tables_read_csv_json_and_isbi_text(radiographs, tmp_path):
    names, labelled, unlabelled = landmark_table_datalist(radiographs / "images", radiographs / "landmarks.csv")
    assert names == list(XRAY_LANDMARK_NAMES["pelvis"])
    assert len(labelled) == 6 and len(unlabelled) == 3
    table = {Path(i["image"]).name: i["points"] for i in labelled}
    (tmp_path / "l.json").write_text(json.dumps({"landmark_names": names, "images": table}))
    assert read_landmark_table(tmp_path / "l.json")[1].keys() == table.keys()
    isbi = tmp_path / "senior"
    isbi.mkdir()
    for name, pts in table.items():  # the ISBI 2015 layout: <stem>.txt, x,y lines, then other lines
        (isbi / f"{Path(name).stem}.txt").write_text("\n".join(f"{x},{y}" for x, y in pts) + "\n2\n1\n")
    _, from_txt, _ = landmark_table_datalist(radiographs / "images", isbi, num_landmarks=14)
    np.testing.assert_allclose([i["points"] for i in from_txt], [i["points"] for i in labelled])


def test_landmark_tables_name_the_bad_input(radiographs, tmp_path):
    rows = list(csv.reader(open(radiographs / "landmarks.csv")))
    short = tmp_path / "short.csv"
    with open(short, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], rows[1], rows[2][:-2]])
    with pytest.raises(ValueError, match="short.csv, line 3"):
        read_landmark_table(short)
    with pytest.raises(ValueError, match="every image must have 19 landmarks"):
        read_landmark_table(radiographs / "landmarks.csv", num_landmarks=19)
    ghost = tmp_path / "ghost.csv"
    with open(ghost, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], ["missing.png"] + rows[1][1:]])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        landmark_table_datalist(radiographs / "images", ghost)
    with pytest.raises(ValueError, match="the splits need 20"):
        dag_datalist(radiographs, labelled=5, validation=5, test=10)
    with pytest.raises(FileNotFoundError, match="no image"):
        radiograph_images(tmp_path / "senior" if (tmp_path / "senior").mkdir() is None else tmp_path)


def test_datalist_splits_and_ratio_weights(radiographs):
    data = dag_datalist(radiographs, labelled=2, validation=1, test=2)
    assert [len(data[k]) for k in ("testing", "validation", "labelled", "unlabelled")] == [2, 1, 2, 3]
    assert not {i["image"] for i in data["testing"]} & {i["image"] for i in data["labelled"]}
    weights = np.asarray(labelled_ratio_weights(data["training"], 100))
    flags = np.asarray([i["labelled"] for i in data["training"]], bool)
    assert weights[flags].sum() / weights.sum() == pytest.approx(1 / 101)
    assert labelled_ratio_weights(data["training"], 0)[-1] == 0.0


def test_untrained_graph_starts_at_the_mean_shape_and_scripts():
    shape = torch.tensor([[-0.5, -0.5], [0.5, 0.0], [0.0, 0.5]])
    net = DeepAdaptiveGraph(3, mean_shape=shape.tolist(), **SMALL_NET)
    x = torch.rand(2, 1, 32, 64)
    out = net(x)
    expected = (shape + 1) * torch.tensor([31.0, 63.0]) / 2
    torch.testing.assert_close(out, expected.expand(2, -1, -1))
    features, global_points, local = net(x, return_stages=True)
    assert features.shape == (2, 4, 32, 64) and global_points.shape == (2, 3, 2) and local.shape == (1, 2, 3, 2)
    torch.testing.assert_close(torch.jit.script(net)(x), out)
    with pytest.raises(ValueError, match=r"mean_shape must be \(3, 2\)"):
        DeepAdaptiveGraph(3, mean_shape=[[0, 0]])


def test_graph_samples_the_feature_at_its_vertex():
    net = DeepAdaptiveGraph(2, **SMALL_NET)
    features = torch.zeros(1, 4, 9, 17)
    features[0, :, 6, 3] = 1.0  # x = 6 (dim 0), y = 3 (dim 1)
    points = net.normalise(torch.tensor([[[6.0, 3.0], [2.0, 10.0]]]), [9, 17])
    sampled = net._vertex_features(features, points)
    assert sampled[0, 0, :4].tolist() == [1.0] * 4 and sampled[0, 1, :4].tolist() == [0.0] * 4


def test_losses():
    a = torch.randn(2, 5, 4, 4)
    js = ChannelSoftmaxJSDivergenceLoss(reduction="none")
    assert js(a, a).abs().max() < 1e-6
    assert js(a, -a).allclose(js(-a, a))
    one_hot = torch.nn.functional.one_hot(torch.arange(16).reshape(1, 4, 4) % 5, 5).permute(0, 3, 1, 2).float()
    assert float(ChannelSoftmaxJSDivergenceLoss()(50 * one_hot, 50 * one_hot.roll(1, 1))) == pytest.approx(math.log(2), abs=1e-3)
    l1 = MarginL1LandmarkLoss(margin=1.0, reduction="none")
    assert l1(torch.zeros(2, 3, 2), torch.full((2, 3, 2), 3.0)).tolist() == [2.0, 2.0]
    assert l1(torch.zeros(1, 3, 2), torch.full((1, 3, 2), 0.5)).tolist() == [0.0]


def _engine(net, teacher=None, margin=0.0, **kwargs):
    it = DAGIteration(margin=margin, teacher=teacher, **kwargs)
    engine = Engine(it)
    engine.state.device = torch.device("cpu")
    for k, v in dict(network=net, optimizer=torch.optim.Adam(net.parameters(), 1e-2), non_blocking=False, amp=False,
                     scaler=None, amp_kwargs={}).items():
        setattr(engine, k, v)
    engine.fire_event = lambda *_: None
    return engine, it


def test_iteration_learns_labels_and_the_teacher_on_unlabelled_images():
    torch.manual_seed(0)
    net = DeepAdaptiveGraph(3, **SMALL_NET)
    images = torch.rand(4, 1, 32, 32)
    points = torch.tensor([[8.0, 8.0], [20.0, 12.0], [14.0, 24.0]]).expand(4, 1, 3, 2).clone()
    engine, it = _engine(net)
    losses = [float(it(engine, {"image": images, "points": points})["loss"]) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0]
    # unlabelled images: the same network as teacher, no noise, a margin above the global step's error: nothing to
    # learn; a different teacher: its points
    unlabelled = {"image": images, "points": torch.full_like(points, float("nan")), "labelled": torch.zeros(4)}
    engine, it = _engine(net, teacher=ema_teacher(net), margin=100.0)
    assert float(it(engine, unlabelled)["loss_unlabelled"]) < 1e-5
    moved = ema_teacher(net)
    moved.mean_shape.add_(0.2)
    engine, it = _engine(net, teacher=moved, js_weight=1.0, noise_std=0.1)
    out = it(engine, unlabelled)
    assert float(out["loss_unlabelled"]) > 1.0 and float(out["loss_js"]) > 0 and float(out["loss_labelled"]) == 0
    with pytest.raises(ValueError, match="marked labelled has missing"):
        it(engine, {**unlabelled, "labelled": torch.ones(4)})


def test_landmark_writer_needs_a_physical_grid_for_mm(tmp_path):
    image = SimpleNamespace(meta={"filename_or_obj": "/data/a.png"})
    engine = SimpleNamespace(state=SimpleNamespace(output=[{"image": image, "pred": torch.tensor([[1.0, 2.0], [3, 4]])}]))
    writer = LandmarkWriter(tmp_path / "out", ["a", "b"], units="mm")
    with pytest.raises(ValueError, match="a.png: landmarks in mm need an image with a physical grid"):
        writer._collect(engine)
    assert not (tmp_path / "out").exists()
    writer = LandmarkWriter(tmp_path / "out", ["a", "b"])
    writer._collect(engine)
    writer._write(engine)
    assert json.loads((tmp_path / "out" / "a.json").read_text())["landmarks"] == {"a": [1.0, 2.0], "b": [3.0, 4.0]}
    rows = list(csv.reader(open(tmp_path / "out" / "landmarks.csv")))
    assert rows[0] == ["image", "landmark", "x", "y", "units"] and rows[2][1:] == ["b", "3.0", "4.0", "pixel"]
    # DICOM files named by UID (dots, no extension) keep their whole names: one output each
    uids = [SimpleNamespace(meta={"filename_or_obj": f"/data/1.2.840.{k}"}) for k in (7, 8)]
    engine.state.output = [{"image": u, "pred": torch.zeros(2, 2)} for u in uids]
    writer = LandmarkWriter(tmp_path / "uid", ["a", "b"])
    writer._collect(engine)
    writer._write(engine)
    assert sorted(p.name for p in (tmp_path / "uid").glob("*.json")) == ["1.2.840.7.json", "1.2.840.8.json"]


def test_bundle_trains_both_stages_evaluates_and_infers(radiographs, tmp_path):
    root = tmp_path / "b"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(radiographs), **TINY)
    assert (root / "models" / "dag.pt").is_file()
    run_bundle(BUNDLE, ["train.yaml", "train_fewshot.yaml"], bundle_root=str(root), dataset_dir=str(radiographs),
               **TINY)
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], bundle_root=str(root), dataset_dir=str(radiographs), **TINY)
    metrics = read_metrics_rows(root / "eval" / "metrics.csv")
    assert 0 < float(metrics["test_mean_error"]) < 64
    assert len(list(csv.reader(open(root / "eval" / "landmarks" / "landmarks.csv")))) == 1 + 2 * 14
    # inference on a picture twice the training size: the landmarks come back in its own pixels
    image = np.asarray(Image.open(radiographs / "images" / "pelvis_0000.png"))
    Image.fromarray(np.kron(image, np.ones((2, 2), np.uint8))).save(tmp_path / "big.png")
    inference = dict(SMALL_NET, image_size=[64, 64], ckpt_path=str(root / "models" / "model.pt"))
    for name in ("pelvis_0000.png", "big.png"):
        src = radiographs / "images" / name if name.startswith("pelvis") else tmp_path / name
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(src),
                   output_dir=str(tmp_path / f"out_{name}"), **inference)
    small = json.loads((tmp_path / "out_pelvis_0000.png" / "pelvis_0000.json").read_text())["landmarks"]
    big = json.loads((tmp_path / "out_big.png" / "big.json").read_text())["landmarks"]
    for k in small:
        np.testing.assert_allclose(np.asarray(big[k]), 2 * np.asarray(small[k]) + 0.5, atol=1.5)
    # the same picture as a 2D NIfTI of 2 mm pixels: landmarks in mm (3D Slicer markups), at 2 x the pixels
    import nibabel as nib

    from monai_ext.io import read_landmarks

    nib.save(nib.Nifti1Image(image.T.astype(np.float32), np.diag([2.0, 2.0, 1.0, 1.0])), tmp_path / "p.nii.gz")
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(tmp_path / "p.nii.gz"), units="mm",
               output_dir=str(tmp_path / "out_nii"), **inference)
    mm = read_landmarks(tmp_path / "out_nii" / "p.mrk.json")
    for k in small:
        np.testing.assert_allclose(mm[k][:2], 2 * np.asarray(small[k]), atol=0.2)
    with pytest.raises(Exception) as info:
        run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(src), units="mm",
                   output_dir=str(tmp_path / "mm"), **inference)
    assert "physical grid" in error_text(info)
    assert not (tmp_path / "mm").exists()


def test_planar_radiograph_squeezes_greys_and_inverts_monochrome1():
    from monai.data import MetaTensor

    from monai_ext.transforms import PlanarRadiograph, PlanarRadiographd

    frame = MetaTensor(torch.tensor([[[[0.0], [10.0]], [[30.0], [100.0]]]]), meta={"0028|0004": "MONOCHROME1 "})
    out = PlanarRadiographd("image")({"image": frame})["image"]
    assert out.shape == (1, 2, 2) and out.flatten().tolist() == [100.0, 90.0, 70.0, 0.0]
    rgb = np.stack([np.full((3, 4), v, np.uint8) for v in (10, 20, 30)])
    assert PlanarRadiograph()(rgb).shape == (1, 3, 4) and float(PlanarRadiograph()(rgb).max()) == 20.0
    with pytest.raises(ValueError, match="scan.nii: expected a 2D radiograph"):
        PlanarRadiograph()(np.zeros((1, 4, 4, 3)), name="scan.nii")
    ct_slice = MetaTensor(torch.zeros(1, 4, 4, 1), meta={"0008|0060": "CT", "filename_or_obj": "/d/CT.1.2"})
    with pytest.raises(ValueError, match="CT.1.2: a DICOM image of modality CT, not a radiograph"):
        PlanarRadiographd("image")({"image": ct_slice})


def test_landmark_writer_maps_world_back_to_the_file_pixels(tmp_path):
    affine = torch.tensor([[-0.5, 0, 0, 10.0], [0, -0.5, 0, 20.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    image = SimpleNamespace(meta={"filename_or_obj": "/data/b.nii.gz", "original_affine": affine})
    pixels = torch.tensor([[4.0, 6.0], [0.0, 2.0]])
    world = pixels * -0.5 + torch.tensor([10.0, 20.0])
    engine = SimpleNamespace(state=SimpleNamespace(output=[{"image": image, "pred": world}]))
    for units in ("pixel", "mm"):
        writer = LandmarkWriter(tmp_path / units, ["a", "b"], units=units)
        writer._collect(engine)
        writer._write(engine)
    assert json.loads((tmp_path / "pixel" / "b.json").read_text())["landmarks"] == {"a": [4.0, 6.0], "b": [0.0, 2.0]}
    from monai_ext.io import read_landmarks

    np.testing.assert_allclose(read_landmarks(tmp_path / "mm" / "b.mrk.json")["a"], [8.0, 17.0, 0.0])
