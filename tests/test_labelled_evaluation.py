"""Scoring the COVID bundle on labelled scans: label mapping (others -> 0), the labelled-folder dataset list
(image/label pairs, TotalSegmentator subjects), class volumes, and configs/evaluate_labelled.yaml end to end with
the committed weights on CPU."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.bundle_helpers import run_bundle
from monai_ext.datalists import (
    LABEL_MAPPING_PRESETS,
    TOTALSEGMENTATOR_LUNG_LOBES,
    labelled_pairs_datalist,
    resolve_label_mapping,
)
from monai_ext.metrics import ClassVolumeMetric
from monai_ext.phantoms import generate_chest_ct
from monai_ext.transforms import MapLabels, MapLabelsd

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "covid19_ct_fewshot_seg"
V2_LOBES = {10: 1, 11: 1, 12: 2, 13: 2, 14: 2}

# ------------------------------------------------------------------------------------------- MapLabels


def test_maplabels_maps_listed_values_and_zeroes_the_rest():
    label = np.array([[[0, 10, 11, 12], [13, 14, 5, 117]]], np.int16)
    out = MapLabels(V2_LOBES)(label)
    np.testing.assert_array_equal(out, [[[0, 1, 1, 2], [2, 2, 0, 0]]])
    assert isinstance(out, np.ndarray) and out.dtype == np.int16
    t = MapLabels({"10": 1, 12.0: 2}, default=0, dtype=np.uint8)(torch.as_tensor(label))  # JSON-style keys
    assert isinstance(t, torch.Tensor) and t.dtype == torch.uint8
    assert t.tolist() == [[[0, 1, 0, 2], [0, 0, 0, 0]]]
    np.testing.assert_array_equal(MapLabels(None)(label), label)  # None: values kept
    with pytest.raises(TypeError, match="mapping must be a dict"):
        MapLabels([10, 1])


def test_maplabels_combines_a_mask_stack_channel_i_as_value_i_plus_1():
    masks = torch.zeros(3, 2, 2, 1, dtype=torch.uint8)
    masks[0, 0, 0], masks[1, 0, 1], masks[2, 1, 0] = 1, 1, 1
    img = MetaTensor(masks, affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])), meta={"filename_or_obj": "a.nii.gz"})
    out = MapLabelsd("label", {1: 1, 2: 1, 3: 2})({"label": img})["label"]
    assert isinstance(out, MetaTensor) and out.shape == (1, 2, 2, 1)
    assert out[0, ..., 0].tolist() == [[1, 1], [2, 0]]
    assert out.meta["filename_or_obj"] == "a.nii.gz" and torch.equal(out.affine, img.affine)
    assert img.shape == (3, 2, 2, 1)  # the input is left unchanged


# ------------------------------------------------------------------------------------------- ClassVolumeMetric


def test_class_volume_metric_uses_the_affine():
    y = torch.zeros(1, 3, 4, 4, 4)
    y[0, 1, :2] = 1  # 32 voxels of 2 x 2 x 3 mm = 0.384 ml
    y[0, 0] = 1 - y[0, 1]
    meta_y = MetaTensor(y, affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    pred = ClassVolumeMetric(source="y_pred")
    assert torch.allclose(torch.as_tensor(pred(meta_y, meta_y)).float(), torch.tensor([[0.384, 0.0]]))
    ref = ClassVolumeMetric(source="y", include_background=True)
    vols = torch.as_tensor(ref([torch.zeros(3, 4, 4, 4)], [meta_y[0]])).float()  # lists of (C, ...), as ignite passes
    assert torch.allclose(vols, torch.tensor([[4 * 4 * 4 * 0.012 - 0.384, 0.384, 0.0]]))
    with pytest.raises(ValueError, match="source"):
        ClassVolumeMetric(source="label")


# ------------------------------------------------------------------------------------------- data sets on disk


def _split_by_z(mask: np.ndarray, parts: int) -> list[np.ndarray]:
    """``mask`` cut into ``parts`` slabs along z (top first), to fake lung lobes."""
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    edges = np.linspace(zs.min(), zs.max() + 1, parts + 1).round().astype(int)
    slabs = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        slab = np.zeros_like(mask)
        slab[:, :, lo:hi] = mask[:, :, lo:hi]
        slabs.append(slab)
    return slabs[::-1]


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _lobes(label: np.ndarray) -> dict[str, np.ndarray]:
    upper_l, lower_l = _split_by_z(label == 1, 2)
    upper_r, middle_r, lower_r = _split_by_z(label == 2, 3)
    return {
        "lung_upper_lobe_left": upper_l,
        "lung_lower_lobe_left": lower_l,
        "lung_upper_lobe_right": upper_r,
        "lung_middle_lobe_right": middle_r,
        "lung_lower_lobe_right": lower_r,
    }


def make_totalsegmentator_folder(root: Path, seeds=(11,)) -> Path:
    """TotalSegmentator-style subjects from lesion-free phantoms: ct.nii.gz + one mask per lobe (+ a liver)."""
    for k, seed in enumerate(seeds):
        case = generate_chest_ct(shape=(64, 64, 48), spacing=(6, 6, 6), seed=seed, lesions=False)
        subject = root / f"s{k:04d}"
        _save(case.image, case.affine, subject / "ct.nii.gz")
        masks = {**_lobes(case.label), "liver": np.zeros(case.label.shape, bool)}
        for name, mask in masks.items():
            _save(mask.astype(np.uint8), case.affine, subject / "segmentations" / f"{name}.nii.gz")
    return root


def make_pairs_folder(root: Path, seeds=(21,)) -> Path:
    """nnU-Net-style imagesTr/<case>_0000.nii.gz + labelsTr/<case>.nii.gz holding TotalSegmentator v2 values
    (lobes 10-14; the phantom's infection as 5, a structure the lobe mapping leaves out)."""
    for k, seed in enumerate(seeds):
        case = generate_chest_ct(shape=(64, 64, 48), spacing=(6, 6, 6), seed=seed)
        label = np.zeros(case.label.shape, np.uint8)
        for value, mask in zip((10, 11, 12, 13, 14), _lobes(case.label).values()):
            label[mask] = value
        label[case.label == 3] = 5
        _save(case.image, case.affine, root / "imagesTr" / f"case{k}_0000.nii.gz")
        _save(label, case.affine, root / "labelsTr" / f"case{k}.nii.gz")
    return root


def _tiny(path: Path, shape=(4, 4, 4)) -> Path:
    return _save(np.zeros(shape, np.int16), np.eye(4), path)


def test_datalist_pairs_nnunet_and_plain_names(tmp_path: Path):
    _tiny(tmp_path / "a" / "imagesTr" / "case1_0000.nii.gz")
    _tiny(tmp_path / "a" / "imagesTr" / "case1_0001.nii.gz")  # a second channel: left out
    _tiny(tmp_path / "a" / "imagesTr" / "case2.nii.gz")
    _tiny(tmp_path / "a" / "labelsTr" / "case1.nii.gz")
    _tiny(tmp_path / "a" / "labelsTr" / "case2.nii.gz")
    got = labelled_pairs_datalist(tmp_path / "a", label_mapping="totalsegmentator_v2_multilabel_lobes")
    assert got["layout"] == "pairs" and got["label_mapping"] == V2_LOBES and got["structures"] is None
    assert [(Path(i["image"]).name, Path(i["label"]).name) for i in got["testing"]] == [
        ("case1_0000.nii.gz", "case1.nii.gz"), ("case2.nii.gz", "case2.nii.gz")]  # fmt: skip
    _tiny(tmp_path / "b" / "images" / "x.nii")
    _tiny(tmp_path / "b" / "labels" / "x.nii.gz")
    got = labelled_pairs_datalist(tmp_path / "b", label_mapping={"1": 1, "2": 2})  # JSON keys -> numbers
    assert len(got["testing"]) == 1 and got["label_mapping"] == {1: 1, 2: 2}


def test_datalist_totalsegmentator_subjects(tmp_path: Path):
    for s in ("s0001", "s0000"):
        _tiny(tmp_path / s / "ct.nii.gz")
        for name in [*TOTALSEGMENTATOR_LUNG_LOBES, "liver"]:
            _tiny(tmp_path / s / "segmentations" / f"{name}.nii.gz")
    got = labelled_pairs_datalist(tmp_path)  # default: the lobe preset
    assert got["layout"] == "totalsegmentator" and got["structures"] == list(TOTALSEGMENTATOR_LUNG_LOBES)
    assert got["label_mapping"] == {1: 1, 2: 1, 3: 2, 4: 2, 5: 2}  # channel number -> class
    assert [Path(i["image"]).parent.name for i in got["testing"]] == ["s0000", "s0001"]
    assert [Path(f).stem.split(".")[0] for f in got["testing"][0]["label"]] == list(TOTALSEGMENTATOR_LUNG_LOBES)
    one = labelled_pairs_datalist(tmp_path / "s0000", label_mapping={"liver": 3})  # one subject folder, one mask
    assert one["label_mapping"] == {1: 3} and isinstance(one["testing"][0]["label"], str)
    assert LABEL_MAPPING_PRESETS["totalsegmentator_lobes"] == TOTALSEGMENTATOR_LUNG_LOBES


def test_datalist_errors_name_the_folder_and_what_is_expected(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        labelled_pairs_datalist(tmp_path / "missing")
    _tiny(tmp_path / "scans" / "ct.nii.gz" / ".." / "a.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"no labelled scans found\. Expected imagesTr/ \+ labelsTr/.*holds scans but no labels"):
        labelled_pairs_datalist(tmp_path / "scans")
    (tmp_path / "lonely" / "imagesTr").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="imagesTr has no label folder beside it"):
        labelled_pairs_datalist(tmp_path / "lonely")
    _tiny(tmp_path / "p" / "imagesTr" / "a.nii.gz")
    _tiny(tmp_path / "p" / "imagesTr" / "b_0000.nii.gz")
    _tiny(tmp_path / "p" / "labelsTr" / "a.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) without a label in .*labelsTr: b_0000"):
        labelled_pairs_datalist(tmp_path / "p")
    _tiny(tmp_path / "p" / "labelsTr" / "b.nii.gz")
    _tiny(tmp_path / "p" / "labelsTr" / "c.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"1 label\(s\) without an image .*: c"):
        labelled_pairs_datalist(tmp_path / "p")
    (tmp_path / "p" / "labelsTr" / "c.nii.gz").unlink()
    with pytest.raises(ValueError, match="numbers as keys"):
        labelled_pairs_datalist(tmp_path / "p", label_mapping="totalsegmentator_lobes")
    with pytest.raises(ValueError, match="no such preset; presets: totalsegmentator_lobes"):
        labelled_pairs_datalist(tmp_path / "p", label_mapping="lobes")
    _tiny(tmp_path / "p" / "labelsTr" / "b.nii.gz", shape=(4, 4, 3))
    with pytest.raises(ValueError, match=r"label .*b.nii.gz and image .*b_0000.nii.gz differ in shape: \(4, 4, 3\)"):
        labelled_pairs_datalist(tmp_path / "p")
    _tiny(tmp_path / "ts" / "s0000" / "ct.nii.gz")
    _tiny(tmp_path / "ts" / "s0000" / "segmentations" / "lung_upper_lobe_left.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"s0000/segmentations: missing lung_lower_lobe_left.nii.gz"):
        labelled_pairs_datalist(tmp_path / "ts")
    with pytest.raises(ValueError, match=r"need label_mapping \{structure name: class\}"):
        labelled_pairs_datalist(tmp_path / "ts", label_mapping=V2_LOBES)
    assert resolve_label_mapping("none") is None and resolve_label_mapping(None) is None


# ------------------------------------------------------------------------------------------- end to end


def _csv(path: Path) -> list[list[str]]:
    with open(path) as f:
        return list(csv.reader(f))


def test_evaluate_labelled_config_scores_totalsegmentator_and_pair_folders(tmp_path: Path):
    ts = make_totalsegmentator_folder(tmp_path / "ts")
    pairs = make_pairs_folder(tmp_path / "pairs")
    configs = ["inference.yaml", "evaluate_labelled.yaml"]
    cpu = "$torch.device('cpu')"
    run_bundle(BUNDLE, configs, dataset_dir=str(ts), output_dir=str(tmp_path / "out_ts"), device=cpu)
    run_bundle(BUNDLE, configs, dataset_dir=str(pairs), output_dir=str(tmp_path / "out_pairs"), device=cpu,
               label_mapping="totalsegmentator_v2_multilabel_lobes", save_predictions=True)  # fmt: skip
    for out, n in ((tmp_path / "out_ts", 1), (tmp_path / "out_pairs", 1)):
        dice = _csv(out / "val_mean_dice_raw.csv")
        assert dice[0][:4] == ["filename", "class0", "class1", "class2"] and len(dice) - 1 == n
        left, right, infection = (float(v) for v in dice[1][1:4])
        assert left > 0.5 and right > 0.5, dice
        assert math.isnan(infection)  # no infection in the reference: nan, not a crash
        summary = {r[0]: r for r in _csv(out / "val_mean_dice_summary.csv")}
        assert float(summary["class0"][1]) > 0.5 and "mean" in summary
        ref = _csv(out / "ref_volume_ml_raw.csv")[1]
        pred = _csv(out / "pred_volume_ml_raw.csv")[1]
        assert float(ref[1]) > 100 and float(ref[2]) > 100 and float(ref[3]) == 0.0, ref  # ml: lungs, no infection
        assert 0.5 < float(pred[1]) / float(ref[1]) < 2.0, (pred, ref)
        assert (out / "val_mean_nsd_raw.csv").is_file() and (out / "metrics.csv").is_file()
    assert not list((tmp_path / "out_ts").glob("*_seg.nii.gz"))
    seg = nib.load(tmp_path / "out_pairs" / "case0_0000_seg.nii.gz")  # save_predictions: inference's output
    assert seg.shape == (64, 64, 48)
