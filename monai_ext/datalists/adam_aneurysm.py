"""Dataset list of the ADAM challenge (Aneurysm Detection And segMentation, MICCAI 2020) layout of TOF-MR
angiograms with intracranial aneurysms, as the challenge distributes it and as
:func:`monai_ext.phantoms.synthesize_tof_mra_dataset` writes it::

    dataset_dir/<case>/orig/TOF.nii.gz     the TOF-MRA (required; ``pre/TOF.nii.gz``, the preprocessed copy, is ignored)
    dataset_dir/<case>/aneurysms.nii.gz    optional label: 0 background, 1 untreated aneurysm, 2 treated aneurysm
    dataset_dir/<case>/location.txt        optional: one aneurysm per line, "x, y, z, r": centre in voxel indices of
                                           orig/TOF.nii.gz and radius in voxels of its first axis
    dataset_dir/<case>/points.json         optional two-point annotations: {"aneurysms": [{"neck": [x, y, z],
                                           "dome": [x, y, z]}], "units": "mm", "frame": "RAS (NIfTI world)"}

Each aneurysm is returned as its two-point annotation (neck, dome) in NIfTI RAS world mm: the sphere of centre the
midpoint and radius half the distance (the annotation of "An Efficient Data Strategy for the Detection of Brain
Aneurysms from MRA with Deep Learning").
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..io import PathLike, folder_listing, voxel_to_world, world_to_voxel
from .json_lists import read_json_file

__all__ = ["adam_aneurysm_datalist"]

_SEPARATORS = re.compile(r"[,\s]+")


def _location_points(path: Path, affine: np.ndarray) -> list[list[list[float]]]:
    """Neck / dome pairs (world mm) of the aneurysms of an ADAM ``location.txt`` (centre voxel and radius in voxels
    of the first axis), along the first world axis (only centre and radius are known)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e}).") from e
    step_mm = float(np.linalg.norm(affine[:3, 0]))  # voxel size along the first array axis
    e = np.array([1.0, 0.0, 0.0])
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        if not fields:
            continue
        if len(fields) != 4:
            raise ValueError(f"{path}, line {number}: expected 4 numbers 'x, y, z, r' (centre voxel, radius in "
                             f"voxels), got {len(fields)} value(s): {line.strip()!r}.")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected 4 numbers 'x, y, z, r', got non-numeric values: "
                             f"{line.strip()!r}.") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path}, line {number}: expected 4 finite numbers 'x, y, z, r', got {line.strip()!r}.")
        if values[3] <= 0:
            raise ValueError(f"{path}, line {number}: the radius must be positive (voxels), got {values[3]:g}.")
        centre = voxel_to_world(values[:3], affine)[0]
        r_mm = values[3] * step_mm
        pairs.append([[float(v) for v in centre - r_mm * e], [float(v) for v in centre + r_mm * e]])
    return pairs


def _json_points(path: Path) -> list[list[list[float]]]:
    """Neck / dome pairs (world mm) of a ``points.json``; ``ValueError`` naming the file and the entry at fault."""
    doc = read_json_file(path, "two-point aneurysm annotation file")
    expected = '{"aneurysms": [{"neck": [x, y, z], "dome": [x, y, z]}, ...], "units": "mm"}'
    if not isinstance(doc, dict) or not isinstance(doc.get("aneurysms"), list):
        raise ValueError(f"{path}: expected {expected}, got {type(doc).__name__} without an 'aneurysms' list.")
    units = doc.get("units", "mm")
    if units != "mm":
        raise ValueError(f"{path}: 'units' must be 'mm' (RAS world millimetres), got {units!r}.")
    frame = doc.get("frame", "RAS")
    if not isinstance(frame, str) or not frame.upper().startswith("RAS"):
        raise ValueError(f"{path}: 'frame' must be RAS (NIfTI world coordinates), got {frame!r}.")
    pairs = []
    for k, item in enumerate(doc["aneurysms"]):
        pair = []
        for key in ("neck", "dome"):
            value = item.get(key) if isinstance(item, dict) else None
            ok = isinstance(value, list) and len(value) == 3 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            if not ok:
                raise ValueError(f"{path}: aneurysms[{k}] must have 'neck' and 'dome' as [x, y, z] (3 finite numbers, "
                                 f"mm), got {key}={value!r}.")
            pair.append([float(v) for v in value])
        if pair[0] == pair[1]:
            raise ValueError(f"{path}: aneurysms[{k}] has neck == dome {pair[0]}: a sphere of radius 0.")
        pairs.append(pair)
    return pairs


