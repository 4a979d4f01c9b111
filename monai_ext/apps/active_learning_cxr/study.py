"""Study report of the active-learning benchmark: test accuracy and balanced accuracy against the labelled share,
and the class shares of the queried images, per strategy (the paper's curves and its queried-class histograms)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...io import atomic_write
from .data import CXR_LABEL_NAMES

__all__ = ["active_learning_report"]


def active_learning_report(runs_dir: str, arms: Sequence[str], seeds: Sequence[int], out: str,
                           title: str = "active learning on chest radiographs") -> dict[str, Any]:
    """Read ``<runs_dir>/<arm>_seed<seed>/eval/active_learning/cycles.json`` of every arm and seed; write a figure
    (``out``, PNG: accuracy and balanced accuracy per cycle, mean over seeds, one panel per data set; queried class
    shares per arm) and ``<out without .png>.json`` with the numbers. Arms with a missing or unfinished run (fewer
    cycles than its schedule) are named and left out."""
    def cycles_file(arm: str, seed: int) -> Path:
        return Path(runs_dir) / f"{arm}_seed{int(seed)}" / "eval" / "active_learning" / "cycles.json"

    rows: dict[str, Any] = {}
    for arm in arms:
        files = [cycles_file(arm, s) for s in seeds]
        if not all(f.is_file() for f in files):
            continue
        records = [json.loads(f.read_text()) for f in files]
        if any(len(r["cycles"]) != len(r["schedule"]) for r in records):   # a run still in progress
            continue
        labelled = [c["labelled"] for c in records[0]["cycles"]]
        curves = {m: np.array([[c["metrics"][m] for c in r["cycles"]] for r in records])
                  for m in ("test_accuracy", "test_balanced_accuracy")}
        shares = np.array([[r["summary"]["queried_share"].get(str(k), 0.0) for k in CXR_LABEL_NAMES] for r in records])
        rows[arm] = {"labelled": labelled, "pool_size": records[0]["pool_size"],
                     **{f"{m}_mean": curves[m].mean(0).tolist() for m in curves},
                     **{f"{m}_std": curves[m].std(0, ddof=1).tolist() if len(seeds) > 1 else [0.0] * len(labelled)
                        for m in curves},
                     "queried_share_mean": dict(zip(CXR_LABEL_NAMES.values(), shares.mean(0).tolist())),
                     "pool_share": {CXR_LABEL_NAMES[int(k)]: v / records[0]["pool_size"]
                                    for k, v in records[0]["pool_histogram"].items()}}
    missing = [a for a in arms if a not in rows]
    if missing:
        print(f"active_learning_report: no complete runs for {missing}; left out of {out}", flush=True)
    report = {"seeds": [int(s) for s in seeds], "arms": rows, "missing": missing}
    out_path = Path(out)
    atomic_write(out_path.with_suffix(".json"), lambda p: p.write_text(json.dumps(report, indent=1)))

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    sets = [("unbalanced", [a for a in rows if not a.endswith("_balanced")]),
            ("balanced", [a for a in rows if a.endswith("_balanced")])]
    fig, axes = plt.subplots(2, 3, figsize=(17, 8))
    for r, (name, names) in enumerate(sets):
        for c, metric in enumerate(("test_accuracy", "test_balanced_accuracy")):
            ax = axes[r, c]
            for arm in names:
                x = np.array(rows[arm]["labelled"])
                ax.errorbar(x, rows[arm][f"{metric}_mean"], yerr=rows[arm][f"{metric}_std"], marker="o", capsize=2,
                            label=arm.replace("_balanced", ""), linestyle="--" if arm.startswith("random") else "-")
            ax.set_title(f"{name}: {metric.replace('test_', 'test ')}")
            ax.set_xlabel("labelled images")
            ax.legend(fontsize=7)
        ax = axes[r, 2]
        for i, cls in enumerate(CXR_LABEL_NAMES.values()):
            ax.bar(np.arange(len(names)) + 0.27 * (i - 1), [rows[a]["queried_share_mean"][cls] for a in names], 0.27,
                   label=cls)
        if names:
            for i, cls in enumerate(CXR_LABEL_NAMES.values()):
                ax.axhline(rows[names[0]]["pool_share"].get(cls, 0.0), color=f"C{i}", lw=0.8, ls=":")
        ax.set_xticks(range(len(names)), [a.replace("_balanced", "") for a in names], rotation=30, fontsize=7)
        ax.set_title(f"{name}: class shares of the queried images (dotted: pool)")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(out_path, lambda p: fig.savefig(p, dpi=90))
    plt.close(fig)
    return report
