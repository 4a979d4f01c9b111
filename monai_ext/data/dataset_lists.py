"""Dataset lists (MONAI "decathlon" style) for real data a user already has on disk.

Every function returns a dict of lists of ``{"image": <absolute path>, "label": <absolute path>}``
items, the format of MONAI's :py:func:`monai.data.load_decathlon_datalist` and of ``Dataset(data=...)``,
so a bundle config can use them directly, e.g.::

    "imports": ["$import monai_ext"],
    "train_files": "$monai_ext.data.fewshot_datalist(@dataset_dir, @fold)['training']",
    "test_files": "$monai_ext.data.covid19_ct_seg_datalist(@dataset_dir, @fold)['testing']",
    "infer_files": "$[{'image': f} for f in monai_ext.data.find_images(@input_dir)]"

Supported sources:

- the COVID-19-CT-Seg release (Ma et al. 2021, "Towards data-efficient learning: a benchmark for
  COVID-19 CT lung and infection segmentation", Med. Phys. 48(3); zenodo record 3757476) with its
  official few-shot protocol ("Task 1: learning with limited annotations", 5 folds of 4 training and
  16 test cases): :py:func:`covid19_ct_seg_datalist`, :py:func:`write_covid19_ct_seg_datalist`;
- any Medical Segmentation Decathlon style ``dataset.json``: :py:func:`msd_datalist`;
- a ``datalist_fewshot_5fold.json`` as written by this project's synthetic data generator:
  :py:func:`fewshot_datalist`;
- every scan of a folder for inference (NIfTI files and DICOM series folders): :py:func:`find_images`.

Errors are raised early and name the file or folder at fault and what was expected:
``FileNotFoundError`` for missing files/folders, ``ValueError`` for malformed lists or bad arguments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

from monai.data import partition_dataset

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "COVID19_CT_SEG_FOLDS",
    "COVID19_CT_SEG_CASES",
    "COVID19_CT_SEG_LABEL_FOLDERS",
    "covid19_ct_seg_datalist",
    "write_covid19_ct_seg_datalist",
    "msd_datalist",
    "fewshot_datalist",
    "find_images",
    "is_dicom_file",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")

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

_DATALIST_FEWSHOT = "datalist_fewshot_5fold.json"


# ----------------------------------------------------------------------------------------------- helpers


def _listing(folder: Path, limit: int = 20) -> str:
    """Short, sorted listing of ``folder`` for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "(cannot list it)"
    if not names:
        return "(it is empty)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _strip_nifti_suffix(name: str) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _find_case(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def is_dicom_file(path: PathLike) -> bool:
    """Whether ``path`` is a DICOM Part-10 file: a 128-byte preamble followed by the magic ``b"DICM"``.

    The extension is not looked at (DICOM files often have none). Unreadable files count as not DICOM.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _folder_has_dicom(folder: Path) -> bool:
    """Whether ``folder`` directly holds at least one DICOM file (stops at the first one found)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return False
    for entry in entries:
        try:
            if entry.is_file() and is_dicom_file(entry.path):
                return True
        except OSError:
            continue
    return False


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        where = path.parent
        hint = f" Found in {where}: {_listing(where)}" if where.is_dir() else f" The folder {where} does not exist."
        raise FileNotFoundError(f"{what} {path} not found.{hint}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text (JSON) file ({e}).") from e


def _abs_entry(item: Any, base: Path, json_path: Path, where: str, require_label: bool) -> dict:
    """One datalist item with its ``image``/``label`` paths made absolute (relative to ``base``)."""
    if isinstance(item, (str, os.PathLike)):  # MSD "test" lists hold bare image paths
        item = {"image": item}
    if not isinstance(item, dict):
        raise ValueError(f"{json_path}: {where} must be a dict with 'image' and 'label' paths, got {item!r}.")
    keys = ("image", "label") if require_label else ("image",)
    missing = [k for k in keys if k not in item]
    if missing:
        raise ValueError(f"{json_path}: {where} has no {' or '.join(repr(k) for k in missing)} key: {item!r}.")
    out = dict(item)
    for key in ("image", "label"):
        if key not in out:
            continue
        value = out[key]
        if isinstance(value, (str, os.PathLike)):
            out[key] = str((base / value).resolve())
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
            out[key] = [str((base / v).resolve()) for v in value]
        else:
            raise ValueError(f"{json_path}: {where}[{key!r}] must be a path (or list of paths), got {value!r}.")
    return out


