"""Training sets for the AD / CN classifier: real connectomes, generated ones, or both (Cao et al., DGM4MICCAI/DALI
2021, Sect. 3: "fake only" and "real + fake", the fake set as large as the real training set, class by class), the
generated ones from the BrainNetGAN generator or from the paper's baselines SMOTE and ADASYN (``imbalanced-learn``)
applied to the upper-triangle vectors of the real training matrices.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...bundle_helpers import load_weights
from ...io import atomic_directory, require_empty_folder
from ...transforms.connectome import (
    LoadConnectome,
    ScaleConnectome,
    symmetric_to_upper_triangle,
    upper_triangle_to_symmetric,
)
from .networks import ConnectomeGenerator

__all__ = [
    "AUGMENTATIONS",
    "TRAIN_MODES",
    "load_connectome_set",
    "gan_connectomes",
    "oversampled_connectomes",
    "fake_connectome_set",
    "connectome_training_set",
    "write_generated_connectomes",
]

AUGMENTATIONS = ("none", "gan", "smote", "adasyn")
TRAIN_MODES = ("real", "fake", "real+fake")


def load_connectome_set(items: Sequence[Mapping[str, Any]], num_nodes: int = 90, log: bool = True,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Read, check and scale the matrices of datalist ``items`` (``{"matrix": path, "label": int}``): returns
    ``(B, 1, N, N)`` float32 in [0, 1] and the labels ``(B,)`` int64."""
    if not items:
        raise ValueError("no subjects to load (an empty datalist part).")
    load, scale = LoadConnectome(num_nodes), ScaleConnectome(log)
    x = np.stack([np.asarray(scale(load(it["matrix"]).as_tensor())) for it in items]).astype(np.float32)
    return x, np.asarray([int(it["label"]) for it in items], dtype=np.int64)


def _counts(labels: np.ndarray, num_classes: int) -> dict[int, int]:
    return {c: int((labels == c).sum()) for c in range(num_classes)}


