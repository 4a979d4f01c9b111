"""The study's round-by-round table (the paper's Table 1 layout: the U-Net, then each round) over the seeds of every
arm, with the paired t-test over the test visits of the last round against round 0 (the paper's test)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ...io import PathLike, atomic_write

__all__ = ["ROUND_TABLE_SCORES", "rounds_report"]

#: the columns of the round table: (score in metrics.csv, header, scale)
ROUND_TABLE_SCORES = (("test_area_overlap", "AP %", 100.0), ("test_dice", "DC %", 100.0),
                      ("test_area_difference_pct", "AD %", 1.0), ("test_asd", "ASD px", 1.0),
                      ("test_rsd", "RSD px", 1.0), ("test_msd", "MSD px", 1.0),
                      ("test_dice_noisy", "DC noisy %", 100.0), ("test_dice_clean", "DC clean %", 100.0),
                      ("test_detection_recall_noisy", "recall noisy %", 100.0))


def _per_visit_dice(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {r["image"]: float(r["dice"]) for r in csv.DictReader(f)}


def rounds_report(work: PathLike, results_dir: PathLike, study: str = "study") -> dict[str, Any]:
    """Every arm's scores by round, mean +- sd over its seeds (``rounds.json`` of each run's chain), and per seed the
    paired two-sided t-test of the last round's per-visit Dice against round 0's; writes
    ``<results_dir>/<study>_rounds.json`` and ``.md``."""
    table: dict[str, dict[int, dict[str, list[float]]]] = {}
    tests: dict[str, list[dict[str, float]]] = {}
    for run in sorted(Path(work).expanduser().glob(f"runs/{study}/*/study_run.json")):
        arm, seed = json.loads(run.read_text())["arm"], json.loads(run.read_text())["seed"]
        chain = run.parent / "chain"
        if not (chain / "rounds.json").is_file():
            continue
        rows = json.loads((chain / "rounds.json").read_text())
        last = max(int(k.split("_")[1]) for k in rows)
        for key, row in rows.items():
            k = int(key.split("_")[1])
            for score, _, scale in ROUND_TABLE_SCORES:
                if score in row:
                    table.setdefault(arm, {}).setdefault(k, {}).setdefault(score, []).append(scale * float(row[score]))
        first, final = (_per_visit_dice(chain / f"round_{k}" / "eval" / "test_scores_raw.csv") for k in (0, last))
        names = sorted(set(first) & set(final))
        a, b = np.array([first[n] for n in names]), np.array([final[n] for n in names])
        t = stats.ttest_rel(b, a)
        tests.setdefault(arm, []).append({"seed": seed, "round": last, "visits": len(names),
                                          "mean_gain": float((b - a).mean()), "p": float(t.pvalue)})
    summary = {arm: {str(k): {s: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else
                                  float("nan"), "n": len(v)} for s, v in scores.items()}
                     for k, scores in sorted(rounds.items())} for arm, rounds in table.items()}
    lines = [f"# {study}: scores by round (mean +- sd over seeds)", "",
             "Test visits of the embedded data; AP = area overlap (Jaccard), DC = Dice of the cell masks per visit; "
             "AD, ASD / RSD / MSD over the detected cells; round 0 = the U-Net before any transfer. Then, per seed, the "
             "paired two-sided t-test of the last round's per-visit Dice against round 0's.", ""]
    heads = [h for _, h, _ in ROUND_TABLE_SCORES]
    for arm, rounds in summary.items():
        lines += [f"## {arm}", "", "| round | runs | " + " | ".join(heads) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in heads) + " |"]
        for k, scores in rounds.items():
            cells = [f"{scores[s]['mean']:.{d}f} +- {scores[s]['sd']:.{d}f}" if s in scores else "-"
                     for s, h, _ in ROUND_TABLE_SCORES for d in [2 if h.endswith("px") else 1]]
            n = next(iter(scores.values()))["n"]
            lines.append(f"| {k} | {n} | " + " | ".join(cells) + " |")
        lines += [""] + [f"- seed {t['seed']}: round {t['round']} vs 0 over {t['visits']} visits, Dice gain "
                         f"{t['mean_gain']:+.4f}, p = {t['p']:.2g}" for t in tests.get(arm, [])] + [""]
    out = Path(results_dir).expanduser()
    payload = {"rounds": summary, "paired_t_tests": tests}
    atomic_write(out / f"{study}_rounds.json", lambda p: p.write_text(json.dumps(payload, indent=1) + "\n"))
    atomic_write(out / f"{study}_rounds.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    return payload
