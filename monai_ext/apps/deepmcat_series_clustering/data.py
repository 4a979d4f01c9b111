"""The series of the DeepMCAT bundle and their 2D frames.

A data set is a folder of series: NIfTI volumes (``*.nii``, ``*.nii.gz``) and / or sub-folders each holding one DICOM
series (:func:`monai_ext.io.find_images`). A ``series.csv`` (``series,image[,category][,label][,subject]``), when
there, names the series and gives their categories, used only to map clusters to categories and to score them, never
for training. When ``dataset_dir`` is missing or empty, the embedded default is generated there first: synthetic
cardiac MR series (:func:`monai_ext.phantoms.synthesize_cmr_dataset`).

Frames (the paper: 2D images at t = 0, every z-slice of a stack): every slice of a series along its last spatial axis
(the first time point of a 4D series), the longest side resized to ``size`` and zero-padded to a square, then z-scored
per frame (MONAI ``Resize``, ``SpatialPad``, ``NormalizeIntensity``).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import NormalizeIntensity, Resize, SpatialPad

from ...datalists.case_split import split_cases
from ...io import PathLike, ensure_dataset, find_images, strip_nifti_suffix
from ...phantoms.cardiac_mr import CMR_CATEGORIES, CMR_SERIES_CSV, synthesize_cmr_dataset
from ...transforms.input_checks import LoadScan

__all__ = ["cmr_series_datalist", "list_series", "series_frame_items", "series_frames", "series_name"]


def series_name(path: str, root: Path) -> str:
    """A series' name: a NIfTI file's name without suffix, a DICOM folder's path relative to ``root``."""
    p = Path(path)
    stem = strip_nifti_suffix(p.name)
    if stem is not None:
        return stem
    try:
        rel = str(p.relative_to(root))
    except ValueError:
        return p.name
    return p.name if rel in ("", ".") else rel


def list_series(dataset_dir: PathLike, series_csv: str = CMR_SERIES_CSV,
                categories: tuple[str, ...] = CMR_CATEGORIES) -> list[dict[str, Any]]:
    """``{"image", "series", "subject", "label", "category"}`` per series in ``dataset_dir``: the rows of
    ``series_csv`` when it exists (``image`` relative to the folder; ``label`` or ``category`` optional, -1 / "" when
    absent), else every NIfTI file and DICOM series folder found (unlabelled, one subject per series).

    Raises:
        FileNotFoundError: a folder with no series, or a listed image that does not exist (both named).
        ValueError: a category that is not one of ``categories`` or a label outside ``0 .. len(categories) - 1``.
    """
    root = Path(dataset_dir).expanduser().resolve()
    table = root / series_csv
    items: list[dict[str, Any]] = []
    if table.is_file():
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "image" not in rows[0]:
            raise ValueError(f"{table}: a header with at least an 'image' column and one row per series expected.")
        for n, row in enumerate(rows, start=2):
            path = (root / row["image"]).resolve()
            if not path.exists():
                raise FileNotFoundError(f"{table}, line {n}: image {row['image']!r} does not exist ({path}).")
            category = (row.get("category") or "").strip()
            label = int(row["label"]) if (row.get("label") or "").strip() else -1
            if category and category not in categories:
                raise ValueError(f"{table}, line {n}: category {category!r} is not one of {list(categories)}.")
            if category and label < 0:
                label = categories.index(category)
            if not -1 <= label < len(categories):
                raise ValueError(f"{table}, line {n}: label {label} outside 0..{len(categories) - 1} ({list(categories)}).")
            name = (row.get("series") or "").strip() or series_name(str(path), root)
            items.append({"image": str(path), "series": name, "subject": (row.get("subject") or name).strip(),
                          "label": label, "category": categories[label] if label >= 0 else ""})
    else:
        for path in find_images(root):
            name = series_name(path, root)
            items.append({"image": path, "series": name, "subject": name, "label": -1, "category": ""})
    return items