def _check_point_inside(case: str, pairs: list[list[list[float]]], affine: np.ndarray, shape: tuple[int, ...],
                  source: Path) -> None:
    """``ValueError`` naming the case, the point and the volume shape when a neck or dome lies outside the image."""
    n = np.asarray(shape[:3], dtype=float)
    for k, pair in enumerate(pairs):
        for name, point in zip(("neck", "dome"), pair):
            v = world_to_voxel(point, affine)[0]
            if np.any(v < -0.5) or np.any(v > n - 0.5):
                raise ValueError(
                    f"case {case}: aneurysm {k} {name} {point} mm (voxel {np.round(v, 2).tolist()}, from "
                    f"{source.name}) lies outside the volume of shape {tuple(int(s) for s in shape[:3])} (orig/TOF.nii.gz).")


def adam_aneurysm_datalist(dataset_dir: PathLike) -> dict[str, Any]:
    """The cases of an ADAM-layout folder (see the module docstring), sorted by folder name.

    Each case folder directly under ``dataset_dir`` that holds ``orig/TOF.nii.gz`` is a case (hidden folders and
    folders without it are skipped; ``pre/TOF.nii.gz`` is not used). Aneurysm points come from ``points.json`` when
    present, else from ``location.txt`` (lines of 4 numbers separated by commas and/or whitespace; blank lines are
    skipped): the centre ``c`` (voxel indices -> world mm through the NIfTI affine of ``orig/TOF.nii.gz``, read from
    its header only) and the radius ``r`` (voxels of the first array axis times that axis's voxel size = mm) give
    ``neck = c - r e`` and ``dome = c + r e`` with ``e`` the unit vector of the first world axis (R): the axis is
    arbitrary, only the centre and the radius are known.

    Args:
        dataset_dir: the folder holding the case folders.

    Returns:
        ``{"cases": [...], "layout": "adam"}``; each case ``{"case": folder name, "image": absolute path of
        orig/TOF.nii.gz, "label": absolute path of aneurysms.nii.gz or None (values 0 background, 1 untreated,
        2 treated aneurysm, as ADAM), "points": [[neck, dome], ...] ((N, 2, 3) nested lists of RAS world mm; []
        without aneurysms), "points_source": "points.json" | "location.txt" | "none"}``.

    Raises:
        FileNotFoundError: ``dataset_dir`` is missing, or holds no case folder with ``orig/TOF.nii.gz`` (the message
            lists its content).
        ValueError: a malformed ``points.json`` or ``location.txt`` (the file and line or entry are named: wrong
            number of columns, non-numeric values, a non-positive radius), or an aneurysm point outside its volume
            (voxel coordinates outside [-0.5, n - 0.5]; the case, the point and the shape are named).
    """
    root = Path(dataset_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset_dir {root} does not exist or is not a folder (expected ADAM case folders "
                                "<case>/orig/TOF.nii.gz).")
    folders = sorted(p for p in root.iterdir()
                     if p.is_dir() and not p.name.startswith(".") and (p / "orig" / "TOF.nii.gz").is_file())
    if not folders:
        raise FileNotFoundError(f"{root}: no ADAM case folder (<case>/orig/TOF.nii.gz). Found: {folder_listing(root)}")
    cases = []
    for folder in folders:
        image = folder / "orig" / "TOF.nii.gz"
        label = folder / "aneurysms.nii.gz"
        points_json, location = folder / "points.json", folder / "location.txt"
        header = nib.load(str(image))
        affine = np.asarray(header.affine, dtype=np.float64)
        if points_json.is_file():
            pairs, source = _json_points(points_json), points_json
        elif location.is_file():
            pairs, source = _location_points(location, affine), location
        else:
            pairs, source = [], None
        if source is not None:
            _check_point_inside(folder.name, pairs, affine, tuple(header.shape), source)
        cases.append({"case": folder.name, "image": str(image), "label": str(label) if label.is_file() else None,
                      "points": pairs, "points_source": source.name if source is not None else "none"})
    return {"cases": cases, "layout": "adam"}
