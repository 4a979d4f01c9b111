"""The paper's regression of Dice on the annotation effort (Laprade et al., DGM4MICCAI/DALI 2021, section 3):

    Dice = alpha_a log(n_a) + alpha_t log(n_t) + beta        (runs with n_t > 0)

fitted by ordinary least squares, with F-tests of the nested models alpha_a = 0, alpha_t = 0 and both = 0. For the
3D U-Net n_t adds no label (:mod:`.samples`), so its model is Dice = alpha_a log(n_a) + beta over all its runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ...io import PathLike, atomic_write

__all__ = ["annotation_regression_report", "fit_log_linear", "study_fit_rows"]


def _rss(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    return coef, float(resid @ resid)


def fit_log_linear(n_a: Sequence[float], n_t: Sequence[float] | None, dice: Sequence[float]) -> dict[str, Any]:
    """OLS fit of ``dice`` on ``log n_a`` (and ``log n_t`` unless ``n_t`` is ``None``) with an intercept.

    Returns ``{"coefficients": {"alpha_a", ["alpha_t",] "beta"}, "n", "r2", "tests": {name: {"F", "p", "df"}}}``,
    the tests comparing the full model with ``alpha_a = 0``, ``alpha_t = 0`` and both ``= 0`` (scipy's F
    distribution). Raises ``ValueError`` for fewer runs than parameters + 1 or a count < 1."""
    y = np.asarray(dice, dtype=np.float64)
    cols = {"alpha_a": np.asarray(n_a, dtype=np.float64)}
    if n_t is not None:
        cols["alpha_t"] = np.asarray(n_t, dtype=np.float64)
    for name, v in cols.items():
        if v.shape != y.shape or np.any(v < 1):
            raise ValueError(f"{name}: counts must be >= 1 and one per Dice value, got {v.tolist()}.")
    names = list(cols)
    x = np.column_stack([np.log(cols[k]) for k in names] + [np.ones_like(y)])
    n, p = x.shape
    if n < p + 1:
        raise ValueError(f"{n} run(s) for {p} parameters: too few to fit and test.")
    coef, rss_full = _rss(x, y)
    tss = float(((y - y.mean()) ** 2).sum())
    df_res = n - p
    restrictions = {f"{k} = 0": [k] for k in names}
    if len(names) > 1:
        restrictions["both = 0"] = list(names)
    tests = {}
    for label, dropped in restrictions.items():
        keep = [i for i, k in enumerate(names) if k not in dropped] + [p - 1]
        _, rss_r = _rss(x[:, keep], y)
        q = len(dropped)
        f = ((rss_r - rss_full) / q) / (rss_full / df_res) if rss_full > 0 else math.inf
        tests[label] = {"F": float(f), "p": float(stats.f.sf(f, q, df_res)), "df": [q, df_res]}
    return {"coefficients": {**{k: float(c) for k, c in zip(names, coef)}, "beta": float(coef[-1])}, "n": n,
            "r2": 1.0 - rss_full / tss if tss > 0 else float("nan"), "tests": tests}


def study_fit_rows(work: PathLike, study: str = "study", metric: str = "test_dice") -> list[dict[str, Any]]:
    """One row per finished run of a study of this bundle: ``{"arm", "seed", "model", "annotation", "n_a", "n_t",
    "dice"}``, read from ``<work>/runs/<study>/*/study_run.json`` (the run's settings hold its overrides)."""
    rows = []
    for record_path in sorted(Path(work).expanduser().glob(f"runs/{study}/*/study_run.json")):
        record = json.loads(record_path.read_text())
        ov = {}
        for step in record.get("settings", []):
            ov.update(step.get("overrides") or {})
        if metric not in record.get("metrics", {}):
            continue
        rows.append({"arm": record["arm"], "seed": record["seed"], "model": ov.get("model", "mp"),
                     "annotation": ov.get("annotation", "sparse"), "n_a": int(ov.get("num_annotated", 0)),
                     "n_t": int(ov.get("num_training_planes", 0)), "dice": float(record["metrics"][metric])})
    return rows


def _fmt_test(t: dict[str, Any]) -> str:
    return f"F = {t['F']:.3g}, p = {t['p']:.2g}"


def annotation_regression_report(work: PathLike, results_dir: PathLike, study: str = "study",
                                 metric: str = "test_dice") -> dict[str, Any]:
    """Fit :func:`fit_log_linear` to the sparse runs of a study (MP U-Net: runs with n_t > 0, on n_a and n_t;
    3D U-Net: all its sparse runs, on n_a) and write ``<results_dir>/<study>_fit.json`` and ``.md``. A model with
    too few runs is reported as such, not fitted."""
    rows = [r for r in study_fit_rows(work, study, metric) if r["annotation"] == "sparse"]
    fits: dict[str, Any] = {}
    mp = [r for r in rows if r["model"] == "mp" and r["n_t"] > 0]
    u3 = [r for r in rows if r["model"] == "unet3d"]
    for name, subset, with_t in (("mp", mp, True), ("unet3d", u3, False)):
        try:
            fits[name] = fit_log_linear([r["n_a"] for r in subset], [r["n_t"] for r in subset] if with_t else None,
                                        [r["dice"] for r in subset])
        except ValueError as e:
            fits[name] = {"error": str(e), "n": len(subset)}
    lines = [f"# Regression of {metric} on the annotation effort ({study})", "",
             "Dice = alpha_a log(n_a) + alpha_t log(n_t) + beta, OLS; F-tests of the nested models "
             "(MP U-Net: runs with n_t > 0; 3D U-Net: alpha_t dropped, n_t adds no label to its data).", "",
             "| model | runs | alpha_a | alpha_t | beta | R^2 | alpha_a = 0 | alpha_t = 0 | both = 0 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, fit in fits.items():
        if "error" in fit:
            lines.append(f"| {name} | {fit['n']} | not fitted: {fit['error']} | | | | | | |")
            continue
        c, t = fit["coefficients"], fit["tests"]
        lines.append(
            f"| {name} | {fit['n']} | {c['alpha_a']:.4f} | {c.get('alpha_t', float('nan')):.4f} | {c['beta']:.4f} | "
            f"{fit['r2']:.3f} | {_fmt_test(t['alpha_a = 0'])} | "
            f"{_fmt_test(t['alpha_t = 0']) if 'alpha_t = 0' in t else '-'} | "
            f"{_fmt_test(t['both = 0']) if 'both = 0' in t else '-'} |")
    out = Path(results_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    result = {"study": study, "metric": metric, "fits": fits, "rows": rows}
    atomic_write(out / f"{study}_fit.json", lambda p: p.write_text(json.dumps(result, indent=1) + "\n"))
    atomic_write(out / f"{study}_fit.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    print("\n".join(lines), flush=True)
    return result