def _check_listed_files(json_path: Path, datalist: dict[str, list[dict]]) -> None:
    missing: list[str] = []
    for items in datalist.values():
        for item in items:
            for key in ("image", "label"):
                for p in [item[key]] if isinstance(item.get(key), str) else item.get(key) or []:
                    if not os.path.exists(p):
                        missing.append(p)
    if missing:
        shown = "\n  ".join(missing[:10]) + (f"\n  ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        raise FileNotFoundError(f"{json_path} lists {len(missing)} file(s) that do not exist:\n  {shown}")


def _check_fold(fold: int, num_folds: int) -> int:
    try:
        fold_i = int(fold)  # also a numpy integer or "0" from a command line
        if isinstance(fold, bool) or (not isinstance(fold, str) and fold_i != fold):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"fold must be an integer in 0..{num_folds - 1}, got {fold!r}.") from None
    if not 0 <= fold_i < num_folds:
        raise ValueError(f"fold must be in 0..{num_folds - 1}, got {fold}.")
    return fold_i


# ---------------------------------------------------------------------------------------- COVID-19-CT-Seg


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
    fold_i = _check_fold(fold, len(COVID19_CT_SEG_FOLDS))
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
                f"{label}/ in {root_p}). Found in {root_p}: {_listing(root_p)}"
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
                f"(expected <stem>.nii.gz or <stem>.nii). Found there: {_listing(folders[sub])}"
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


# ----------------------------------------------------------------------------------- MSD dataset.json


def msd_datalist(
    dataset_json: PathLike, fold: int | None = None, num_folds: int = 5, seed: int = 0, check_files: bool = True
) -> dict[str, list[dict]]:
    """Lists of a Medical Segmentation Decathlon style ``dataset.json``, with absolute paths.

    The JSON holds ``"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}, ...]``
    and optionally ``"test": ["./imagesTs/y.nii.gz", ...]`` (and ``labels``, ``modality``, ... which are
    not used here); paths are relative to the JSON's folder.

    Args:
        dataset_json: the JSON file, or the folder holding ``dataset.json``.
        fold: ``None``: all labelled cases are returned as ``training``. An integer in
            ``0..num_folds-1``: deterministic k-fold split (MONAI's ``partition_dataset`` with
            ``shuffle=True, seed=seed``), that fold's cases are ``validation`` and the rest ``training``.
        num_folds: number of folds of the split (>= 2, at most the number of labelled cases).
        seed: seed of the shuffle before splitting.
        check_files: raise if any listed image/label file does not exist.

    Returns:
        ``{"training": [...], "validation": [...] (empty when fold is None), "testing": [...]}``; testing
        items are ``{"image": str}`` from the JSON's ``test`` list (often unlabelled).

    Raises:
        FileNotFoundError: the JSON or a listed file is missing (message names the JSON and the files).
        ValueError: malformed JSON, missing ``training`` key or items without ``image``/``label``,
            ``fold``/``num_folds`` out of range.
    """
    path = Path(dataset_json).expanduser()
    if path.is_dir():
        path = path / "dataset.json"
    path = path.resolve()
    content = _read_json(path, "MSD dataset file")
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'training' list, got {type(content).__name__}.")
    if "training" not in content:
        raise ValueError(f"{path}: no 'training' key (expected MSD format); keys found: {sorted(content)}.")
    if not isinstance(content["training"], list) or not content["training"]:
        raise ValueError(f"{path}: 'training' must be a non-empty list of {{'image': ..., 'label': ...}} items.")
    test_raw = content.get("test", [])
    if not isinstance(test_raw, list):
        raise ValueError(f"{path}: 'test' must be a list of image paths, got {type(test_raw).__name__}.")

    base = path.parent
    labelled = [
        _abs_entry(item, base, path, f"training[{i}]", require_label=True) for i, item in enumerate(content["training"])
    ]
    testing = [_abs_entry(item, base, path, f"test[{i}]", require_label=False) for i, item in enumerate(test_raw)]

    if fold is None:
        training, validation = labelled, []
    else:
        if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 2:
            raise ValueError(f"num_folds must be an integer >= 2, got {num_folds!r}.")
        if num_folds > len(labelled):
            raise ValueError(f"{path}: cannot split {len(labelled)} labelled case(s) into {num_folds} folds.")
        fold_i = _check_fold(fold, num_folds)
        parts = partition_dataset(labelled, num_partitions=num_folds, shuffle=True, seed=seed, even_divisible=False)
        validation = list(parts[fold_i])
        training = [item for k, part in enumerate(parts) if k != fold_i for item in part]
    result = {"training": training, "validation": validation, "testing": testing}
    if check_files:
        _check_listed_files(path, result)
    return result


