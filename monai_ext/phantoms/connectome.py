"""Structural brain connectomes (streamline counts between 90 atlas regions) of cognitively normal (CN) subjects and
subjects with an Alzheimer's-disease-like (AD) loss of connections: the embedded data of BrainNetGAN (Cao et al.,
"BrainNetGAN: Data Augmentation of Brain Connectivity Using Generative Adversarial Network for Dementia
Classification", DGM4MICCAI/DALI 2021; issue 34).

The paper's matrices are AAL-90 streamline counts from diffusion-MRI tractography of ADNI subjects. Here an
*atlas* (the same for every subject) places 45 left regions and their right mirrors in a brain-sized ellipsoid (mm),
in AAL order (even index: left, odd: right), and groups each hemisphere's regions by their front-to-back position
into ``modules_per_hemisphere`` modules. Which pairs of regions are connected at all (the population skeleton,
``density`` of all pairs) depends on their distance, on sharing a module and on being mirror regions (homotopic
callosal fibres); a connection's mean count falls off with its length. A subject draws

- its own skeleton: each population edge is missed with probability ``edge_dropout`` and a few extra short ones
  appear (tractography's false negatives and positives);
- biological variability: a log-normal factor per module pair (``module_sd``) and per edge (``edge_sd``), and a
  global factor for head size and acquisition (``global_sd``);
- AD: the edges touching the ``ad_modules`` (temporal-lobe-like modules of both hemispheres) scaled by one factor
  drawn from ``ad_scale`` per subject.

Counts are Poisson-drawn from the resulting means, so weak connections are noisy as in tractography.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..io import atomic_directory, require_empty_folder
from .seeds import check_seed, derive_seed

__all__ = [
    "CONNECTOME_CLASSES",
    "connectome_atlas",
    "sample_connectome",
    "synthesize_connectome_dataset",
]

CONNECTOME_CLASSES = ("CN", "AD")
_ATLAS_SEED = 20210927


def connectome_atlas(num_nodes: int = 90, modules_per_hemisphere: int = 4, density: float = 0.3) -> dict[str, Any]:
    """The population atlas: region positions (mm), module of each region, hemisphere, the connected pairs and
    their mean streamline counts. Deterministic (one fixed seed): every subject of every data set shares it.

    Returns ``{"positions": (N, 3) mm, "module": (N,) int, "hemisphere": (N,) 0 left / 1 right,
    "skeleton": (N, N) bool (symmetric, no diagonal), "mean_count": (N, N) float, "distance": (N, N) mm}``.
    """
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) or num_nodes < 8 or num_nodes % 2:
        raise ValueError(f"num_nodes must be an even integer >= 8, got {num_nodes!r}.")
    if not 1 <= int(modules_per_hemisphere) <= num_nodes // 4:
        raise ValueError(f"modules_per_hemisphere must be 1..{num_nodes // 4}, got {modules_per_hemisphere!r}.")
    if not 0.05 <= float(density) <= 0.9:
        raise ValueError(f"density must be in [0.05, 0.9], got {density!r}.")
    rng = np.random.default_rng(_ATLAS_SEED)
    half = num_nodes // 2
    # left-hemisphere regions inside a half ellipsoid of 65 x 85 x 55 mm semi-axes (x: left-right, y: back-front)
    pts = []
    while len(pts) < half:
        p = rng.uniform([-65, -85, -55], [-8, 85, 55])
        if (p[0] / 65) ** 2 + (p[1] / 85) ** 2 + (p[2] / 55) ** 2 <= 1.0:
            pts.append(p)
    left = np.array(pts)[np.argsort(np.array(pts)[:, 1])]  # front-to-back order: modules are lobes
    module_left = (np.arange(half) * int(modules_per_hemisphere)) // half
    right = left * np.array([-1.0, 1.0, 1.0]) + rng.normal(0, 3.0, left.shape)
    positions = np.empty((num_nodes, 3))
    positions[0::2], positions[1::2] = left, right
    hemisphere = np.tile([0, 1], half)
    module = np.repeat(module_left, 2) + hemisphere * int(modules_per_hemisphere)
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    same_module = module[:, None] == module[None]
    homotopic = np.zeros((num_nodes, num_nodes), bool)
    idx = np.arange(0, num_nodes, 2)
    homotopic[idx, idx + 1] = homotopic[idx + 1, idx] = True
    score = -distance / 25.0 + 1.0 * same_module + 3.0 * homotopic + rng.gumbel(0, 0.5, distance.shape)
    score = np.triu(score, 1)
    iu = np.triu_indices(num_nodes, 1)
    cut = np.quantile(score[iu], 1.0 - float(density))
    skeleton = np.zeros((num_nodes, num_nodes), bool)
    skeleton[iu] = score[iu] >= cut
    skeleton |= skeleton.T
    # mean streamline count: about 2000 for neighbours, falling off with the length (long fibres are lost)
    mean_count = 2000.0 * np.exp(-distance / 30.0) * np.exp(rng.normal(0, 0.5, distance.shape))
    mean_count = np.triu(mean_count, 1)
    mean_count = (mean_count + mean_count.T) * skeleton
    return {"positions": positions, "module": module, "hemisphere": hemisphere, "skeleton": skeleton,
            "mean_count": mean_count, "distance": distance}


def sample_connectome(rng: np.random.Generator, label: int, atlas: dict[str, Any] | None = None,
                      ad_modules: Sequence[int] = (1, 5), ad_scale: tuple[float, float] = (0.5, 0.8),
                      module_sd: float = 0.2, edge_sd: float = 0.35, global_sd: float = 0.2,
                      edge_dropout: float = 0.1) -> np.ndarray:
    """One subject's streamline-count matrix ``(N, N)`` float32: symmetric, zero diagonal, non-negative integers.

    Args:
        rng: the subject's random generator.
        label: 0 CN, 1 AD (:data:`CONNECTOME_CLASSES`).
        atlas: :func:`connectome_atlas` (default: its defaults).
        ad_modules: modules whose edges AD scales (default: the second module from the front of each hemisphere).
        ad_scale: range of the AD factor (one uniform draw per AD subject).
        module_sd, edge_sd, global_sd: log-normal sd of the per-module-pair, per-edge and per-subject factors.
        edge_dropout: probability that tractography misses an edge of the population skeleton.
    """
    if int(label) not in (0, 1):
        raise ValueError(f"label must be 0 (CN) or 1 (AD), got {label!r}.")
    lo, hi = (float(v) for v in ad_scale)
    if not 0.0 < lo <= hi <= 1.5:
        raise ValueError(f"ad_scale must be (low, high) with 0 < low <= high <= 1.5, got {ad_scale!r}.")
    atlas = connectome_atlas() if atlas is None else atlas
    module, skeleton = atlas["module"], atlas["skeleton"]
    n = len(module)
    n_mod = int(module.max()) + 1
    mod_factor = rng.normal(0.0, float(module_sd), (n_mod, n_mod))
    mod_factor = np.triu(mod_factor) + np.triu(mod_factor, 1).T
    log_mean = np.log(np.maximum(atlas["mean_count"], 1e-6)) + mod_factor[module[:, None], module[None]]
    log_mean += rng.normal(0.0, float(global_sd))
    if int(label) == 1:
        affected = np.isin(module, np.asarray(ad_modules))
        touch = affected[:, None] | affected[None]
        log_mean += np.log(rng.uniform(lo, hi)) * touch
    edge = rng.normal(0.0, float(edge_sd), (n, n))
    log_mean += np.triu(edge, 1) + np.triu(edge, 1).T
    present = skeleton & (rng.random((n, n)) >= float(edge_dropout))
    extra = (~skeleton) & (atlas["distance"] < 30.0) & (rng.random((n, n)) < 0.05)
    present = np.triu(present | extra, 1)
    counts = np.where(present, rng.poisson(np.exp(np.minimum(log_mean, 12.0))), 0).astype(np.float32)
    counts = counts + counts.T
    np.fill_diagonal(counts, 0.0)
    return counts


def synthesize_connectome_dataset(out_dir: str | os.PathLike, per_class: int = 110, seed: int = 0,
                                  num_nodes: int = 90, progress: bool = True, **subject_kwargs: Any) -> dict[str, Any]:
    """Write ``per_class`` CN and ``per_class`` AD subjects to ``out_dir``: ``matrices/sub-XXXX.npy`` (float32
    streamline counts ``(N, N)``), ``labels.csv`` (``subject,label`` with CN / AD, subjects in random order), and
    ``dataset.json`` (settings and atlas). Subject ``i`` depends on ``(seed, i)`` only; written under a temporary name
    and renamed at the end. ``subject_kwargs`` go to :func:`sample_connectome` (e.g. ``ad_scale``).

    Raises:
        ValueError: ``per_class`` below 2, a bad seed or node count.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or int(per_class) < 2:
        raise ValueError(f"per_class must be an integer >= 2, got {per_class!r}.")
    check_seed(seed)
    atlas = connectome_atlas(num_nodes)
    out = require_empty_folder(out_dir)
    order = np.random.default_rng(derive_seed(seed, 90, 0, bits=31)).permutation(2 * int(per_class))

    def fill(tmp: Path) -> None:
        t0 = time.perf_counter()
        (tmp / "matrices").mkdir()
        rows = []
        for k, i in enumerate(order):
            label = int(i >= int(per_class))
            rng = np.random.default_rng(derive_seed(seed, 90, 1, int(i), bits=31))
            name = f"sub-{k:04d}"
            np.save(tmp / "matrices" / f"{name}.npy", sample_connectome(rng, label, atlas, **subject_kwargs))
            rows.append((name, CONNECTOME_CLASSES[label]))
        with open(tmp / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject", "label"])
            w.writerows(rows)
        info = {"name": "monai_ext synthetic structural connectomes",
                "generator": "monai_ext.phantoms.synthesize_connectome_dataset", "seed": int(seed),
                "per_class": int(per_class), "num_nodes": int(num_nodes), "classes": list(CONNECTOME_CLASSES),
                "units": "streamline counts", "subject_settings": {k: list(v) if isinstance(v, tuple) else v
                                                                   for k, v in subject_kwargs.items()},
                "atlas_positions_mm": atlas["positions"].round(2).tolist(), "atlas_modules": atlas["module"].tolist()}
        (tmp / "dataset.json").write_text(json.dumps(info, indent=1))
        if progress:
            print(f"connectomes: {2 * int(per_class)} subjects in {time.perf_counter() - t0:.1f} s -> {out}",
                  flush=True)

    atomic_directory(out, fill)
    return {"out_dir": str(out), "subjects": 2 * int(per_class)}
