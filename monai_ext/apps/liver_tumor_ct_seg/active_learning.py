"""Active learning for the liver bundle (paper 003): rank unlabelled cases by the model's uncertainty, and a simulated
loop that labels the most uncertain cases round by round, next to labelling random ones.

- :func:`score_cases`: per case, the mean predictive entropy (or Monte-Carlo-dropout mutual information) over the
  voxels the model does not call background with certainty (background probability < 0.99), with the bundle's own
  ``inference.yaml`` preprocessing and slice inferer.
- :func:`rank_unlabelled`: those scores as a ranked list, written as JSON (most uncertain first).
- :func:`simulate_active_learning`: start from ``initial`` random training cases; each round trains the bundle's
  ``train.yaml`` from scratch on the labelled cases (the same number of optimiser steps every round), scores the test
  cases with ``evaluate.yaml``, then adds ``step`` cases of the pool: the most uncertain (``strategy="entropy"`` or
  ``"mc_dropout"``) or random ones (``"random"``). The labels of the pool are known (the simulation only hides them).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...bundle_helpers import bundle_config_parser, load_weights, locate_bundle_root, run_bundle
from ...io import atomic_write, find_images
from ...metrics.uncertainty import (
    case_uncertainty,
    mc_dropout_probabilities,
    mutual_information,
    predictive_entropy,
    rank_by_uncertainty,
)
from .datalist import liver_tumor_datalist

__all__ = ["ACTIVE_STRATEGIES", "rank_unlabelled", "score_cases", "simulate_active_learning"]

#: how the next cases are chosen: by predictive entropy, by MC-dropout mutual information, or at random
ACTIVE_STRATEGIES: tuple[str, ...] = ("entropy", "mc_dropout", "random")

#: voxels whose background probability is at least this are left out of a case's score
CERTAIN_BACKGROUND = 0.99


def _bundle_dir(bundle_dir: str | Path | None) -> Path:
    if bundle_dir is not None:
        return Path(bundle_dir)
    return Path(locate_bundle_root("liver_tumor_ct_seg"))


def score_cases(
    images: Sequence[str],
    ckpt: str | Path,
    method: str = "entropy",
    bundle_dir: str | Path | None = None,
    mc_samples: int = 8,
    overrides: dict | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """Uncertainty score (nats) of each image with the weights ``ckpt``: ``{image path: score}``.

    ``method``: ``"entropy"`` (one pass) or ``"mc_dropout"`` (``mc_samples`` passes with dropout on; the network
    needs ``dropout > 0``, e.g. ``overrides={"network_def#dropout": 0.1}`` for a model trained that way).
    ``overrides``: further ``inference.yaml`` keys (e.g. ``context_slices`` of a 2.5D model).
    """
    if method not in ("entropy", "mc_dropout"):
        raise ValueError(f"method={method!r}: expected 'entropy' or 'mc_dropout'.")
    cfg = bundle_config_parser(_bundle_dir(bundle_dir) / "configs" / "inference.yaml", overrides, device=device)
    network = load_weights(cfg.get_parsed_content("network"), ckpt)
    preprocessing = cfg.get_parsed_content("preprocessing")
    inferer = cfg.get_parsed_content("inferer")
    network.eval()
    scores = {}
    for image in images:
        x = preprocessing({"image": str(image)})["image"].unsqueeze(0).to(device)
        with torch.no_grad():
            probs = inferer(x, network).softmax(1)
        if method == "entropy":
            u = predictive_entropy(probs)
        else:
            mc = mc_dropout_probabilities(network, x, samples=mc_samples, predictor=lambda v, net: inferer(v, net))
            u, probs = mutual_information(mc), mc.mean(0)
        mask = probs[:, :1] < CERTAIN_BACKGROUND
        scores[str(image)] = float(case_uncertainty(u.as_tensor() if hasattr(u, "as_tensor") else u, mask)[0])
    return scores


def rank_unlabelled(
    images: Sequence[str] | str,
    ckpt: str | Path,
    out: str | Path,
    method: str = "entropy",
    bundle_dir: str | Path | None = None,
    **kwargs,
) -> list[dict]:
    """Rank unlabelled images (a list, or a folder of NIfTI files / DICOM series) by :func:`score_cases` and write
    ``[{"case", "uncertainty", "rank"}]`` (most uncertain first) as JSON to ``out``; returns the list."""
    if isinstance(images, (str, Path)):
        images = find_images(images)
    ranked = rank_by_uncertainty(score_cases(images, ckpt, method=method, bundle_dir=bundle_dir, **kwargs))
    atomic_write(Path(out), lambda p: p.write_text(json.dumps(ranked, indent=1)))
    return ranked


def _train_and_test(bundle: Path, labelled: list[dict], split: dict, out: Path, steps: int, batch_size: int,
                    seed: int, overrides: dict) -> dict:
    """Train on ``labelled`` (cached by the case set and seed under ``out``), score the test cases; returns
    ``{"dice_liver", "dice_tumour", "model"}``."""
    key = hashlib.sha1(json.dumps([seed, steps, sorted(c["image"] for c in labelled),
                                   sorted(overrides.items())], default=str).encode()).hexdigest()[:12]
    run_dir = out / f"train_{key}"
    result_file = run_dir / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    datalist = run_dir / "datalist.json"
    datalist.write_text(json.dumps({"training": labelled, "validation": split["validation"],
                                    "testing": split["testing"]}, indent=1))
    epochs = max(2, math.ceil(steps / math.ceil(len(labelled) / batch_size)))
    common = dict(overrides, datalist=f"$__import__('json').load(open({str(datalist)!r}))", seed=seed,
                  ckpt_dir=str(run_dir), output_dir=str(run_dir), log_dir=str(run_dir / "logs"),
                  batch_size=batch_size)
    run_bundle(bundle, "train.yaml", max_epochs=epochs, val_interval=max(1, epochs // 15), **common)
    run_bundle(bundle, ["train.yaml", "evaluate.yaml"], ckpt_path=str(run_dir / "model.pt"), **common)
    rows = {}
    for line in (run_dir / "metrics.csv").read_text().splitlines():  # MetricsSaver: "name<delimiter>value"
        parts = re.split(r"[\t,]", line.strip())
        if len(parts) >= 2:
            rows[parts[0]] = float(parts[1])
    result = {"dice_liver": rows["test_dice_liver"], "dice_tumour": rows["test_dice_tumour"],
              "model": str(run_dir / "model.pt"), "epochs": epochs}
    result_file.write_text(json.dumps(result, indent=1))
    return result


def simulate_active_learning(
    dataset_dir: str | Path,
    out: str | Path,
    strategy: str = "entropy",
    seed: int = 0,
    initial: int = 4,
    step: int = 4,
    rounds: int = 3,
    steps_per_round: int = 600,
    batch_size: int = 2,
    work: str | Path | None = None,
    bundle_dir: str | Path | None = None,
    overrides: dict | None = None,
    mc_samples: int = 8,
    num_val: int = 4,
    num_test: int = 8,
) -> dict:
    """Simulated active learning on the bundle's training pool (its test and validation cases stay fixed).

    Round ``r`` trains on ``initial + r * step`` labelled cases; the first ``initial`` are drawn at random with
    ``seed`` (the same for every strategy, so the strategies share round 0). Training runs are cached under
    ``work`` (default: next to ``out``) by their case set, seed and settings, so strategies and studies reuse them.

    ``overrides``: further ``train.yaml`` keys of every run (those ``inference.yaml`` has too, e.g. the network's
    channels or ``context_slices``, are passed on to the scoring); ``num_val`` / ``num_test``: the bundle's split of ``dataset_dir``.

    Writes ``out`` (JSON): ``{"strategy", "seed", "rounds": [{"labelled", "dice_liver", "dice_tumour", "added"}],
    "dice_liver_round<r>", "dice_tumour_round<r>", "dice_tumour_mean"}`` and returns it.
    """
    if strategy not in ACTIVE_STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: expected one of {ACTIVE_STRATEGIES}.")
    for name, v in (("initial", initial), ("step", step), ("rounds", rounds), ("steps_per_round", steps_per_round)):
        if int(v) < 1:
            raise ValueError(f"{name}={v}: expected a positive integer.")
    bundle = _bundle_dir(bundle_dir)
    out = Path(out)
    cache = Path(work) if work is not None else out.parent / "active_learning_runs"
    extra = dict(overrides or {})
    split = liver_tumor_datalist(dataset_dir, num_val=num_val, num_test=num_test)
    pool = list(split["training"])
    if initial + (rounds - 1) * step > len(pool):
        raise ValueError(f"{dataset_dir}: {len(pool)} training cases, fewer than initial + (rounds - 1) * step "
                         f"= {initial + (rounds - 1) * step}.")
    # the training overrides that inference.yaml also has (network shape, grid, context), for the scoring
    infer_keys = set(bundle_config_parser(bundle / "configs" / "inference.yaml").get().keys())
    infer_overrides = {k: v for k, v in extra.items() if k.split("#")[0] in infer_keys and k != "device"}
    rng = np.random.default_rng(seed)
    order = [pool[i] for i in rng.permutation(len(pool))]
    labelled, unlabelled = order[:initial], order[initial:]
    pick_rng = np.random.default_rng([seed, 1])
    history = []
    for r in range(rounds):
        res = _train_and_test(bundle, labelled, split, cache, steps_per_round, batch_size, seed, extra)
        row = {"labelled": len(labelled), "dice_liver": res["dice_liver"], "dice_tumour": res["dice_tumour"],
               "added": []}
        history.append(row)
        print(f"[active learning {strategy} seed {seed}] round {r}: {len(labelled)} labelled, test Dice liver "
              f"{res['dice_liver']:.3f} tumour {res['dice_tumour']:.3f}", flush=True)
        if r == rounds - 1:
            break
        if strategy == "random":
            chosen = [unlabelled[i] for i in sorted(pick_rng.choice(len(unlabelled), step, replace=False))]
        else:
            method = "mc_dropout" if strategy == "mc_dropout" else "entropy"
            scores = score_cases([c["image"] for c in unlabelled], res["model"], method=method, bundle_dir=bundle,
                                 mc_samples=mc_samples, overrides=infer_overrides)
            top = {r_["case"] for r_ in rank_by_uncertainty(scores)[:step]}
            chosen = [c for c in unlabelled if c["image"] in top]
        row["added"] = [Path(c["image"]).name for c in chosen]
        labelled = labelled + chosen
        unlabelled = [c for c in unlabelled if c not in chosen]
    report = {"strategy": strategy, "seed": seed, "rounds": history}
    for r, row in enumerate(history):
        report[f"dice_liver_round{r}"] = row["dice_liver"]
        report[f"dice_tumour_round{r}"] = row["dice_tumour"]
    report["dice_tumour_mean"] = float(np.mean([row["dice_tumour"] for row in history]))
    report["dice_liver_mean"] = float(np.mean([row["dice_liver"] for row in history]))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: p.write_text(json.dumps(report, indent=1)))
    return report
