"""Study helpers of the label-noise bundle: Dice relative to clean training per corruption, as the paper plots it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...io import atomic_write, read_metrics_rows

__all__ = ["read_metrics_csv", "relative_dice_report"]

_BARS = {"crop": ["crop_left", "crop_rand05", "crop_rand0"], "erode / dilate": ["morph_random", "dilate", "erode"]}


def read_metrics_csv(path: str | Path) -> dict[str, float]:
    """``name -> value`` of a MONAI ``MetricsSaver`` ``metrics.csv`` (``name,value`` rows)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such metrics file (did the run's evaluate.yaml step finish?).")
    return {name: float(value) for name, value in read_metrics_rows(path).items()}


def relative_dice_report(
    runs_dir: str,
    arms: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    out: str,
    metric: str = "test_pooled_dice",
    title: str = "Dice relative to clean training",
) -> dict[str, Any]:
    """Test Dice of every arm as a fraction of its model's clean-training Dice, seed by seed (the paper's y axis).

    Args:
        runs_dir: the study's run folders ``<arm>_seed<seed>/metrics.csv``.
        arms: ``arm -> [model, noise, level]``; an arm is reported when all its seeds' runs exist and so do those of
            its model's ``clean`` arm, else it is listed under ``"missing"``.
        seeds: the seeds to read.
        out: the PNG to write; ``<out without .png>.json`` gets the numbers.
        metric: the metrics.csv row.

    Returns:
        ``{"arms": {arm: {"model", "noise", "level", "dice": [...], "relative": [...], "relative_mean",
        "relative_std"}}, "clean": {model: [...]}, "missing": [arm, ...]}`` (relative = Dice / the same seed's
        clean Dice of that model).
    """
    def metrics_file(arm: str, seed: int) -> Path:
        return Path(runs_dir) / f"{arm}_seed{int(seed)}" / "metrics.csv"

    done = {arm: spec for arm, spec in arms.items() if all(metrics_file(arm, s).is_file() for s in seeds)}
    dice = {arm: [read_metrics_csv(metrics_file(arm, s))[metric] for s in seeds] for arm in done}
    clean = {spec[0]: dice[arm] for arm, spec in done.items() if spec[1] == "clean"}
    rows: dict[str, Any] = {}
    for arm, (model, noise, level) in done.items():
        if model not in clean:
            continue
        rel = [d / c for d, c in zip(dice[arm], clean[model])]
        rows[arm] = {"model": model, "noise": noise, "level": float(level), "dice": dice[arm], "relative": rel,
                     "relative_mean": float(np.mean(rel)), "relative_std": float(np.std(rel, ddof=1)) if len(rel) > 1 else 0.0}
    missing = sorted(set(arms) - set(rows))
    if missing:   # e.g. a study run with --arms: report what exists, name the rest
        print(f"relative_dice_report: no runs (or no clean runs of their model) for {missing}; left out of {out}",
              flush=True)
    report = {"metric": metric, "seeds": [int(s) for s in seeds], "arms": rows, "clean": clean, "missing": missing}
    out_path = Path(out)
    atomic_write(out_path.with_suffix(".json"), lambda p: p.write_text(json.dumps(report, indent=1)))

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    families = [("warp", "warp sigma (px)"), ("shift", "shift n (px)"), ("crop", "crop"),
                ("erode / dilate", "radius up to r px"), ("mask fraction", "fraction")]
    fig, axes = plt.subplots(1, len(families), figsize=(18, 3.6), sharey=True)
    models = sorted({r["model"] for r in rows.values()}, key=["seg", "ae", "mt"].index)
    for ax, (family, xlabel) in zip(axes, families):
        for m_i, model in enumerate(models):
            if family in _BARS:
                cats = _BARS[family]
                sel = [r for r in rows.values() if r["model"] == model and r["noise"] in cats]
                if not sel:
                    continue
                xs = [cats.index(r["noise"]) + 0.25 * (m_i - (len(models) - 1) / 2) for r in sel]
                ax.bar(xs, [r["relative_mean"] for r in sel], 0.25, yerr=[r["relative_std"] for r in sel], label=model)
                ax.set_xticks(range(len(cats)), [c.replace("crop_", "") for c in cats])
                continue
            kinds = ["permute", "discard"] if family == "mask fraction" else [family]
            for kind in kinds:
                pts = sorted((r["level"], r["relative_mean"], r["relative_std"]) for r in rows.values()
                             if r["model"] == model and r["noise"] == kind)
                if not pts:
                    continue
                pts = [(0.0, 1.0, 0.0)] + pts
                x, y, e = zip(*pts)
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3,
                            label=f"{model} {kind}" if family == "mask fraction" else model,
                            linestyle="--" if kind == "discard" else "-")
        ax.set_xlabel(xlabel)
        ax.set_title(family)
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"{metric} / clean")
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(out_path, lambda p: fig.savefig(p, dpi=100))
    plt.close(fig)
    return report
