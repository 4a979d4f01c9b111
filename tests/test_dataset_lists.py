"""Dataset lists: COVID-19-CT-Seg few-shot folds, MSD dataset.json, few-shot JSON, find_images."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_ext.bundle_helpers import shared_data_dir
from monai_ext.datalists import (
    COVID19_CT_SEG_FOLDS,
    covid19_ct_seg_datalist,
    fewshot_datalist,
    msd_datalist,
    write_covid19_ct_seg_datalist,
)
from monai_ext.io import find_images, is_dicom_file

EXPECTED_FOLDS = [
    ["coronacases_008", "coronacases_007", "radiopaedia_36_86526_0", "radiopaedia_4_85506_1"],
    ["coronacases_009", "coronacases_004", "radiopaedia_14_85914_0", "radiopaedia_7_85703_0"],
    ["coronacases_010", "coronacases_001", "radiopaedia_10_85902_1", "radiopaedia_29_86491_1"],
    ["coronacases_003", "coronacases_005", "radiopaedia_40_86625_0", "radiopaedia_27_86410_0"],
    ["coronacases_002", "radiopaedia_10_85902_3", "coronacases_006", "radiopaedia_29_86490_1"],
]
ALL_STEMS = sorted(s for fold in EXPECTED_FOLDS for s in fold)
MASK_FOLDERS = ["Lung_Mask", "Infection_Mask", "Lung_and_Infection_Mask"]


def _write_nifti(path: Path, shape=(8, 8, 6), dtype=np.int16, value=0) -> Path:
    nib.save(nib.Nifti1Image(np.full(shape, value, dtype=dtype), np.eye(4)), str(path))
    return path


def _stem(path: str) -> str:
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[: -len(".nii")]


def _fake_dicom(path: Path) -> Path:
    """Bytes that pass the DICOM Part-10 signature check (not a readable image)."""
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00" * 8)
    return path


@pytest.fixture
def covid_root(tmp_path: Path) -> Path:
    """A COVID-19-CT-Seg layout: 20 tiny images and the three mask folders."""
    root = tmp_path / "covid"
    template = _write_nifti(tmp_path / "template.nii.gz")
    for folder in ["COVID-19-CT-Seg_20cases", *MASK_FOLDERS]:
        (root / folder).mkdir(parents=True)
        for stem in ALL_STEMS:
            shutil.copyfile(template, root / folder / f"{stem}.nii.gz")
    return root


# ------------------------------------------------------------------------------------ COVID-19-CT-Seg


def test_protocol_constant_matches_the_benchmark():
    assert [list(f) for f in COVID19_CT_SEG_FOLDS] == EXPECTED_FOLDS
    assert len(ALL_STEMS) == len(set(ALL_STEMS)) == 20


@pytest.mark.parametrize("fold", range(5))
def test_covid_fold_contents(covid_root: Path, fold: int):
    dl = covid19_ct_seg_datalist(covid_root, fold=fold)
    train_stems = [_stem(item["image"]) for item in dl["training"]]
    test_stems = [_stem(item["image"]) for item in dl["testing"]]
    assert train_stems == EXPECTED_FOLDS[fold]
    assert len(test_stems) == 16 and test_stems == sorted(test_stems)
    assert set(train_stems).isdisjoint(test_stems)
    assert set(train_stems) | set(test_stems) == set(ALL_STEMS)
    assert dl["validation"] == dl["testing"]
    for item in dl["training"] + dl["testing"]:
        assert os.path.isabs(item["image"]) and os.path.isfile(item["image"])
        assert Path(item["image"]).parent.name == "COVID-19-CT-Seg_20cases"
        assert Path(item["label"]).parent.name == "Lung_and_Infection_Mask"
        assert _stem(item["label"]) == _stem(item["image"])


def test_covid_training_sets_partition_the_cases(covid_root: Path):
    train = [_stem(i["image"]) for f in range(5) for i in covid19_ct_seg_datalist(covid_root, f)["training"]]
    assert sorted(train) == ALL_STEMS


def test_covid_other_label_folder_and_nii(covid_root: Path):
    # one case stored uncompressed must be found as well
    gz = covid_root / "Lung_Mask" / "coronacases_001.nii.gz"
    nib.save(nib.load(str(gz)), str(gz.with_name("coronacases_001.nii")))
    gz.unlink()
    dl = covid19_ct_seg_datalist(covid_root, fold=2, label="Lung_Mask")
    labels = {_stem(i["label"]): i["label"] for i in dl["training"]}
    assert labels["coronacases_001"].endswith("Lung_Mask/coronacases_001.nii")


def test_covid_write_json_loads_with_monai(covid_root: Path, tmp_path: Path):
    out = write_covid19_ct_seg_datalist(covid_root, tmp_path / "lists" / "fold1.json", fold=1)
    assert Path(out).is_file()
    train = load_decathlon_datalist(out, data_list_key="training")
    val = load_decathlon_datalist(out, data_list_key="validation")
    assert [_stem(i["image"]) for i in train] == EXPECTED_FOLDS[1]
    assert len(val) == 16
    assert json.loads(Path(out).read_text())["fold"] == 1


def test_covid_missing_root(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        covid19_ct_seg_datalist(tmp_path / "nope")


def test_covid_missing_subfolder_names_it_and_lists_content(covid_root: Path):
    shutil.rmtree(covid_root / "Lung_and_Infection_Mask")
    with pytest.raises(FileNotFoundError, match="Lung_and_Infection_Mask") as err:
        covid19_ct_seg_datalist(covid_root)
    assert "Found in" in str(err.value) and "Lung_Mask/" in str(err.value)
    # the other mask folders are enough for their own label choice
    assert len(covid19_ct_seg_datalist(covid_root, label="Infection_Mask")["training"]) == 4


def test_covid_missing_case_names_stem_and_folder(covid_root: Path):
    (covid_root / "COVID-19-CT-Seg_20cases" / "radiopaedia_7_85703_0.nii.gz").unlink()
    (covid_root / "COVID-19-CT-Seg_20cases" / "coronacases_004.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"radiopaedia_7_85703_0") as err:
        covid19_ct_seg_datalist(covid_root, fold=3)
    msg = str(err.value)
    assert "coronacases_004" in msg and str(covid_root / "COVID-19-CT-Seg_20cases") in msg and "2 of 20" in msg


@pytest.mark.parametrize("fold", [5, -1, "x", 1.5])
def test_covid_bad_fold(covid_root: Path, fold):
    with pytest.raises(ValueError, match=r"fold must be .*0\.\.4"):
        covid19_ct_seg_datalist(covid_root, fold=fold)


def test_covid_bad_label_name(covid_root: Path):
    with pytest.raises(ValueError, match="label must be one of"):
        covid19_ct_seg_datalist(covid_root, label="Lung_and_Infection")


# ------------------------------------------------------------------------------------ MSD dataset.json


@pytest.fixture
def msd_dir(tmp_path: Path) -> Path:
    root = tmp_path / "Task99_Fake"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    template = _write_nifti(tmp_path / "t.nii.gz", shape=(4, 4, 3))
    training = []
    for i in range(7):
        shutil.copyfile(template, root / "imagesTr" / f"case_{i:03d}.nii.gz")
        shutil.copyfile(template, root / "labelsTr" / f"case_{i:03d}.nii.gz")
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    shutil.copyfile(template, root / "imagesTs" / "case_100.nii.gz")
    content = {
        "name": "Fake",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "organ"},
        "numTraining": 7,
        "training": training,
        "test": ["./imagesTs/case_100.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(content))
    return root


def test_msd_all_cases(msd_dir: Path):
    dl = msd_datalist(msd_dir / "dataset.json")
    assert len(dl["training"]) == 7 and dl["validation"] == []
    assert dl["testing"] == [{"image": str(msd_dir / "imagesTs" / "case_100.nii.gz")}]
    for item in dl["training"]:
        assert os.path.isabs(item["image"]) and os.path.isfile(item["label"]) and "./" not in item["image"]
    assert msd_datalist(msd_dir) == dl  # the folder works as well


def test_msd_kfold_is_a_deterministic_partition(msd_dir: Path):
    all_images = {i["image"] for i in msd_datalist(msd_dir)["training"]}
    seen = []
    for fold in range(5):
        dl = msd_datalist(msd_dir, fold=fold, num_folds=5, seed=3)
        assert dl == msd_datalist(msd_dir, fold=fold, num_folds=5, seed=3)
        val = {i["image"] for i in dl["validation"]}
        train = {i["image"] for i in dl["training"]}
        assert val and val.isdisjoint(train) and val | train == all_images
        seen += sorted(val)
    assert sorted(seen) == sorted(all_images)


def test_msd_errors(msd_dir: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none" / "dataset.json"))):
        msd_datalist(tmp_path / "none" / "dataset.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"training": [ {"image": "a"}, ')
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ": malformed JSON"):
        msd_datalist(bad)
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match=re.escape(str(bad)) + r": no 'training' key"):
        msd_datalist(bad)
    bad.write_text('{"training": [{"image": "./a.nii.gz"}]}')
    with pytest.raises(ValueError, match=r"training\[0\] has no 'label' key"):
        msd_datalist(bad)
    (msd_dir / "labelsTr" / "case_004.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"dataset.json lists 1 file\(s\) that do not exist:\s+.*case_004"):
        msd_datalist(msd_dir)
    with pytest.raises(ValueError, match=r"fold must be in 0\.\.4"):
        msd_datalist(msd_dir, fold=5, check_files=False)
    with pytest.raises(ValueError, match="cannot split 7"):
        msd_datalist(msd_dir, fold=0, num_folds=8, check_files=False)


# ------------------------------------------------------------------------------- few-shot datalist JSON


def _write_fewshot(root: Path) -> None:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    template = _write_nifti(root / "t.nii.gz", shape=(4, 4, 3))
    cases = [f"case_{i}" for i in range(6)]
    for c in cases:
        shutil.copyfile(template, root / "imagesTr" / f"{c}.nii.gz")
        shutil.copyfile(template, root / "labelsTr" / f"{c}.nii.gz")

    def item(c):
        return {"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}

    content = {
        f"fold_{k}": {"training": [item(cases[k])], "testing": [item(c) for c in cases if c != cases[k]]}
        for k in range(5)
    }
    (root / "datalist_fewshot_5fold.json").write_text(json.dumps(content))


def test_fewshot_datalist(tmp_path: Path):
    _write_fewshot(tmp_path / "synth")
    dl = fewshot_datalist(tmp_path / "synth", 2)
    assert [Path(i["image"]).name for i in dl["training"]] == ["case_2.nii.gz"]
    assert len(dl["testing"]) == 5 and dl["validation"] == dl["testing"]
    assert all(os.path.isabs(i["image"]) and os.path.isfile(i["label"]) for i in dl["training"] + dl["testing"])


def test_fewshot_datalist_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "datalist_fewshot_5fold.json"))):
        fewshot_datalist(tmp_path, 0)
    _write_fewshot(tmp_path / "synth")
    with pytest.raises(ValueError, match=r"no 'fold_7' entry \(folds in the file: \['fold_0'"):
        fewshot_datalist(tmp_path / "synth", 7)
    (tmp_path / "synth" / "imagesTr" / "case_0.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"(?s)datalist_fewshot_5fold.json lists 1 file.*case_0.nii.gz"):
        fewshot_datalist(tmp_path / "synth", 1)


# --------------------------------------------------------------------------------------- find_images


def test_find_images(tmp_path: Path):
    root = tmp_path / "scans"
    root.mkdir()
    _write_nifti(root / "b.nii.gz")
    _write_nifti(root / "a.nii")
    (root / "notes.txt").write_text("not an image")
    (root / "patient1" / "series1").mkdir(parents=True)
    for i in range(3):  # no extension, several slices: the folder counts once
        _fake_dicom(root / "patient1" / "series1" / f"IM{i}")
    (root / "patient1" / "series2").mkdir()
    _fake_dicom(root / "patient1" / "series2" / "x.dcm")
    (root / "patient1" / "series2" / "not_dicom.dcm").write_bytes(b"hello")
    (root / "empty_dir").mkdir()
    (root / "nested" / "no_dicom").mkdir(parents=True)
    (root / "nested" / "no_dicom" / "y.dcm").write_bytes(b"\0" * 200)  # no DICM magic
    found = find_images(root)
    assert found == [
        str(root / "a.nii"),
        str(root / "b.nii.gz"),
        str(root / "patient1" / "series1"),
        str(root / "patient1" / "series2"),
    ]
    assert is_dicom_file(root / "patient1" / "series1" / "IM0") and not is_dicom_file(root / "notes.txt")
    # a single file or a single DICOM folder
    assert find_images(root / "b.nii.gz") == [str(root / "b.nii.gz")]
    assert find_images(root / "patient1" / "series1") == [str(root / "patient1" / "series1")]


def test_find_images_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing")) + " does not exist"):
        find_images(tmp_path / "missing")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nothing")) + ": no images found.*readme.md"):
        find_images(tmp_path / "nothing")


def test_find_images_real_dicom_series():
    series = (shared_data_dir() or Path("/nonexistent")) / "ct_dicom_series"
    if not series.is_dir():
        pytest.skip(f"shared sample data not found at {series}")
    assert find_images(series) == [str(series.resolve())]
    assert str(series.resolve()) in find_images(series.parent)


def test_split_cases_is_seeded_independent_of_listing_order_and_names_the_source():
    from monai_ext.datalists import split_cases

    cases = [{"case": f"c{i:02d}", "image": f"/d/c{i:02d}.nii.gz"} for i in range(10)]
    a = split_cases(cases, 2, 3, split_seed=0, source="/d")
    assert a == split_cases(list(reversed(cases)), 2, 3, split_seed=0, source="/d")
    assert [len(a[k]) for k in ("testing", "validation", "training")] == [3, 2, 5]
    assert {c["case"] for k in a for c in a[k]} == {c["case"] for c in cases}
    assert a != split_cases(cases, 2, 3, split_seed=1, source="/d")
    with pytest.raises(ValueError, match="/d: 10 case"):
        split_cases(cases, 5, 5, split_seed=0, source="/d")
    with pytest.raises(ValueError, match="num_val"):
        split_cases(cases, -1, 2, split_seed=0, source="/d")