def gan_connectomes(generator: ConnectomeGenerator | str | os.PathLike, counts: Mapping[int, int], seed: int = 0,
                    device: str | torch.device = "cpu", batch_size: int = 256, **generator_kwargs: Any,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``counts[c]`` generated matrices of each class ``c``: ``(sum, 1, N, N)`` float32 and their labels. A path
    loads a :class:`ConnectomeGenerator` (``generator_kwargs``: its constructor arguments) from a weights file."""
    if not isinstance(generator, ConnectomeGenerator):
        net = ConnectomeGenerator(**generator_kwargs)
        load_weights(net, generator)
        generator = net
    generator = generator.to(device).eval()
    labels = torch.cat([torch.full((int(n),), int(c), dtype=torch.long) for c, n in sorted(counts.items())])
    rng = torch.Generator().manual_seed(int(seed))
    n = generator.num_nodes
    out = torch.empty(len(labels), 1, n, n)
    with torch.no_grad():
        for start in range(0, len(labels), int(batch_size)):
            part = labels[start:start + int(batch_size)]
            v = generator.upper_triangle(generator.condition(part, rng)).cpu()
            # mirrored straight into the output (what generator.sample does, without two more copies)
            upper_triangle_to_symmetric(v, n, out=out[start:start + len(part)])
    return out.numpy(), labels.numpy()


def oversampled_connectomes(x: np.ndarray, y: np.ndarray, counts: Mapping[int, int], method: str = "smote",
                            seed: int = 0, k_neighbors: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """``counts[c]`` new matrices of each class from SMOTE or ADASYN (``imbalanced-learn``) on the upper triangles of
    the real matrices ``x`` ``(B, 1, N, N)`` with labels ``y``; symmetric again on return.

    SMOTE and ADASYN only oversample a class up to another's size, so on balanced classes they would make nothing:
    each class is asked for its real count plus ``counts[c]`` (``sampling_strategy`` as a dict), which is how they
    make a fake set as large as the real one. ADASYN places its samples near the other class and may return a few
    more or fewer than asked; it fails when no sample of a class has a neighbour of the other class.
    """
    from imblearn.over_sampling import ADASYN, SMOTE

    method = str(method).lower()
    if method not in ("smote", "adasyn"):
        raise ValueError(f"method must be 'smote' or 'adasyn', got {method!r}.")
    n = x.shape[-1]
    vec = symmetric_to_upper_triangle(torch.as_tensor(x[:, 0], dtype=torch.float64)).numpy()
    real = _counts(y, int(y.max()) + 1)
    strategy = {c: real[c] + int(counts.get(c, 0)) for c in real}
    k = max(1, min(int(k_neighbors), min(real.values()) - 1))
    sampler = (SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=int(seed)) if method == "smote"
               else ADASYN(sampling_strategy=strategy, n_neighbors=k, random_state=int(seed)))
    try:
        vec_res, y_res = sampler.fit_resample(vec, y)
    except (RuntimeError, ValueError) as e:
        raise RuntimeError(f"{method.upper()} could not generate connectomes: {e}") from e
    new_vec, new_y = vec_res[len(vec):], np.asarray(y_res[len(vec):], dtype=np.int64)
    mats = upper_triangle_to_symmetric(torch.as_tensor(new_vec, dtype=torch.float32), n).unsqueeze(1).numpy()
    return mats, new_y


def fake_connectome_set(x: np.ndarray, y: np.ndarray, augmentation: str, generator: str | os.PathLike | None = None,
                        seed: int = 0, fake_ratio: float = 1.0, num_nodes: int = 90,
                        generator_kwargs: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``fake_ratio`` generated matrices per real one of each class, from ``augmentation`` (``"gan"`` with the
    ``generator`` weights, ``"smote"`` or ``"adasyn"`` on the real matrices ``x`` ``(B, 1, N, N)`` with labels ``y``):
    ``(M, 1, N, N)`` float32 and their labels."""
    counts = {c: int(round(float(fake_ratio) * n)) for c, n in _counts(y, int(y.max()) + 1).items()}
    if augmentation == "gan":
        if generator is None:
            raise ValueError("augmentation 'gan' needs the generator weights (generator_path).")
        return gan_connectomes(generator, counts, seed, num_nodes=num_nodes, **dict(generator_kwargs or {}))
    if augmentation in ("smote", "adasyn"):
        return oversampled_connectomes(x, y, counts, augmentation, seed)
    raise ValueError(f"augmentation must be 'gan', 'smote' or 'adasyn' to generate matrices, got {augmentation!r}.")


def connectome_training_set(items: Sequence[Mapping[str, Any]], mode: str = "real", augmentation: str = "none",
                            generator: str | os.PathLike | None = None, seed: int = 0, num_nodes: int = 90,
                            fake_ratio: float = 1.0, generator_kwargs: Mapping[str, Any] | None = None,
                            ) -> list[dict[str, Any]]:
    """The classifier's training items ``{"matrix": (1, N, N) float32, "label": int, "source": "real" | name}``.

    Args:
        items: the real training subjects (datalist ``training`` part).
        mode: ``"real"``, ``"fake"`` or ``"real+fake"`` (:data:`TRAIN_MODES`).
        augmentation: where the fake matrices come from: ``"gan"`` (``generator``), ``"smote"``, ``"adasyn"``;
            ``"none"`` only with ``mode="real"`` (:data:`AUGMENTATIONS`).
        generator: the generator weights (``models/generator.pt``) for ``"gan"``.
        seed: seed of the generated set.
        num_nodes: matrix size the files must have.
        fake_ratio: fake matrices per real one, class by class (the paper: 1).
        generator_kwargs: :class:`ConnectomeGenerator` arguments other than ``num_nodes``.
    """
    if mode not in TRAIN_MODES:
        raise ValueError(f"mode must be one of {TRAIN_MODES}, got {mode!r}.")
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {augmentation!r}.")
    if (mode == "real") != (augmentation == "none"):
        raise ValueError(f"mode {mode!r} with augmentation {augmentation!r}: 'real' takes augmentation 'none', and "
                         "'fake' / 'real+fake' take 'gan', 'smote' or 'adasyn'.")
    x, y = load_connectome_set(items, num_nodes)
    out = [{"matrix": m, "label": int(c), "source": "real"} for m, c in zip(x, y)] if mode != "fake" else []
    if augmentation == "none":
        return out
    fx, fy = fake_connectome_set(x, y, augmentation, generator, seed, fake_ratio, num_nodes, generator_kwargs)
    return out + [{"matrix": m, "label": int(c), "source": augmentation} for m, c in zip(fx, fy)]


def write_generated_connectomes(generator: str | os.PathLike, out_dir: str | os.PathLike, per_class: int = 100,
                                classes: Sequence[str] = ("CN", "AD"), seed: int = 0,
                                generator_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``per_class`` generated matrices of each class to ``out_dir`` in the dataset layout
    (``matrices/gen-XXXX.npy``, ``labels.csv``): weights in [0, 1], usable as a ``dataset_dir`` again.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty (nothing is written).
        FileNotFoundError / ValueError: missing or mismatching generator weights.
    """
    if isinstance(per_class, bool) or int(per_class) < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}.")
    out = require_empty_folder(out_dir)
    kwargs = {"num_classes": len(classes), **dict(generator_kwargs or {})}
    x, y = gan_connectomes(generator, {c: int(per_class) for c in range(len(classes))}, seed, **kwargs)

    def fill(tmp: Path) -> None:
        (tmp / "matrices").mkdir()
        with open(tmp / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject", "label"])
            for i, (m, c) in enumerate(zip(x, y)):
                np.save(tmp / "matrices" / f"gen-{i:04d}.npy", m[0])
                w.writerow([f"gen-{i:04d}", classes[int(c)]])

    atomic_directory(out, fill)
    print(f"generated {len(x)} connectomes ({per_class} per class) -> {out}", flush=True)
    return {"out_dir": str(out), "matrices": int(len(x))}
