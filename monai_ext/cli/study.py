"""``python -m monai_ext study BUNDLE [STUDY]``: run a comparison study that a bundle declares.

A study is a YAML file in the bundle, ``configs/study.yaml`` (the bundle's default study) or
``configs/study_<name>.yaml``. It names *arms* (sets of config overrides), *seeds*, the bundle configs (or
app functions) to run for every (arm, seed), the *metrics* to read from each run's output, and a *baseline*
arm that every other arm is compared with, seed by seed::

    description: one paragraph, copied into the results
    vars:                        # study settings; ``--set NAME=VALUE`` changes one; used below as {NAME}
      data: "{work}/data/brain_ad"
    seeds: [0, 1, 2, 3, 4]
    baseline: real
    arms:                        # arm name -> config overrides of its runs
      real: {train_mode: real}
      real+manifold: {train_mode: real+generated, sampler: hmc}
      # reserved keys of an arm: _seeds (its own seed list), _vars (study vars of its runs)
    overrides:                   # config overrides of every run (the arm's win, then --set)
      dataset_dir: "{data}"
      output_dir: "{run_dir}"
      seed: "{seed}"
    prepare:                     # steps run once before the runs, in order
      - configs: [train_vae.yaml]
        for_each: {vae_class: [0, 1]}          # once per combination; {vae_class} in the step
        overrides: {vae_class: "{vae_class}"}
        creates: "{work}/models/rhvae_class{vae_class}_seed0.pt"   # skipped when it exists
    run:                         # steps of every (arm, seed) run, in order
      - configs: [train.yaml]
      - configs: [train.yaml, evaluate.yaml]
      - call: monai_ext.apps.<method>.<function>      # an app's study function, called with args
        args: {model: "{run_dir}/model.pt", out: "{run_dir}/new_subjects.json"}
    metrics:                     # read from each run's folder when its steps are done
      test_balanced_accuracy: {file: metrics.csv}                 # the row of that name (MetricsSaver)
      new_subjects: {file: new_subjects.json, key: balanced_accuracy}   # '#' separates nested keys
      test_mean_error: {file: metrics.csv, lower_is_better: true}     # errors: "better" counts decreases
    comparisons: [[real+manifold, real+prior]]       # extra paired comparisons (first minus second)
    finalize:                    # steps run once after the runs (figures, checks)
      - call: monai_ext.apps.<method>.<function>
        args: {out: "{results_dir}/figure.png"}
    threads: 1                   # torch threads of the whole study (default 1)

``{NAME}`` is replaced in every string of the study (only for known names, so MONAI expressions such as
``"$@a + {'b': 1}"`` are left alone): a string that is exactly ``"{NAME}"`` becomes the value itself (a list
stays a list). Known names: ``work``, ``bundle``, ``study``, ``seeds``, ``results_dir`` (``work``, or the
bundle's ``docs/`` with ``--docs``), the vars, the ``for_each`` names, and in run steps ``arm``, ``seed``,
``run_dir`` (``<work>/runs/<study file stem>/<arm>_seed<seed>``) and ``overrides`` (the run's config overrides).
Several studies may share one work folder (data, generated images); their runs and results stay apart.

Config steps go through MONAI's bundle runner (:func:`monai_ext.bundle_helpers.run_bundle`, in this process).
A run whose ``study_run.json`` exists with the same settings is not run again (resumable; the bundle folder's own
path counts as ``{bundle}``, so a copy of the checkout elsewhere resumes too); results go to
``<work>/<study file stem>.json`` and ``.md`` and, with ``--docs``, to the bundle's ``docs/<study file stem>.json``
and ``.md``. Every arm is compared with the baseline over the seeds both have: mean difference with its 95 %
confidence interval (t distribution), paired t-test and Wilcoxon signed-rank test (scipy).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..io import atomic_write, read_metrics_rows

__all__ = [
    "StudyError",
    "available_studies",
    "load_study",
    "substitute",
    "read_run_metric",
    "paired_comparison",
    "study_summary",
    "study_markdown",
    "run_study",
    "study_main",
]

STUDY_KEYS = {"description", "vars", "seeds", "baseline", "arms", "overrides", "prepare", "run", "metrics",
              "comparisons", "finalize", "threads"}
STEP_KEYS = {"configs", "overrides", "call", "args", "for_each", "creates"}
BUILTIN_NAMES = ("work", "bundle", "study", "seeds", "results_dir", "arm", "seed", "run_dir", "overrides")
RUN_RECORD = "study_run.json"


class StudyError(ValueError):
    """A study that cannot run as asked: unknown bundle, study, arm or seed, a malformed study file, a metric
    missing from a run's output. The message says which and what is available."""


