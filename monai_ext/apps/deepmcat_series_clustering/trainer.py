"""DeepCluster training of DeepMCAT (Kart et al., DGM4MICCAI/DALI 2021, section 2; Caron et al. 2018).

Every epoch starts by clustering and then trains on the clusters:

1. the features of every training frame (the network's penultimate activations, no augmentation, eval mode),
   L2-normalised (optionally PCA-whitened to ``pca_dim`` and normalised again, as DeepCluster; DeepMCAT: no PCA);
2. k-means with ``num_clusters`` clusters (the paper: 8 x the number of categories; scikit-learn);
3. the assignments become the pseudo-labels of the epoch; the sampler draws frames uniformly over the non-empty
   clusters (a ``torch.utils.data.WeightedRandomSampler`` whose weights are re-set to 1 / cluster size);
4. the top layer is re-initialised (``reset_top_layer``, DeepCluster's default; the paper does not say) and its
   optimiser state dropped; then the epoch trains the whole network with cross-entropy on the pseudo-labels.

Logged in ``engine.state.metrics`` each epoch: ``nmi_previous_epoch`` (agreement with the last epoch's clusters, the
paper's stability signal), ``clusters_used``, ``clustering_seconds``; when every training frame has a label (the
embedded data; labels are never used for training), ``nmi_labels`` and ``cluster_purity`` too, and the network's
``cluster_category`` map is set to each cluster's majority category.

After the last epoch (:func:`fit_final_clusters`) the features of the final network are clustered once more and
the centroids, with each cluster's majority category, are stored in the network, so that the checkpoint assigns new
frames to the clusters of DeepCluster's k-means step (its top layer, re-initialised every epoch and trained for one
epoch, predicts only a few of them: 12 of 80 on the embedded data).

Under ``torch.distributed`` every rank extracts the same features (the same weights); rank 0 runs k-means and
broadcasts the assignments; gradients are averaged by :func:`monai_ext.engines.synced_optimizer_step`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys as Keys
from monai.utils import min_version, optional_import
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from ...engines.distributed import is_distributed, synced_optimizer_step
from ...io import PathLike, atomic_write
from ...metrics.cluster_agreement import cluster_nmi, cluster_purity, majority_label_map
from .network import DeepMCATNet

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["DeepClusterTrainer", "cluster_features", "extract_features", "fit_final_clusters", "kmeans_on_features"]

_HISTORY = ("nmi_previous_epoch", "nmi_labels", "cluster_purity", "clusters_used", "clustering_seconds")


@torch.no_grad()
def extract_features(network: DeepMCATNet, loader: DataLoader, device: torch.device | str) -> tuple[np.ndarray, np.ndarray]:
    """``(features (N, D) float32, labels (N,) int64)`` of every batch of ``loader`` (dicts with ``image`` and
    ``label``; -1 where a frame has no label), in the loader's order, the network in eval mode (restored after)."""
    was_training = network.training
    network.eval()
    feats, labels = [], []
    try:
        for batch in loader:
            feats.append(network.features(batch[Keys.IMAGE].to(device)).float().cpu())
            labels.append(torch.as_tensor(batch.get(Keys.LABEL, torch.full((len(feats[-1]),), -1))).long().cpu())
    finally:
        network.train(was_training)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


def kmeans_on_features(features: np.ndarray, num_clusters: int, seed: int, pca_dim: int = 0, max_iter: int = 300,
                       dtype: type = np.float64) -> Any:
    """The fitted scikit-learn ``KMeans`` (one seeded initialisation) of the rows of ``features`` (N, D) after L2
    normalisation (and PCA whitening to ``pca_dim`` then L2 normalisation again when ``pca_dim`` > 0), fitted in
    ``dtype``. The final clustering (:func:`fit_final_clusters`, float64, 300 iterations) and, through
    :func:`cluster_features`, each epoch's."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    if features.ndim != 2 or len(features) < num_clusters:
        raise ValueError(f"k-means with {num_clusters} clusters needs at least as many feature vectors (N, D); got "
                         f"shape {features.shape}. Use fewer clusters or more images.")
    x = features.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    if pca_dim:
        x = PCA(min(int(pca_dim), *x.shape), whiten=True, random_state=seed).fit_transform(x)
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    km = KMeans(n_clusters=int(num_clusters), n_init=1, max_iter=int(max_iter), random_state=int(seed))
    return km.fit(x.astype(dtype))


def cluster_features(features: np.ndarray, num_clusters: int, seed: int, pca_dim: int = 0,
                     max_iter: int = 100) -> np.ndarray:
    """Each epoch's k-means cluster ids ``(N,)`` of ``features`` (N, D): :func:`kmeans_on_features` in float32."""
    return kmeans_on_features(features, num_clusters, seed, pca_dim, max_iter, np.float32).labels_.astype(np.int64)


