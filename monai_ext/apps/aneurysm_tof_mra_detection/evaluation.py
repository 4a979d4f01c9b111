"""Evaluation of the aneurysm bundle on held-out volumes with two-point annotations: the ADAM detection scores
(sensitivity, false positives per case), the FROC, voxel-wise Dice and Cohen's kappa and the tile-wise confusion
matrix of Assis et al. (DGM4MICCAI / DALI 2021), all on the network's grid (the volume resampled to ``spacing``)."""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import convert_to_numpy

from ...io import PathLike, atomic_write
from ...metrics import adam_reference_hits, froc_candidates, froc_summary, kappa_from_counts

__all__ = ["evaluate_aneurysm_detection", "tile_confusion"]

logger = logging.getLogger(__name__)


def tile_confusion(pred: np.ndarray, reference: np.ndarray, block: Sequence[int]) -> dict[str, int]:
    """Tile-wise confusion counts: the volume cut into blocks of ``block`` voxels (the central boxes of the tiles;
    the last block of an axis may be smaller); a block is positive when it holds a reference voxel and predicted
    positive when it holds a predicted voxel (``pred``, ``reference``: binary (H, W, D))."""
    tp = fp = fn = tn = 0
    ranges = [range(0, n, int(b)) for n, b in zip(pred.shape, block)]
    for i in ranges[0]:
        for j in ranges[1]:
            for k in ranges[2]:
                box = (slice(i, i + block[0]), slice(j, j + block[1]), slice(k, k + block[2]))
                p, r = bool(pred[box].any()), bool(reference[box].any())
                tp, fp, fn, tn = tp + (p and r), fp + (p and not r), fn + (r and not p), tn + (not p and not r)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def evaluate_aneurysm_detection(network: torch.nn.Module, items: Sequence[dict[str, Any]],
                                loading: Callable[[dict], dict], inferer: Callable, output_dir: PathLike,
                                device: str | torch.device = "cpu", threshold: float = 0.5,
                                froc_threshold: float = 0.1, tile_block: Sequence[int] = (24, 24, 24),
                                fp_rates: Sequence[float] = (0.125, 0.25, 0.5, 1, 2, 4, 8),
                                small_mm: float = 3.0, min_volume_mm3: float = 0.0) -> dict[str, Any]:
    """Score ``network`` on ``items`` (each with ``image`` and ``points``; ``loading`` turns one into ``image`` and
    the sphere ``label`` (1, H, W, D) on the network's grid) and write ``output_dir/metrics.json`` and
    ``output_dir/cases.csv``.

    Per case: the probability map (sigmoid of ``inferer(image, network)``), the ADAM counts at ``threshold``, the FROC
    candidates at ``froc_threshold`` and the voxel and tile (``tile_block``) confusion counts. Predicted components
    (and FROC candidates) under ``min_volume_mm3`` are dropped, as inference drops them; the voxel and tile scores
    use the thresholded map as it is. ``metrics.json``:
    ``sensitivity`` (pooled), ``case_sensitivity`` (mean over cases with aneurysms), ``fp_per_case``, ``tp`` /
    ``fp`` / ``fn``, ``sensitivity_small`` / ``sensitivity_large`` (aneurysms whose labelled volume is that of a
    ball under / at least ``small_mm`` in diameter), ``froc_score`` and ``sensitivity_at`` (:func:`monai_ext.metrics.froc_summary`), voxel ``dice``
    and ``kappa`` (pooled over all volumes), ``tiles`` (tp, fp, fn, tn) and ``tile_kappa``. Returns that dict.
    """
    if not items:
        raise ValueError("evaluate_aneurysm_detection: no test items.")
    network = network.to(device).eval()
    rows, frocs, sizes = [], [], []
    vox = np.zeros(4)
    tiles = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for n, item in enumerate(items):
        t0 = time.perf_counter()
        data = loading(dict(item))
        image = torch.as_tensor(data["image"]).float()[None].to(device)
        with torch.no_grad():
            prob = torch.sigmoid(inferer(image, network))[0, 0].float().cpu().numpy()
        ref = convert_to_numpy(data["label"])[0] > 0
        voxel_mm3 = abs(float(np.linalg.det(convert_to_numpy(data["image"].affine)[:3, :3]))) \
            if hasattr(data["image"], "affine") else 1.0
        min_voxels = max(1, int(np.ceil(min_volume_mm3 / voxel_mm3 - 1e-9)))
        found, voxels, fp = adam_reference_hits(prob, ref, threshold, min_voxels)
        tp, fn = int(found.sum()), int((~found).sum())
        sizes += [(2 * (3 * v * voxel_mm3 / (4 * np.pi)) ** (1 / 3), bool(f)) for v, f in zip(voxels, found)]
        frocs.append(froc_candidates(prob, ref, froc_threshold, min_voxels))
        pred = prob >= threshold
        vox += [np.sum(pred & ref), np.sum(pred & ~ref), np.sum(~pred & ref), np.sum(~pred & ~ref)]
        for k, v in tile_confusion(pred, ref, tile_block).items():
            tiles[k] += v
        rows.append({"case": item.get("case", f"case_{n}"), "aneurysms": tp + fn, "tp": tp, "fp": fp, "fn": fn,
                     "max_probability": float(prob.max())})
        logger.info(f"case {n + 1}/{len(items)} {rows[-1]['case']}: TP {tp} FP {fp} FN {fn} "
                    f"({time.perf_counter() - t0:.1f} s)")
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    with_ref = [r for r in rows if r["aneurysms"]]
    froc = froc_summary(frocs, fp_rates)
    small = [f for d, f in sizes if d < small_mm]
    large = [f for d, f in sizes if d >= small_mm]
    dice_den = 2 * vox[0] + vox[1] + vox[2]
    metrics = {
        "cases": len(rows), "aneurysms": tp + fn, "tp": tp, "fp": fp, "fn": fn,
        "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "case_sensitivity": float(np.mean([r["tp"] / r["aneurysms"] for r in with_ref])) if with_ref else float("nan"),
        "fp_per_case": fp / len(rows),
        "sensitivity_small": float(np.mean(small)) if small else float("nan"), "aneurysms_small": len(small),
        "sensitivity_large": float(np.mean(large)) if large else float("nan"), "aneurysms_large": len(large),
        "small_mm": small_mm,
        "froc_score": froc["froc_score"], "sensitivity_at": {str(k): v for k, v in froc["sensitivity_at"].items()},
        "dice": float(2 * vox[0] / dice_den) if dice_den else 1.0, "kappa": kappa_from_counts(*vox),
        "tiles": tiles, "tile_kappa": kappa_from_counts(tiles["tp"], tiles["fp"], tiles["fn"], tiles["tn"]),
        "threshold": threshold, "froc_threshold": froc_threshold, "min_volume_mm3": min_volume_mm3,
    }
    out = Path(output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    def write_cases(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(out / "cases.csv", write_cases)
    atomic_write(out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=1) + "\n"))
    logger.info(f"sensitivity {metrics['sensitivity']:.3f}, FP/case {metrics['fp_per_case']:.2f}, "
                f"FROC {metrics['froc_score']:.3f}, kappa {metrics['kappa']:.3f} -> {out / 'metrics.json'}")
    return metrics
