"""The brain_tumor_multiscale_unet bundle on MONAI's bundle runner: train, evaluate, infer (BraTS case folders,
multi-channel NIfTI, DICOM series by contrast), modality selection, the paper's switches, bad input.

Tiny settings (6 mm voxels, small channels, 1-2 epochs) test the plumbing; quality comes from the release run
and the study (docs/README.md).
"""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.apps.brain_tumor_multiscale_unet import brain_tumor_datalist, brain_tumor_inference_datalist
from monai_ext.bundle_helpers import bundle_config_parser, run_bundle
from monai_ext.networks import MultiScaleSumUNet
from monai_ext.phantoms import synthesize_brain_tumor_dataset, write_dicom_series

from error_chain import error_text

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "brain_tumor_multiscale_unet"
TINY = {
    "pixdim": [6.0, 6.0, 6.0],
    "patch_size": [32, 32, 32],
    "roi_size": [32, 32, 32],
    "channels": [4, 8, 16, 32],
    "num_val": 1,
    "num_test": 2,
    "batch_size": 2,
    "device": "$torch.device('cpu')",
}
INFER_TINY = {k: TINY[k] for k in ("pixdim", "roi_size", "channels", "device")}
CONTRASTS = ("flair", "t1", "t1ce", "t2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """6 small synthetic cases and a bundle root holding a 2-epoch model."""
    tmp = tmp_path_factory.mktemp("brain_bundle")
    data = tmp / "data"
    synthesize_brain_tumor_dataset(data, cases=6, seed=5, shape=(40, 40, 32), spacing=5.0, progress=False)
    root = tmp / "bundle"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(data), max_epochs=2, val_interval=1,
               **TINY)
    return {"data": data, "root": root}


def _infer(trained, dataset_dir, out, **overrides):
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(trained["root"]), dataset_dir=str(dataset_dir),
               output_dir=str(out), **{**INFER_TINY, **overrides})



def test_train_writes_weights_of_the_four_contrast_network_and_a_tensorboard_log(trained):
    state = torch.load(trained["root"] / "models" / "model.pt", map_location="cpu", weights_only=True)
    net = MultiScaleSumUNet(3, 4, 4, channels=[4, 8, 16, 32])
    net.load_state_dict(state)  # raises if keys or shapes differ
    assert any((trained["root"] / "logs").glob("events.out.tfevents.*"))
    history = (trained["root"] / "eval" / "metric_history.csv").read_text().splitlines()
    assert history[0].split(",") == ["epoch", "val_mean_dice"] and [r.split(",")[0] for r in history[1:]] == ["1", "2"]


@pytest.mark.parametrize(
    "overrides, loss_type, flags",
    [
        ({}, "DiceLoss", {"skip_mode": "concat", "long_skips": True, "multiscale": True}),
        ({"loss_name": "ce"}, "DiceCELoss", {}),
        ({"skip_mode": "sum"}, None, {"skip_mode": "sum"}),
        ({"long_skips": False}, None, {"long_skips": False}),
        ({"multiscale": False}, None, {"multiscale": False}),
    ],
)
def test_the_papers_switches_are_config_overrides(trained, overrides, loss_type, flags):
    parser = bundle_config_parser(BUNDLE / "configs" / "train.yaml",
                                  {"dataset_dir": str(trained["data"]), **TINY, **overrides})
    net, loss = parser.get_parsed_content("network_def"), parser.get_parsed_content("loss")
    for name, value in flags.items():
        assert getattr(net, name) == value
    if loss_type:
        assert type(loss).__name__ == loss_type
    if loss_type == "DiceLoss":
        assert loss.jaccard and loss.squared_pred  # the paper's Jaccard distance
    if loss_type == "DiceCELoss":
        assert loss.lambda_dice == 0.0


@pytest.mark.parametrize("augmentation, extra", [("paper", []), ("paper+intensity", ["RandBiasFieldd", "RandAdjustContrastd"])])
def test_augmentation_is_the_papers_or_adds_intensity_changes(trained, augmentation, extra):
    parser = bundle_config_parser(BUNDLE / "configs" / "train.yaml",
                                  {"dataset_dir": str(trained["data"]), **TINY, "augmentation": augmentation})
    names = [type(t).__name__ for t in parser.get_parsed_content("train#augmentation")]
    assert names[:2] == ["RandAxisFlipd", "RandRotated"] and all(e in names for e in extra)
    assert len(names) == 2 + (5 if extra else 0)


def test_a_single_contrast_model_trains_and_infers_on_that_contrast(trained, tmp_path):
    root = tmp_path / "t1c"
    run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(root), dataset_dir=str(trained["data"]), max_epochs=2,
               val_interval=1, modalities=["t1c"], **TINY)
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    MultiScaleSumUNet(3, 1, 4, channels=[4, 8, 16, 32]).load_state_dict(state)
    case = trained["data"] / "SynthBraTS_000"
    run_bundle(BUNDLE, ["inference.yaml"], bundle_root=str(root), dataset_dir=str(case), output_dir=str(tmp_path / "o"),
               modalities=["t1c"], **INFER_TINY)
    # one contrast per case: the output is named after that contrast's file
    seg = nib.load(tmp_path / "o" / "SynthBraTS_000_t1ce_seg.nii.gz")
    assert seg.shape == nib.load(case / "SynthBraTS_000_t1ce.nii.gz").shape


def test_evaluate_reports_dice_per_class_and_per_brats_region(trained):
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], bundle_root=str(trained["root"]),
               dataset_dir=str(trained["data"]), **TINY)
    eval_dir = trained["root"] / "eval"
    for name in ("val_mean_dice", "val_region_dice"):
        rows = (eval_dir / f"{name}_summary.csv").read_text().splitlines()
        assert rows[0].startswith("class,mean")
        assert [r.split(",")[0] for r in rows[1:]] == ["class0", "class1", "class2", "mean"]
        means = [float(r.split(",")[1]) for r in rows[1:]]
        assert all(0.0 <= m <= 1.0 for m in means)
        raw = (eval_dir / f"{name}_raw.csv").read_text().splitlines()
        assert len(raw) == 1 + 2  # header + the 2 test cases


def test_inference_on_a_brats_case_folder_keeps_its_grid_and_can_write_brats_label_values(trained, tmp_path):
    case = trained["data"] / "SynthBraTS_001"
    _infer(trained, case, tmp_path, output_labels=[0, 1, 2, 4])
    seg = nib.load(tmp_path / "SynthBraTS_001_seg.nii.gz")
    src = nib.load(case / "SynthBraTS_001_flair.nii.gz")
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    assert set(np.unique(np.asarray(seg.dataobj)).astype(int).tolist()) <= {0, 1, 2, 4}


def test_inference_on_a_multichannel_nifti_and_on_dicom_series_named_by_contrast(trained, tmp_path):
    case = trained["data"] / "SynthBraTS_002"
    vols = [nib.load(case / f"SynthBraTS_002_{c}.nii.gz") for c in CONTRASTS]
    affine = vols[0].affine
    cases = tmp_path / "in"
    cases.mkdir()
    stack = np.stack([np.asarray(v.dataobj) for v in vols], axis=-1)
    nib.save(nib.Nifti1Image(stack.astype(np.float32), affine), cases / "msd_style.nii.gz")
    for name, v in zip(("FLAIR_ax", "T1_pre", "T1c_post", "T2_tse"), vols):
        write_dicom_series(np.asarray(v.dataobj).astype(np.float32), affine, cases / "patient_b" / name,
                           series_description=name, seed_uid=f"brain-{name}")
    items = brain_tumor_inference_datalist(cases)
    assert [i["case"] for i in items] == ["patient_b", "msd_style"]
    assert [Path(p).name for p in items[0]["image"]] == ["FLAIR_ax", "T1_pre", "T1c_post", "T2_tse"]
    _infer(trained, cases, tmp_path / "out")
    for name in ("patient_b", "msd_style"):
        seg = nib.load(tmp_path / "out" / f"{name}_seg.nii.gz")
        assert seg.shape == vols[0].shape, name
        np.testing.assert_allclose(seg.affine, affine, atol=1e-3)


def test_bad_input_is_refused_naming_it_and_writing_nothing(trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    out = tmp_path / "out"
    # a case missing a selected contrast
    (data / "SynthBraTS_003" / "SynthBraTS_003_t1ce.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"SynthBraTS_003: no t1c"):
        brain_tumor_datalist(data)
    with pytest.raises(Exception) as excinfo:
        _infer(trained, data / "SynthBraTS_003", out)
    assert "SynthBraTS_003" in error_text(excinfo) and "t1c" in error_text(excinfo)
    # contrasts of different shapes
    case = data / "SynthBraTS_004"
    t2 = nib.load(case / "SynthBraTS_004_t2.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(t2.dataobj)[:, :, :-2], t2.affine), case / "SynthBraTS_004_t2.nii.gz")
    with pytest.raises(Exception) as excinfo:
        _infer(trained, case, out)
    assert "SynthBraTS_004_t2.nii.gz (t2) has shape (40, 40, 30)" in error_text(excinfo)
    # contrasts of different spacings
    case = data / "SynthBraTS_005"
    t1 = nib.load(case / "SynthBraTS_005_t1.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(t1.dataobj), t1.affine @ np.diag([1.0, 1.0, 1.2, 1.0])),
             case / "SynthBraTS_005_t1.nii.gz")
    with pytest.raises(Exception) as excinfo:
        _infer(trained, case, out)
    assert "SynthBraTS_005_t1.nii.gz (t1)" in error_text(excinfo) and "spacing" in error_text(excinfo)
    # a 2D image given to the 3D bundle
    flat = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 4), np.float32), np.eye(4)), flat)
    with pytest.raises(Exception) as excinfo:
        _infer(trained, flat, out, modalities=["flair", "t1", "t1c", "t2"])
    assert "slice.nii.gz" in error_text(excinfo)
    assert not out.exists() or not any(out.iterdir())


def test_a_label_with_unknown_values_stops_training_naming_the_file(trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    seg_path = next((data).glob("*/SynthBraTS_00[0-5]_seg.nii.gz"))
    seg = nib.load(seg_path)
    arr = np.asarray(seg.dataobj).copy()
    arr[0, 0, 0] = 3  # BraTS 2017 has no label 3
    nib.save(nib.Nifti1Image(arr, seg.affine), seg_path)
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, ["train.yaml"], bundle_root=str(tmp_path / "b"), dataset_dir=str(data), max_epochs=1, **TINY)
    text = error_text(excinfo)
    assert seg_path.name in text and "label values [3]" in text
    assert not (tmp_path / "b" / "models" / "model.pt").exists()


def test_datalist_split_is_fixed_and_reads_the_msd_layout(trained, tmp_path):
    a = brain_tumor_datalist(trained["data"], num_val=1, num_test=2)
    b = brain_tumor_datalist(trained["data"], ["t1c", "flair"], num_val=1, num_test=2)
    assert [c["case"] for c in a["testing"]] == [c["case"] for c in b["testing"]]
    assert (len(a["training"]), len(a["validation"]), len(a["testing"])) == (3, 1, 2)
    assert b["modalities"] == ["flair", "t1c"] and len(b["training"][0]["image"]) == 2
    with pytest.raises(ValueError, match="6 case"):
        brain_tumor_datalist(trained["data"], num_val=3, num_test=3)
    # MSD Task01 layout: 4D images, labels 1 edema, 2 non-enhancing, 3 enhancing
    msd = tmp_path / "Task01_BrainTumour"
    (msd / "imagesTr").mkdir(parents=True)
    (msd / "labelsTr").mkdir()
    training = []
    for i in range(4):
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 4), np.float32), np.eye(4)), msd / "imagesTr" / f"BRATS_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), msd / "labelsTr" / f"BRATS_{i:03d}.nii.gz")
        training.append({"image": f"./imagesTr/BRATS_{i:03d}.nii.gz", "label": f"./labelsTr/BRATS_{i:03d}.nii.gz"})
    (msd / "dataset.json").write_text(json.dumps({"training": training}))
    m = brain_tumor_datalist(msd, num_val=1, num_test=1)
    assert m["layout"] == "msd" and m["label_mapping"] == {0: 0, 1: 2, 2: 1, 3: 3}
    assert len(m["training"]) == 2 and m["training"][0]["image"].endswith(".nii.gz")


def test_the_bundle_generates_its_default_data_when_dataset_dir_is_empty(tmp_path):
    d = brain_tumor_datalist(tmp_path / "empty", num_val=1, num_test=1, synth_cases=3)
    assert len(d["training"]) == 1 and d["layout"] == "brats2017"
    assert (tmp_path / "empty" / "dataset.json").is_file()


@pytest.mark.slow  # a 2-process torchrun run of a standard multi-GPU config; the kept default-suite ones cover each sync mechanism (issue: suite budget)
def test_multi_gpu_train_on_two_cpu_ranks(trained, tmp_path):
    from test_multi_gpu_configs import torchrun_bundle

    log = torchrun_bundle(BUNDLE, ["train.yaml", "multi_gpu_train.yaml"],
                          {"bundle_root": str(tmp_path), "dataset_dir": str(trained["data"]), "max_epochs": 2,
                           "val_interval": 1, **{k: v for k, v in TINY.items() if k != "device"},
                           "num_val": 2, "num_test": 1})  # a validation case per rank
    assert "val_mean_dice" in log
    MultiScaleSumUNet(3, 4, 4, channels=[4, 8, 16, 32]).load_state_dict(
        torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    )
