"""The paper's comparison as a study step: DeepMCAT (DeepCluster training, then scoring) or the raw-pixel k-means
reference (scoring only) on the same held-out series."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...bundle_helpers import run_bundle
from .evaluation import CLUSTERING_METHODS

__all__ = ["run_clustering_method"]


def run_clustering_method(method: str, bundle: str, overrides: Mapping[str, Any]) -> None:
    """``deepmcat``: the bundle's train.yaml, then evaluate.yaml on the last-epoch model; ``deepmcat_kmeans``:
    evaluate.yaml only, on the model ``overrides["ckpt_path"]`` names (a deepmcat run's); ``raw_kmeans``: evaluate.yaml
    only (k-means on the training frames' pixels). ``overrides``: a study run's config overrides (the
    scores go to its ``output_dir/metrics.csv``)."""
    if method not in CLUSTERING_METHODS:
        raise ValueError(f"method must be one of {CLUSTERING_METHODS}, got {method!r}.")
    if method == "deepmcat":
        run_bundle(bundle, ["train.yaml"], **overrides)
    run_bundle(bundle, ["train.yaml", "evaluate.yaml"], **{**overrides, "method": method})
