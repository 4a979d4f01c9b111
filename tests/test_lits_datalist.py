"""The LiTS / MSD Task03 dataset list on tiny fake folders: pairing by case number at any depth, both NIfTI suffixes,
MSD's dataset.json, and errors that name the folder or the unpaired files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_ext.datalists import LITS_LABELS, lits_datalist


def _touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_challenge_layout_pairs_by_number_in_numeric_order(tmp_path):
    _touch(tmp_path, "Training Batch 1/volume-0.nii", "Training Batch 1/segmentation-0.nii",
           "Training Batch 2/volume-10.nii", "Training Batch 2/segmentation-10.nii",
           "Training Batch 1/volume-2.nii", "Training Batch 1/segmentation-2.nii",
           "test/test-volume-0.nii", "notes.txt")
    out = lits_datalist(tmp_path)
    assert out["layout"] == "lits" and out["labels"] == LITS_LABELS == {0: "background", 1: "liver", 2: "tumour"}
    assert [c["case"] for c in out["cases"]] == ["volume-0", "volume-2", "volume-10"]  # test volumes left out
    for c in out["cases"]:
        assert Path(c["image"]).is_absolute() and Path(c["image"]).name == c["case"] + ".nii"
        assert Path(c["label"]).name == c["case"].replace("volume", "segmentation") + ".nii"


def test_kaggle_layout_with_gzipped_files_in_separate_folders(tmp_path):
    _touch(tmp_path, "volume_pt1/volume-0.nii.gz", "volume_pt5/volume-130.nii.gz",
           "segmentations/segmentation-0.nii.gz", "segmentations/segmentation-130.nii.gz",
           ".cache/volume-7.nii.gz")  # hidden folders are not read
    cases = lits_datalist(tmp_path)["cases"]
    assert [(Path(c["image"]).parent.name, Path(c["label"]).parent.name) for c in cases] == [
        ("volume_pt1", "segmentations"), ("volume_pt5", "segmentations")]


def test_msd_task03_dataset_json(tmp_path):
    _touch(tmp_path, "imagesTr/liver_0.nii.gz", "labelsTr/liver_0.nii.gz", "imagesTr/liver_1.nii.gz",
           "labelsTr/liver_1.nii.gz", "imagesTs/liver_132.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({
        "name": "Liver", "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"},
                     {"image": "./imagesTr/liver_1.nii.gz", "label": "./labelsTr/liver_1.nii.gz"}],
        "test": ["./imagesTs/liver_132.nii.gz"]}))
    out = lits_datalist(tmp_path)
    assert out["layout"] == "msd" and [c["case"] for c in out["cases"]] == ["liver_0", "liver_1"]
    assert out["cases"][1]["label"] == str(tmp_path.resolve() / "labelsTr" / "liver_1.nii.gz")
    (tmp_path / "labelsTr" / "liver_1.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="liver_1.nii.gz"):
        lits_datalist(tmp_path)


def test_a_volume_without_its_segmentation_is_named(tmp_path):
    _touch(tmp_path, "volume-0.nii", "segmentation-0.nii", "volume-3.nii")
    with pytest.raises(ValueError, match="volume-3.nii") as excinfo:
        lits_datalist(tmp_path)
    assert "without their segmentation" in str(excinfo.value) and str(tmp_path.resolve()) in str(excinfo.value)
    cases = lits_datalist(tmp_path, require_label=False)["cases"]
    assert [c["label"] is None for c in cases] == [False, True]


def test_a_segmentation_without_its_volume_and_duplicates_are_named(tmp_path):
    _touch(tmp_path, "a/volume-1.nii", "a/segmentation-1.nii", "b/segmentation-4.nii.gz")
    with pytest.raises(ValueError, match=r"without their volume-N file: b/segmentation-4.nii.gz"):
        lits_datalist(tmp_path)
    (tmp_path / "b" / "segmentation-4.nii.gz").unlink()
    _touch(tmp_path, "a/volume-1.nii.gz")
    with pytest.raises(ValueError, match=r"several files for one case number: a/volume-1.nii, a/volume-1.nii.gz"):
        lits_datalist(tmp_path)


def test_a_folder_without_either_layout_lists_its_content(tmp_path):
    _touch(tmp_path, "scan_01.nii.gz", "readme.txt")
    with pytest.raises(FileNotFoundError, match=r"no LiTS files .* Found: readme.txt, scan_01.nii.gz"):
        lits_datalist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lits_datalist(tmp_path / "missing")
