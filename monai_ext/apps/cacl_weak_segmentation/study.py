"""The paper's comparison (Table 1) as a study step: one method per arm, scored with and without the "+ morph."
dilation on the same test patches; and the report of every variant (CaCL's last-epoch model and difference masks,
Dice on positive and negative patches apart)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...bundle_helpers import run_bundle
from ...io import PathLike, atomic_write, read_metrics_rows
from ...datalists.labelled_patches import read_patch_labels
from .baselines import BASELINES

__all__ = ["STUDY_METHODS", "STUDY_VARIANTS", "run_study_method", "study_variants_report"]

#: the methods of a study arm: CaCL and the baselines of :func:`monai_ext.apps.cacl_weak_segmentation.evaluate_baseline`
STUDY_METHODS = ("cacl", *BASELINES)
#: the scorings of a run, by sub-folder of the run folder: "" the method as it is (best validation model for CaCL),
#: "dilated" its masks dilated by radius 1, and for CaCL "final" the last epoch's model, "difference" the masks of
#: |R_P - R_N| > 0.1
STUDY_VARIANTS = {"": "as is", "dilated": "+ dilation 1", "final": "last-epoch model", "difference": "difference masks (R_P vs R_N, 0.1)"}


def run_study_method(method: str, bundle: str, overrides: Mapping[str, Any], run_dir: str) -> None:
    """Train what ``method`` needs with the bundle's configs and ``overrides`` (a study run's), then score it on the
    test patches twice: as it is (``run_dir/metrics.csv``) and with its masks dilated by a disk of radius 1
    (``run_dir/dilated/metrics.csv``).

    ``cacl``: train.yaml, then evaluate.yaml on the best validation model; also (``run_dir/final``) on the last
    epoch's model and (``run_dir/difference``) with the difference masks. ``gradcam``: train_classifier.yaml, then
    evaluate_baselines.yaml. ``colour_deconvolution`` / ``empty_mask``: evaluate_baselines.yaml (nothing to train).
    """
    if method not in STUDY_METHODS:
        raise ValueError(f"method must be one of {STUDY_METHODS}, got {method!r}.")
    ov = dict(overrides)
    out = Path(run_dir)
    if method == "cacl":
        run_bundle(bundle, ["train.yaml"], **ov)
        for extra, folder in (({}, out), ({"dilation": 1}, out / "dilated"),
                              ({"ckpt_path": str(Path(ov.get("ckpt_dir", out)) / "model_final.pt")}, out / "final"),
                              ({"mask_mode": "difference"}, out / "difference")):
            run_bundle(bundle, ["train.yaml", "evaluate.yaml"], **{**ov, **extra, "output_dir": str(folder)})
        return
    if method == "gradcam":
        run_bundle(bundle, ["train.yaml", "train_classifier.yaml"], **ov)
    for dilation, folder in ((0, out), (1, out / "dilated")):
        run_bundle(bundle, ["train.yaml", "evaluate_baselines.yaml"],
                   **{**ov, "baseline": method, "dilation": dilation, "output_dir": str(folder)})


def _variant_scores(folder: Path, labels: Mapping[str, int]) -> dict[str, float] | None:
    if not (folder / "metrics.csv").is_file():
        return None
    rows = {k: float(v) for k, v in read_metrics_rows(folder / "metrics.csv").items()}
    out = {k: rows[f"test_{k}"] for k in ("dice", "recall", "precision")}
    if "test_dice_positive" in rows:
        out["dice_positive"], out["dice_negative"] = rows["test_dice_positive"], rows["test_dice_negative"]
    elif (folder / "test_dice_raw.csv").is_file():
        with open(folder / "test_dice_raw.csv", newline="") as f:
            per = [(labels.get(Path(r[0]).name), float(r[1])) for r in list(csv.reader(f))[1:]]
        for name, cls in (("dice_positive", 1), ("dice_negative", 0)):
            vals = [v for c, v in per if c == cls]
            out[name] = float(np.mean(vals)) if vals else float("nan")
    return out


def study_variants_report(work: PathLike, results_dir: PathLike, data: PathLike, study: str = "study") -> dict[str, Any]:
    """Every scoring (:data:`STUDY_VARIANTS`) of every arm of a study, mean and standard deviation over its seeds, with
    Dice on the positive and negative test patches apart; writes ``<results_dir>/<study>_variants.json`` and ``.md``.
    ``data``: the study's data folder (its labels.csv tells positive from negative patches)."""
    labels = {Path(i["image"]).name: i["label"] for i in read_patch_labels(Path(data) / "labels.csv")}
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in sorted(Path(work).expanduser().glob(f"runs/{study}/*/study_run.json")):
        arm = json.loads(run.read_text())["arm"]
        for sub in STUDY_VARIANTS:
            scores = _variant_scores(run.parent / sub if sub else run.parent, labels)
            for k, v in (scores or {}).items():
                table.setdefault(arm, {}).setdefault(sub, {}).setdefault(k, []).append(v)
    summary = {arm: {STUDY_VARIANTS[sub]: {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1
                                               else float("nan"), "n": len(v)} for k, v in ks.items()}
                     for sub, ks in subs.items()} for arm, subs in table.items()}
    keys = ("dice", "dice_positive", "dice_negative", "recall", "precision")
    lines = [f"# Every scoring of the {study} runs (mean +- sd over seeds)", "",
             "Dice / recall / precision with the paper's rule for negative patches (1 if the mask is empty, else 0); "
             "Dice on the positive and the negative test patches apart.", "",
             "| arm | scoring | runs | " + " | ".join(keys) + " |", "| --- | --- | --- | " + " | ".join("---" for _ in keys) + " |"]
    for arm, subs in summary.items():
        for name, ks in subs.items():
            cells = [f"{ks[k]['mean']:.3f} +- {ks[k]['sd']:.3f}" if k in ks else "-" for k in keys]
            lines.append(f"| {arm} | {name} | {ks['dice']['n']} | " + " | ".join(cells) + " |")
    out = Path(results_dir).expanduser()
    atomic_write(out / f"{study}_variants.json", lambda p: p.write_text(json.dumps(summary, indent=1) + "\n"))
    atomic_write(out / f"{study}_variants.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    return summary
