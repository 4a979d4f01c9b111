"""A synthetic MSD-style lung/infection data set of chest-CT phantoms, with few-shot 5-fold lists.

``synthesize_dataset(out_dir)`` writes::

    out_dir/
        imagesTr/case_000.nii.gz    int16 HU, the phantom's LPS-array RAS affine (shape per case with variety)
        labelsTr/case_000.nii.gz    uint8: 0 background, 1 left lung, 2 right lung, 3 infection
        dataset.json                MSD description (+ the generation parameters)
        datalist_fewshot_5fold.json {"fold_0": {"training": [4 cases], "testing": [the rest]}, ...}
        dicom/case_000/IM_*.dcm     only with dicom=True

Every file is written to a temporary sibling and renamed, so an interrupted run leaves no
half-written file under its final name.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write
from .chest_ct import LABELS, generate_chest_ct
from .dicom_series import write_dicom_series
from .msd_description import msd_phantom_description
from .nifti_writer import save_phantom_nifti
from .seeds import derive_seed

__all__ = ["synthesize_dataset", "synth", "fewshot_folds", "case_seed"]

_N_FOLDS = 4 + 1
_TRAIN_PER_FOLD = 4


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a data set generated with ``seed`` (deterministic, 32 bit)."""
    return derive_seed(seed, index)


def fewshot_folds(n_cases: int) -> list[tuple[list[int], list[int]]]:
    """(training, testing) case indices of the 5 few-shot folds (4 training cases per fold).

    Fold f trains on cases ``4f .. 4f+3`` (modulo ``n_cases``); with 20 or more cases the training
    sets are disjoint, as in the COVID-19-CT-Seg few-shot protocol.  Testing: all other cases.
    """
    if n_cases < _N_FOLDS:
        raise ValueError(f"the 5-fold few-shot split needs at least 5 cases, got {n_cases}")
    folds = []
    for f in range(_N_FOLDS):
        train = sorted({(_TRAIN_PER_FOLD * f + t) % n_cases for t in range(_TRAIN_PER_FOLD)})
        test = [i for i in range(n_cases) if i not in train]
        folds.append((train, test))
    return folds


def _parse_triplet(value: str | Sequence[float], kind: type, name: str) -> tuple:
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
    else:
        parts = list(value)
    try:
        out = tuple(kind(float(p)) if kind is int else kind(p) for p in parts)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be three numbers, got {value!r}") from e
    if len(out) != 3:
        raise ValueError(f"{name} must be three numbers, got {value!r}")
    return out


def _save_json(obj: Any, path: Path) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")

    atomic_write(path, write)