# ---------------------------------------------------------------------------------------------------------------
# finding and reading a study
# ---------------------------------------------------------------------------------------------------------------


def available_studies(bundle_dir: str | Path) -> dict[str, Path]:
    """The studies of a bundle folder: ``{name: path}``, ``study`` for ``configs/study.yaml`` and ``<name>``
    for ``configs/study_<name>.yaml``."""
    found = {}
    for p in sorted((Path(bundle_dir) / "configs").glob("study*.yaml")):
        if p.stem == "study":
            found["study"] = p
        elif p.stem.startswith("study_"):
            found[p.stem[len("study_"):]] = p
    return found


def _resolve_bundle(bundle: str | Path) -> Path:
    from .catalog import resolve_bundle

    try:
        return resolve_bundle(bundle)
    except FileNotFoundError as e:
        raise StudyError(str(e)) from None


def _study_file(bundle_dir: Path, study: str | None) -> Path:
    studies = available_studies(bundle_dir)
    if not studies:
        raise StudyError(f"bundle {bundle_dir.name!r} declares no study (no configs/study.yaml or configs/study_<name>.yaml).")
    if study is None:
        if "study" in studies:
            return studies["study"]
        if len(studies) == 1:
            return next(iter(studies.values()))
        raise StudyError(f"bundle {bundle_dir.name!r} has no default configs/study.yaml; name one of: {', '.join(studies)}.")
    name = str(study)
    name = name[:-5] if name.endswith(".yaml") else name
    name = name[len("study_"):] if name.startswith("study_") else name
    if name not in studies:
        raise StudyError(f"bundle {bundle_dir.name!r} has no study {study!r}; available: {', '.join(studies)}.")
    return studies[name]


def _check_step(step: Any, where: str, bundle_dir: Path) -> dict:
    if not isinstance(step, Mapping):
        raise StudyError(f"{where}: a step is a mapping with 'configs' or 'call', got {step!r}.")
    unknown = set(step) - STEP_KEYS
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {sorted(unknown)}; a step has {sorted(STEP_KEYS)}.")
    if ("configs" in step) == ("call" in step):
        raise StudyError(f"{where}: a step has either 'configs' (bundle configs to run) or 'call' (a function), not both or none.")
    step = dict(step)
    if "configs" in step:
        configs = [step["configs"]] if isinstance(step["configs"], str) else list(step["configs"])
        for c in configs:
            if not (bundle_dir / "configs" / c).is_file():
                raise StudyError(f"{where}: config {c!r} not found in {bundle_dir / 'configs'}.")
        step["configs"] = configs
        if "args" in step:
            raise StudyError(f"{where}: 'args' belongs to a 'call' step; config steps take 'overrides'.")
    else:
        if not isinstance(step["call"], str) or not step["call"].startswith("monai_ext.") or "." not in step["call"][10:]:
            raise StudyError(f"{where}: call must name a function as monai_ext.<module>.<function>, got {step['call']!r}.")
        if "overrides" in step:
            raise StudyError(f"{where}: 'overrides' belongs to a 'configs' step; call steps take 'args'.")
    for key in ("overrides", "args", "for_each"):
        if key in step and not isinstance(step[key] or {}, Mapping):
            raise StudyError(f"{where}: {key} must be a mapping, got {step[key]!r}.")
    return step


