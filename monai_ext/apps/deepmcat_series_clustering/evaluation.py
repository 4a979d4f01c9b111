"""Scores of a DeepMCAT model and of the paper's reference point, k-means on raw pixels, on held-out series.

Per held-out frame a cluster id (the network: its stored final k-means centroid nearest to the frame's features; the
baseline: the nearest raw-pixel k-means centroid of the training frames). Against the frames' categories: NMI and cluster purity
(the paper's metrics, at the same number of clusters for both), and the accuracy of the cluster -> category map
learnt from the training frames' labels (the paper's majority assignment), per frame and per series (majority vote of
its frames).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ...io import PathLike, atomic_write
from ...metrics.cluster_agreement import cluster_nmi, cluster_purity, majority_label_map
from .network import DeepMCATNet
from .trainer import extract_features, kmeans_on_features

__all__ = ["CLUSTERING_METHODS", "clustering_scores", "evaluate_clustering", "feature_kmeans", "predict_clusters",
           "raw_pixel_kmeans"]

#: what evaluate.yaml can score: the trained network (``assign``: its stored final centroids; the top layer for a
#: model saved without them), k-means re-fitted on the trained network's features, or k-means on the raw (z-scored)
#: pixels
CLUSTERING_METHODS = ("deepmcat", "deepmcat_kmeans", "raw_kmeans")


@torch.no_grad()
def predict_clusters(network: DeepMCATNet, items: list[dict[str, Any]], device: torch.device | str = "cpu",
                     batch_size: int = 256) -> np.ndarray:
    """``(N,)`` cluster id (``network.assign``: the nearest stored centroid) of each frame item (``image`` (1, H, W))."""
    network.eval()
    loader = DataLoader([i["image"] for i in items], batch_size=batch_size, shuffle=False)
    out = [network.assign(torch.as_tensor(x).to(device)).cpu() for x in loader]
    return torch.cat(out).numpy().astype(np.int64)


def raw_pixel_kmeans(train_items: list[dict[str, Any]], test_items: list[dict[str, Any]], num_clusters: int,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means (scikit-learn, ``num_clusters``, 3 initialisations) on the flattened z-scored pixels of the training
    frames; returns ``(training assignments, test assignments)`` (the test frames go to their nearest centroid)."""
    from sklearn.cluster import KMeans

    x_train = np.stack([np.asarray(i["image"]).ravel() for i in train_items]).astype(np.float32)
    x_test = np.stack([np.asarray(i["image"]).ravel() for i in test_items]).astype(np.float32)
    km = KMeans(n_clusters=int(num_clusters), n_init=3, random_state=int(seed)).fit(x_train)
    return km.labels_.astype(np.int64), km.predict(x_test).astype(np.int64)


@torch.no_grad()
def feature_kmeans(network: DeepMCATNet, train_items: list[dict[str, Any]], test_items: list[dict[str, Any]],
                   num_clusters: int, seed: int = 0, device: torch.device | str = "cpu",
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """k-means (:func:`kmeans_on_features`, ``num_clusters``) re-fitted on the L2-normalised features of the training
    frames through ``network``; returns ``(training assignments, test assignments)`` (test frames to the nearest
    centroid)."""
    train_f, _ = extract_features(network, DataLoader(train_items, batch_size=batch_size, shuffle=False), device)
    test_f, _ = extract_features(network, DataLoader(test_items, batch_size=batch_size, shuffle=False), device)
    km = kmeans_on_features(train_f, num_clusters, seed)
    test_f = test_f.astype(np.float64)
    test_f /= np.linalg.norm(test_f, axis=1, keepdims=True) + 1e-12
    return km.labels_.astype(np.int64), km.predict(test_f).astype(np.int64)


def clustering_scores(clusters: np.ndarray, items: list[dict[str, Any]], cluster_category: np.ndarray) -> dict[str, float]:
    """NMI and purity of ``clusters`` against the items' labels, the accuracy of ``cluster_category`` (cluster ->
    category, -1 unknown) per frame and per series (majority vote of the series' frames), and the clusters used."""
    labels = np.array([int(i["label"]) for i in items])
    if labels.min() < 0:
        raise ValueError("clustering_scores: every frame needs a category label (series.csv) to be scored.")
    predicted = np.asarray(cluster_category)[clusters]
    by_series: dict[str, list[int]] = {}
    series_label: dict[str, int] = {}
    for item, p in zip(items, predicted):
        by_series.setdefault(item["series"], []).append(int(p))
        series_label[item["series"]] = int(item["label"])
    series_hits = [Counter(v).most_common(1)[0][0] == series_label[s] for s, v in by_series.items()]
    return {
        "nmi_labels": cluster_nmi(clusters, labels),
        "cluster_purity": cluster_purity(clusters, labels),
        "frame_accuracy": float(np.mean(predicted == labels)),
        "series_accuracy": float(np.mean(series_hits)),
        "clusters_used": float(len(np.unique(clusters))),
        "frames": float(len(items)),
        "series": float(len(by_series)),
    }


def evaluate_clustering(method: str, train_items: list[dict[str, Any]], test_items: list[dict[str, Any]],
                        output_dir: PathLike, network: DeepMCATNet | None = None, num_clusters: int = 80,
                        seed: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """Score ``method`` (:data:`CLUSTERING_METHODS`) on ``test_items`` and write ``output_dir/metrics.csv``
    (``test_<score>,value`` rows, MONAI ``MetricsSaver``'s layout) plus ``train_<score>`` of the training frames;
    returns the scores. ``deepmcat`` needs ``network`` (its ``cluster_category`` map, learnt from the training
    labels, is used as stored); ``deepmcat_kmeans`` (:func:`feature_kmeans`, with ``network``) and ``raw_kmeans``
    fit on ``train_items`` and name their clusters by the training labels."""
    if method not in CLUSTERING_METHODS:
        raise ValueError(f"method must be one of {CLUSTERING_METHODS}, got {method!r}.")
    t0 = time.perf_counter()
    train_labels = np.array([int(i["label"]) for i in train_items])
    if method.startswith("deepmcat") and network is None:
        raise ValueError(f"method {method!r} needs the trained network.")
    if method == "deepmcat":
        network = network.to(device)
        train_c, test_c = predict_clusters(network, train_items, device), predict_clusters(network, test_items, device)
        mapping = network.cluster_category.cpu().numpy()
        k = network.num_clusters
    else:
        k = int(num_clusters)
        if method == "deepmcat_kmeans":
            train_c, test_c = feature_kmeans(network.to(device), train_items, test_items, k, seed, device)
        else:
            train_c, test_c = raw_pixel_kmeans(train_items, test_items, k, seed)
        mapping = majority_label_map(train_c, train_labels, k)
    scores = {f"test_{n}": v for n, v in clustering_scores(test_c, test_items, mapping).items()}
    scores.update({f"train_{n}": v for n, v in clustering_scores(train_c, train_items, mapping).items()})
    scores["num_clusters"] = float(k)
    scores["seconds"] = time.perf_counter() - t0
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.csv", lambda p: p.write_text("".join(f"{n},{v:.6g}\n" for n, v in scores.items())))
    print(f"{method}: test NMI {scores['test_nmi_labels']:.3f}, purity {scores['test_cluster_purity']:.3f}, series "
          f"accuracy {scores['test_series_accuracy']:.3f} ({int(scores['test_series'])} series, "
          f"{int(scores['test_frames'])} frames, {k} clusters) -> {out / 'metrics.csv'}", flush=True)
    return scores