def synthesize_dataset(
    out_dir: str | os.PathLike,
    cases: int = 10,
    seed: int = 0,
    shape: Sequence[int] = (128, 128, 96),
    spacing: Sequence[float] = (3.0, 3.0, 3.0),
    lesions: bool = True,
    nodules: bool = False,
    dicom: bool = False,
    progress: bool = True,
    variety: bool = False,
) -> dict[str, Any]:
    """Generate ``cases`` chest-CT phantoms and write them as an MSD-style data set.

    Args:
        out_dir: output folder (created if needed; must not be an existing file).
        cases: number of cases (>= 5, the few-shot split has 5 folds of 4 training cases).
        seed: data set seed; case i uses :func:`case_seed` ``(seed, i)``.
        shape: array shape (i, j, k) of each case.
        spacing: voxel size in mm.
        lesions: add COVID-19-like lesions (label 3).
        nodules: add solid nodules (unlabelled, listed in dataset.json).
        dicom: also write ``dicom/case_XXX/`` CT series.
        progress: print one line per case.
        variety: draw per case the acquisition and patient variety of real chest CT (field-of-view
            truncation, arms, contrast phase, kernel, dose, slice thickness and z spacing, patient
            size, inspiration, effusion, atelectasis, emphysema; see :func:`generate_chest_ct`).
            The image shape and spacing then differ per case (each file carries its own affine);
            each record lists its ``shape``, ``spacing`` and ``acquisition``.  ``False`` writes
            exactly the data set of before.

    Returns:
        The ``dataset.json`` content (MSD keys plus ``phantom`` with the generation parameters and
        a per-case record).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir exists and is a file, not a folder: {out}")
    cases = int(cases)
    folds = fewshot_folds(cases)  # validates cases >= 5
    shape = _parse_triplet(shape, int, "shape")
    spacing = _parse_triplet(spacing, float, "spacing")
    if min(shape) < 1 or min(spacing) <= 0:
        raise ValueError(f"shape and spacing must be positive, got {shape}, {spacing}")
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)

    entries: list[dict[str, str]] = []
    records: list[dict[str, Any]] = []
    for i in range(cases):
        t0 = time.perf_counter()
        name = f"case_{i:03d}"
        cs = case_seed(seed, i)
        case = generate_chest_ct(shape, spacing, seed=cs, lesions=lesions, nodules=nodules, variety=variety)
        hu = np.clip(np.rint(case.image), -1024, 3071).astype(np.int16)
        save_phantom_nifti(hu, case.affine, out / "imagesTr" / f"{name}.nii.gz")
        save_phantom_nifti(case.label.astype(np.uint8), case.affine, out / "labelsTr" / f"{name}.nii.gz")
        if dicom:
            write_dicom_series(hu, case.affine, out / "dicom" / name, patient_id=name.upper(),
                               seed_uid=f"monai_ext-phantom-{seed}-{i}")
        entry = {"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"}
        entries.append(entry)
        info = case.info
        record = {
            "case": name, "seed": cs,
            "infection_fraction": round(float(info["infection_fraction"]), 5),
            "lung_volume_ml": round(float(info["lung_volume_ml"]["total"]), 1),
            "lesions": info["lesions"], "nodules": info["nodules"],
        }
        if variety:
            record.update(shape=info["shape"], spacing=info["spacing"], acquisition=info["acquisition"])
        records.append(record)
        if progress:
            extra = f" shape={tuple(info['shape'])}" if variety else ""
            print(f"case {i + 1}/{cases} {name} seed={cs} infection={info['infection_fraction']:.3f}{extra} "
                  f"... {time.perf_counter() - t0:.1f} s", flush=True)

    dataset = msd_phantom_description(
        "monai_ext chest CT phantoms",
        "Synthetic chest + upper-abdomen CT phantoms (HU) with left/right lung and "
        "COVID-19-like infection labels, generated by monai_ext.phantoms.generate_chest_ct",
        "CT",
        LABELS,
        entries,
        {"generator": "monai_ext.phantoms.generate_chest_ct", "seed": int(seed), "cases": cases,
         "shape": list(shape), "spacing": list(spacing), "lesions": bool(lesions), "nodules": bool(nodules),
         "dicom": bool(dicom), "variety": bool(variety), "case_seeds": [r["seed"] for r in records],
         "records": records},
    )
    fewshot = {
        f"fold_{f}": {
            "training": [entries[i] for i in train],
            "testing": [entries[i] for i in test],
            "validation": [entries[i] for i in test],  # alias of "testing" for MONAI datalist loaders
        }
        for f, (train, test) in enumerate(folds)
    }
    _save_json(dataset, out / "dataset.json")
    _save_json(fewshot, out / "datalist_fewshot_5fold.json")
    return dataset


def synth(
    out: str,
    cases: int = 10,
    seed: int = 0,
    shape: str | Sequence[int] = "128,128,96",
    spacing: str | Sequence[float] = "3,3,3",
    dicom: bool = False,
    nodules: bool = False,
    variety: bool = False,
) -> dict[str, Any]:
    """CLI entry (``python -m monai_ext synth --out DIR --cases 10 --seed 0 [--variety]``): write a phantom data set.

    ``shape`` and ``spacing`` accept a tuple/list or a comma string such as ``"128,128,96"``;
    ``variety`` draws the acquisition and patient variety per case (see :func:`synthesize_dataset`).
    Returns a short summary (folder, number of cases, mean infection fraction).
    """
    ds = synthesize_dataset(out, cases=cases, seed=seed, shape=_parse_triplet(shape, int, "shape"),
                            spacing=_parse_triplet(spacing, float, "spacing"), dicom=dicom, nodules=nodules,
                            variety=variety)
    fr = [r["infection_fraction"] for r in ds["phantom"]["records"]]
    return {"out": str(Path(out).resolve()), "cases": ds["numTraining"],
            "dataset_json": str(Path(out).resolve() / "dataset.json"),
            "datalist": str(Path(out).resolve() / "datalist_fewshot_5fold.json"),
            "mean_infection_fraction": round(float(np.mean(fr)), 4)}
