"""What the bundle's evaluate and inference configs run: the reference loaded once, every target volume through
:class:`OneShotLandmarkLocator`, landmark files written in world coordinates (3D Slicer markups: ``<case>.mrk.json``
and ``<case>.fcsv``, plus ``landmarks.csv`` of every case) and, where the targets have true landmarks, the errors
(``errors.csv``, ``metrics.json``); ``cases.json`` has every case's localisation record. Every output is written only after all cases went through, so an unreadable
volume leaves nothing behind."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...bundle_helpers import load_weights
from ...io import PathLike, atomic_write, case_name, read_landmarks, require_file, write_landmarks
from ...metrics.landmark_error import LandmarkErrorMetric
from .locator import OneShotLandmarkLocator

__all__ = ["build_locator", "locate_landmarks"]


def build_locator(network: torch.nn.Module, checkpoint: PathLike, reference: dict[str, Any], transform: Callable,
                  **settings: Any) -> OneShotLandmarkLocator | None:
    """The locator of the reference item (``image``, ``mask``, ``landmarks``) loaded with ``transform`` (the
    bundle's volume loading, keys ``image`` and ``label``) and the network's weights from ``checkpoint`` (not needed, and not loaded, for the
    ``naive`` method, which uses no network)."""
    if settings.get("method", "auto") != "naive":
        require_file(checkpoint, "the slice network's weights (train it with configs/train.yaml)")
        network = load_weights(network, checkpoint)
    network.eval()
    data = transform({"image": reference["image"], "label": reference["mask"]})
    return OneShotLandmarkLocator(network, data["image"], data["label"], read_landmarks(reference["landmarks"]),
                                  **settings)


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def locate_landmarks(locator: OneShotLandmarkLocator, items: Sequence[dict[str, Any]], transform: Callable,
                     output_dir: PathLike, failure_radius_mm: float = 2.0, progress: bool = True) -> dict[str, Any]:
    """Place the landmarks in every item's ``image`` (loaded with ``transform``) and write them to ``output_dir``;
    items with a ``landmarks`` file are scored (Euclidean error in mm and voxels, failure rate at
    ``failure_radius_mm``). Returns the metrics (empty when no item has landmarks)."""
    if not items:
        raise ValueError("no target volumes to place landmarks in.")
    names = locator.names
    metric = LandmarkErrorMetric(names, failure_radius_mm)
    results, rows, error_rows = [], [], []
    for i, item in enumerate(items):
        t0 = time.perf_counter()
        data = transform({"image": item["image"]})
        out = locator(data["image"])
        case = item.get("name") or case_name(item["image"])
        results.append((case, out))
        for name in names:
            x, y, z = out["landmarks"][name]
            rows.append({"case": case, "landmark": name, "x_mm": round(x, 4), "y_mm": round(y, 4), "z_mm": round(z, 4)})
        line = f"{case}: {out['iterations']} localisation steps"
        if out["structure_score"] is not None:
            line += f", structure score {out['structure_score']:.2f}"
            if out["structure_score"] < 0.5:
                line += " (the structure was not found clearly: check the landmarks)"
        if item.get("landmarks"):
            truth = read_landmarks(item["landmarks"])
            if set(truth) != set(names):
                raise ValueError(f"{item['landmarks']}: landmarks {sorted(truth)}, the reference has {sorted(names)}.")
            pred = torch.tensor([out["landmarks"][n] for n in names])[None]
            err = metric(pred, torch.tensor(np.stack([truth[n] for n in names]))[None])[0]
            error_rows.append({"case": case, **{n: round(float(e), 4) for n, e in zip(names, err)}})
            line += ", errors (mm) " + " ".join(f"{n} {float(e):.2f}" for n, e in zip(names, err))
        if progress:
            print(f"[{i + 1}/{len(items)}] {line} ({time.perf_counter() - t0:.1f} s)", flush=True)
    out_dir = Path(output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    for case, out in results:
        write_landmarks(out_dir / f"{case}.mrk.json", out["landmarks"])
        write_landmarks(out_dir / f"{case}.fcsv", out["landmarks"])
    atomic_write(out_dir / "landmarks.csv", lambda tmp: tmp.write_text(_csv_text(rows)))
    cases = {case: {k: v for k, v in out.items() if k != "landmarks"} for case, out in results}
    atomic_write(out_dir / "cases.json", lambda tmp: tmp.write_text(json.dumps(cases, indent=1) + "\n"))
    metrics: dict[str, Any] = {}
    if error_rows:
        metrics = metric.aggregate()
        voxel = float(np.mean(locator.spacing))
        metrics.update({f"{k}_voxels": v / voxel for k, v in list(metrics.items())
                        if k.endswith("_mean") or k == "mean"})
        metrics.update(method=locator.method, failure_radius_mm=float(failure_radius_mm))
        atomic_write(out_dir / "errors.csv", lambda tmp: tmp.write_text(_csv_text(error_rows)))
        atomic_write(out_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=1) + "\n"))
        if progress:
            print(f"mean error {metrics['mean']:.3f} mm ({metrics['mean_voxels']:.2f} voxels), failure rate "
                  f"{metrics['failure_rate']:.3f} at {failure_radius_mm} mm", flush=True)
    return metrics