def _rank0_assignments(assign: np.ndarray, device: torch.device | str) -> np.ndarray:
    # rank 0's cluster ids on every rank (other ranks pass placeholders of the same length)
    if not is_distributed():
        return assign
    t = torch.as_tensor(assign, device=device)
    dist.broadcast(t, src=0)
    return t.cpu().numpy()


def fit_final_clusters(network: DeepMCATNet, loader: DataLoader, seed: int,
                       device: torch.device | str = "cpu") -> np.ndarray:
    """Cluster the features of every frame of ``loader`` (:func:`kmeans_on_features`, ``network.num_clusters``) and
    store the centroids in ``network``, and the clusters' majority categories when every frame has a label (else -1);
    returns the assignments (N,). Under ``torch.distributed`` rank 0 clusters and broadcasts."""
    feats, labels = extract_features(network, loader, device)
    if not is_distributed() or dist.get_rank() == 0:
        km = kmeans_on_features(feats, network.num_clusters, seed)
        assign = km.labels_.astype(np.int64)
        network.set_centroids(torch.as_tensor(km.cluster_centers_))
        mapping = (majority_label_map(assign, labels, network.num_clusters) if labels.min() >= 0
                   else np.full(network.num_clusters, -1))
        network.set_cluster_categories(mapping)
    else:
        assign = np.zeros(len(feats), np.int64)
    if is_distributed():
        for buf in (network.centroids, network.cluster_category):
            dist.broadcast(buf, src=0)
    return _rank0_assignments(assign, network.centroids.device)


