"""Training / validation / testing lists of the brain-tumour bundle, and the inference list.

Recognised in ``dataset_dir``: a BraTS data set (2015 ``.mha``, 2017-2021 and 2023 NIfTI layouts, through
:func:`monai_ext.datalists.brats_datalist`) or the Medical Segmentation Decathlon's brain-tumour task
(``dataset.json`` + ``imagesTr/`` of 4D NIfTI files, FLAIR, T1, T1-Gd, T2). When ``dataset_dir`` is missing or
empty the embedded default is generated there: synthetic BraTS-like cases
(:func:`monai_ext.phantoms.synthesize_brain_tumor_dataset`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...datalists.brats import BRATS_MODALITIES, brats_datalist, check_modalities
from ...datalists.case_split import split_cases
from ...datalists.msd import msd_datalist
from ...io import PathLike, find_images, folder_has_dicom, folder_listing, strip_nifti_suffix
from ...phantoms.brain_tumor_mri import ensure_brain_tumor_dataset

__all__ = ["MSD_BRAIN_LABEL_MAPPING", "brain_tumor_datalist", "brain_tumor_inference_datalist"]

#: MSD Task01_BrainTumour labels (1 edema, 2 non-enhancing tumour, 3 enhancing) -> the bundle's classes
MSD_BRAIN_LABEL_MAPPING: dict[int, int] = {0: 0, 1: 2, 2: 1, 3: 3}

#: DICOM series folder names -> contrast (checked in this order: 't1c' before 't1')
_SERIES_PATTERNS: tuple[tuple[str, str], ...] = (
    ("flair", r"flair|t2f"),
    ("t1c", r"t1c|t1ce|t1gd|t1_gd|t1\+c|t1post|t1_post|t1-ce"),
    ("t1", r"t1|t1n|t1w"),
    ("t2", r"t2|t2w"),
)


def _is_msd_brain(root: Path) -> bool:
    return (root / "dataset.json").is_file() and (root / "imagesTr").is_dir()


def brain_tumor_datalist(
    dataset_dir: PathLike,
    modalities: Sequence[str] | str = BRATS_MODALITIES,
    num_val: int = 4,
    num_test: int = 8,
    split_seed: int = 0,
    synthesize_if_missing: bool = True,
    synth_cases: int = 48,
    synth_seed: int = 0,
) -> dict[str, Any]:
    """The cases of ``dataset_dir`` split into training, validation and testing lists (absolute paths).

    The split is a shuffle with ``split_seed`` (fixed by default, so that runs with different training seeds
    share their test cases): the first ``num_test`` cases are the test set, the next ``num_val`` the validation
    set (checkpoint selection), the rest the training set.

    Args:
        dataset_dir: a BraTS data set, an MSD Task01_BrainTumour folder, or a missing / empty folder where
            ``synth_cases`` synthetic cases (seed ``synth_seed``) are generated first.
        modalities: the contrasts a model uses, any subset of FLAIR, T1, T1c, T2 (``"flair"``, ``"t1"``,
            ``"t1c"``, ``"t2"``); channel order is always that canonical order.
        num_val, num_test: sizes of the validation and test sets.
        split_seed: seed of the shuffle before splitting.

    Returns:
        ``{"training", "validation", "testing": [{"image": paths (one per contrast) or one 4D file, "label",
        "case"}], "label_mapping": {source value: class}, "modalities": [...], "layout": str}``; classes
        0 background, 1 necrotic / non-enhancing core, 2 edema, 3 enhancing tumour.

    Raises:
        FileNotFoundError: no data set in ``dataset_dir`` (and nothing generated).
        ValueError: a case misses a selected contrast or its label, or too few cases for the split.
    """
    root = ensure_brain_tumor_dataset(dataset_dir, synth_cases, synth_seed, enabled=synthesize_if_missing)
    if _is_msd_brain(root):
        items = msd_datalist(root)["training"]
        cases = [{"case": strip_nifti_suffix(Path(i["image"]).name), **i} for i in items]
        listing = {"cases": cases, "layout": "msd", "modalities": list(check_modalities(modalities)),
                   "label_mapping": dict(MSD_BRAIN_LABEL_MAPPING)}
    else:
        listing = brats_datalist(root, modalities)
    out = split_cases(listing["cases"], num_val, num_test, split_seed, root, sort_key=lambda c: str(c["image"]))
    out.update({k: listing[k] for k in ("label_mapping", "modalities", "layout")})
    return out


def _series_contrast(name: str) -> str | None:
    tokens = name.lower()
    for contrast, pattern in _SERIES_PATTERNS:
        if re.search(rf"(^|[^a-z0-9])({pattern})($|[^a-z0-9])", tokens):
            return contrast
    return None


def _dicom_case(folder: Path, mods: tuple[str, ...]) -> dict[str, Any] | None:
    """A case folder whose sub-folders are DICOM series named by contrast (``flair/``, ``T1c_post/``, ...)."""
    series: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        contrast = _series_contrast(sub.name)
        if contrast is not None and folder_has_dicom(sub):
            series.setdefault(contrast, []).append(sub)
    if not series:
        return None
    missing = [m for m in mods if m not in series]
    repeated = {m: [str(p) for p in series[m]] for m in mods if len(series.get(m, [])) > 1}
    if missing or repeated:
        raise ValueError(
            f"{folder}: DICOM series by contrast {({k: [p.name for p in v] for k, v in series.items()})}; "
            + (f"no series for {missing}" if missing else f"several series for {repeated}")
            + f". Expected one series folder per selected contrast {list(mods)}, named after it (flair, t1, t1c, t2)."
        )
    return {"case": folder.name, "image": [str(series[m][0]) for m in mods]}


def brain_tumor_inference_datalist(dataset_dir: PathLike, modalities: Sequence[str] | str = BRATS_MODALITIES) -> list:
    """The cases to segment in ``dataset_dir``, as MONAI items ``{"image": paths or path, "case"}``.

    Recognised, in this order: a BraTS data set or case folder (labels not needed); a folder (or a folder of
    case folders) whose sub-folders are DICOM series named after their contrast (``flair``, ``t1``, ``t1c`` /
    ``t1ce`` / ``t1gd``, ``t2``); multi-channel NIfTI files holding the four contrasts (MSD Task01 order FLAIR,
    T1, T1-Gd, T2), given directly or as a folder of them. A model with one contrast also takes plain NIfTI
    files and DICOM series folders (:func:`monai_ext.io.find_images`).

    Raises:
        FileNotFoundError: nothing recognised (the message lists the folder's content).
        ValueError: a case misses a selected contrast.
    """
    mods = check_modalities(modalities)
    root = Path(dataset_dir).expanduser().resolve()
    if root.is_file():
        return [{"image": str(root), "case": strip_nifti_suffix(root.name) or root.stem}]
    if not root.is_dir():
        raise FileNotFoundError(f"dataset_dir {root}: no such file or folder (expected BraTS case folders, "
                                "multi-channel NIfTI files or folders of DICOM series named by contrast).")
    try:
        cases = brats_datalist(root, mods, require_label=False)["cases"]
        return [{"case": c["case"], "image": c["image"]} for c in cases]
    except FileNotFoundError:
        pass
    case = _dicom_case(root, mods)
    if case is not None:  # dataset_dir is one case
        return [case]
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    dicom_cases = [c for c in (_dicom_case(f, mods) for f in subfolders) if c is not None]
    nifti = sorted(p for p in root.iterdir() if p.is_file() and strip_nifti_suffix(p.name) is not None)
    items = dicom_cases + [{"image": str(p), "case": strip_nifti_suffix(p.name)} for p in nifti]
    if not items and len(mods) == 1:
        items = [{"image": p, "case": Path(p).name} for p in find_images(root)]
    if not items:
        raise FileNotFoundError(
            f"{root}: no case found for the contrasts {list(mods)}. Expected BraTS case folders (<case>_flair/_t1/"
            "_t1ce/_t2.nii.gz or <case>-t2f/-t1n/-t1c/-t2w.nii.gz), multi-channel NIfTI files (FLAIR, T1, T1c, T2 "
            f"as channels), or case folders of DICOM series named flair/t1/t1c/t2. Found: {folder_listing(root)}"
        )
    return items
