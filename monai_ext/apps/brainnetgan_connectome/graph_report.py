"""How much a generated connectome set looks like the real one, by graph features (the paper's Table 2): the
divergences of :class:`~monai_ext.metrics.GraphFeatureDivergence` between the real training matrices and a fake set
as large as them, from the GAN, SMOTE or ADASYN, class by class; written as JSON for a study.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...datalists.connectome import connectome_datalist
from ...io import atomic_write
from ...metrics.graph_features import GraphFeatureDivergence, connectome_graph_features
from .augmentation import fake_connectome_set, load_connectome_set

__all__ = ["fake_set_divergence"]


def fake_set_divergence(dataset_dir: str | os.PathLike, out: str | os.PathLike, augmentation: str = "gan",
                        generator: str | os.PathLike | None = None, split_seed: int = 0, seed: int = 0,
                        classes: Sequence[str] = ("CN", "AD"), threshold: float = 0.05,
                        generator_kwargs: Mapping[str, Any] | None = None, max_per_class: int | None = None,
                        ) -> dict[str, Any]:
    """Graph-feature divergences between the real training matrices of split ``split_seed`` and a fake set of the
    same size per class from ``augmentation`` (``gan`` with ``generator``, ``smote`` or ``adasyn``).

    Writes ``out`` (JSON): ``{"<class>": {"<feature>_kl": ..., "<feature>_mmd": ...}, "mean": {...}}`` (mean over the
    classes); weights at or below ``threshold`` count as no edge in both sets (the generator's sigmoid is never 0).
    ``generator_kwargs``: :class:`ConnectomeGenerator` arguments of non-default generator weights. ``max_per_class``:
    compare only the first that many real and fake matrices of each class (the local efficiency takes about 0.5 s per
    matrix).
    """
    items = connectome_datalist(dataset_dir, classes, split_seed=split_seed)["training"]
    x, y = load_connectome_set(items)
    fx, fy = fake_connectome_set(x, y, augmentation, generator, seed,
                                 generator_kwargs={"num_classes": len(classes), **dict(generator_kwargs or {})})
    divergence = GraphFeatureDivergence(threshold=threshold)
    result: dict[str, Any] = {}
    limit = None if max_per_class is None else int(max_per_class)
    for c, name in enumerate(classes):
        real_f = connectome_graph_features(x[y == c][:limit], threshold)
        fake_f = connectome_graph_features(fx[fy == c][:limit], threshold)
        result[name] = divergence.compare(real_f, fake_f)
    result["mean"] = {k: float(np.mean([result[n][k] for n in classes])) for k in result[classes[0]]}
    atomic_write(out, lambda p: p.write_text(json.dumps(result, indent=1)))
    return result