class DeepClusterTrainer(SupervisedTrainer):
    """Per-epoch k-means on the network's features, then cross-entropy on the cluster ids (see the module text).

    Args:
        device, max_epochs, train_data_loader, network, optimizer, epoch_length, train_handlers: as for
            SupervisedTrainer. ``train_data_loader`` yields augmented frames as dicts with ``image`` (B, 1, H, W) and
            ``index`` (the frame's position in ``cluster_data_loader``'s order) and draws them with ``sampler``.
        cluster_data_loader: every training frame once, in a fixed order, without augmentation (``image``,
            ``label``).
        sampler: the ``WeightedRandomSampler`` of ``train_data_loader``; its weights are set each epoch.
        num_clusters: k of k-means (the paper: 8 x categories); must equal the network's ``num_clusters``.
        pca_dim: 0 (DeepMCAT) or the PCA-whitened dimension before k-means (DeepCluster: 256).
        reset_top_layer: re-initialise the top layer every epoch (DeepCluster).
        seed: k-means and top-layer seed (offset by the epoch).
        kmeans_max_iter: Lloyd iterations of k-means.
        loss_function: default cross-entropy.
        history_csv: when given, the clustering metrics of every epoch so far are (re)written there each epoch.
    """

    def __init__(self, device: torch.device | str, max_epochs: int, train_data_loader: DataLoader,
                 network: DeepMCATNet, optimizer: torch.optim.Optimizer, cluster_data_loader: DataLoader,
                 sampler: WeightedRandomSampler, num_clusters: int, pca_dim: int = 0, reset_top_layer: bool = True,
                 seed: int = 0, kmeans_max_iter: int = 100, loss_function: nn.Module | None = None,
                 epoch_length: int | None = None, train_handlers: Any = None, history_csv: PathLike | None = None,
                 **kwargs: Any) -> None:
        if int(num_clusters) != network.num_clusters:
            raise ValueError(f"num_clusters ({num_clusters}) must equal the network's num_clusters "
                             f"({network.num_clusters}).")
        if not isinstance(sampler, WeightedRandomSampler):
            raise TypeError(f"sampler must be a torch.utils.data.WeightedRandomSampler, got {type(sampler).__name__}.")
        super().__init__(device=device, max_epochs=max_epochs, train_data_loader=train_data_loader, network=network,
                         optimizer=optimizer, loss_function=loss_function or nn.CrossEntropyLoss(),
                         epoch_length=epoch_length, train_handlers=train_handlers, **kwargs)
        self.cluster_data_loader = cluster_data_loader
        self.sampler = sampler
        self.num_clusters = int(num_clusters)
        self.pca_dim = int(pca_dim)
        self.reset_top = bool(reset_top_layer)
        self.cluster_seed = int(seed)
        self.kmeans_max_iter = int(kmeans_max_iter)
        self.pseudo_labels: torch.Tensor | None = None
        self.previous_assignments: np.ndarray | None = None
        self.history_csv = None if history_csv is None else Path(history_csv)
        self.history: list[dict[str, float]] = []
        self.add_event_handler(Events.EPOCH_STARTED, self.recluster)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._final_clusters)

    def _final_clusters(self, engine: Any = None) -> None:
        # after the last epoch (before COMPLETED, when the final checkpoint is written): centroids and names
        if int(self.state.epoch) == int(self.state.max_epochs):
            fit_final_clusters(self.network, self.cluster_data_loader, self.cluster_seed, self.state.device)

    def recluster(self, engine: Any = None) -> np.ndarray:
        """Cluster the training frames and set this epoch's pseudo-labels, sampler weights and top layer; returns
        the assignments (N,)."""
        t0 = time.perf_counter()
        epoch = int(self.state.epoch)
        feats, labels = extract_features(self.network, self.cluster_data_loader, self.state.device)
        if len(feats) != len(self.sampler.weights):
            raise ValueError(f"the cluster loader has {len(feats)} frames but the sampler draws from "
                             f"{len(self.sampler.weights)}: both must cover the same training frames.")
        seed = self.cluster_seed * 1000 + epoch
        if not is_distributed() or dist.get_rank() == 0:
            assign = cluster_features(feats, self.num_clusters, seed, self.pca_dim, self.kmeans_max_iter)
        else:
            assign = np.zeros(len(feats), np.int64)
        assign = _rank0_assignments(assign, self.state.device)
        counts = np.bincount(assign, minlength=self.num_clusters)
        self.sampler.weights = torch.as_tensor(1.0 / np.maximum(counts[assign], 1), dtype=torch.double)
        self.pseudo_labels = torch.as_tensor(assign, dtype=torch.long)
        metrics = self.state.metrics
        metrics["clusters_used"] = int((counts > 0).sum())
        if self.previous_assignments is not None:
            metrics["nmi_previous_epoch"] = cluster_nmi(assign, self.previous_assignments)
        self.previous_assignments = assign
        if labels.min() >= 0:
            metrics["nmi_labels"] = cluster_nmi(assign, labels)
            metrics["cluster_purity"] = cluster_purity(assign, labels)
            self.network.set_cluster_categories(majority_label_map(assign, labels, self.num_clusters))
        if self.reset_top:
            self.network.reset_top_layer(torch.Generator().manual_seed(seed))
            for p in self.network.top_layer.parameters():
                self.optimizer.state.pop(p, None)
        metrics["clustering_seconds"] = time.perf_counter() - t0
        self.history.append({"epoch": epoch, **{k: float(metrics[k]) for k in _HISTORY if k in metrics}})
        if self.history_csv is not None and (not is_distributed() or dist.get_rank() == 0):
            rows = list(self.history)
            atomic_write(self.history_csv, lambda p: p.write_text(
                ",".join(("epoch",) + _HISTORY) + "\n"
                + "".join(",".join(str(r.get(k, "")) for k in ("epoch",) + _HISTORY) + "\n" for r in rows)))
        return assign

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.pseudo_labels is None:
            raise RuntimeError("DeepClusterTrainer: no pseudo-labels (recluster runs at the start of every epoch).")
        images = batchdata[Keys.IMAGE].to(engine.state.device, non_blocking=engine.non_blocking)
        index = torch.as_tensor(batchdata["index"]).long().cpu()
        targets = self.pseudo_labels[index].to(engine.state.device)

        def compute_loss() -> tuple[torch.Tensor, torch.Tensor]:
            logits = engine.network(images)
            return engine.loss_function(logits, targets), logits

        loss, logits = synced_optimizer_step(engine, compute_loss)
        accuracy = (logits.argmax(1) == targets).float().mean()
        return {Keys.IMAGE: images, Keys.LABEL: targets, Keys.PRED: logits.detach(), Keys.LOSS: loss.detach(),
                "accuracy": accuracy.detach(), "entropy": _mean_entropy(logits.detach())}


def _mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = F.softmax(logits, dim=1)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1).mean()
