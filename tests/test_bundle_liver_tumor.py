"""The liver_tumor_ct_seg bundle on MONAI's bundle runner: train -> evaluate -> infer in 2D and 2.5D (NIfTI and DICOM,
labels on the input grid), each loss and augmentation, transfer learning from a trained model, bad input (labels
other than 0/1/2, CT not in HU, unusable pretrained weights) named and nothing written, the 2.5D slice stacking, the
data split and the Model Zoo checks.

Tiny settings (phantoms at 8 mm, 4-8-16 feature maps, 32 x 32 crops, one or two epochs) test the plumbing; quality
is in the bundle's docs/README.md.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import UNet
from monai.transforms import LoadImage

from monai_ext.apps.liver_tumor_ct_seg import AdjacentSlices, AdjacentSlicesd, liver_tumor_datalist
from monai_ext.bundle_helpers import run_bundle
from monai_ext.phantoms import synthesize_liver_tumor_dataset, write_dicom_series

from error_chain import error_text

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "liver_tumor_ct_seg"
CONFIGS = BUNDLE / "configs"
SHAPE, SPACING = (48, 48, 32), (8.0, 8.0, 8.0)
CHANNELS = [4, 8, 16]
TINY = {"pixdim": list(SPACING), "channels": CHANNELS, "strides": [2, 2], "patch_size": [32, 32],
        "device": "$torch.device('cpu')", "num_val": 1, "num_test": 1, "samples_per_volume": 4}
INFER = {k: v for k, v in TINY.items() if k not in ("num_val", "num_test", "samples_per_volume", "patch_size")}


def _run(configs, **overrides):
    run_bundle(BUNDLE, configs, **overrides)


def _net(context: int = 0) -> UNet:
    return UNet(2, 2 * context + 1, 3, channels=CHANNELS, strides=(2, 2), num_res_units=1, norm="batch")


def _train(root: Path, data: Path, **kw):
    _run(["train.yaml"], bundle_root=str(root), dataset_dir=str(data), output_dir=str(root / "eval"),
         **{"max_epochs": 1, "val_interval": 1, **TINY, **kw})


def _infer(root: Path, inp: Path, out: Path, **kw):
    _run(["inference.yaml"], bundle_root=str(root), dataset_dir=str(inp), output_dir=str(out), **{**INFER, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4 small phantoms (2 training, 1 validation, 1 test) and bundle roots holding a 2-epoch 2D model and a 1-epoch
    2.5D model (2 slices on each side)."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("liver_bundle")
    data = tmp / "data"
    synthesize_liver_tumor_dataset(data, cases=4, seed=5, shape=SHAPE, spacing=SPACING, contrast="mixed",
                                   progress=False)
    _train(tmp / "2d", data, max_epochs=2)
    _train(tmp / "25d", data, context_slices=2, loss_name="focal_dice", augmentation="perlin")
    return {"data": data, "root": tmp / "2d", "root25": tmp / "25d", "tmp": tmp}


def test_train_writes_weights_logs_and_the_metric_history(trained):
    root = trained["root"]
    _net(0).load_state_dict(torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True))
    assert (root / "models" / "model_final.pt").is_file()
    assert any((root / "logs").glob("events.out.tfevents.*")), "TensorBoard log missing"
    rows = list(csv.DictReader(open(root / "eval" / "metric_history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["val_mean_dice"]) <= 1.0 for r in rows)


def test_2_5d_model_takes_adjacent_slices_and_infers_on_the_input_grid(trained, tmp_path):
    root = trained["root25"]
    _net(2).load_state_dict(torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True))
    image = trained["data"] / "imagesTr" / "liver_002.nii.gz"
    _infer(root, image, tmp_path, context_slices=2)
    seg, src = nib.load(tmp_path / "liver_002_seg.nii.gz"), nib.load(image)
    assert seg.shape == src.shape and seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    with pytest.raises(Exception) as excinfo:  # the 2.5D weights in a 2D network: named, not silently wrong
        _infer(root, image, tmp_path / "2d")
    assert "size mismatch" in error_text(excinfo) or "model.pt" in error_text(excinfo)


def test_evaluate_writes_liver_and_tumour_dice(trained, tmp_path):
    from monai_ext.cli.study import read_run_metric

    _run(["train.yaml", "evaluate.yaml"], bundle_root=str(trained["root"]), dataset_dir=str(trained["data"]),
         output_dir=str(tmp_path), **TINY)
    for name in ("test_mean_dice", "test_dice_liver", "test_dice_tumour"):
        value = read_run_metric(tmp_path, name, {"file": "metrics.csv"})
        assert np.isnan(value) or 0.0 <= value <= 1.0, (name, value)
    rows = list(csv.reader(open(tmp_path / "test_mean_dice_raw.csv")))
    assert rows[0][:3] == ["filename", "class0", "class1"] and len(rows) == 2  # 1 test case, liver and tumour


def test_inference_keeps_the_geometry_of_an_oblique_nifti_file(trained, tmp_path):
    src = nib.load(trained["data"] / "imagesTr" / "liver_000.nii.gz")
    arr = np.asarray(src.dataobj, dtype=np.float32)[1:45, 3:47, 2:29]
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([[7.0 * c, -7.0 * s, 0, 10], [7.0 * s, 7.0 * c, 0, -20], [0, 0, 9.0, 3], [0, 0, 0, 1]])
    image = tmp_path / "in" / "oblique.nii.gz"
    image.parent.mkdir()
    nib.save(nib.Nifti1Image(arr, affine), image)
    _infer(trained["root"], image, tmp_path / "out", keep_largest=False)
    seg = nib.load(tmp_path / "out" / "oblique_seg.nii.gz")
    assert seg.shape == arr.shape
    np.testing.assert_allclose(seg.affine, affine, atol=1e-4)
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1, 2}


def test_inference_on_a_dicom_series_folder(trained, tmp_path):
    src = nib.load(trained["data"] / "imagesTr" / "liver_001.nii.gz")
    series = tmp_path / "in" / "abdomen_series"
    write_dicom_series(np.asarray(src.dataobj, dtype=np.int16), src.affine, series)
    _infer(trained["root"], tmp_path / "in", tmp_path / "out")  # a folder holding a DICOM series sub-folder
    seg = nib.load(tmp_path / "out" / "abdomen_series_seg.nii.gz")
    ref = LoadImage(image_only=True, reader="ITKReader")(str(series))
    assert seg.shape == tuple(ref.shape)
    np.testing.assert_allclose(seg.affine, ref.affine.numpy(), atol=1e-3)


def test_inference_on_the_real_ct_keeps_its_geometry(trained, tmp_path, shared_data):
    image = shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz"
    _infer(trained["root"], image, tmp_path)
    seg, src = nib.load(tmp_path / "chest_abdomen_ct_3mm_seg.nii.gz"), nib.load(image)
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)


# ------------------------------------------------------------------------------------------ switches


def _parser(config: str = "train.yaml", **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / config))
    parser.update({"device": "$torch.device('cpu')", **overrides})
    return parser


@pytest.mark.parametrize("loss_name, classes", [
    ("bce", ["DiceCELoss"]), ("focal", ["FocalLoss"]), ("dice", ["DiceLoss"]),
    ("bce_dice", ["DiceCELoss", "DiceLoss"]), ("focal_dice", ["FocalLoss", "DiceLoss"]),
])
def test_each_loss_builds_and_gives_a_finite_value(loss_name, classes):
    parser = _parser(loss_name=loss_name)
    loss = parser.get_parsed_content("loss")
    losses = parser.get_parsed_content("losses")
    assert [type(losses[n]).__name__ for n in loss_name.split("_")] == classes
    if loss_name == "dice":
        assert loss.squared_pred and not loss.include_background and loss.batch  # the paper's squared denominator
    if loss_name == "focal":
        assert loss.gamma == 2.0 and loss.use_softmax
    logits = torch.randn(4, 3, 16, 16, requires_grad=True)
    label = torch.randint(0, 3, (4, 1, 16, 16)).float()
    value = loss(logits, label)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and logits.grad.abs().sum() > 0
    if "_" in loss_name:
        a, b = (losses[n](logits, label) for n in loss_name.split("_"))
        assert float(value) == pytest.approx(float(a + b), rel=1e-5)
    parser.update({"loss_name": "tversky"})
    with pytest.raises(Exception) as excinfo:
        parser.get_parsed_content("loss", lazy=False)
    assert "loss_name must be one of bce, focal, dice, bce_dice, focal_dice, got 'tversky'" in error_text(excinfo)


@pytest.mark.parametrize("augmentation, extra", [
    ("none", []), ("standard", ["RandFlipd", "RandAffined"]), ("perlin", ["RandPerlinNoised", "RandFlipd"]),
    ("fbp", ["RandFBPKerneld", "RandFlipd"]),
])
@pytest.mark.parametrize("context", [0, 1])
def test_each_augmentation_gives_windowed_slices_with_context_channels(trained, augmentation, extra, context):
    parser = _parser(dataset_dir=str(trained["data"]), augmentation=augmentation, context_slices=context,
                     perlin_prob=1.0, fbp_prob=1.0, **{k: v for k, v in TINY.items() if k != "device"})
    names = [type(t).__name__ for t in parser.get_parsed_content("train#augmentation_transforms")]
    assert "ScaleIntensityRanged" in names and set(extra) <= set(names)
    if augmentation in ("perlin", "fbp"):  # in HU, before the window
        assert names.index(extra[0]) < names.index("ScaleIntensityRanged")
    samples = parser.get_parsed_content("train#dataset")[0]
    assert len(samples) == TINY["samples_per_volume"]
    for s in samples:
        assert tuple(s["image"].shape) == (2 * context + 1, 32, 32) and tuple(s["label"].shape) == (1, 32, 32)
        assert torch.isfinite(s["image"]).all() and set(torch.unique(s["label"]).tolist()) <= {0.0, 1.0, 2.0}
        if augmentation == "none":
            assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    parser.update({"augmentation": "mixup"})
    with pytest.raises(Exception) as excinfo:
        parser.get_parsed_content("train#augmentation_transforms", lazy=False)
    assert "augmentation must be one of none, standard, perlin, fbp, got 'mixup'" in error_text(excinfo)


def test_fine_tuning_the_decoder_keeps_the_encoder_of_the_pretrained_model(trained, tmp_path):
    source = trained["root"] / "models" / "model.pt"
    root = tmp_path / "ft"
    _train(root, trained["data"], pretrained_ckpt=str(source), finetune="decoder", augmentation="fbp")
    before = torch.load(source, map_location="cpu", weights_only=True)
    after = torch.load(root / "models" / "model_final.pt", map_location="cpu", weights_only=True)
    up_blocks = ("model.2.", "model.1.submodule.2.")
    for name, value in before.items():
        if "running" in name or "num_batches" in name:
            continue
        assert torch.equal(value, after[name]) != name.startswith(up_blocks), name


# ------------------------------------------------------------------------------------------ bad input


def _assert_nothing_written(root: Path):
    assert not (root / "models" / "model.pt").exists() and not (root / "models" / "model_final.pt").exists()
    assert not (root / "eval" / "metric_history.csv").exists()


def _copy_data(trained, tmp_path) -> tuple[Path, dict]:
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    return data, liver_tumor_datalist(data, num_val=1, num_test=1)


def test_training_rejects_a_label_value_other_than_0_1_2_naming_the_file(trained, tmp_path):
    data, lists = _copy_data(trained, tmp_path)
    label = Path(lists["training"][0]["label"])
    lab = nib.load(label)
    arr = np.asarray(lab.dataobj).copy()
    arr[10:12, 10:12, 5] = 3
    nib.save(nib.Nifti1Image(arr, lab.affine), label)
    root = tmp_path / "b"
    with pytest.raises(Exception) as excinfo:
        _train(root, data)
    text = error_text(excinfo)
    assert label.name in text and "out-of-range values [3]" in text and "1 liver, 2 tumour" in text
    _assert_nothing_written(root)


def test_training_and_inference_reject_a_ct_not_in_hu_naming_it(trained, tmp_path):
    data, lists = _copy_data(trained, tmp_path)
    image = Path(lists["training"][0]["image"])
    src = nib.load(image)
    hu = np.asarray(src.dataobj, dtype=np.float32)
    byte = np.clip((hu + 1000.0) / 2000.0 * 255.0, 0, 255).astype(np.uint8)  # an 8-bit export, window W2000 L0
    nib.save(nib.Nifti1Image(byte, src.affine), image)
    root = tmp_path / "b"
    with pytest.raises(Exception) as excinfo:
        _train(root, data)
    text = error_text(excinfo)
    assert image.name in text and "do not look like CT in Hounsfield units" in text and "--hu_slope" in text
    _assert_nothing_written(root)
    out = tmp_path / "out"
    with pytest.raises(Exception) as excinfo:
        _infer(trained["root"], image, out)
    assert image.name in error_text(excinfo) and "Hounsfield" in error_text(excinfo)
    assert not out.exists() or not any(out.iterdir())
    _infer(trained["root"], image, out, hu_slope=2000.0 / 255.0, hu_intercept=-1000.0)  # rescaled: accepted
    assert (out / f"{image.name.split('.')[0]}_seg.nii.gz").is_file()


def test_pretrained_weights_that_are_missing_or_do_not_fit_are_named(trained, tmp_path):
    root = tmp_path / "b"
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(Exception) as excinfo:
        _train(root, trained["data"], pretrained_ckpt=str(missing), finetune="last")
    assert f"pretrained weights {missing}: no such file" in error_text(excinfo)
    assert not root.exists()
    wrong = trained["root25"] / "models" / "model.pt"  # 5 input channels into the 2D network
    with pytest.raises(Exception) as excinfo:
        _train(root, trained["data"], pretrained_ckpt=str(wrong))
    text = error_text(excinfo)
    assert str(wrong) in text and "do not fit the network" in text
    assert "file (4, 5, 3, 3) vs network (4, 1, 3, 3)" in text
    assert not root.exists()
    with pytest.raises(Exception) as excinfo:
        _train(root, trained["data"], finetune="decoder")
    assert "finetune='decoder' needs pretrained weights" in error_text(excinfo)
    assert not root.exists()


# ------------------------------------------------------------------------------------------ 2.5D slice stacking


def test_adjacent_slices_stack_neighbours_with_the_edges_repeated():
    vol = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)  # 2 channels, 4 slices
    out = AdjacentSlices(context=1)(vol)
    assert out.shape == (6, 3, 2, 4)
    for c in range(2):
        for z in range(4):
            for j, dz in enumerate((-1, 0, 1)):
                np.testing.assert_array_equal(out[3 * c + j, ..., z], vol[c, ..., min(max(z + dz, 0), 3)])
    t = AdjacentSlices(context=2)(torch.as_tensor(vol[:1]))
    assert isinstance(t, torch.Tensor) and t.shape == (5, 3, 2, 4)
    np.testing.assert_array_equal(t[2].numpy(), vol[0])  # the centre channel is the slice itself
    np.testing.assert_array_equal(t[0, ..., 0].numpy(), vol[0, ..., 0])  # z - 2 beyond the first slice: repeated
    assert AdjacentSlices(context=0)(vol) is vol
    along_h = AdjacentSlices(context=1, axis=0)(vol)
    np.testing.assert_array_equal(along_h[0, 0], vol[0, 0]) and np.testing.assert_array_equal(along_h[2, 0], vol[0, 1])
    d = AdjacentSlicesd(keys="image", context=1)({"image": vol, "label": vol[:1]})
    assert d["image"].shape == (6, 3, 2, 4) and d["label"].shape == (1, 3, 2, 4)
    with pytest.raises(ValueError, match="context must be a non-negative integer"):
        AdjacentSlices(context=-1)
    with pytest.raises(ValueError, match=r"channel-first volume \(C, H, W, D\)"):
        AdjacentSlices(context=1)(vol[0])


# ------------------------------------------------------------------------------------------ data split


def test_datalist_generates_phantoms_into_an_empty_folder_and_splits_deterministically(tmp_path, monkeypatch):
    import monai_ext.apps.liver_tumor_ct_seg.datalist as dl

    calls = []

    def small(d, cases, seed, contrast):  # the bundle's generator, on a small grid
        calls.append((cases, seed, contrast))
        return synthesize_liver_tumor_dataset(d, cases=cases, seed=seed, contrast=contrast, shape=SHAPE,
                                              spacing=SPACING, progress=False)

    monkeypatch.setattr(dl, "synthesize_liver_tumor_dataset", small)
    empty = tmp_path / "data"
    empty.mkdir()
    lists = liver_tumor_datalist(empty, num_val=1, num_test=2, synth_cases=6, synth_seed=4)
    assert calls == [(6, 4, "mixed")] and (empty / "dataset.json").is_file()
    assert [len(lists[k]) for k in ("training", "validation", "testing")] == [3, 1, 2]
    images = [d["image"] for k in ("training", "validation", "testing") for d in lists[k]]
    assert len(set(images)) == 6 and all(Path(p).is_absolute() and Path(p).is_file() for p in images)
    assert liver_tumor_datalist(empty, num_val=1, num_test=2) == lists and len(calls) == 1
    assert len(liver_tumor_datalist(empty, num_val=1, num_test=2, num_train=1)["training"]) == 1


def test_datalist_reads_lits_names_and_image_label_folders(trained, tmp_path):
    lits = tmp_path / "lits"
    for i, name in enumerate(sorted((trained["data"] / "imagesTr").iterdir())):
        (lits / "volume_pt1").mkdir(parents=True, exist_ok=True)
        (lits / "segmentations").mkdir(exist_ok=True)
        shutil.copy(name, lits / "volume_pt1" / f"volume-{i}.nii.gz")
        shutil.copy(trained["data"] / "labelsTr" / name.name, lits / "segmentations" / f"segmentation-{i}.nii.gz")
    lists = liver_tumor_datalist(lits, num_val=1, num_test=1)
    assert [len(lists[k]) for k in ("training", "validation", "testing")] == [2, 1, 1]
    assert all("segmentation-" in d["label"] for k in lists for d in lists[k])
    pairs = tmp_path / "pairs"
    shutil.copytree(trained["data"] / "imagesTr", pairs / "images")
    shutil.copytree(trained["data"] / "labelsTr", pairs / "labels")
    assert len(liver_tumor_datalist(pairs, num_val=1, num_test=1)["training"]) == 2
    (lits / "segmentations" / "segmentation-3.nii.gz").unlink()
    with pytest.raises(ValueError, match="volume-3.nii.gz"):
        liver_tumor_datalist(lits, num_val=1, num_test=1)
    with pytest.raises(ValueError, match="too few"):
        liver_tumor_datalist(pairs, num_val=2, num_test=2)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no scans")
    with pytest.raises(FileNotFoundError, match="readme.txt"):
        liver_tumor_datalist(notes)


# ------------------------------------------------------------------------------------------ Model Zoo, GPUs


def test_verify_passes_with_weights_of_the_inference_network(tmp_path):
    from monai_ext.cli import zoo

    bundle = tmp_path / "liver_tumor_ct_seg"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("data", "eval", "logs", "*.pt", "*.ts"))
    net = _parser("inference.yaml").get_parsed_content("network_def")
    (bundle / "models").mkdir(exist_ok=True)
    torch.save(net.state_dict(), bundle / "models" / "model.pt")
    results = zoo.verify_bundle(bundle)
    failed = [f"{r.check}: {r.message}" for r in results if not r.ok]
    assert not failed, failed
    assert {r.check for r in results} >= {"layout", "metadata", "version", "properties", "net_in_out", "torchscript",
                                          "onnx"}


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_multi_gpu_train_on_two_cpu_ranks(trained, tmp_path):
    from test_multi_gpu_configs import torchrun_bundle

    log = torchrun_bundle(BUNDLE, ["train.yaml", "multi_gpu_train.yaml"],
                          {"bundle_root": str(tmp_path), "dataset_dir": str(trained["data"]), "max_epochs": 1,
                           "val_interval": 1, **{k: v for k, v in TINY.items() if k != "device"}, "num_test": 0,
                           "num_val": 2})
    assert "val_mean_dice" in log
    _net(0).load_state_dict(torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True))
