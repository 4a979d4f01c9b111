"""The hand_bones_multiscale_unet bundle on MONAI's bundle runner: train, evaluate, infer (NIfTI and DICOM), the
paper's switches (loss, skips, multi-scale maps), bad input, the data split and the study helpers.

Tiny settings (small phantoms at 6 mm, 2-4-8-16 feature maps, two epochs) test the plumbing; quality is in the
bundle's docs/README.md.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImage

from monai_ext.apps.hand_bones_multiscale_unet import (
    convergence_summary,
    hand_bones_datalist,
    plot_validation_curves,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.handlers import read_metric_history
from monai_ext.networks import MultiScaleSumUNet
from monai_ext.phantoms import write_dicom_series
from monai_ext.phantoms.hand_mri import synthesize_hand_dataset

from error_chain import error_text

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "hand_bones_multiscale_unet"
CONFIGS = BUNDLE / "configs"
SHAPE, SPACING = (32, 40, 24), (6.0, 6.0, 6.0)
CHANNELS = [2, 4, 8, 16]
TINY = {"pixdim": list(SPACING), "channels": CHANNELS, "device": "$torch.device('cpu')", "num_val": 1, "num_test": 1}
CLASS_ROWS = ["test_mean_dice", "test_dice_metacarpal", "test_dice_proximal", "test_dice_middle", "test_dice_distal"]


def _run(configs, **overrides):
    run_bundle(BUNDLE, configs, **overrides)


def _phantoms(path: Path, cases: int = 4, seed: int = 5) -> Path:
    synthesize_hand_dataset(path, cases=cases, seed=seed, shape=SHAPE, spacing=SPACING, progress=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4 small phantoms (2 training, 1 validation, 1 test) and a bundle root holding a 2-epoch tiny model."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("hand_bundle")
    data = _phantoms(tmp / "data")
    root = tmp / "bundle"
    _run(["train.yaml"], bundle_root=str(root), dataset_dir=str(data), output_dir=str(root / "eval"),
         max_epochs=2, val_interval=1, **TINY)
    return {"data": data, "root": root, "tmp": tmp}


def test_train_writes_weights_logs_and_the_metric_history(trained):
    root = trained["root"]
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    MultiScaleSumUNet(3, 1, 5, channels=CHANNELS).load_state_dict(state)  # raises if keys/shapes differ
    assert (root / "models" / "model_final.pt").is_file()
    assert any((root / "logs").glob("events.out.tfevents.*")), "TensorBoard log missing"
    rows = list(csv.DictReader(open(root / "eval" / "metric_history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["val_mean_dice"]) <= 1.0 for r in rows)


@pytest.mark.parametrize("loss_name, cls", [("jaccard", "DiceLoss"), ("ce", "DiceCELoss")])
def test_each_loss_is_selectable_by_override(loss_name, cls):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    parser.update({"loss_name": loss_name})
    loss = parser.get_parsed_content("loss")
    assert type(loss).__name__ == cls
    if loss_name == "jaccard":
        assert loss.jaccard and loss.squared_pred and loss.softmax and loss.to_onehot_y
    else:
        assert loss.lambda_dice == 0.0 and loss.lambda_ce == 1.0
    logits = torch.randn(1, 5, 8, 8, 8, requires_grad=True)
    value = loss(logits, torch.randint(0, 5, (1, 1, 8, 8, 8)).float())
    value.backward()
    assert torch.isfinite(value) and logits.grad.abs().sum() > 0
    parser.update({"loss_name": "dice"})
    with pytest.raises(Exception, match="loss_name must be jaccard or ce"):
        parser.get_parsed_content("loss", lazy=False)


@pytest.mark.parametrize("overrides, attrs", [
    ({}, {"skip_mode": "concat", "long_skips": True, "multiscale": True}),
    ({"skip_mode": "sum"}, {"skip_mode": "sum"}),
    ({"long_skips": "false"}, {"long_skips": False}),   # as `--long_skips false` passes it
    ({"multiscale": False}, {"multiscale": False}),
])
def test_each_network_switch_is_selectable_by_override(overrides, attrs):
    from monai.bundle import ConfigParser

    for config in ("train.yaml", "inference.yaml"):
        parser = ConfigParser()
        parser.read_config(str(CONFIGS / config))
        parser.update(overrides)
        net = parser.get_parsed_content("network_def")
        assert isinstance(net, MultiScaleSumUNet)
        for k, v in attrs.items():
            assert getattr(net, k) == v, (config, k)


def test_training_with_every_switch_off_and_cross_entropy(trained, tmp_path):
    root = tmp_path / "b"
    _run(["train.yaml"], bundle_root=str(root), dataset_dir=str(trained["data"]), output_dir=str(tmp_path / "eval"),
         max_epochs=1, val_interval=1, loss_name="ce", skip_mode="sum", long_skips="false", multiscale="false", augmentation="none", **TINY)
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    MultiScaleSumUNet(3, 1, 5, channels=CHANNELS, skip_mode="sum", long_skips=False, multiscale=False).load_state_dict(state)


def test_evaluate_writes_per_class_dice_rows(trained, tmp_path):
    from monai_ext.cli.study import read_run_metric

    _run(["train.yaml", "evaluate.yaml"], bundle_root=str(trained["root"]), dataset_dir=str(trained["data"]),
         output_dir=str(tmp_path), **TINY)
    for name in CLASS_ROWS:
        value = read_run_metric(tmp_path, name, {"file": "metrics.csv"})
        assert np.isnan(value) or 0.0 <= value <= 1.0, (name, value)
    rows = list(csv.reader(open(tmp_path / "test_mean_dice_raw.csv")))
    assert rows[0][:5] == ["filename", "class0", "class1", "class2", "class3"] and len(rows) == 2  # 1 test case


def _infer(trained, inp, out, **kw):
    _run(["inference.yaml"], bundle_root=str(trained["root"]), dataset_dir=str(inp), output_dir=str(out),
         **{k: v for k, v in TINY.items() if k not in ("num_val", "num_test")}, **kw)


def test_inference_keeps_the_geometry_of_a_nifti_file(trained, tmp_path):
    """An odd-sized, oblique, 5 mm image (not a multiple of 8, not the training grid) comes back on its own grid."""
    src = nib.load(trained["data"] / "imagesTr" / "hand_000.nii.gz")
    arr = np.asarray(src.dataobj, dtype=np.float32)[1:30, 2:39, 1:22]
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([[5.0 * c, -5.0 * s, 0, 10], [5.0 * s, 5.0 * c, 0, -20], [0, 0, 5.0, 3], [0, 0, 0, 1]])
    image = tmp_path / "in" / "oblique.nii.gz"
    image.parent.mkdir()
    nib.save(nib.Nifti1Image(arr, affine), image)
    _infer(trained, image, tmp_path / "out")
    seg = nib.load(tmp_path / "out" / "oblique_seg.nii.gz")
    assert seg.shape == arr.shape
    np.testing.assert_allclose(seg.affine, affine, atol=1e-4)
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1, 2, 3, 4}


def test_inference_on_a_dicom_series_folder(trained, tmp_path):
    src = nib.load(trained["data"] / "imagesTr" / "hand_001.nii.gz")
    series = tmp_path / "in" / "hand_series"
    write_dicom_series(np.asarray(src.dataobj, dtype=np.float32) * 1000.0, src.affine, series,
                       series_description="hand MR phantom")
    _infer(trained, tmp_path / "in", tmp_path / "out")  # a folder holding a DICOM series sub-folder
    seg = nib.load(tmp_path / "out" / "hand_series_seg.nii.gz")
    ref = LoadImage(image_only=True, reader="ITKReader")(str(series))
    assert seg.shape == tuple(ref.shape)
    np.testing.assert_allclose(seg.affine, ref.affine.numpy(), atol=1e-3)


def test_inference_on_the_real_mr_keeps_its_geometry(trained, tmp_path, shared_data):
    image = shared_data / "mr" / "abdomen_mr_3mm.nii.gz"
    _infer(trained, image, tmp_path)
    seg, src = nib.load(tmp_path / "abdomen_mr_3mm_seg.nii.gz"), nib.load(image)
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)


def test_inference_rejects_a_2d_image_naming_it(trained, tmp_path):
    flat = tmp_path / "in" / "slice.nii.gz"
    flat.parent.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((40, 32), np.float32), np.eye(4)), flat)
    with pytest.raises(Exception) as excinfo:
        _infer(trained, flat, tmp_path / "out")
    text = error_text(excinfo)
    assert "slice.nii.gz" in text and "3" in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_training_rejects_an_unknown_label_value_naming_the_file(trained, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    label = Path(hand_bones_datalist(data, num_val=1, num_test=1)["training"][0]["label"])
    lab = nib.load(label)
    arr = np.asarray(lab.dataobj).copy()
    arr[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(arr, lab.affine), label)
    root = tmp_path / "b"
    with pytest.raises(Exception) as excinfo:
        _run(["train.yaml"], bundle_root=str(root), dataset_dir=str(data), output_dir=str(root / "eval"),
             max_epochs=1, **TINY)
    text = error_text(excinfo)
    assert label.name in text and "7" in text
    assert not (root / "models" / "model.pt").exists() and not (root / "eval" / "metric_history.csv").exists()


def test_inference_without_weights_says_so(tmp_path):
    with pytest.raises(Exception) as excinfo:
        _run(["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(tmp_path), output_dir=str(tmp_path / "out"))
    assert "model.pt: not found; expected trained weights" in error_text(excinfo)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ data split


def test_datalist_generates_phantoms_into_an_empty_folder_and_splits_deterministically(tmp_path, monkeypatch):
    import monai_ext.apps.hand_bones_multiscale_unet.datalist as dl

    calls = []

    def small(d, cases, seed):  # the bundle's generator, on a small grid
        calls.append((cases, seed))
        return synthesize_hand_dataset(d, cases=cases, seed=seed, shape=SHAPE, spacing=SPACING, progress=False)

    monkeypatch.setattr(dl, "synthesize_hand_dataset", small)
    empty = tmp_path / "data"
    empty.mkdir()
    lists = hand_bones_datalist(empty, num_val=2, num_test=3, synth_cases=9, synth_seed=4)
    assert calls == [(9, 4)] and (empty / "dataset.json").is_file()
    assert [len(lists[k]) for k in ("training", "validation", "testing")] == [4, 2, 3]
    images = [d["image"] for k in ("training", "validation", "testing") for d in lists[k]]
    assert len(set(images)) == 9 and all(Path(p).is_absolute() and Path(p).is_file() for p in images)
    assert hand_bones_datalist(empty, num_val=2, num_test=3) == lists  # same folder, same split; nothing regenerated
    assert len(calls) == 1
    assert len(hand_bones_datalist(empty, num_val=2, num_test=3, num_train=1)["training"]) == 1


def test_datalist_reads_image_label_folders_without_dataset_json(trained, tmp_path):
    import shutil

    data = tmp_path / "pairs"
    shutil.copytree(trained["data"] / "imagesTr", data / "images")
    shutil.copytree(trained["data"] / "labelsTr", data / "labels")
    lists = hand_bones_datalist(data, num_val=1, num_test=1)
    assert [len(lists[k]) for k in ("training", "validation", "testing")] == [2, 1, 1]
    for item in lists["training"]:
        assert Path(item["image"]).name == Path(item["label"]).name and "/labels/" in item["label"]


def test_datalist_errors_name_the_folder(trained, tmp_path):
    with pytest.raises(ValueError, match="too few") as excinfo:
        hand_bones_datalist(trained["data"], num_val=2, num_test=2)  # 4 cases: no training case left
    assert str(trained["data"]) in str(excinfo.value)
    with pytest.raises(ValueError, match="num_val"):
        hand_bones_datalist(trained["data"], num_val=0)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("no scans")
    with pytest.raises(FileNotFoundError) as excinfo:
        hand_bones_datalist(other)
    assert "notes" in str(excinfo.value)


# ------------------------------------------------------------------------------------------ study helpers


def _history(path: Path, values, every: int = 1):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,val_mean_dice"] + [f"{(i + 1) * every},{v}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def test_convergence_summary_and_curves(tmp_path):
    _history(tmp_path / "runs" / "fast_seed0" / "metric_history.csv", [0.5, 0.8, 0.9, 0.9])
    _history(tmp_path / "runs" / "fast_seed1" / "metric_history.csv", [0.3, 0.7, 0.88, 0.92])
    _history(tmp_path / "runs" / "slow_seed0" / "metric_history.csv", [0.1, 0.3, 0.6, 0.9])
    _history(tmp_path / "runs" / "slow_seed1" / "metric_history.csv", [0.1, 0.2, 0.5, 0.85])
    s = convergence_summary(str(tmp_path / "runs" / "slow_seed0" / "metric_history.csv"), str(tmp_path / "c.json"))
    assert s == json.loads((tmp_path / "c.json").read_text())
    assert s["best"] == 0.9 and s["best_epoch"] == 4 and s["epochs_to_0.9_of_best"] == 4
    assert s["mean_over_rounds"] == pytest.approx(0.475)
    out = tmp_path / "docs" / "curves.png"
    curves = plot_validation_curves(str(tmp_path / "runs"), ["fast", "slow"], [0, 1], str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert curves["fast"]["mean"][0] == pytest.approx(0.4)
    rows = list(csv.reader(open(tmp_path / "docs" / "curves.csv")))
    assert rows[0] == ["epoch", "fast_mean_val_mean_dice", "slow_mean_val_mean_dice"] and rows[1] == ["1", "0.4000", "0.1000"]
    with pytest.raises(FileNotFoundError, match="missing_seed0"):
        plot_validation_curves(str(tmp_path / "runs"), ["missing"], [0], str(out))
    epochs, values = read_metric_history(tmp_path / "runs" / "fast_seed1" / "metric_history.csv")
    assert epochs.tolist() == [1, 2, 3, 4] and values[-1] == 0.92


def test_the_study_declares_the_papers_hand_ablations():
    from monai_ext.cli.study import load_study

    spec = load_study(BUNDLE)
    assert spec["baseline"] == "baseline" and len(spec["seeds"]) == 3
    assert spec["arms"]["ce"] == {"loss_name": "ce"} and spec["arms"]["single_map"] == {"multiscale": False}
    assert spec["arms"]["sum_skips"] == {"skip_mode": "sum"} and spec["arms"]["no_long_skips"] == {"long_skips": False}
    assert set(CLASS_ROWS) <= set(spec["metrics"])


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_multi_gpu_train_on_two_cpu_ranks(trained, tmp_path):
    from test_multi_gpu_configs import torchrun_bundle

    data = _phantoms(tmp_path / "data", cases=5)  # 2 validation cases: one per rank
    log = torchrun_bundle(BUNDLE, ["train.yaml", "multi_gpu_train.yaml"],
                          {"bundle_root": str(tmp_path), "dataset_dir": str(data), "max_epochs": 2, "val_interval": 1,
                           **{k: v for k, v in TINY.items() if k != "device"}, "num_val": 2, "num_test": 1})
    assert "val_mean_dice" in log
    net = MultiScaleSumUNet(3, 1, 5, channels=CHANNELS)
    net.load_state_dict(torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True))
