"""The paper's scores of a cell segmentation (Liu et al., DGM4MICCAI/DALI 2021, Table 1, after their OMIA 2019
paper), per test image and then averaged: area overlap ("AP" in the paper: the Jaccard index of the cell masks, not
an average precision), Dice (DC) and area difference (AD, %) of the image's cell mask; the per-cell contour
distances ASD / RSD / MSD (px) over the detected cells; and the detection counts (a cell is detected when a
predicted cell overlaps it with IoU >= 0.5)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ...io import PathLike, atomic_write, strip_nifti_suffix
from ...metrics.instance_overlap import instance_overlap_scores
from ...metrics.mask_overlap import mask_dice

__all__ = ["CONE_SCORES", "cone_image_scores", "score_cone_segmentation"]

#: the per-image scores, in the order of metrics.csv
CONE_SCORES = ("dice", "area_overlap", "area_difference_pct", "asd", "rsd", "msd", "cell_dice", "detection_precision",
               "detection_recall", "detection_f1")


def cone_image_scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """:data:`CONE_SCORES` of one image's instance labels ``pred`` against ``ref`` (same shape, 0 background)."""
    p, r = np.asarray(pred) > 0, np.asarray(ref) > 0
    inter, union = (p & r).sum(), (p | r).sum()
    cells = instance_overlap_scores(pred, ref)
    prec, rec = cells["precision"], cells["recall"]
    return {"dice": mask_dice(p, r, empty=1.0), "area_overlap": float(inter / union) if union else 1.0,
            "area_difference_pct": float(100.0 * abs(int(p.sum()) - int(r.sum())) / r.sum()) if r.any() else float("nan"),
            "asd": cells["asd"], "rsd": cells["rsd"], "msd": cells["msd"], "cell_dice": cells["dice"],
            "detection_precision": prec, "detection_recall": rec,
            "detection_f1": float(2 * prec * rec / (prec + rec)) if prec + rec > 0 else 0.0}


def _read_labels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj).squeeze()


def score_cone_segmentation(items: Sequence[dict[str, Any]], prediction_dir: PathLike, output_dir: PathLike,
                            postfix: str = "cells", prefix: str = "test") -> dict[str, float]:
    """Score the predictions ``<prediction_dir>/<image name>_<postfix>.nii.gz`` of the ``items`` (``image``,
    ``label`` instance label files, optional ``noisy`` flag) and write, into ``output_dir``,
    ``metrics.csv`` (``<prefix>_<score>``: the mean over the images; with the flags also ``..._noisy`` and
    ``..._clean``, MONAI MetricsSaver's ``name,value`` rows) and ``<prefix>_scores_raw.csv`` (per image).

    Raises ``FileNotFoundError`` naming a missing prediction, ``ValueError`` a prediction of another shape.
    """
    rows = []
    for item in items:
        name = strip_nifti_suffix(Path(item["image"]).name)
        pred_path = Path(prediction_dir) / f"{name}_{postfix}.nii.gz"
        if not pred_path.is_file():
            raise FileNotFoundError(f"{pred_path}: no prediction for {item['image']} (run the inference first).")
        pred, ref = _read_labels(pred_path), _read_labels(Path(item["label"]))
        if pred.shape != ref.shape:
            raise ValueError(f"{pred_path}: shape {pred.shape}, but its reference {item['label']} is {ref.shape}.")
        rows.append({"image": name, "noisy": item.get("noisy"), **cone_image_scores(pred, ref)})
    if not rows:
        raise ValueError("no test images to score.")
    metrics: dict[str, float] = {}
    groups = {"": rows}
    if all(r["noisy"] is not None for r in rows):
        groups.update({"_noisy": [r for r in rows if r["noisy"]], "_clean": [r for r in rows if not r["noisy"]]})
    for suffix, group in groups.items():
        for k in CONE_SCORES:
            vals = [r[k] for r in group if np.isfinite(r[k])]
            metrics[f"{prefix}_{k}{suffix}"] = float(np.mean(vals)) if vals else float("nan")
    out = Path(output_dir)
    atomic_write(out / "metrics.csv", lambda p: p.write_text("".join(f"{k},{v}\n" for k, v in metrics.items())))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / f"{prefix}_scores_raw.csv", lambda p: p.write_text(buf.getvalue()))
    print(f"{prefix}: " + ", ".join(f"{k} {metrics[f'{prefix}_{k}']:.4f}" for k in CONE_SCORES), flush=True)
    return metrics
