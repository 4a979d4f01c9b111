"""FS-Net (issue 38): the heart MR phantoms of two protocols, dataset channel coding, union label encoding, the joint
MSD dataset list, the FS-Net network and its dataset-weighted loss, and the bundle's training strategies, evaluation
and inference through the bundle runner."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.apps.fsnet_joint_training import (
    DANetChannelAttention,
    DatasetHead,
    DatasetWeightedSegLoss,
    FSNet,
    PrepareJointBatch,
    check_training_switches,
    class_channel_output,
    dataset_sampling_weights,
    fsnet_datalist,
)
from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import joint_msd_datalist, msd_label_names
from monai_ext.phantoms import HEART_PROTOCOLS, generate_heart_mr_case, synthesize_heart_mr_dataset
from monai_ext.transforms import DatasetChannelCoding, DatasetChannelCodingd, UnionLabelEncode, UnionLabelEncoded
from monai_ext.transforms.input_checks import ScanInputError
from error_chain import error_text

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "fsnet_joint_training"
TINY = dict(channels=[4, 8, 16, 32], num_res_units=1, max_epochs=2, pretrain_epochs=1, iterations_per_epoch=2,
            batch_size=2, val_interval=1, num_val=1, num_test=2, synth_cases=[5, 4])


# --- phantom ------------------------------------------------------------------------------------------------------

def test_protocols_differ_in_grid_contrast_and_labels():
    target, aux = generate_heart_mr_case("whole_heart_3d", 3), generate_heart_mr_case("short_axis_cine", 3)
    assert target["image"].shape == (64, 64, 24) and aux["image"].shape == (64, 64, 16)
    assert set(np.unique(target["label"])) == {0, 1, 2} and set(np.unique(aux["label"])) == {0, 1, 2, 3}
    np.testing.assert_allclose(np.linalg.norm(target["affine"][:3, :3], axis=0), (2.5, 2.5, 5.0))
    np.testing.assert_allclose(np.linalg.norm(aux["affine"][:3, :3], axis=0), (2.0, 2.0, 8.0))
    for case in (target, aux):   # bright blood, darker myocardium, in either protocol
        img, lab = case["image"], case["label"]
        assert img.min() >= 0 and np.median(img[lab == 1]) > 1.5 * np.median(img[lab == 2])
    # blood relative to myocardium differs between the protocols (different contrast)
    ratio = [np.median(c["image"][c["label"] == 1]) / np.median(c["image"][c["label"] == 2]) for c in (target, aux)]
    assert ratio[0] > 1.3 * ratio[1]
    again = generate_heart_mr_case("whole_heart_3d", 3)
    assert np.array_equal(again["image"], target["image"]) and np.array_equal(again["label"], target["label"])
    with pytest.raises(ValueError, match="unknown heart MR protocol"):
        generate_heart_mr_case("cine", 0)


def test_dataset_is_msd_style_with_the_protocols_labels(tmp_path):
    desc = synthesize_heart_mr_dataset(tmp_path / "aux", "short_axis_cine", 2, progress=False)
    assert desc["labels"] == {str(k): v for k, v in HEART_PROTOCOLS["short_axis_cine"]["labels"].items()}
    assert msd_label_names(tmp_path / "aux") == ["left_ventricle", "myocardium", "right_ventricle"]
    img = nib.load(str(tmp_path / "aux" / "imagesTr" / "heart_001.nii.gz"))
    lab = nib.load(str(tmp_path / "aux" / "labelsTr" / "heart_001.nii.gz"))
    np.testing.assert_allclose(img.affine, lab.affine)
    with pytest.raises(FileExistsError):
        synthesize_heart_mr_dataset(tmp_path / "aux", "short_axis_cine", 2, progress=False)


# --- transforms ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("convert", [np.asarray, torch.as_tensor])
def test_channel_coding_puts_the_image_in_its_slot(convert):
    img = convert(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    out = DatasetChannelCoding(num_datasets=3, channels_per_dataset=2)(img, 1)
    assert type(out) is type(img) and tuple(out.shape) == (6, 3, 4)
    out = np.asarray(out)
    assert np.array_equal(out[2:4], np.asarray(img)) and not out[:2].any() and not out[4:].any()
    with pytest.raises(ValueError, match="dataset index"):
        DatasetChannelCoding(2)(np.zeros((1, 4, 4)), 2)
    with pytest.raises(ScanInputError, match="expected 1 channel"):
        DatasetChannelCoding(2)(np.zeros((3, 4, 4)), 0)


def test_channel_coding_dict_keeps_metadata_and_needs_the_index():
    img = MetaTensor(torch.ones(1, 4, 4), meta={"filename_or_obj": "a.nii.gz"})
    out = DatasetChannelCodingd("image", num_datasets=2)({"image": img, "dataset": torch.tensor(0)})["image"]
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.nii.gz" and out[1].sum() == 0
    with pytest.raises(KeyError, match="dataset"):
        DatasetChannelCodingd("image", num_datasets=2)({"image": img})


def test_union_labels_offset_each_dataset_and_refuse_undeclared_values():
    enc = UnionLabelEncode([2, 3])
    assert np.unique(np.asarray(enc(np.array([[0, 1, 2, 3]]), 1))).tolist() == [0, 3, 4, 5]
    assert np.unique(np.asarray(enc(torch.tensor([[0, 1, 2]]), 0))).tolist() == [0, 1, 2]
    label = MetaTensor(torch.tensor([[0.0, 1.0, 3.0]]), meta={"filename_or_obj": "case7_seg.nii.gz"})
    with pytest.raises(ScanInputError, match=r"case7_seg.nii.gz.*\[3\].*union"):
        UnionLabelEncoded("label", [2, 3])({"label": label, "dataset": 0})
    with pytest.raises(ValueError, match="class_counts"):
        UnionLabelEncode([2, 0])


# --- dataset list --------------------------------------------------------------------------------------------------

def test_joint_datalist_splits_the_target_and_records_the_union(tmp_path):
    synthesize_heart_mr_dataset(tmp_path / "t", "whole_heart_3d", 6, progress=False)
    synthesize_heart_mr_dataset(tmp_path / "a", "short_axis_cine", 3, progress=False)
    dl = joint_msd_datalist([tmp_path / "t", tmp_path / "a"], num_val=1, num_test=2)
    assert dl["class_counts"] == [2, 3]
    assert dl["union_labels"] == {"0": "background", "1": "t/blood_pool", "2": "t/myocardium", "3": "a/left_ventricle",
                                  "4": "a/myocardium", "5": "a/right_ventricle"}
    assert [it["dataset"] for it in dl["training"]] == [0, 0, 0, 1, 1, 1]
    assert all(it["dataset"] == 0 for it in dl["validation"] + dl["testing"]) and len(dl["testing"]) == 2
    held_out = {it["case"] for it in dl["validation"] + dl["testing"]}
    assert not held_out & {it["case"] for it in dl["training"] if it["dataset"] == 0}
    with pytest.raises(ValueError, match="at least one training case"):
        joint_msd_datalist([tmp_path / "t", tmp_path / "a"], num_val=2, num_test=4)
    with pytest.raises(ValueError, match="at least two data sets"):
        joint_msd_datalist([tmp_path / "t"])
    meta = json.loads((tmp_path / "a" / "dataset.json").read_text())
    meta.pop("labels")
    (tmp_path / "a" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="no 'labels'"):
        joint_msd_datalist([tmp_path / "t", tmp_path / "a"])


def test_sampling_weights_per_strategy():
    items = [{"dataset": 0}] * 2 + [{"dataset": 1}] * 6
    assert dataset_sampling_weights(items, "target") == [1.0] * 2 + [0.0] * 6
    assert dataset_sampling_weights(items, "auxiliary") == [0.0] * 2 + [1.0] * 6
    joint = dataset_sampling_weights(items, "joint")
    assert sum(joint[:2]) == pytest.approx(sum(joint[2:]))
    with pytest.raises(ValueError, match="no training items"):
        dataset_sampling_weights([{"dataset": 0}], "auxiliary")
    with pytest.raises(ValueError, match="training must be one of"):
        check_training_switches("finetune", True, True, 0.95)
    with pytest.raises(ValueError, match="target_weight"):
        check_training_switches("joint", True, True, 1.0)
    with pytest.raises(ValueError, match="fs_module must be true or false"):
        check_training_switches("joint", True, "maybe", 0.95)


# --- network and loss ----------------------------------------------------------------------------------------------

def test_channel_attention_is_the_papers_formula():
    a = torch.randn(2, 3, 4, 5)
    flat = a.flatten(2)
    x = torch.softmax(flat @ flat.transpose(1, 2), dim=-1)
    expected = (x.transpose(1, 2) @ flat).view_as(a) + a
    torch.testing.assert_close(DANetChannelAttention()(a), expected)
    assert DANetChannelAttention(learnable_gamma=True)(a).equal(a)   # DANet's gamma starts at 0


@pytest.mark.parametrize("fs_module", [True, False])
def test_fsnet_routes_each_sample_through_its_branch(fs_module):
    torch.manual_seed(0)
    net = FSNet(in_channels=2, class_counts=[2, 3], fs_module=fs_module, channels=(4, 8, 16), strides=(2, 2),
                num_res_units=1).eval()
    x = torch.randn(3, 2, 16, 16, 8)
    idx = torch.tensor([1, 0, 1])
    out = net(x, idx)
    assert out.shape == (3, 6, 16, 16, 8)
    for i in range(3):   # a sample's output does not depend on the others in the batch
        torch.testing.assert_close(out[i:i + 1], net(x[i:i + 1], idx[i:i + 1]), atol=1e-5, rtol=1e-5)
    swapped = net(x, torch.tensor([0, 0, 0]))
    assert fs_module != torch.allclose(swapped[0], out[0], atol=1e-6)   # branches differ per data set
    head = DatasetHead(net, 1)
    torch.testing.assert_close(head(x), net(x, torch.tensor([1, 1, 1]))[:, [0, 3, 4, 5]])
    scripted = torch.jit.script(net)
    torch.testing.assert_close(scripted(x, idx), out)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(1, 3, 16, 16, 8))


def test_weighted_loss_uses_each_datasets_own_channels_and_weights():
    loss = DatasetWeightedSegLoss([2, 3], [0.95, 0.05])
    label = torch.zeros(2, 1, 8, 8, 4)
    label[0, :, 2:5, 2:5] = 1
    label[1, :, 2:5, 2:5] = 5    # union label of the auxiliary set's class 3
    pred = 20.0 * torch.nn.functional.one_hot(label[:, 0].long(), 6).permute(0, 4, 1, 2, 3).float()
    index = torch.tensor([0, 1])
    perfect = loss(pred, (label, index))
    wrong = pred.clone()
    wrong[1, 5], wrong[1, 3] = wrong[1, 3], wrong[1, 5]   # the auxiliary sample predicts its class 1 instead of 3
    worse = loss(wrong, (label, index))
    assert perfect < 0.05 and worse > perfect
    target_only = DatasetWeightedSegLoss([2, 3], [1.0, 0.0])
    assert target_only(wrong, (label, index)) == pytest.approx(target_only(pred, (label, index)).item())
    # channels of the other data set do not enter a data set's loss
    noisy = pred.clone()
    noisy[0, 3:] = torch.randn(3, 8, 8, 4) * 20
    assert target_only(noisy, (label, index)) == pytest.approx(target_only(pred, (label, index)).item())
    with pytest.raises(ValueError, match="outside its classes"):
        loss(pred, (label, torch.tensor([1, 0])))


def test_prepare_batch_hands_the_index_to_network_and_loss():
    batch = {"image": torch.zeros(2, 1, 4, 4, 4), "label": torch.zeros(2, 1, 4, 4, 4), "dataset": torch.tensor([0, 1])}
    image, (label, index), args, kwargs = PrepareJointBatch()(batch, "cpu")
    assert index.tolist() == [0, 1] and kwargs["dataset_index"] is index and args == ()
    with pytest.raises(KeyError, match="dataset"):
        PrepareJointBatch()({"image": image, "label": label})
    out = [{"pred": torch.eye(3)[:, :, None].expand(3, 3, 2), "label": torch.eye(3)[:, :, None].expand(3, 3, 2)}]
    preds, labels = class_channel_output(2)(out)
    assert preds[0].shape == (1, 3, 2) and labels[0].sum() == 2


# --- the bundle ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsnet")
    fsnet_datalist([root / "data" / "target", root / "data" / "auxiliary"], num_val=1, num_test=2, synth_cases=[5, 4])
    return root


@pytest.mark.parametrize("arm", [
    dict(training="joint", channel_coding=True, fs_module=True),
    dict(training="pretrain_finetune", channel_coding=False, fs_module=False),
])
def test_bundle_trains_and_evaluates_each_strategy(data, arm, tmp_path):
    common = dict(TINY, bundle_root=str(tmp_path), dataset_dir=str(data / "data"), **arm)
    run_bundle(BUNDLE, "train.yaml", **common)
    assert (tmp_path / "models" / "model.pt").is_file() and any((tmp_path / "logs").iterdir())
    run_bundle(BUNDLE, ["train.yaml", "evaluate.yaml"], **common)
    rows = dict(line.split(",") for line in (tmp_path / "eval" / "metrics.csv").read_text().splitlines())
    for key in ("test_mean_dice", "test_dice_class1", "test_dice_class2"):
        assert 0.0 <= float(rows[key]) <= 1.0


def test_inference_writes_each_datasets_own_labels_on_the_input_grid(data, tmp_path):
    common = dict(TINY, bundle_root=str(tmp_path), dataset_dir=str(data / "data"))
    run_bundle(BUNDLE, "train.yaml", **common)
    for index, images in ((0, "target"), (1, "auxiliary")):
        out = tmp_path / f"out{index}"
        run_bundle(BUNDLE, "inference.yaml", bundle_root=str(tmp_path), dataset_dir=str(data / "data" / images / "imagesTr"),
                   output_dir=str(out), dataset_index=index, ckpt_path=str(tmp_path / "models" / "model.pt"),
                   channels=TINY["channels"], num_res_units=1)
        src = sorted((data / "data" / images / "imagesTr").glob("*.nii.gz"))
        got = sorted(out.glob("*_seg.nii.gz"))
        assert len(got) == len(src)
        seg, ref = nib.load(str(got[0])), nib.load(str(src[0]))
        assert seg.shape == ref.shape and np.allclose(seg.affine, ref.affine, atol=1e-3)
        assert set(np.unique(np.asarray(seg.dataobj))) <= set(range(1 + [2, 3][index]))


def test_bad_inputs_name_what_is_wrong(data, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "broken.nii.gz").write_bytes(b"not a nifti")
    run_bundle(BUNDLE, "train.yaml", **dict(TINY, bundle_root=str(tmp_path), dataset_dir=str(data / "data"), max_epochs=1))
    out = tmp_path / "o"
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, "inference.yaml", bundle_root=str(tmp_path), dataset_dir=str(bad), output_dir=str(out),
                   channels=TINY["channels"], num_res_units=1, ckpt_path=str(tmp_path / "models" / "model.pt"))
    assert "broken.nii.gz: cannot read this image file" in error_text(excinfo)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, "inference.yaml", bundle_root=str(tmp_path), ckpt_path=str(tmp_path / "missing.pt"))
    assert "missing.pt" in error_text(excinfo) and "trained weights" in error_text(excinfo)
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, "train.yaml", **dict(TINY, bundle_root=str(tmp_path), dataset_dir=str(data / "data"),
                                               training="sequential"))
    assert "training must be one of" in error_text(excinfo)
    # a label value the auxiliary data set does not declare: named with its file before any training
    aux = tmp_path / "aux_bad"
    synthesize_heart_mr_dataset(aux, "short_axis_cine", 1, progress=False)
    lab_path = aux / "labelsTr" / "heart_000.nii.gz"
    lab = nib.load(str(lab_path))
    arr = np.asarray(lab.dataobj).copy()
    arr[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(arr, lab.affine), str(lab_path))
    with pytest.raises(Exception) as excinfo:
        run_bundle(BUNDLE, "train.yaml", **dict(TINY, bundle_root=str(tmp_path / "r"), dataset_dirs=[
            str(data / "data" / "target"), str(aux)]))
    text = error_text(excinfo)
    assert "heart_000.nii.gz" in text and "[7]" in text and "union" in text
    assert not (tmp_path / "r" / "models" / "model.pt").exists()


def test_metadata_declares_the_network_and_its_data():
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 2
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 6