def load_study(bundle: str | Path, study: str | None = None) -> dict:
    """Read and check a bundle's study: ``bundle`` is a bundle name or folder, ``study`` a study name
    (``None``: ``configs/study.yaml``, or the only study file). Returns the study as a dict with ``name``,
    ``file`` and ``bundle_dir`` added. Raises :class:`StudyError` naming what is wrong or missing."""
    bundle_dir = _resolve_bundle(bundle)
    path = _study_file(bundle_dir, study)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise StudyError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(spec, dict):
        raise StudyError(f"{path}: a study file holds a mapping.")
    unknown = set(spec) - STUDY_KEYS
    if unknown:
        raise StudyError(f"{path}: unknown key(s) {sorted(unknown)}; a study has {sorted(STUDY_KEYS)}.")
    for key in ("arms", "seeds", "run", "metrics"):
        if not spec.get(key):
            raise StudyError(f"{path}: '{key}' is missing or empty.")
    if not isinstance(spec["arms"], Mapping):
        raise StudyError(f"{path}: arms must map arm names to config overrides.")
    spec["arms"] = {str(k): dict(v or {}) for k, v in spec["arms"].items()}
    for arm, ov in spec["arms"].items():
        if "_seeds" in ov and not isinstance(ov["_seeds"], list):
            raise StudyError(f"{path}: arm {arm!r}: _seeds must be a list of seeds.")
        if "_vars" in ov and not isinstance(ov["_vars"], Mapping):
            raise StudyError(f"{path}: arm {arm!r}: _vars must be a mapping.")
        undeclared = sorted(set(ov.get("_vars") or {}) - set(spec.get("vars") or {}))
        if undeclared:
            raise StudyError(f"{path}: arm {arm!r}: _vars {undeclared} are not study vars (declare them under vars).")
        bad = [k for k in ov if k.startswith("_") and k not in ("_seeds", "_vars")]
        if bad:
            raise StudyError(f"{path}: arm {arm!r}: unknown reserved key(s) {bad} (an arm has _seeds and _vars).")
    if spec.get("baseline") is not None and spec["baseline"] not in spec["arms"]:
        raise StudyError(f"{path}: baseline {spec['baseline']!r} is not an arm ({', '.join(spec['arms'])}).")
    for a, b in spec.get("comparisons") or []:
        for x in (a, b):
            if x not in spec["arms"]:
                raise StudyError(f"{path}: comparison arm {x!r} is not an arm ({', '.join(spec['arms'])}).")
    if not isinstance(spec["metrics"], Mapping):
        raise StudyError(f"{path}: metrics must map metric names to {{file: ..., key: ...}}.")
    for name, src in spec["metrics"].items():
        if not isinstance(src, Mapping) or "file" not in src or set(src) - {"file", "key", "lower_is_better"}:
            raise StudyError(f"{path}: metric {name!r}: expected {{file: FILE, key: KEY (optional), lower_is_better: "
                             f"BOOL (optional)}}, got {src!r}.")
    vars_ = spec.get("vars") or {}
    if not isinstance(vars_, Mapping):
        raise StudyError(f"{path}: vars must be a mapping.")
    clash = sorted(set(vars_) & set(BUILTIN_NAMES))
    if clash:
        raise StudyError(f"{path}: vars {clash} shadow built-in names {BUILTIN_NAMES}.")
    for key in ("prepare", "run", "finalize"):
        steps = spec.get(key) or []
        if not isinstance(steps, list):
            raise StudyError(f"{path}: {key} must be a list of steps.")
        spec[key] = [_check_step(s, f"{path.name}: {key}[{i}]", bundle_dir) for i, s in enumerate(steps)]
    spec.update(name=path.stem, file=str(path), bundle_dir=str(bundle_dir), vars=dict(vars_))
    return spec


# ---------------------------------------------------------------------------------------------------------------
# {name} substitution
# ---------------------------------------------------------------------------------------------------------------


def substitute(value: Any, names: Mapping[str, Any]) -> Any:
    """Replace ``{NAME}`` for every NAME of ``names`` in the strings of ``value`` (nested dicts and lists too).

    A string that is exactly ``"{NAME}"`` becomes ``names[NAME]`` itself (any type); inside a longer string
    the value is formatted with ``str``. Braces around anything else are kept."""
    if isinstance(value, str):
        if not names or "{" not in value:
            return value
        pattern = re.compile(r"\{(" + "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True)) + r")\}")
        whole = pattern.fullmatch(value)
        if whole:
            return names[whole.group(1)]
        return pattern.sub(lambda m: str(names[m.group(1)]), value)
    if isinstance(value, Mapping):
        return {substitute(k, names) if isinstance(k, str) else k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, names) for v in value]
    return value