def fewshot_datalist(dataset_dir: PathLike, fold: int = 0, check_files: bool = True) -> dict[str, list[dict]]:
    """One fold of a ``datalist_fewshot_5fold.json`` (written by this project's synthetic data generator).

    The JSON is ``{"fold_0": {"training": [{"image": "./imagesTr/a.nii.gz", "label": ...}, ...],
    "testing": [...]}, "fold_1": ...}`` with paths relative to its folder (other top-level keys are ignored).

    Args:
        dataset_dir: folder holding ``datalist_fewshot_5fold.json`` (or the JSON file itself).
        fold: which ``fold_<k>`` entry to return.
        check_files: raise if any listed file does not exist.

    Returns:
        ``{"training": [...], "testing": [...], "validation": <same list as testing>}``, absolute paths.

    Raises:
        FileNotFoundError: the JSON or a listed file is missing.
        ValueError: malformed JSON, the fold is not in the file, or a fold lacks ``training``/``testing``.
    """
    path = Path(dataset_dir).expanduser()
    if path.is_dir() or path.suffix != ".json":
        path = path / _DATALIST_FEWSHOT
    path = path.resolve()
    content = _read_json(path, "few-shot datalist")
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object with 'fold_0', 'fold_1', ... keys.")
    folds = sorted(k for k in content if isinstance(k, str) and k.startswith("fold_"))
    try:
        key = f"fold_{int(fold)}"
    except (TypeError, ValueError):
        raise ValueError(f"fold must be an integer, got {fold!r}.") from None
    if key not in content:
        raise ValueError(f"{path}: no {key!r} entry (folds in the file: {folds}).")
    entry = content[key]
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) for k in ("training", "testing")):
        raise ValueError(f"{path}: {key!r} must hold 'training' and 'testing' lists of {{'image', 'label'}} items.")
    base = path.parent
    training = [
        _abs_entry(item, base, path, f"{key}.training[{i}]", require_label=True)
        for i, item in enumerate(entry["training"])
    ]
    testing = [
        _abs_entry(item, base, path, f"{key}.testing[{i}]", require_label=False)
        for i, item in enumerate(entry["testing"])
    ]
    result = {"training": training, "testing": testing, "validation": testing}
    if check_files:
        _check_listed_files(path, {"training": training, "testing": testing})
    return result


# ------------------------------------------------------------------------------------------- inference


def find_images(dataset_dir: PathLike) -> list[str]:
    """Every scan an inference run should segment in ``dataset_dir`` (absolute paths).

    - NIfTI files (``*.nii``, ``*.nii.gz``) directly in the folder, sorted by name; then
    - every folder (the folder itself and its sub-folders, recursively, hidden ones skipped) that
      directly holds DICOM files, sorted; each such folder is one scan (one DICOM series, read by
      :py:class:`monai_ext.transforms.LoadScan`). DICOM files are recognised by their 128-byte preamble
      and ``DICM`` magic, with or without a ``.dcm`` extension.

    A path to a single file (NIfTI, or anything else MONAI's ``LoadImage`` reads) is returned as
    ``[path]``, so inference can take one file or one DICOM folder as well as a folder of scans.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist, or holds neither NIfTI files nor DICOM series
            (the message names the folder and lists what is there).
    """
    root = Path(dataset_dir).expanduser().resolve()
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} does not exist (expected a NIfTI file, a DICOM series folder, or a folder of scans)."
        )
    nifti = sorted(str(p) for p in root.iterdir() if p.is_file() and _strip_nifti_suffix(p.name) is not None)
    dicom_dirs: list[str] = []
    for current, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if _folder_has_dicom(Path(current)):
            dicom_dirs.append(str(Path(current)))
    found = nifti + sorted(dicom_dirs)
    if not found:
        raise FileNotFoundError(
            f"{root}: no images found (expected *.nii / *.nii.gz files in it, or sub-folders holding a DICOM "
            f"series). Found: {_listing(root)}"
        )
    return found
