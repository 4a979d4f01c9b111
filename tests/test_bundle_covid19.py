"""The covid19_ct_fewshot_seg bundle on MONAI's bundle runner: train, evaluate, infer (NIfTI and DICOM), bad input.

Tiny settings (6 mm voxels, small patches, one epoch) test the plumbing; quality comes from the demo.
"""

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImage

from monai_ext.bundle_helpers import run_bundle
from monai_ext.phantoms import synthesize_dataset, write_dicom_series

from covid_bundle_settings import BUNDLE, CONFIGS, REPO, TINY
from error_chain import error_text



def _run(configs, **overrides):
    run_bundle(BUNDLE, configs, **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Phantoms at 4 mm and a bundle root holding a 2-epoch model (output goes to a temp bundle_root)."""
    tmp = tmp_path_factory.mktemp("covid_bundle")
    data = tmp / "data"
    synthesize_dataset(data, cases=7, seed=3, shape=(64, 64, 48), spacing=(5.0, 5.0, 5.0), progress=False)
    root = tmp / "bundle"
    _run(["train.yaml"], bundle_root=str(root), dataset_dir=str(data), max_epochs=2, val_interval=1, **TINY)
    return {"data": data, "root": root, "tmp": tmp}


def test_train_writes_weights_matching_the_network(trained):
    ckpt = trained["root"] / "models" / "model.pt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    from monai.networks.nets import UNet

    net = UNet(3, 1, 4, [4, 8, 16, 32], [2, 2, 2], num_res_units=1, norm="batch")
    net.load_state_dict(state)  # raises if keys/shapes differ
    assert any((trained["root"] / "logs").glob("events.out.tfevents.*")), "TensorBoard log missing"


@pytest.mark.parametrize("loss_name", ["weighted_ce", "dice", "hausdorff", "dice_hausdorff"])
def test_every_loss_is_selectable_by_override(trained, loss_name):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    parser.update({"loss_name": loss_name, "dataset_dir": str(trained["data"])})
    loss = parser.get_parsed_content("loss")
    logits = torch.randn(1, 4, 16, 16, 16, requires_grad=True)
    target = torch.randint(0, 4, (1, 1, 16, 16, 16)).float()
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and logits.grad.abs().sum() > 0


def test_evaluate_writes_per_class_dice_and_nsd(trained):
    eval_dir = trained["tmp"] / "eval"
    _run(
        ["train.yaml", "evaluate.yaml"],
        bundle_root=str(trained["root"]),
        dataset_dir=str(trained["data"]),
        eval_dir=str(eval_dir),
        **TINY,
    )
    import csv

    for metric in ("val_mean_dice", "val_mean_nsd"):
        rows = list(csv.reader(open(eval_dir / f"{metric}_raw.csv")))
        assert rows[0][:4] == ["filename", "class0", "class1", "class2"]
        assert len(rows) - 1 == 1  # 7 cases: 4 training, 2 validation, 1 test
        values = [float(v) for v in rows[1][1:4]]
        assert all(0.0 <= v <= 1.0 for v in values), values


def _infer(trained, inp, out):
    _run(
        ["inference.yaml"],
        bundle_root=str(trained["root"]),
        dataset_dir=str(inp),
        output_dir=str(out),
        **{k: v for k, v in TINY.items() if k != "patch_size"},
    )


def test_inference_on_a_nifti_file_keeps_its_geometry(trained, tmp_path):
    image = trained["data"] / "imagesTr" / "case_006.nii.gz"
    _infer(trained, image, tmp_path)
    out = tmp_path / "case_006_seg.nii.gz"
    seg, src = nib.load(out), nib.load(image)
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    values = set(np.unique(np.asarray(seg.dataobj)).tolist())
    assert values <= {0, 1, 2, 3}


def test_inference_on_a_dicom_series_folder(trained, tmp_path):
    src = nib.load(trained["data"] / "imagesTr" / "case_005.nii.gz")
    series = tmp_path / "in" / "patient_a"
    write_dicom_series(np.asarray(src.dataobj).astype(np.float32), src.affine, series)
    out = tmp_path / "out"
    _infer(trained, tmp_path / "in", out)  # a folder holding a DICOM series sub-folder
    seg = nib.load(out / "patient_a_seg.nii.gz")
    ref = LoadImage(image_only=True, reader="ITKReader")(str(series))
    assert seg.shape == tuple(ref.shape)
    np.testing.assert_allclose(seg.affine, ref.affine.numpy(), atol=1e-3)


def test_inference_on_the_real_ct_keeps_its_geometry(trained, tmp_path, shared_data):
    image = shared_data / "ct" / "chest_abdomen_ct_3mm.nii.gz"
    _infer(trained, image, tmp_path)
    seg, src = nib.load(tmp_path / "chest_abdomen_ct_3mm_seg.nii.gz"), nib.load(image)
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)



def test_inference_missing_path_names_it(trained, tmp_path):
    missing = tmp_path / "nope.nii.gz"
    with pytest.raises(Exception) as excinfo:
        _infer(trained, missing, tmp_path / "out")
    assert str(missing) in error_text(excinfo)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_inference_corrupt_nifti_names_it(trained, tmp_path):
    bad = tmp_path / "in" / "broken.nii.gz"
    bad.parent.mkdir()
    good = (trained["data"] / "imagesTr" / "case_006.nii.gz").read_bytes()
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(Exception) as excinfo:
        _infer(trained, bad, tmp_path / "out")
    assert "broken.nii.gz" in error_text(excinfo)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_inference_2d_image_is_rejected(trained, tmp_path):
    flat = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64), np.int16), np.eye(4)), flat)
    with pytest.raises(Exception) as excinfo:
        _infer(trained, flat, tmp_path / "out")
    text = error_text(excinfo)
    assert "slice.nii.gz" in text and "3" in text


def test_inference_folder_without_dicom_is_rejected(trained, tmp_path):
    folder = tmp_path / "empty_study"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    with pytest.raises(Exception) as excinfo:
        _infer(trained, folder, tmp_path / "out")
    assert "empty_study" in error_text(excinfo)


def test_training_label_shape_mismatch_names_both_files(trained, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    label = data / "labelsTr" / "case_000.nii.gz"
    lab = nib.load(label)
    nib.save(nib.Nifti1Image(np.asarray(lab.dataobj)[:, :, :-4], lab.affine), label)
    with pytest.raises(Exception) as excinfo:
        _run(["train.yaml"], bundle_root=str(tmp_path / "b"), dataset_dir=str(data), max_epochs=1, **TINY)
    text = error_text(excinfo)
    assert "case_000.nii.gz" in text and "shape" in text


def test_inference_without_weights_says_so(tmp_path):
    with pytest.raises(Exception) as excinfo:
        _run(["inference.yaml"], bundle_root=str(tmp_path), dataset_dir=str(tmp_path))
    text = error_text(excinfo)
    assert "model.pt: not found; expected trained weights" in text


def test_bundle_runner_command_line_trains(tmp_path, trained):
    """The exact command a user types (from the repository root)."""
    cmd = [
        sys.executable, "-m", "monai.bundle", "run",
        "--config_file", str(CONFIGS / "train.yaml"),
        "--bundle_root", str(tmp_path / "b"),
        "--dataset_dir", str(trained["data"]),
        "--max_epochs", "1",
        "--pixdim", "[6.0,6.0,6.0]", "--patch_size", "[32,32,32]", "--roi_size", "[32,32,32]",
        "--network_def#channels", "[4,8,16,32]",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "b" / "models" / "model_final.pt").is_file()  # no validation ran in 1 epoch