def _resolve_vars(raw: Mapping[str, Any], base: Mapping[str, Any]) -> dict:
    """Study vars in their order; each may use the built-in names and the vars before it."""
    names = dict(base)
    for k, v in raw.items():
        names[k] = substitute(v, names)
    return {k: names[k] for k in raw}


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _parse_sets(pairs: Sequence[str]) -> dict:
    out = {}
    for kv in pairs:
        key, sep, value = str(kv).partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--set: expected KEY=VALUE, got {kv!r}.")
        out[key.strip()] = _parse_value(value)
    return out


# ---------------------------------------------------------------------------------------------------------------
# metrics and statistics
# ---------------------------------------------------------------------------------------------------------------


def read_run_metric(run_dir: str | Path, name: str, source: Mapping[str, Any]) -> float:
    """One metric of a finished run: ``source["file"]`` relative to ``run_dir``; a ``.csv`` file is read as
    MONAI's ``MetricsSaver`` writes it (rows ``name,value``; the row ``source.get("key", name)``), a
    ``.json`` file by the ``#``-separated ``source["key"]`` (default ``name``). Raises :class:`StudyError`
    naming the file and the metrics it holds when the metric is not there."""
    path = Path(run_dir) / str(source["file"])
    key = str(source.get("key", name))
    if not path.is_file():
        raise StudyError(f"metric {name!r}: {path} not found (the run's configs did not write it).")
    if path.suffix == ".csv":
        rows = read_metrics_rows(path)
        if key not in rows:
            raise StudyError(f"metric {name!r}: no row {key!r} in {path}; it holds {sorted(rows)}.")
        value = rows[key]
    else:
        try:
            value = json.loads(path.read_text())
        except ValueError as e:
            raise StudyError(f"metric {name!r}: {path} is not JSON ({e}).") from None
        walked = []
        for part in key.split("#"):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
                value = value[int(part)]
            else:
                have = sorted(value) if isinstance(value, Mapping) else f"a {type(value).__name__}"
                raise StudyError(f"metric {name!r}: no key {'#'.join(walked + [part])!r} in {path}; "
                                 f"at {'#'.join(walked) or 'the top'} it holds {have}.")
            walked.append(part)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StudyError(f"metric {name!r}: {key!r} in {path} is not a number: {value!r}.") from None


