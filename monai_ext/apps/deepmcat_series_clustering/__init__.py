"""DeepMCAT (Kart et al., "DeepMCAT: large-scale deep clustering for medical image categorization", DGM4MICCAI/DALI
2021): DeepCluster training of a VGG with batch norm on 2D frames of cardiac MR series, without labels, to sort an
archive by sequence / view; the cluster -> category map, the paper's metrics (NMI, cluster purity) and the raw-pixel
k-means reference; sorting a folder of NIfTI / DICOM series into a CSV. The bundle is ``bundles/deepmcat_series_clustering``.
"""

from __future__ import annotations

from .data import cmr_series_datalist, list_series, series_frame_items, series_frames, series_name
from .evaluation import (
    CLUSTERING_METHODS,
    clustering_scores,
    evaluate_clustering,
    feature_kmeans,
    predict_clusters,
    raw_pixel_kmeans,
)
from .inference import SORTED_SERIES_COLUMNS, sort_series
from .network import DeepMCATNet
from .study import run_clustering_method
from .trainer import DeepClusterTrainer, cluster_features, extract_features, fit_final_clusters, kmeans_on_features

__all__ = [
    "CLUSTERING_METHODS",
    "DeepClusterTrainer",
    "DeepMCATNet",
    "SORTED_SERIES_COLUMNS",
    "cluster_features",
    "clustering_scores",
    "cmr_series_datalist",
    "evaluate_clustering",
    "extract_features",
    "feature_kmeans",
    "fit_final_clusters",
    "kmeans_on_features",
    "list_series",
    "predict_clusters",
    "raw_pixel_kmeans",
    "run_clustering_method",
    "series_frame_items",
    "series_frames",
    "series_name",
    "sort_series",
]
