"""CT-SGAN's downstream evaluation (Sect. 4.3): a small 3D nodule / no-nodule classifier on volumes of interest
(VOIs), trained in several ways and tested on a balanced held-out set of subjects never trained on.

Modes (each for every seed):

- ``real``: the few "real" training subjects only (the phantoms' own solid nodules and nodule-free lung VOIs);
- ``synthetic_rule`` / ``synthetic_learned``: only VOIs of other, nodule-free subjects (NLST-style) into which
  nodules were inserted by the rule-based ``NoduleInsert`` / the learned injector (``models/nodule_injector.pt``);
- ``pretrain_rule`` / ``pretrain_learned``: pre-trained on that synthetic set, fine-tuned on the real set;
- ``real_plus_rule`` / ``real_plus_learned``: the real set plus nodules inserted into the *same* training
  subjects (their anatomy rendered without its own nodules, nodules inserted at other lung locations): the
  augmentation question of the issue, no extra subjects.

Every mode gets the same number of optimiser steps (``steps``; pretraining: ``steps`` + ``finetune_steps``).
All data are synthetic chest-CT phantoms generated here: the numbers say nothing about patients.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from monai.networks.nets import Classifier

from monai_ext.apps.ctsgan_chest_ct_synthesis import (
    NoduleInpaintingGenerator,
    balance_voi_samples,
    inserted_nodule_vois,
    learned_voi_inserter,
    phantom_nodule_vois,
)
from monai_ext.transforms import hu_to_unit

ALL_MODES = ("real", "synthetic_rule", "synthetic_learned", "pretrain_rule", "pretrain_learned",
             "real_plus_rule", "real_plus_learned")


def _stack(samples: Sequence[dict], hu_range: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.stack([np.asarray(s["image"], np.float32) for s in samples]))
    y = torch.as_tensor([int(s["label"]) for s in samples])
    return hu_to_unit(x, hu_range), y


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    for ax in (2, 3, 4):
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1, 1), x.flip(ax), x)
    if torch.rand((), generator=g) < 0.5:  # in-plane quarter turn of the whole batch
        x = x.transpose(2, 3)
    return x


def make_classifier(voi_size: int, channels: Sequence[int] = (8, 16, 32, 32), num_res_units: int = 0) -> torch.nn.Module:
    """MONAI :class:`~monai.networks.nets.Classifier` (strided conv units + linear head), 2 classes."""
    return Classifier(in_shape=(1, voi_size, voi_size, voi_size), classes=2, channels=tuple(channels),
                      strides=(2,) * len(channels), num_res_units=num_res_units, dropout=0.2)


def train_classifier(net: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], steps: int, seed: int,
                     batch_size: int = 16, lr: float = 1e-3) -> torch.nn.Module:
    """``steps`` Adam steps of cross-entropy on random batches (flips / in-plane transposes)."""
    x, y = data
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    net.train()
    for _ in range(int(steps)):
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=g)
        loss = torch.nn.functional.cross_entropy(net(_augment(x[idx], g)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@torch.no_grad()
def accuracy(net: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    net.eval()
    x, y = data
    pred = torch.cat([net(x[i:i + 64]).argmax(1) for i in range(0, len(x), 64)])
    return float((pred == y).float().mean())


def run_study(
    output_dir: str,
    injector_path: str | None = None,
    modes: Sequence[str] = ALL_MODES,
    seeds: Sequence[int] = (0, 1, 2),
    real_cases: int = 5,
    test_cases: int = 12,
    synth_cases: int = 8,
    synth_per_case: int = 6,
    augment_per_case: int = 4,
    voi_size: int = 32,
    region_size: int = 16,
    jitter_voxels: int = 4,
    phantom_shape: Sequence[int] = (176, 128, 144),
    pixdim: Sequence[float] = (2.0, 2.0, 2.0),
    diameter_range: Sequence[float] = (4.0, 20.0),
    injector_features: Sequence[int] = (8, 16, 32, 64, 64, 8),
    hu_range: Sequence[float] = (-1000.0, 400.0),
    steps: int = 200,
    finetune_steps: int = 60,
    batch_size: int = 16,
    lr: float = 1e-3,
    channels: Sequence[int] = (8, 16, 32, 32),
    data_seed: int = 0,
) -> dict[str, Any]:
    """Run the study; writes ``metrics.json`` and ``results.md`` into ``output_dir`` and returns the metrics.

    Subjects (phantom seeds): test ``(data_seed + 7) * 1000 + i``, real training ``(data_seed + 1) * 1000 + i``,
    synthetic ``(data_seed + 2) * 1000 + 500 + i``; the injector of ``train_injector.yaml`` trains on seeds
    ``0 * 1000 + i`` (its ``seed`` 0), so with ``data_seed`` 0 no subject is shared."""
    bad = [m for m in modes if m not in ALL_MODES]
    if bad:
        raise ValueError(f"modes {bad}: expected some of {ALL_MODES}.")
    t0 = time.time()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(voi_size=voi_size, shape=phantom_shape, spacing=pixdim, jitter_voxels=jitter_voxels)
    test = balance_voi_samples(phantom_nodule_vois(test_cases, seed=data_seed + 7, **common), seed=data_seed)
    real_seed = data_seed + 1
    real = balance_voi_samples(phantom_nodule_vois(real_cases, seed=real_seed, **common), seed=data_seed)
    real_subjects = [real_seed * 1000 + i for i in range(int(real_cases))]
    need_learned = any(m.endswith("learned") for m in modes)
    inserter = None
    if need_learned:
        if not injector_path or not Path(injector_path).is_file():
            raise FileNotFoundError(f"{injector_path}: no learned injector; run configs/train_injector.yaml first "
                                    "or drop the *_learned modes.")
        gen = NoduleInpaintingGenerator("inject", features=injector_features)
        gen.load_state_dict(torch.load(injector_path, map_location="cpu", weights_only=True))
        inserter = learned_voi_inserter(gen, voi_size, region_size, pixdim, hu_range)
    ins = dict(common, diameter_range=diameter_range)
    sets: dict[str, list] = {"test": test, "real": real}
    for kind, fn in (("rule", None), ("learned", inserter)):
        if not any(m.endswith(kind) for m in modes):
            continue
        if any(m.startswith(("synthetic", "pretrain")) and m.endswith(kind) for m in modes):
            sets[f"synthetic_{kind}"] = inserted_nodule_vois(synth_cases, synth_per_case, seed=data_seed + 2,
                                                             inserter=fn, **ins)
        if f"real_plus_{kind}" in modes:
            sets[f"inserted_{kind}"] = inserted_nodule_vois(0, augment_per_case, seed=data_seed + 3, inserter=fn,
                                                            case_seeds=real_subjects, **ins)
    data_s = time.time() - t0
    tensors = {k: _stack(v, hu_range) for k, v in sets.items()}
    counts = {k: {"positive": int(v[1].sum()), "negative": int((v[1] == 0).sum())} for k, v in tensors.items()}
    per_mode: dict[str, list[float]] = {m: [] for m in modes}
    for seed in seeds:
        for m in modes:
            torch.manual_seed(seed)
            net = make_classifier(voi_size, channels)
            if m == "real":
                train_classifier(net, tensors["real"], steps, seed, batch_size, lr)
            elif m.startswith("synthetic"):
                train_classifier(net, tensors[m], steps, seed, batch_size, lr)
            elif m.startswith("pretrain"):
                kind = m.split("_")[1]
                train_classifier(net, tensors[f"synthetic_{kind}"], steps, seed, batch_size, lr)
                train_classifier(net, tensors["real"], finetune_steps, seed + 100, batch_size, lr * 0.3)
            else:  # real_plus_*
                kind = m.split("_")[-1]
                xr, yr = tensors["real"]
                xi, yi = tensors[f"inserted_{kind}"]
                train_classifier(net, (torch.cat([xr, xi]), torch.cat([yr, yi])), steps, seed, batch_size, lr)
            per_mode[m].append(accuracy(net, tensors["test"]))
            print(f"nodule classifier study: seed {seed} mode {m}: test accuracy {per_mode[m][-1]:.3f}", flush=True)
    summary = {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v} for m, v in per_mode.items()}
    metrics = {"accuracy": summary, "counts": counts, "seeds": list(seeds), "steps": steps,
               "finetune_steps": finetune_steps, "real_subjects": real_subjects,
               "test_subjects": [(data_seed + 7) * 1000 + i for i in range(int(test_cases))],
               "data_seconds": round(data_s, 1), "total_seconds": round(time.time() - t0, 1),
               "injector": str(injector_path) if need_learned else None,
               "note": "synthetic chest-CT phantoms only; not measured on patients"}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    lines = ["| mode | test accuracy (mean +- std over seeds) | per seed |", "| --- | --- | --- |"]
    lines += [f"| {m} | {s['mean']:.3f} +- {s['std']:.3f} | {', '.join(f'{a:.3f}' for a in s['per_seed'])} |"
              for m, s in summary.items()]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return metrics