def paired_comparison(baseline: Sequence[float], other: Sequence[float], lower_is_better: bool = False) -> dict:
    """Paired comparison of ``other`` with ``baseline`` (same seeds, same order): ``n``, both means,
    ``mean_difference`` (other minus baseline), its sample ``std_difference`` and 95 % confidence interval
    ``ci95`` (t distribution), ``better`` / ``worse`` / ``ties`` counts (better: higher, or lower with
    ``lower_is_better``), ``t_test_p`` (scipy ``ttest_rel``)
    and ``wilcoxon_p`` (``wilcoxon`` of the differences; zero differences dropped). Statistics that need two
    seeds, or a difference that varies, are ``None`` otherwise."""
    from scipy import stats

    a, b = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise StudyError(f"paired comparison needs two equally long non-empty lists, got {len(a)} and {len(b)} values.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise StudyError("paired comparison: the values must be finite numbers.")
    d = b - a
    n = len(d)
    gain = -d if lower_is_better else d
    out: dict[str, Any] = {
        "n": n, "baseline_mean": float(a.mean()), "mean": float(b.mean()), "mean_difference": float(d.mean()),
        "std_difference": None, "ci95": None, "better": int((gain > 0).sum()), "worse": int((gain < 0).sum()),
        "ties": int((d == 0).sum()), "t_test_p": None, "wilcoxon_p": None,
    }
    if n > 1:
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        out["std_difference"] = sd
        out["ci95"] = [float(d.mean()) - half, float(d.mean()) + half]
        if sd > 0:
            out["t_test_p"] = float(stats.ttest_rel(b, a).pvalue)
        if np.any(d != 0):
            out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
    return out


def study_summary(per_run: Mapping[str, Mapping[str, Mapping[Any, float]]], baseline: str | None,
                  comparisons: Sequence[Sequence[str]] = (), lower_is_better: Sequence[str] = ()) -> tuple[dict, dict]:
    """``(summary, comparisons)`` of ``per_run`` = ``{metric: {arm: {seed: value}}}``: per metric and arm the
    ``n``, ``mean`` and sample ``std`` (``None`` for one run); per metric the :func:`paired_comparison` of
    every arm with ``baseline`` (``"arm - baseline"``) and of each extra ``(a, b)`` pair, over common seeds
    (the metrics named in ``lower_is_better`` count a decrease as better)."""
    summary: dict = {}
    comps: dict = {}
    for metric, arms in per_run.items():
        summary[metric] = {}
        for arm, by_seed in arms.items():
            v = np.asarray(list(by_seed.values()), dtype=float)
            summary[metric][arm] = {"n": len(v), "mean": float(v.mean()) if len(v) else None,
                                    "std": float(v.std(ddof=1)) if len(v) > 1 else None}
        pairs = [(arm, baseline) for arm in arms if baseline is not None and arm != baseline and baseline in arms]
        pairs += [(a, b) for a, b in comparisons if a in arms and b in arms]
        comps[metric] = {}
        for a, b in pairs:
            common = [s for s in arms[b] if s in arms[a]]
            if common:
                comps[metric][f"{a} - {b}"] = dict(paired_comparison([arms[b][s] for s in common], [arms[a][s] for s in common],
                                                                   metric in lower_is_better),
                                                   seeds=common)
    return summary, comps


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"
    return str(x)


def study_markdown(results: Mapping[str, Any]) -> str:
    """The markdown report of a results dict of :func:`run_study`: per metric, mean +- std per arm and the
    paired comparisons (difference, 95 % CI, better / worse, t-test and Wilcoxon p), then every run's values."""
    lines = [f"# Study `{results['study']}` of `{results['bundle']}`", ""]
    if results.get("description"):
        lines += [" ".join(str(results["description"]).split()), ""]
    lines += [f"Seeds {results['seeds']}; baseline `{results.get('baseline')}`; written by "
              f"`{('python -m monai_ext study ' + results['bundle'] + ' ' + results['study_arg']).strip()}`"
              + (f" with {' '.join('--set ' + s for s in results['command_line_sets'])}" if results.get("command_line_sets") else "")
              + ".", ""]
    for metric, arms in results["summary"].items():
        lower = metric in (results.get("lower_is_better") or ())
        lines += [f"## {metric}" + (" (lower is better)" if lower else ""), "", "| arm | runs | mean +- std | paired difference (95 % CI) | better / worse | t-test p | Wilcoxon p |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        comps = results["comparisons"].get(metric, {})
        for arm, s in arms.items():
            spread = f" +- {_fmt(s['std'])}" if s["std"] is not None else ""
            lines.append(f"| {arm} | {s['n']} | {_fmt(s['mean'])}{spread} | | | | |")
        for name, c in comps.items():
            ci = f" ({_fmt(c['ci95'][0])} to {_fmt(c['ci95'][1])})" if c["ci95"] else ""
            lines.append(f"| {name} | {c['n']} | | {c['mean_difference']:+.4f}{ci} | {c['better']} / {c['worse']} | "
                         f"{_fmt(c['t_test_p'], 3)} | {_fmt(c['wilcoxon_p'], 3)} |")
        lines.append("")
    metrics = list(results["per_run"])
    lines += ["## Runs", "", "| arm | seed | " + " | ".join(metrics) + " | seconds |",
              "| --- | --- | " + " | ".join("---" for _ in metrics) + " | --- |"]
    for run in results["runs"]:
        lines.append(f"| {run['arm']} | {run['seed']} | " + " | ".join(_fmt(run["metrics"].get(m)) for m in metrics)
                     + f" | {_fmt(run.get('seconds'), 1)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def _without_location(x: Any, bundle_dir: Path) -> Any:
    """``x`` with the bundle folder's absolute path written as ``{bundle}`` in every string: a run's recorded
    settings then do not depend on where the checkout lives (a study resumed from another copy of the repository
    does not re-run what is done)."""
    root = str(bundle_dir)
    if isinstance(x, str):
        return x.replace(root, "{bundle}")
    if isinstance(x, list):
        return [_without_location(v, bundle_dir) for v in x]
    if isinstance(x, dict):
        return {k: _without_location(v, bundle_dir) for k, v in x.items()}
    return x


def _call(dotted: str) -> Any:
    module, _, fn = dotted.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise StudyError(f"call {dotted!r}: cannot import {module} ({e}).") from None
    if not hasattr(mod, fn) or not callable(getattr(mod, fn)):
        raise StudyError(f"call {dotted!r}: {module} has no function {fn!r}.")
    return getattr(mod, fn)


def _expand(step: Mapping, names: Mapping[str, Any]) -> list[dict]:
    """A step once per combination of its for_each values, with those names added."""
    loops = substitute(dict(step.get("for_each") or {}), names)
    for k, v in loops.items():
        if not isinstance(v, list):
            raise StudyError(f"for_each {k!r}: expected a list, got {v!r}.")
    keys = list(loops)
    return [dict(names, **dict(zip(keys, combo))) for combo in itertools.product(*(loops[k] for k in keys))] if keys else [dict(names)]


def _exists_all(creates: Any) -> bool:
    paths = [creates] if isinstance(creates, str) else list(creates or [])
    return bool(paths) and all(Path(p).exists() for p in paths)


def _run_step(step: Mapping, names: Mapping[str, Any], bundle_dir: Path, overrides: Mapping | None = None) -> None:
    """Run one (expanded) step: its configs through the bundle runner with its overrides (``overrides``
    when given, else the step's own after substitution), or its function with its args."""
    from ..bundle_helpers import run_bundle

    if "configs" in step:
        ov = dict(overrides) if overrides is not None else substitute(dict(step.get("overrides") or {}), names)
        run_bundle(bundle_dir, step["configs"], **ov)
    else:
        _call(step["call"])(**substitute(dict(step.get("args") or {}), names))


def _plan(spec: Mapping, arms: Sequence[str] | None, seeds: Sequence[int] | None) -> list[tuple[str, int]]:
    chosen = list(spec["arms"]) if not arms else list(arms)
    unknown = [a for a in chosen if a not in spec["arms"]]
    if unknown:
        raise StudyError(f"unknown arm(s) {unknown} in study {spec['name']!r}; its arms: {', '.join(spec['arms'])}.")
    plan = []
    for arm in chosen:
        arm_seeds = list(seeds) if seeds else list(spec["arms"][arm].get("_seeds", spec["seeds"]))
        plan += [(arm, int(s)) for s in arm_seeds]
    return plan


def run_study(
    bundle: str | Path,
    study: str | None = None,
    arms: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    work: str | Path | None = None,
    sets: Mapping[str, Any] | Sequence[str] | None = None,
    docs: bool = False,
    dry_run: bool = False,
) -> dict:
    """Run a bundle's study (see the module docstring) and return its results dict.

    ``arms`` / ``seeds`` restrict the runs (default: the study's); ``work`` is the folder of every output
    (default ``<bundle>/eval/study``, shared by the bundle's studies); ``sets`` (``{KEY: VALUE}`` or
    ``["KEY=VALUE"]``) changes a study var of that name, else overrides config key KEY in every run; ``docs``
    also writes the results into the bundle's ``docs/``; ``dry_run`` prints the plan and runs nothing."""
    spec = load_study(bundle, study)
    bundle_dir = Path(spec["bundle_dir"])
    name = spec["name"]
    sets_list = [f"{k}={json.dumps(v)}" for k, v in sets.items()] if isinstance(sets, Mapping) else list(sets or [])
    parsed = _parse_sets(sets_list)
    var_sets = {k: v for k, v in parsed.items() if k in spec["vars"]}
    config_sets = {k: v for k, v in parsed.items() if k not in spec["vars"]}
    bad = sorted(set(config_sets) & set(BUILTIN_NAMES))
    if bad:
        raise StudyError(f"--set {bad}: built-in study names cannot be set (use --work, --seeds, --arms).")
    work_dir = Path(work).expanduser().resolve() if work else bundle_dir / "eval" / "study"
    plan = _plan(spec, arms, seeds)
    results_dir = bundle_dir / "docs" if docs else work_dir
    base = {"work": str(work_dir), "bundle": str(bundle_dir), "study": name, "results_dir": str(results_dir),
            "seeds": sorted({s for _, s in plan})}
    raw_vars = dict(spec["vars"], **var_sets)
    names = dict(base, **_resolve_vars(raw_vars, base))
    tag = f"[study {bundle_dir.name}/{name}]"
    if dry_run:
        print(f"{tag} work {work_dir}; {len(plan)} runs: " + ", ".join(f"{a} seed {s}" for a, s in plan))
        return {"plan": plan, "vars": _jsonable(names)}

    import torch

    from .. import import_components

    import_components()  # the configs name components by short _target_ (not imported under python -m monai_ext)
    torch.set_num_threads(int(spec.get("threads", 1)))
    work_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    for i, step in enumerate(spec["prepare"]):
        for step_names in _expand(step, names):
            creates = substitute(step.get("creates"), step_names)
            label = step.get("call") or "+".join(step["configs"])
            if _exists_all(creates):
                print(f"{tag} prepare {i}: {label} skipped ({creates} exists)", flush=True)
                continue
            t = time.time()
            _run_step(step, step_names, bundle_dir)
            print(f"{tag} prepare {i}: {label} done ({time.time() - t:.0f} s)", flush=True)

    runs = []
    for k, (arm, seed) in enumerate(plan, 1):
        arm_spec = spec["arms"][arm]
        run_dir = work_dir / "runs" / name / f"{arm}_seed{seed}"
        run_base = dict(base, arm=arm, seed=seed, run_dir=str(run_dir))
        # the arm's _vars replace study vars for its runs (--set still wins); later vars see them
        run_names = dict(run_base, **_resolve_vars({**spec["vars"], **arm_spec.get("_vars", {}), **var_sets}, run_base))
        arm_overrides = {kk: v for kk, v in arm_spec.items() if not kk.startswith("_")}
        study_ov = substitute(dict(spec.get("overrides") or {}), run_names)
        arm_ov = {**substitute(arm_overrides, run_names), **config_sets}
        overrides = {**study_ov, **arm_ov}
        run_names["overrides"] = overrides
        # what decides the run's result: its steps after substitution
        resolved = []
        for step in spec["run"]:
            if "configs" in step:
                # precedence: the study's overrides, the step's, the arm's, --set
                ov = {**study_ov, **substitute(dict(step.get("overrides") or {}), run_names), **arm_ov}
                resolved.append({"configs": step["configs"], "overrides": ov})
            else:
                resolved.append({"call": step["call"], "args": substitute(dict(step.get("args") or {}), run_names)})
        settings = _without_location(_jsonable(resolved), bundle_dir)
        record_path = run_dir / RUN_RECORD
        if record_path.is_file():
            record = json.loads(record_path.read_text())
            if json.dumps(record.get("settings"), sort_keys=True) == json.dumps(settings, sort_keys=True):
                runs.append(record)
                print(f"{tag} {k}/{len(plan)} {arm} seed {seed}: done before, "
                      + ", ".join(f"{m} {v:.4f}" for m, v in record["metrics"].items()), flush=True)
                continue
            print(f"{tag} {k}/{len(plan)} {arm} seed {seed}: settings changed since the stored run, running it again", flush=True)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        t = time.time()
        for step, setting in zip(spec["run"], resolved):
            _run_step(step, run_names, bundle_dir, setting.get("overrides") if "configs" in step else None)
        metrics = {}
        for m, src in spec["metrics"].items():
            try:
                metrics[m] = read_run_metric(run_dir, m, substitute(dict(src), run_names))
            except StudyError as e:
                raise StudyError(f"run {arm} seed {seed}: {e}") from None
        record = {"arm": arm, "seed": seed, "metrics": metrics, "seconds": round(time.time() - t, 1), "settings": settings}
        atomic_write(record_path, lambda p: p.write_text(json.dumps(record, indent=1)))
        runs.append(record)
        print(f"{tag} {k}/{len(plan)} {arm} seed {seed}: " + ", ".join(f"{m} {v:.4f}" for m, v in metrics.items())
              + f" ({record['seconds']:.0f} s)", flush=True)

    for i, step in enumerate(spec["finalize"]):
        for step_names in _expand(step, names):
            t = time.time()
            _run_step(step, step_names, bundle_dir)
            print(f"{tag} finalize {i}: {step.get('call') or '+'.join(step['configs'])} done ({time.time() - t:.0f} s)", flush=True)

    per_run: dict = {m: {} for m in spec["metrics"]}
    for r in runs:
        for m, v in r["metrics"].items():
            per_run[m].setdefault(r["arm"], {})[str(r["seed"])] = v
    lower = [m for m, src in spec["metrics"].items() if src.get("lower_is_better")]
    summary, comparisons = study_summary(per_run, spec.get("baseline"), spec.get("comparisons") or (), lower)
    results = {
        "study": name, "study_arg": "" if name == "study" else name[len("study_"):], "bundle": bundle_dir.name,
        "description": spec.get("description", ""), "baseline": spec.get("baseline"), "seeds": names["seeds"],
        "arms": {a: _jsonable({k: v for k, v in spec["arms"][a].items()}) for a in dict.fromkeys(a for a, _ in plan)},
        "vars": _jsonable({k: names[k] for k in spec["vars"]}), "command_line_sets": sets_list,
        "per_run": per_run, "summary": summary, "comparisons": comparisons, "lower_is_better": lower,
        "runs": [{k: v for k, v in r.items() if k != "settings"} for r in runs],
        "seconds": round(time.time() - t_start, 1),
    }
    text, md = json.dumps(results, indent=1) + "\n", study_markdown(results)
    targets = [work_dir / name] + ([bundle_dir / "docs" / name] if docs else [])
    for stem in targets:
        atomic_write(stem.with_suffix(".json"), lambda p: p.write_text(text))
        atomic_write(stem.with_suffix(".md"), lambda p: p.write_text(md))
    print(md)
    print(f"{tag} results: " + ", ".join(str(s.with_suffix(".json")) for s in targets), flush=True)
    return results


def study_main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``python -m monai_ext study`` (argparse); returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m monai_ext study",
        description="Run a study a bundle declares (configs/study.yaml or configs/study_<name>.yaml): every "
        "(arm, seed) through the bundle configs, then paired tests against the baseline arm.",
    )
    p.add_argument("bundle", help="bundle name (under bundles/) or folder")
    p.add_argument("study", nargs="?", default=None, help="study name: <name> of configs/study_<name>.yaml (default: configs/study.yaml)")
    p.add_argument("--arms", nargs="+", default=None, help="run only these arms (names, or one comma-separated list)")
    p.add_argument("--seeds", nargs="+", default=None, help="run these seeds instead of the study's (e.g. 0 1 2 or 0,1,2)")
    p.add_argument("--work", default=None, help="folder of all outputs (default <bundle>/eval/study, shared by the bundle's studies)")
    p.add_argument("--set", dest="sets", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="a study var, or else a config override of every run (VALUE read as YAML)")
    p.add_argument("--docs", action="store_true", help="also write docs/<study file stem>.json and .md into the bundle")
    p.add_argument("--list", action="store_true", help="list the bundle's studies (and the arms of STUDY) and exit")
    p.add_argument("--dry_run", action="store_true", help="print the runs and exit")
    a = p.parse_args(argv)
    split = lambda xs: [x for item in xs for x in str(item).split(",") if x] if xs else None  # noqa: E731
    try:
        if a.list:
            bundle_dir = _resolve_bundle(a.bundle)
            chosen = [_study_file(bundle_dir, a.study)] if a.study is not None else list(available_studies(bundle_dir).values())
            if not chosen:
                raise StudyError(f"bundle {bundle_dir.name!r} declares no study.")
            for path in chosen:
                n = "study" if path.stem == "study" else path.stem[len("study_"):]
                s = load_study(bundle_dir, n)
                print(f"{n}: {path.relative_to(bundle_dir)}; arms {', '.join(s['arms'])}; seeds {s['seeds']}; "
                      f"baseline {s.get('baseline')}; vars {s['vars']}")
            return 0
        seeds = split(a.seeds)
        try:
            seeds = [int(s) for s in seeds] if seeds else None
        except ValueError:
            raise StudyError(f"--seeds: expected integers, got {a.seeds}.") from None
        run_study(a.bundle, a.study, arms=split(a.arms), seeds=seeds, work=a.work,
                  sets=[kv for group in a.sets for kv in group], docs=a.docs, dry_run=a.dry_run)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
