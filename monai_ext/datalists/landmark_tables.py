"""A folder of 2D images plus a table of landmark coordinates (a fixed set of N landmarks per image), as X-ray
landmark data sets come: the ISBI 2015 cephalometric challenge, hand and pelvis radiograph sets.

The table is one of:

- a CSV file: ``image,<name>_x,<name>_y,...`` (a header row; one row per labelled image; pixels);
- a JSON file: ``{"landmark_names": [...], "images": {"<image file>": [[x, y], ...]}}`` or just the
  ``{"<image file>": [[x, y], ...]}`` mapping;
- a folder of ``<image stem>.txt`` files whose first N lines are ``x,y`` (the ISBI 2015 ``AnnotationsByMD`` layout;
  later lines, such as its classification codes, are ignored).

Coordinates are (x, y) pixels of the picture, x to the right and y down: the index order of the array MONAI's
``PILReader`` loads (PNG, BMP, JPEG). Images in the folder without a row are unlabelled.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..io import PathLike, case_name, folder_listing, is_dicom_file
from .json_lists import read_json_file

__all__ = ["LANDMARK_IMAGE_SUFFIXES", "landmark_table_datalist", "radiograph_images", "read_landmark_table"]

LANDMARK_IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".nii", ".nii.gz", ".dcm")


def _csv_table(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: empty landmark table; expected a header 'image,<name>_x,<name>_y,...'.")
    header = [c.strip() for c in rows[0]]
    if len(header) < 3 or len(header) % 2 != 1:
        raise ValueError(f"{path}: the header must be 'image' and an x, y column pair per landmark, got {header}.")
    names = [h[:-2] if h.endswith("_x") else h for h in header[1::2]]
    table = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {n}: {len(row) - 1} coordinates for {len(names)} landmarks "
                             f"({2 * len(names)} expected): {row[:3]}...")
        try:
            table[row[0].strip()] = np.asarray([float(v) for v in row[1:]], dtype=np.float64).reshape(-1, 2)
        except ValueError as e:
            raise ValueError(f"{path}, line {n}: a coordinate is not a number ({e}).") from e
    return names, table


def _json_table(path: Path) -> tuple[list[str] | None, dict[str, np.ndarray]]:
    doc = read_json_file(path, "landmark table")
    names = None
    if isinstance(doc, dict) and "images" in doc:
        names, doc = doc.get("landmark_names"), doc["images"]
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping image file -> [[x, y], ...].")
    table = {}
    for image, points in doc.items():
        arr = np.asarray(points, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"{path}: the landmarks of {image!r} must be a list of [x, y] pairs, got shape "
                             f"{arr.shape}.")
        table[str(image)] = arr
    return (None if names is None else [str(n) for n in names]), table


def _txt_folder_table(folder: Path, num_landmarks: int | None) -> dict[str, np.ndarray]:
    table = {}
    for path in sorted(folder.glob("*.txt")):
        points = []
        for line in path.read_text().splitlines():
            parts = line.replace(" ", "").split(",")
            if len(parts) != 2 or (num_landmarks is not None and len(points) == num_landmarks):
                break
            try:
                points.append([float(parts[0]), float(parts[1])])
            except ValueError:
                break
        if not points:
            raise ValueError(f"{path}: expected lines 'x,y' (one landmark each) at the start of the file.")
        table[path.stem] = np.asarray(points, dtype=np.float64)
    if not table:
        raise ValueError(f"{folder}: no .txt landmark files (the ISBI 2015 layout: <image stem>.txt with 'x,y' "
                         f"lines); it holds {folder_listing(folder)}.")
    return table


def read_landmark_table(path: PathLike, num_landmarks: int | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(landmark_names, {image: (N, 2) pixels})`` of a CSV, JSON or ISBI-style folder table (module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file: a malformed table, images with different numbers of landmarks, a count other
            than ``num_landmarks``, or coordinates that are not finite.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"landmark table {p} not found (a CSV, a JSON or a folder of ISBI-style .txt files).")
    names: list[str] | None
    if p.is_dir():
        names, table = None, _txt_folder_table(p, num_landmarks)
    elif p.suffix.lower() == ".csv":
        names, table = _csv_table(p)
    elif p.suffix.lower() == ".json":
        names, table = _json_table(p)
    else:
        raise ValueError(f"{p}: a landmark table is a .csv, a .json or a folder of .txt files, got {p.suffix!r}.")
    if not table:
        raise ValueError(f"{p}: the landmark table lists no image.")
    counts = {len(v) for v in table.values()}
    expected = num_landmarks if num_landmarks is not None else (len(names) if names else None)
    if len(counts) > 1 or (expected is not None and counts != {int(expected)}):
        bad = next(k for k, v in table.items() if len(v) != (expected or len(next(iter(table.values())))))
        raise ValueError(f"{p}: every image must have {expected or 'the same number of'} landmarks; {bad!r} has "
                         f"{len(table[bad])}.")
    for image, points in table.items():
        if not np.all(np.isfinite(points)):
            raise ValueError(f"{p}: the landmarks of {image!r} are not all finite numbers.")
    n = counts.pop()
    return (names if names else [f"landmark_{i}" for i in range(n)]), table


def landmark_table_datalist(images_dir: PathLike, table: PathLike,
                            num_landmarks: int | None = None) -> tuple[list[str], list[dict[str, Any]], list[dict]]:
    """``(landmark_names, labelled, unlabelled)`` items of the images in ``images_dir`` (sorted by name).

    A labelled item is ``{"image": path, "points": (N, 2) list, "name": stem}``; an image without a row is
    unlabelled (``{"image", "name"}``). A table row is matched to an image by file name or by stem (ISBI: ``001``
    for ``001.bmp``).

    Raises:
        FileNotFoundError: ``images_dir`` is missing, or a table row names an image that is not there.
        ValueError: the table is malformed (:func:`read_landmark_table`) or ``images_dir`` holds no image.
    """
    folder = Path(images_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"images folder {folder} not found.")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(LANDMARK_IMAGE_SUFFIXES))
    if not images:
        raise ValueError(f"{folder}: no image ({', '.join(LANDMARK_IMAGE_SUFFIXES)}); it holds "
                         f"{folder_listing(folder)}.")
    names, rows = read_landmark_table(table, num_landmarks)
    by_name = {p.name: p for p in images}
    by_stem = {case_name(p.name): p for p in images}
    labelled_paths = {}
    for key, points in rows.items():
        path = by_name.get(key) or by_stem.get(case_name(key))
        if path is None:
            raise FileNotFoundError(f"{table}: row {key!r} names an image that is not in {folder}.")
        labelled_paths[path] = points
    labelled = [{"image": str(p), "points": labelled_paths[p].tolist(), "name": case_name(p.name)}
                for p in images if p in labelled_paths]
    unlabelled = [{"image": str(p), "name": case_name(p.name)} for p in images if p not in labelled_paths]
    return names, labelled, unlabelled


def radiograph_images(path: PathLike) -> list[dict[str, str]]:
    """``[{"image": path}]`` of the 2D images in a folder (pictures, NIfTI, DICOM files with or without ``.dcm``;
    sorted, not recursive), or of the one image ``path`` names. ``FileNotFoundError`` naming the folder and what it
    holds when there is none."""
    p = Path(path).expanduser()
    if p.is_file():
        return [{"image": str(p.resolve())}]
    if not p.is_dir():
        raise FileNotFoundError(f"{p} does not exist; expected a folder of radiographs or one image.")
    found = sorted(f for f in p.iterdir() if f.is_file() and (f.name.lower().endswith(LANDMARK_IMAGE_SUFFIXES)
                                                              or is_dicom_file(f)))
    if not found:
        raise FileNotFoundError(f"{p}: no image ({', '.join(LANDMARK_IMAGE_SUFFIXES)} or DICOM); it holds "
                                f"{folder_listing(p)}.")
    return [{"image": str(f.resolve())} for f in found]