def cmr_series_datalist(dataset_dir: PathLike, series_csv: str = CMR_SERIES_CSV, test_fraction: float = 0.3,
                        split_seed: int = 0, synth_series: int = 200, synth_long_tail: float = 1.0,
                        synth_seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``{"training", "testing"}`` lists of series (:func:`list_series`), split by subject: ``test_fraction`` of the
    subjects (a seeded draw, the same for every training seed) are held out. Generates the embedded data
    (``synth_series`` series per category, long-tail ratio ``synth_long_tail``, seed ``synth_seed``) when
    ``dataset_dir`` is missing or empty."""
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}.")
    root = ensure_dataset(
        dataset_dir, lambda d: synthesize_cmr_dataset(d, series_per_category=synth_series, long_tail=synth_long_tail,
                                                      seed=synth_seed),
        f"synthetic cardiac MR series ({synth_series} per category, long tail {synth_long_tail}, seed {synth_seed})",
    )
    series = list_series(root, series_csv)
    subjects: dict[str, list[dict[str, Any]]] = {}
    for s in series:
        subjects.setdefault(s["subject"], []).append(s)
    cases = [{"case": k, "series": v} for k, v in subjects.items()]
    n_test = int(round(float(test_fraction) * len(cases)))
    split = split_cases(cases, 0, n_test, split_seed, root)
    return {part: [s for c in split[part] for s in c["series"]] for part in ("training", "testing")}


def series_frames(path: PathLike, size: int = 64, loader: LoadScan | None = None) -> np.ndarray:
    """The frames of one series (NIfTI file or DICOM folder): float32 ``(slices, 1, size, size)``, z-scored per frame.

    Raises (naming the path): ``FileNotFoundError`` / ``ValueError`` from :class:`monai_ext.transforms.LoadScan` for
    a missing or unreadable series; ``ValueError`` for an image with fewer than 2 or more than 4 spatial dimensions
    or a side shorter than 8 pixels. ``loader``: a ``LoadScan(image_only=True, ensure_channel_first=True)`` to reuse."""
    img = (loader or LoadScan(image_only=True, ensure_channel_first=True))(str(path))
    arr = torch.as_tensor(img).float()[0]
    if arr.ndim == 4:   # (X, Y, Z, T): the first time point
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or min(arr.shape[:2]) < 8:
        raise ValueError(f"{path}: a series of 2D frames expected (X, Y[, slices[, time]], sides >= 8 pixels), got "
                         f"an image of shape {tuple(img.shape[1:])}.")
    resize = Resize(spatial_size=size, size_mode="longest", mode="area")
    pad = SpatialPad((size, size))
    norm = NormalizeIntensity()
    frames = [norm(pad(resize(arr[None, :, :, k]))) for k in range(arr.shape[-1])]
    return torch.stack([torch.as_tensor(f) for f in frames]).numpy().astype(np.float32)


def series_frame_items(series: list[dict[str, Any]], size: int = 64, progress: bool = True) -> list[dict[str, Any]]:
    """One item per frame of every series in ``series`` (as :func:`list_series` gives): ``{"image"`` (1, size, size)
    float32, ``"index"`` (the frame's position in the list), ``"label"``, ``"series"``, ``"slice"}``."""
    if not series:
        raise ValueError("series_frame_items: no series given (an empty data set or split).")
    items: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    loader = LoadScan(image_only=True, ensure_channel_first=True)
    for n, s in enumerate(series):
        for k, frame in enumerate(series_frames(s["image"], size, loader)):
            items.append({"image": frame, "index": len(items), "label": int(s.get("label", -1)),
                          "series": s["series"], "slice": k})
        if progress and ((n + 1) % 200 == 0 or n + 1 == len(series)):
            print(f"frames of {n + 1}/{len(series)} series: {len(items)} ... {time.perf_counter() - t0:.1f} s",
                  flush=True)
    return items
