"""Dataset list of the COVID-19-CT-Seg release (Ma et al. 2021, "Towards data-efficient learning: a benchmark for
COVID-19 CT lung and infection segmentation", Med. Phys. 48(3); zenodo record 3757476) with its official few-shot
protocol ("Task 1: learning with limited annotations", 5 folds of 4 training and 16 test cases).

A bundle config uses it directly, e.g.
``"test_files": "$monai_ext.datalists.covid19_ct_seg_datalist(@dataset_dir, @fold)['testing']"``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import NIFTI_SUFFIXES, PathLike, folder_listing
from .json_lists import check_fold

__all__ = [
    "COVID19_CT_SEG_FOLDS",
    "COVID19_CT_SEG_CASES",
    "COVID19_CT_SEG_LABEL_FOLDERS",
    "covid19_ct_seg_datalist",
    "write_covid19_ct_seg_datalist",
]

#: COVID-19-CT-Seg, official "Task 1: learning with limited annotations": the 4 training cases of each
#: of the 5 folds (file stems). The other 16 cases of the release are the test set of that fold.
COVID19_CT_SEG_FOLDS: tuple[tuple[str, ...], ...] = (
    ("coronacases_008", "coronacases_007", "radiopaedia_36_86526_0", "radiopaedia_4_85506_1"),
    ("coronacases_009", "coronacases_004", "radiopaedia_14_85914_0", "radiopaedia_7_85703_0"),
    ("coronacases_010", "coronacases_001", "radiopaedia_10_85902_1", "radiopaedia_29_86491_1"),
    ("coronacases_003", "coronacases_005", "radiopaedia_40_86625_0", "radiopaedia_27_86410_0"),
    ("coronacases_002", "radiopaedia_10_85902_3", "coronacases_006", "radiopaedia_29_86490_1"),
)

#: The 20 cases of COVID-19-CT-Seg (sorted file stems).
COVID19_CT_SEG_CASES: tuple[str, ...] = tuple(sorted(s for fold in COVID19_CT_SEG_FOLDS for s in fold))

COVID19_CT_SEG_IMAGE_FOLDER = "COVID-19-CT-Seg_20cases"
#: Mask folders of the release; ``Lung_and_Infection_Mask`` labels: 0 background, 1 left lung,
#: 2 right lung, 3 infection. ``Lung_Mask``: 1 left lung, 2 right lung. ``Infection_Mask``: 1 infection.
COVID19_CT_SEG_LABEL_FOLDERS: tuple[str, ...] = ("Lung_and_Infection_Mask", "Lung_Mask", "Infection_Mask")


def _find_case(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def covid19_ct_seg_datalist(
    root: PathLike, fold: int = 0, label: str = "Lung_and_Infection_Mask"
) -> dict[str, list[dict[str, str]]]:
    """Training and test lists of one fold of COVID-19-CT-Seg's few-shot protocol (absolute paths).

    ``root`` holds the unzipped release (zenodo record 3757476)::

        root/COVID-19-CT-Seg_20cases/<stem>.nii.gz    20 chest CT volumes (HU)
        root/Lung_and_Infection_Mask/<stem>.nii.gz    0 background, 1 left lung, 2 right lung, 3 infection
        root/Lung_Mask/<stem>.nii.gz                  1 left lung, 2 right lung
        root/Infection_Mask/<stem>.nii.gz             1 infection

    Only the image folder and the chosen ``label`` folder are required; ``.nii`` files are accepted too.

    Args:
        root: folder holding the release.
        fold: 0..4, the fold of "Task 1: learning with limited annotations" (4 fixed training cases,
            see :py:data:`COVID19_CT_SEG_FOLDS`; the other 16 cases are the test set).
        label: which mask folder gives the labels, one of :py:data:`COVID19_CT_SEG_LABEL_FOLDERS`.

    Returns:
        ``{"training": [4 items], "testing": [16 items], "validation": <same list as testing>}``, items
        ``{"image": str, "label": str}``; training cases in the protocol's order, test cases sorted.
        ``"validation"`` lets ``load_decathlon_datalist(..., data_list_key="validation")`` read the test
        set from a JSON written by :py:func:`write_covid19_ct_seg_datalist`.

    Raises:
        FileNotFoundError: ``root``, the image/label folder or case files are missing (the message names
            the folder, the missing stems, and lists what is there).
        ValueError: ``fold`` not in 0..4 or ``label`` not a mask folder of the release.
    """
    fold_i = check_fold(fold, len(COVID19_CT_SEG_FOLDS))
    if label not in COVID19_CT_SEG_LABEL_FOLDERS:
        raise ValueError(f"label must be one of {list(COVID19_CT_SEG_LABEL_FOLDERS)}, got {label!r}.")
    root_p = Path(root).expanduser().resolve()
    if not root_p.is_dir():
        raise FileNotFoundError(
            f"COVID-19-CT-Seg root folder {root_p} does not exist (expected a folder holding "
            f"{COVID19_CT_SEG_IMAGE_FOLDER}/ and {label}/ from zenodo record 3757476)."
        )
    folders = {}
    for sub in (COVID19_CT_SEG_IMAGE_FOLDER, label):
        folder = root_p / sub
        if not folder.is_dir():
            raise FileNotFoundError(
                f"COVID-19-CT-Seg: folder {folder} is missing (expected {COVID19_CT_SEG_IMAGE_FOLDER}/ and "
                f"{label}/ in {root_p}). Found in {root_p}: {folder_listing(root_p)}"
            )
        folders[sub] = folder

    paths: dict[str, dict[str, str]] = {stem: {} for stem in COVID19_CT_SEG_CASES}
    for key, sub in (("image", COVID19_CT_SEG_IMAGE_FOLDER), ("label", label)):
        missing = []
        for stem in COVID19_CT_SEG_CASES:
            found = _find_case(folders[sub], stem)
            if found is None:
                missing.append(stem)
            else:
                paths[stem][key] = str(found)
        if missing:
            raise FileNotFoundError(
                f"COVID-19-CT-Seg: {len(missing)} of 20 case(s) missing in {folders[sub]}: {missing} "
                f"(expected <stem>.nii.gz or <stem>.nii). Found there: {folder_listing(folders[sub])}"
            )

    train_stems = COVID19_CT_SEG_FOLDS[fold_i]
    training = [dict(paths[s]) for s in train_stems]
    testing = [dict(paths[s]) for s in COVID19_CT_SEG_CASES if s not in train_stems]
    return {"training": training, "testing": testing, "validation": testing}


def write_covid19_ct_seg_datalist(
    root: PathLike, out_json: PathLike, fold: int = 0, label: str = "Lung_and_Infection_Mask"
) -> str:
    """Write :py:func:`covid19_ct_seg_datalist` to ``out_json`` (absolute paths); returns its path.

    The JSON holds ``training``, ``validation`` and ``testing`` lists (validation == testing) plus
    ``name``, ``fold`` and ``label`` fields, and loads with
    ``monai.data.load_decathlon_datalist(out_json, data_list_key="training" | "validation" | "testing")``.
    """
    datalist = covid19_ct_seg_datalist(root, fold=fold, label=label)
    out = Path(out_json).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "name": "COVID-19-CT-Seg",
        "description": "Task 1 (learning with limited annotations), Ma et al. 2021; zenodo 3757476",
        "fold": int(fold),
        "label": label,
        "training": datalist["training"],
        "validation": datalist["validation"],
        "testing": datalist["testing"],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2)
    return str(out)
