"""Inference of the active-learning benchmark's classifier: a folder of chest radiographs to a CSV of classes."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from ...engines.active_learning import pool_predictions
from ...io import atomic_write, folder_listing
from .data import CXR_LABEL_NAMES

__all__ = ["RADIOGRAPH_SUFFIXES", "classify_radiographs"]

#: image files the inference reads (PIL for PNG / JPEG, nibabel for NIfTI)
RADIOGRAPH_SUFFIXES = (".png", ".jpg", ".jpeg", ".nii", ".nii.gz")


def classify_radiographs(network: torch.nn.Module, folder: str | Path, transform: Any, out_csv: str | Path,
                         device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Classify every radiograph in ``folder`` (not recursive; :data:`RADIOGRAPH_SUFFIXES`) and write ``out_csv``
    with ``image,class,p_normal,p_covid,p_other_pneumonia``, in file name order; returns the rows. The CSV is written
    only when every image was read (an unreadable file raises an error naming it, and nothing is written).

    Raises ``FileNotFoundError`` when the folder is missing or holds no radiograph."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of radiographs.")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(RADIOGRAPH_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"{root}: no radiographs ({', '.join(RADIOGRAPH_SUFFIXES)}). Found: {folder_listing(root)}")
    probs, _ = pool_predictions(network, [{"image": str(p)} for p in files], transform, device=device)
    names = list(CXR_LABEL_NAMES.values())
    rows = [{"image": p.name, "class": names[int(pr.argmax())], **{f"p_{n}": round(float(v), 4) for n, v in zip(names, pr)}}
            for p, pr in zip(files, probs)]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, write)
    print(f"classified {len(rows)} radiographs -> {out}", flush=True)
    return rows
