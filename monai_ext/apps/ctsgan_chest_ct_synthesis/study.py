"""CT-SGAN's studies, called by the bundle's configs and studies (``configs/evaluate_nodule_classifier.yaml``,
``configs/study.yaml``, ``configs/study_inpainting.yaml``):

- :func:`nodule_classifier_study`: the downstream evaluation of the paper (Sect. 4.3), a small 3D nodule /
  no-nodule classifier on volumes of interest (VOIs), trained in several ways and tested on a balanced set of
  held-out subjects;
- :func:`evaluate_nodule_inpainting`: the learned nodule injector / eraser on VOIs of held-out phantoms, against
  an untrained network of the same architecture.

All data are synthetic chest-CT phantoms generated here: the numbers say nothing about patients.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.networks.nets import Classifier

from ...io import atomic_write
from ...transforms import hu_to_unit, unit_to_hu
from .nodule_inpainting import NODULE_HU_WINDOW, NoduleInpaintingGenerator
from .nodule_voi import (
    balance_voi_samples,
    central_region_mask,
    eraser_pairs,
    inserted_nodule_vois,
    learned_voi_inserter,
    phantom_nodule_vois,
    sphere_mask,
)

__all__ = ["NODULE_CLASSIFIER_MODES", "nodule_classifier_study", "evaluate_nodule_inpainting"]

NODULE_CLASSIFIER_MODES = ("real", "synthetic_rule", "synthetic_learned", "pretrain_rule", "pretrain_learned",
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


def _make_classifier(voi_size: int, channels: Sequence[int] = (8, 16, 32, 32), num_res_units: int = 0) -> torch.nn.Module:
    """MONAI :class:`~monai.networks.nets.Classifier` (strided conv units + linear head), 2 classes."""
    return Classifier(in_shape=(1, voi_size, voi_size, voi_size), classes=2, channels=tuple(channels),
                      strides=(2,) * len(channels), num_res_units=num_res_units, dropout=0.2)


def _train_classifier(net: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], steps: int, seed: int,
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
def _accuracy(net: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    net.eval()
    x, y = data
    pred = torch.cat([net(x[i:i + 64]).argmax(1) for i in range(0, len(x), 64)])
    return float((pred == y).float().mean())


def _file_sha1(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def nodule_classifier_study(
    output_dir: str,
    injector_path: str | None = None,
    modes: Sequence[str] = NODULE_CLASSIFIER_MODES,
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
    voi_cache: str | None = None,
) -> dict[str, Any]:
    """CT-SGAN's downstream study; writes ``metrics.json`` and ``results.md`` into ``output_dir`` and returns
    the metrics (test accuracy per mode: mean, population std and the per-seed values).

    Modes (each for every seed): ``real`` (the few "real" training subjects: the phantoms' own solid nodules and
    nodule-free lung VOIs); ``synthetic_rule`` / ``synthetic_learned`` (only VOIs of other, nodule-free subjects
    into which nodules were inserted by the rule-based ``NoduleInsert`` / the learned injector at
    ``injector_path``); ``pretrain_rule`` / ``pretrain_learned`` (pre-trained on that synthetic set, fine-tuned on
    the real set); ``real_plus_rule`` / ``real_plus_learned`` (the real set plus nodules inserted into the *same*
    training subjects). Every mode gets ``steps`` optimiser steps (pretraining: ``steps`` + ``finetune_steps``);
    a (mode, seed) result does not depend on the other modes or seeds run with it.

    Subjects (phantom seeds): test ``(data_seed + 7) * 1000 + i``, real training ``(data_seed + 1) * 1000 + i``,
    synthetic ``(data_seed + 2) * 1000 + 500 + i``; the injector training config trains on seeds
    ``0 * 1000 + i`` (its ``seed`` 0), so with ``data_seed`` 0 no subject is shared.

    ``voi_cache``: a file that keeps the VOI sets between calls (each set stored with the settings it was made
    with, and the injector's checksum for the learned sets; a set made with other settings is made again), so
    that one call per (mode, seed), as ``configs/study.yaml`` runs it, renders the phantoms once."""
    bad = [m for m in modes if m not in NODULE_CLASSIFIER_MODES]
    if bad:
        raise ValueError(f"modes {bad}: expected some of {NODULE_CLASSIFIER_MODES}.")
    t0 = time.time()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(voi_size=voi_size, shape=phantom_shape, spacing=pixdim, jitter_voxels=jitter_voxels)
    real_seed = data_seed + 1
    real_subjects = [real_seed * 1000 + i for i in range(int(real_cases))]
    need_learned = any(m.endswith("learned") for m in modes)
    if need_learned and (not injector_path or not Path(injector_path).is_file()):
        raise FileNotFoundError(f"{injector_path}: no learned injector; train the injector first (models/nodule_injector.pt) "
                                "or drop the *_learned modes.")
    ins = dict(common, diameter_range=diameter_range)
    inserter = None

    def learned():
        nonlocal inserter
        if inserter is None:
            gen = NoduleInpaintingGenerator("inject", features=injector_features)
            gen.load_state_dict(torch.load(injector_path, map_location="cpu", weights_only=True))
            inserter = learned_voi_inserter(gen, voi_size, region_size, pixdim, hu_range)
        return inserter

    # name -> (settings it depends on, how to make it)
    base_key = dict(common, hu_range=list(hu_range), data_seed=data_seed)
    makers: dict[str, tuple[dict, Any]] = {
        "test": (dict(base_key, cases=test_cases),
                 lambda: balance_voi_samples(phantom_nodule_vois(test_cases, seed=data_seed + 7, **common), seed=data_seed)),
        "real": (dict(base_key, cases=real_cases),
                 lambda: balance_voi_samples(phantom_nodule_vois(real_cases, seed=real_seed, **common), seed=data_seed)),
    }
    for kind in ("rule", "learned"):
        if not any(m.endswith(kind) for m in modes):
            continue
        kind_key = dict(base_key, diameter_range=list(diameter_range))
        if kind == "learned":
            kind_key.update(injector=_file_sha1(injector_path), injector_features=list(injector_features),
                            region_size=region_size)
        fn = (lambda: learned()) if kind == "learned" else (lambda: None)
        if any(m.startswith(("synthetic", "pretrain")) and m.endswith(kind) for m in modes):
            makers[f"synthetic_{kind}"] = (
                dict(kind_key, synth_cases=synth_cases, synth_per_case=synth_per_case),
                lambda fn=fn: inserted_nodule_vois(synth_cases, synth_per_case, seed=data_seed + 2, inserter=fn(), **ins))
        if f"real_plus_{kind}" in modes:
            makers[f"inserted_{kind}"] = (
                dict(kind_key, real_cases=real_cases, augment_per_case=augment_per_case),
                lambda fn=fn: inserted_nodule_vois(0, augment_per_case, seed=data_seed + 3, inserter=fn(),
                                                   case_seeds=real_subjects, **ins))
    cache: dict = {}
    if voi_cache and Path(voi_cache).is_file():
        cache = torch.load(voi_cache, map_location="cpu", weights_only=True)
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    changed = False
    for name, (key, make) in makers.items():
        key_text = json.dumps(key, sort_keys=True, default=str)
        hit = cache.get(name)
        if hit is not None and hit["key"] == key_text:
            tensors[name] = (hit["x"], hit["y"])
            continue
        tensors[name] = _stack(make(), hu_range)
        cache[name] = {"key": key_text, "x": tensors[name][0], "y": tensors[name][1]}
        changed = True
    if voi_cache and changed:
        atomic_write(voi_cache, lambda p: torch.save(cache, p))
    data_s = time.time() - t0
    counts = {k: {"positive": int(v[1].sum()), "negative": int((v[1] == 0).sum())} for k, v in tensors.items()}
    per_mode: dict[str, list[float]] = {m: [] for m in modes}
    for seed in seeds:
        for m in modes:
            torch.manual_seed(seed)
            net = _make_classifier(voi_size, channels)
            if m == "real":
                _train_classifier(net, tensors["real"], steps, seed, batch_size, lr)
            elif m.startswith("synthetic"):
                _train_classifier(net, tensors[m], steps, seed, batch_size, lr)
            elif m.startswith("pretrain"):
                kind = m.split("_")[1]
                _train_classifier(net, tensors[f"synthetic_{kind}"], steps, seed, batch_size, lr)
                _train_classifier(net, tensors["real"], finetune_steps, seed + 100, batch_size, lr * 0.3)
            else:  # real_plus_*
                kind = m.split("_")[-1]
                xr, yr = tensors["real"]
                xi, yi = tensors[f"inserted_{kind}"]
                _train_classifier(net, (torch.cat([xr, xi]), torch.cat([yr, yi])), steps, seed, batch_size, lr)
            per_mode[m].append(_accuracy(net, tensors["test"]))
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


def _inpaint(g: torch.nn.Module, voi: np.ndarray, region: np.ndarray, nodule: np.ndarray | None = None) -> np.ndarray:
    with torch.no_grad():
        x = hu_to_unit(torch.as_tensor(voi)[None], NODULE_HU_WINDOW)
        r = torch.as_tensor(region)[None]
        y = g(x, r, None if nodule is None else torch.as_tensor(nodule)[None])
    return unit_to_hu(y, NODULE_HU_WINDOW)[0].numpy()


def _generator(mode: str, path: Path | None, features: Sequence[int]) -> torch.nn.Module:
    g = NoduleInpaintingGenerator(mode, features=features)
    if path is not None:
        g.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return g.eval()


def evaluate_nodule_inpainting(
    out: str,
    models: str,
    cases: int = 4,
    seed: int = 5,
    shape: Sequence[int] = (176, 128, 144),
    features: Sequence[int] = (8, 16, 32, 64, 64, 8),
    generators: Sequence[str] = ("trained", "untrained"),
    montage: bool = True,
) -> dict[str, Any]:
    """The learned nodule injector / eraser (``models/nodule_injector.pt``, ``models/nodule_eraser.pt`` in
    ``models``) on VOIs of ``cases`` held-out phantoms (seeds ``seed * 1000 + i``, never trained on with the
    default ``seed`` 5); writes ``out/metrics.json`` (and ``inpainting_montage.png`` of centre slices with
    ``montage`` and the trained generators) and returns the metrics. All in HU:

    - injector, on nodule-free VOIs, target balls of 6 / 10 / 16 mm: median HU inside the ball (mean and std
      over VOIs; the phantoms' solid nodules are -50..+100 HU), and the MAE over the region against the real
      VOI for VOIs centred on the phantoms' own nodules (blanked region + their ball as input);
    - eraser: MAE over the region against the pair's nodule-free target, and |mean| / |std| differences between
      the erased nodule ball and the lung of the VOI outside the region (mean and max; the 30 HU criterion).

    ``generators``: ``trained`` (the files) and / or ``untrained`` (the same architecture, initialised with
    torch seed 0), the reference."""
    unknown = [g for g in generators if g not in ("trained", "untrained")]
    if unknown:
        raise ValueError(f"generators {unknown}: expected 'trained' and / or 'untrained'.")
    torch.manual_seed(0)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sp = (2.0, 2.0, 2.0)
    samples = phantom_nodule_vois(cases, seed=seed, voi_size=32, shape=shape, spacing=sp)
    region = central_region_mask(32, 16)
    rin = region[0] > 0.5
    pos = [s for s in samples if s["label"] == 1]
    neg = [s for s in samples if s["label"] == 0]
    gens = {}
    if "trained" in generators:
        gens["trained"] = {m: _generator(m, Path(models) / f"nodule_{n}.pt", features)
                           for m, n in (("inject", "injector"), ("erase", "eraser"))}
    if "untrained" in generators:
        torch.manual_seed(0)
        gens["untrained"] = {m: _generator(m, None, features) for m in ("inject", "erase")}
    metrics: dict = {"cases": [seed * 1000 + i for i in range(cases)], "positives": len(pos), "negatives": len(neg)}
    for name, g in gens.items():
        m: dict = {}
        for d in (6.0, 10.0, 16.0):
            ball = sphere_mask(32, d, sp)
            med = [float(np.median(_inpaint(g["inject"], s["image"], region, ball)[0][ball[0] > 0.5])) for s in neg]
            m[f"inject_{int(d)}mm_median_hu_in_ball"] = [round(float(np.mean(med)), 1), round(float(np.std(med)), 1)]
        mae = [float(np.abs(_inpaint(g["inject"], s["image"], region, sphere_mask(32, s["diameter_mm"], sp))[0]
                            - s["image"][0])[rin].mean()) for s in pos]
        m["inject_real_nodule_mae_hu"] = round(float(np.mean(mae)), 1)
        pairs = eraser_pairs(samples, 16, seed=1)
        mae_e, dmean, dstd = [], [], []
        for p in pairs:
            y = _inpaint(g["erase"], p["image"], region)[0]
            mae_e.append(float(np.abs(y - p["target"][0])[rin].mean()))
            ball = sphere_mask(32, p["diameter_mm"], sp)[0] > 0.5
            lung = (~rin) & (p["target"][0] < -500)
            dmean.append(abs(float(y[ball].mean() - p["target"][0][lung].mean())))
            dstd.append(abs(float(y[ball].std() - p["target"][0][lung].std())))
        m["erase_mae_hu"] = round(float(np.mean(mae_e)), 1)
        m["erase_identity_mae_hu"] = round(float(np.mean([np.abs(p["image"][0] - p["target"][0])[rin].mean() for p in pairs])), 1)
        m["erase_ball_vs_lung_abs_mean_diff_hu"] = [round(float(np.mean(dmean)), 1), round(float(np.max(dmean)), 1)]
        m["erase_ball_vs_lung_abs_std_diff_hu"] = [round(float(np.mean(dstd)), 1), round(float(np.max(dstd)), 1)]
        m["erase_within_30hu_fraction"] = round(float(np.mean([(a <= 30) and (b <= 30) for a, b in zip(dmean, dstd)])), 3)
        metrics[name] = m
    if montage and "trained" in gens:
        # rows: 4 nodule-free VOIs (orig | learned 10 mm) then 4 real-nodule VOIs (orig | learned erase)
        from PIL import Image

        g = gens["trained"]
        ball = sphere_mask(32, 10.0, sp)
        tiles = [[s["image"][0], _inpaint(g["inject"], s["image"], region, ball)[0]] for s in neg[:4]]
        tiles += [[s["image"][0], _inpaint(g["erase"], s["image"], region)[0]] for s in pos[:4]]
        rows = [np.concatenate([np.clip((v[:, :, 16].T + 1000) / 1400, 0, 1) for v in r], 1) for r in tiles]
        grid = np.concatenate([np.concatenate(rows[:4], 0), np.concatenate(rows[4:], 0)], 1)
        img = Image.fromarray((grid * 255).astype(np.uint8)).resize((grid.shape[1] * 4, grid.shape[0] * 4), 0)
        atomic_write(out_dir / "inpainting_montage.png", lambda p: img.save(p))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics, indent=1))
    return metrics
