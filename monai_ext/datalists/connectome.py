"""Dataset list for connectivity matrices a user has on disk: one matrix file per subject plus a labels CSV.

Layout (the embedded phantoms are written the same way)::

    dataset_dir/
      labels.csv            subject,label       (label: a class name, e.g. CN / AD, or its index)
      matrices/sub-0001.npy (or .csv / .txt / .tsv; also found directly in dataset_dir/, or given as a
                             path relative to dataset_dir in the subject column)
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import CONNECTOME_SUFFIXES, folder_listing
from .case_split import split_cases

__all__ = ["CONNECTOME_LABELS_CSV", "connectome_files", "read_connectome_labels", "connectome_datalist"]

CONNECTOME_LABELS_CSV = "labels.csv"


def _matrix_file(root: Path, subject: str) -> Path | None:
    given = root / subject
    if given.suffix.lower() in CONNECTOME_SUFFIXES and given.is_file():
        return given
    for folder in (root / "matrices", root):
        for suffix in CONNECTOME_SUFFIXES:
            p = folder / f"{subject}{suffix}"
            if p.is_file():
                return p
    return None


def connectome_files(path: str | os.PathLike) -> list[dict[str, str]]:
    """Items ``{"matrix": path, "subject": file stem}`` for inference: the one file ``path`` names, or every matrix
    file in ``path/matrices/`` (when it exists) or else in ``path`` itself (``labels.csv`` is not a matrix).

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no matrix file (its listing named).
    """
    root = Path(path).expanduser()
    if root.is_file():
        return [{"matrix": str(root.resolve()), "subject": root.stem}]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder of connectivity matrices.")
    folder = root / "matrices" if (root / "matrices").is_dir() else root
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in CONNECTOME_SUFFIXES and p.name != CONNECTOME_LABELS_CSV)
    if not files:
        raise FileNotFoundError(f"{folder}: no connectivity matrix files ({', '.join(CONNECTOME_SUFFIXES)}). "
                                f"Found: {folder_listing(folder)}")
    return [{"matrix": str(p.resolve()), "subject": p.stem} for p in files]


def read_connectome_labels(dataset_dir: str | os.PathLike, classes: Sequence[str] = ("CN", "AD"),
                           labels_csv: str = CONNECTOME_LABELS_CSV) -> list[dict[str, Any]]:
    """The subjects of ``dataset_dir/labels_csv`` as ``{"matrix": absolute path, "label": class index, "subject"}``.

    Raises:
        FileNotFoundError: the folder, the CSV or a subject's matrix file is missing (all missing subjects named).
        ValueError: no ``subject`` / ``label`` column, a label that is not one of ``classes`` (by name or index), a
            subject listed twice, or no rows.
    """
    root = Path(dataset_dir).expanduser()
    path = root / labels_csv
    if not path.is_file():
        found = folder_listing(root) if root.is_dir() else "(the folder does not exist)"
        raise FileNotFoundError(f"{path} not found; expected a CSV with columns subject,label and one matrix file per "
                                f"subject (matrices/<subject>.npy|.csv|.txt). Found: {found}")
    names = [str(c) for c in classes]
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "subject" not in columns or "label" not in columns:
            raise ValueError(f"{path}: columns {columns}; expected subject,label.")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    if not rows:
        raise ValueError(f"{path}: no subjects listed.")
    items, seen, missing = [], set(), []
    for n, r in enumerate(rows, start=2):
        label = r["label"]
        if label in names:
            index = names.index(label)
        elif label.isdigit() and int(label) < len(names):
            index = int(label)
        else:
            raise ValueError(f"{path}, line {n}: label {label!r}; expected one of {names} or 0..{len(names) - 1}.")
        if r["subject"] in seen:
            raise ValueError(f"{path}, line {n}: subject {r['subject']!r} is listed twice.")
        seen.add(r["subject"])
        matrix = _matrix_file(root, r["subject"])
        if matrix is None:
            missing.append(r["subject"])
            continue
        items.append({"matrix": str(matrix.resolve()), "label": index, "subject": r["subject"]})
    if missing:
        shown = ", ".join(missing[:10]) + (f" ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        raise FileNotFoundError(f"{root}: no matrix file (matrices/<subject>.npy|.csv|.txt|.tsv) for {shown}.")
    return items


def connectome_datalist(dataset_dir: str | os.PathLike, classes: Sequence[str] = ("CN", "AD"),
                        val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 0,
                        labels_csv: str = CONNECTOME_LABELS_CSV) -> dict[str, list[dict[str, Any]]]:
    """Training / validation / testing lists of :func:`read_connectome_labels`, split per class (stratified) with
    ``split_seed``: BrainNetGAN's 3 : 1 : 1 by default. Each class keeps at least one subject in every part.

    Raises:
        ValueError: fractions outside [0, 1) or summing to >= 1, or a class with too few subjects for the split.
    """
    vf, tf = float(val_fraction), float(test_fraction)
    if not (0.0 <= vf < 1.0 and 0.0 <= tf < 1.0 and vf + tf < 1.0):
        raise ValueError(f"val_fraction and test_fraction must be in [0, 1) with a sum below 1, got {vf}, {tf}.")
    items = read_connectome_labels(dataset_dir, classes, labels_csv)
    out: dict[str, list[dict[str, Any]]] = {"training": [], "validation": [], "testing": []}
    for index, name in enumerate(classes):
        members = [it for it in items if it["label"] == index]
        n_val, n_test = (max(1, round(f * len(members))) if f > 0 else 0 for f in (vf, tf))
        parts = split_cases(members, n_val, n_test, int(split_seed) * 7919 + index, f"{dataset_dir}, class {name!r}",
                            sort_key=lambda it: it["subject"])
        for part, chosen in parts.items():
            out[part] += chosen
    return out
