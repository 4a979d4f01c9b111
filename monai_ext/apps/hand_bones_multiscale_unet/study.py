"""Study helpers of the hand bone bundle: convergence numbers of one training run, and the validation Dice curves of
several arms in one figure (the paper's claim: multi-scale segmentation maps converge faster, same final Dice).

Both read the ``metric_history.csv`` that :class:`monai_ext.handlers.MetricHistorySaver` writes during training.
The figure is drawn with matplotlib (Agg backend, files only).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...handlers.metric_history import read_metric_history
from ...io import atomic_write

__all__ = ["convergence_summary", "plot_validation_curves"]



def _first_epoch_reaching(epochs: np.ndarray, values: np.ndarray, level: float) -> int:
    """The first epoch whose value is >= ``level`` (the last epoch when none is)."""
    hit = np.nonzero(values >= level)[0]
    return int(epochs[hit[0]] if len(hit) else epochs[-1])


def convergence_summary(history: str, out: str, metric: str = "val_mean_dice", fractions: Sequence[float] = (0.9, 0.95)) -> dict:
    """Convergence numbers of one training run from its metric history, written to the JSON file ``out``:

    - ``mean_over_rounds``: the metric averaged over all validation rounds (the area under the validation curve,
      per epoch); higher means it got high sooner (for runs of the same length);
    - ``best`` and ``best_epoch``; ``last`` (the last round's value);
    - ``epochs_to_<f>_of_best`` for each fraction ``f``: the first epoch that reached ``f * best``.

    Returns the dict."""
    epochs, values = read_metric_history(history, metric)
    best_i = int(np.argmax(values))
    result: dict[str, Any] = {
        "metric": metric,
        "rounds": int(len(values)),
        "mean_over_rounds": float(values.mean()),
        "best": float(values[best_i]),
        "best_epoch": int(epochs[best_i]),
        "last": float(values[-1]),
        "last_epoch": int(epochs[-1]),
    }
    for f in fractions:
        result[f"epochs_to_{f:g}_of_best"] = _first_epoch_reaching(epochs, values, float(f) * values[best_i])
    atomic_write(out, lambda p: p.write_text(json.dumps(result, indent=1) + "\n"))
    return result


def plot_validation_curves(
    runs_dir: str,
    arms: Sequence[str],
    seeds: Sequence[int],
    out: str,
    metric: str = "val_mean_dice",
    history: str = "metric_history.csv",
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> dict:
    """Validation ``metric`` against epoch for ``arms`` (runs ``<runs_dir>/<arm>_seed<seed>/<history>``): each
    seed as a thin line, the mean over the seeds (at the epochs all seeds share) as a thick one. Writes the PNG
    ``out`` and ``<out without .png>.csv`` (epoch, the mean of each arm) and returns ``{arm: {"epochs": [...],
    "mean": [...], "seeds": [...]}}``.

    Raises:
        FileNotFoundError: a run has no history file (the message names it).
    """
    curves: dict[str, dict[str, Any]] = {}
    for arm in arms:
        per_seed = {int(s): read_metric_history(Path(runs_dir) / f"{arm}_seed{int(s)}" / history, metric) for s in seeds}
        common = sorted(set.intersection(*(set(e.tolist()) for e, _ in per_seed.values())))
        mean = [float(np.mean([v[list(e).index(ep)] for e, v in per_seed.values()])) for ep in common]
        curves[arm] = {"epochs": common, "mean": mean,
                       "per_seed": {s: (e.tolist(), v.tolist()) for s, (e, v) in per_seed.items()}, "seeds": list(per_seed)}

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.6), dpi=100)
    for k, (arm, c) in enumerate(curves.items()):
        colour = f"C{k}"
        for e, v in c["per_seed"].values():
            ax.plot(e, v, color=colour, alpha=0.35, linewidth=1)
        name = (labels or {}).get(arm, arm)
        ax.plot(c["epochs"], c["mean"], color=colour, linewidth=2.5,
                label=f"{name} (mean of {len(c['seeds'])} seeds; thin: each seed)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    try:
        atomic_write(out, lambda p: fig.savefig(p, format="png"))
    finally:
        plt.close(fig)

    epochs = sorted(set().union(*(c["epochs"] for c in curves.values())))
    by_arm = {arm: dict(zip(c["epochs"], c["mean"])) for arm, c in curves.items()}
    table = Path(str(out)[:-4] if str(out).lower().endswith(".png") else str(out)).with_suffix(".csv")

    def write_table(p: Path) -> None:
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch"] + [f"{arm}_mean_{metric}" for arm in curves])
            for ep in epochs:
                w.writerow([ep] + [("%.4f" % by_arm[a][ep]) if ep in by_arm[a] else "" for a in curves])

    atomic_write(table, write_table)
    return {arm: {"epochs": c["epochs"], "mean": c["mean"], "seeds": c["seeds"]} for arm, c in curves.items()}
