"""The DeepMCAT network: a VGG with batch norm (:class:`monai_ext.networks.VGGBNFeatureNet`) whose top layer predicts
the current clusters during training, plus what the trainer stores after the last epoch: the centroids of the final
k-means on the training frames' features (the clusters DeepCluster's k-means step gives) and the map from cluster ids
to categories (each cluster's majority category on the training frames, the paper's assignment for evaluation), kept
in the checkpoint so that inference can assign and name clusters."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...networks.vgg_bn import VGG16_BN_BLOCKS, VGGBNFeatureNet

__all__ = ["DeepMCATNet"]


class DeepMCATNet(VGGBNFeatureNet):
    """:class:`VGGBNFeatureNet` (2D, 1 channel by default) with ``num_clusters`` logits and two buffers:
    ``centroids`` (``(num_clusters, feature_dim)``, the final k-means centroids of the L2-normalised features; all
    zero until set) and ``cluster_category`` (``(num_clusters,)`` int64: the category index of each cluster, -1 where
    unknown: no labelled training image fell into it, or the training data had no labels).

    ``forward(x)``: top-layer logits ``(B, num_clusters)`` (the training target); ``assign(x)``: ``(B,)`` cluster ids,
    the nearest centroid of the L2-normalised features (the top layer's argmax while no centroids are set);
    ``categories(x)``: ``(B,)`` category indices of the assigned clusters (-1: unknown).
    """

    def __init__(self, num_clusters: int = 80, in_channels: int = 1, spatial_dims: int = 2,
                 channels: Sequence[int] = (8, 16, 32, 64, 64), convs_per_block: Sequence[int] = VGG16_BN_BLOCKS,
                 pooled_size: int = 2, feature_dim: int = 128, dropout: float = 0.5) -> None:
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels, num_classes=num_clusters,
                         channels=channels, convs_per_block=convs_per_block, pooled_size=pooled_size,
                         feature_dim=feature_dim, dropout=dropout)
        self.num_clusters = int(num_clusters)
        self.register_buffer("cluster_category", torch.full((self.num_clusters,), -1, dtype=torch.long))
        self.register_buffer("centroids", torch.zeros(self.num_clusters, feature_dim))

    def set_centroids(self, centroids: torch.Tensor) -> None:
        """Store the ``(num_clusters, feature_dim)`` k-means centroids of the L2-normalised features."""
        c = torch.as_tensor(centroids, dtype=self.centroids.dtype)
        if c.shape != self.centroids.shape:
            raise ValueError(f"centroids of shape {tuple(self.centroids.shape)} expected, got {tuple(c.shape)}.")
        self.centroids.copy_(c.to(self.centroids.device))

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` cluster id of each image: its nearest centroid (see the class text)."""
        if not bool(self.centroids.any()):
            return self(x).argmax(dim=1)
        f = torch.nn.functional.normalize(self.features(x).double(), dim=1)
        # float64: features of similar frames lie close together on the unit sphere
        return torch.cdist(f, self.centroids.double()).argmin(dim=1)

    def set_cluster_categories(self, mapping: Sequence[int] | torch.Tensor) -> None:
        """Store the category index of every cluster (length ``num_clusters``, -1 for unknown)."""
        m = torch.as_tensor(mapping, dtype=torch.long).flatten()
        if m.numel() != self.num_clusters:
            raise ValueError(f"one category per cluster expected ({self.num_clusters}), got {m.numel()}.")
        self.cluster_category.copy_(m.to(self.cluster_category.device))

    def categories(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` category index of each image through its assigned cluster (-1 where the cluster has none)."""
        return self.cluster_category[self.assign(x)]
