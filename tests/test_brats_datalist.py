"""BraTS dataset lists (issue 31): the 2015 (.mha in VSD folders), 2017-2021 and 2023 layouts, the modality subset
and its channel order, the label mapping per layout, and clear errors."""

from pathlib import Path

import pytest

from monai_ext.datalists import BRATS_LABEL_MAPPINGS, brats_datalist


def _touch(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def _brats2017(root: Path, case: str, skip: tuple[str, ...] = ()) -> None:
    for s in ("flair", "t1", "t1ce", "t2", "seg"):
        if s not in skip:
            _touch(root / case / f"{case}_{s}.nii.gz")


def _brats2015(root: Path, grade: str, case: str) -> None:
    for i, tag in enumerate(("MR_Flair", "MR_T1", "MR_T1c", "MR_T2")):
        _touch(root / grade / case / f"VSD.Brain.XX.O.{tag}.{5450 + i}" / f"VSD.Brain.XX.O.{tag}.{5450 + i}.mha")
    _touch(root / grade / case / "VSD.Brain_3more.XX.O.OT.5460" / "VSD.Brain_3more.XX.O.OT.5460.mha")


def test_brats2017_layout_lists_channels_in_canonical_order(tmp_path):
    for c in ("BraTS20_Training_002", "BraTS20_Training_001"):
        _brats2017(tmp_path, c)
    dl = brats_datalist(tmp_path, modalities=["t2", "flair"])
    assert dl["layout"] == "brats2017" and dl["modalities"] == ["flair", "t2"]
    assert [c["case"] for c in dl["cases"]] == ["BraTS20_Training_001", "BraTS20_Training_002"]
    first = dl["cases"][0]
    assert [Path(p).name for p in first["image"]] == ["BraTS20_Training_001_flair.nii.gz",
                                                      "BraTS20_Training_001_t2.nii.gz"]
    assert Path(first["label"]).name == "BraTS20_Training_001_seg.nii.gz"
    assert dl["label_mapping"] == {0: 0, 1: 1, 2: 2, 4: 3}


def test_brats2023_names_and_one_case_folder(tmp_path):
    case = tmp_path / "BraTS-GLI-00000-000"
    for s in ("t2f", "t1n", "t1c", "t2w", "seg"):
        _touch(case / f"{case.name}-{s}.nii.gz")
    for root in (tmp_path, case):
        dl = brats_datalist(root)
        assert dl["layout"] == "brats2023" and len(dl["cases"]) == 1
        assert [Path(p).name.split("-")[-1] for p in dl["cases"][0]["image"]] == [
            "t2f.nii.gz", "t1n.nii.gz", "t1c.nii.gz", "t2w.nii.gz"]
        assert dl["label_mapping"] == BRATS_LABEL_MAPPINGS["brats2023"]


def test_brats2015_mha_cases_below_grade_folders(tmp_path):
    _brats2015(tmp_path, "HGG", "brats_2013_pat0001_1")
    _brats2015(tmp_path, "LGG", "brats_tcia_pat101_0001")
    dl = brats_datalist(tmp_path, modalities="t1c")
    assert dl["layout"] == "brats2015" and len(dl["cases"]) == 2
    assert all(Path(c["image"][0]).name.startswith("VSD.Brain.XX.O.MR_T1c.") for c in dl["cases"])
    assert all(".OT." in Path(c["label"]).name for c in dl["cases"])
    assert dl["label_mapping"][3] == 1 and dl["label_mapping"][4] == 3  # non-enhancing core -> core, 4 -> enhancing


def test_missing_contrast_or_label_names_the_case(tmp_path):
    _brats2017(tmp_path, "case_a")
    _brats2017(tmp_path, "case_b", skip=("t1ce",))
    with pytest.raises(ValueError, match=r"case_b.*t1c"):
        brats_datalist(tmp_path)
    assert len(brats_datalist(tmp_path, modalities=["flair", "t1", "t2"])["cases"]) == 2
    _brats2017(tmp_path / "val", "case_c", skip=("seg",))
    with pytest.raises(ValueError, match=r"case_c.*label"):
        brats_datalist(tmp_path / "val")
    assert "label" not in brats_datalist(tmp_path / "val", require_label=False)["cases"][0]


def test_bad_requests_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        brats_datalist(tmp_path / "nope")
    _touch(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no BraTS case"):
        brats_datalist(tmp_path)
    with pytest.raises(ValueError, match="unknown"):
        brats_datalist(tmp_path, modalities=["dwi"])
    _brats2017(tmp_path, "a")
    _brats2015(tmp_path, "HGG", "b")
    with pytest.raises(ValueError, match="different BraTS layouts"):
        brats_datalist(tmp_path)
