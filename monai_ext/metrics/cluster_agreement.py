"""How well a clustering agrees with labels or with another clustering (DeepMCAT, Kart et al., DGM4MICCAI/DALI 2021;
DeepCluster, Caron et al. 2018): normalised mutual information, cluster purity, and the majority-label map that
turns cluster ids into categories.

NMI ``2 I(X; Y) / (H(X) + H(Y))`` is scikit-learn's ``normalized_mutual_info_score`` with the arithmetic mean. Purity
``(1/N) sum_k max_j |c_k n l_j|`` rises towards 1 as the number of clusters grows (one image per cluster is pure), so
compare purity only at a fixed number of clusters and report NMI beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

__all__ = ["cluster_nmi", "cluster_purity", "majority_label_map"]


def _id_array(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: a non-empty 1D sequence of integer ids expected, got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name}: integer ids expected, got values such as {arr[np.mod(arr, 1) != 0][:3]}.")
        arr = arr.astype(np.int64)
    return arr


def _pair(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _id_array(a, names[0]), _id_array(b, names[1])
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have one id per image each, got {x.size} and {y.size}.")
    return x, y


def cluster_nmi(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> float:
    """Normalised mutual information of two labellings of the same images (cluster ids or class labels), in [0, 1];
    1 when one determines the other one-to-one."""
    x, y = _pair(a, b, ("a", "b"))
    return float(normalized_mutual_info_score(x, y, average_method="arithmetic"))


def cluster_purity(clusters: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Fraction of images whose label is the most frequent label of their cluster, in (0, 1]."""
    c, y = _pair(clusters, labels, ("clusters", "labels"))
    _, ci = np.unique(c, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    table = np.zeros((ci.max() + 1, yi.max() + 1), np.int64)
    np.add.at(table, (ci, yi), 1)
    return float(table.max(axis=1).sum() / c.size)


def majority_label_map(clusters: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray,
                       num_clusters: int) -> np.ndarray:
    """``(num_clusters,)`` int64: the most frequent label of each cluster id ``0 .. num_clusters - 1`` (ties: the
    smallest label), -1 for a cluster without images. Cluster ids must lie in that range."""
    c, y = _pair(clusters, labels, ("clusters", "labels"))
    if c.min() < 0 or c.max() >= num_clusters:
        raise ValueError(f"cluster ids must lie in 0..{num_clusters - 1}, got {c.min()}..{c.max()}.")
    if y.min() < 0:
        raise ValueError(f"labels must be >= 0, got {y.min()}.")
    table = np.zeros((num_clusters, y.max() + 1), np.int64)
    np.add.at(table, (c, y), 1)
    out = table.argmax(axis=1).astype(np.int64)
    out[table.sum(axis=1) == 0] = -1
    return out
