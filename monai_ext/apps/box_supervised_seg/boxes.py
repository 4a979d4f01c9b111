"""Box files: one 3D box per case in world millimetres, read from CSV or JSON and written from labels.

CSV: a header ``case,x_min,y_min,z_min,x_max,y_max,z_max`` and one row per case. JSON: ``{"case": [x_min, y_min,
z_min, x_max, y_max, z_max], ...}`` or a list of ``{"case": ..., "box": [...]}``. ``case`` is the image file name
without its ``.nii`` / ``.nii.gz`` suffix (``liver_003`` for ``imagesTr/liver_003.nii.gz``), coordinates are the
world millimetres of the image's own affine (RAS+, as NIfTI stores it and MONAI and nibabel read it), and a box
holds the voxels whose centres lie inside it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ...io import PathLike, atomic_write, case_name, require_file

__all__ = ["BOX_COLUMNS", "case_name", "label_box_mm", "read_box_file", "write_box_file"]

BOX_COLUMNS = ("x_min", "y_min", "z_min", "x_max", "y_max", "z_max")


def _box_values(path: Path, case: str, values) -> list[float]:
    try:
        box = [float(v) for v in values]
    except (TypeError, ValueError):
        box = []
    if len(box) != 6 or not all(np.isfinite(box)):
        raise ValueError(f"{path}: case {case!r}: expected 6 numbers {list(BOX_COLUMNS)} (mm), got {values!r}.")
    if any(box[i + 3] <= box[i] for i in range(3)):
        raise ValueError(f"{path}: case {case!r}: box {box} mm has a zero or negative extent (max <= min).")
    return box


def read_box_file(path: PathLike) -> dict[str, list[float]]:
    """``{case: [x_min, y_min, z_min, x_max, y_max, z_max]}`` (mm) from a CSV or JSON box file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown format, missing columns, a case listed twice, or a box that is not 6 finite numbers
            with a positive extent (the message names the file and the case).
    """
    p = require_file(path, "a box file (.csv or .json) with one 3D box per case in world mm")
    boxes: dict[str, list[float]] = {}

    def add(case, values) -> None:
        case = str(case).strip()
        if not case:
            raise ValueError(f"{p}: a box without a case name.")
        if case in boxes:
            raise ValueError(f"{p}: case {case!r} is listed twice.")
        boxes[case] = _box_values(p, case, values)

    if p.suffix.lower() == ".csv":
        with open(p, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("case",) + BOX_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{p}: missing column(s) {missing}; expected the header case,{','.join(BOX_COLUMNS)}.")
            for row in reader:
                add(row["case"], [row[c] for c in BOX_COLUMNS])
    elif p.suffix.lower() == ".json":
        try:
            content = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON ({e}).") from e
        if isinstance(content, Mapping):
            for case, values in content.items():
                add(case, values)
        elif isinstance(content, list) and all(isinstance(r, Mapping) and {"case", "box"} <= set(r) for r in content):
            for record in content:
                add(record["case"], record["box"])
        else:
            raise ValueError(f"{p}: expected {{case: [6 numbers]}} or a list of {{'case': ..., 'box': [...]}}.")
    else:
        raise ValueError(f"{p}: a box file is .csv or .json, got {p.suffix!r}.")
    if not boxes:
        raise ValueError(f"{p}: no boxes in the file.")
    return boxes


def write_box_file(path: PathLike, boxes: Mapping[str, Sequence[float]]) -> Path:
    """Write ``{case: box_mm}`` as a CSV box file (atomically); returns the path."""
    rows = [[case] + [f"{float(v):.3f}" for v in box] for case, box in sorted(boxes.items())]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("case",) + BOX_COLUMNS)
            writer.writerows(rows)

    return atomic_write(path, write)


def label_box_mm(label_path: PathLike) -> list[float]:
    """The tight 3D box (world mm, outer voxel edges) around the foreground (> 0) of a label file: the box an
    annotator would draw around the whole object, which is seldom tight on each slice.

    Raises:
        ValueError: the label has no foreground (the message names the file).
    """
    img = nib.load(str(label_path))
    data = np.asarray(img.dataobj)
    if data.ndim > 3:
        data = data.reshape(data.shape[:3] + (-1,)).max(axis=-1)
    fg = np.nonzero(data > 0)
    if not fg[0].size:
        raise ValueError(f"{label_path}: the label has no foreground, so no box can be drawn around it.")
    lo = np.array([a.min() for a in fg], float) - 0.5
    hi = np.array([a.max() for a in fg], float) + 0.5
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    world = (img.affine @ corners.T)[:3]
    return [float(v) for v in np.concatenate([world.min(axis=1), world.max(axis=1)])]
