"""Metrics that MONAI lacks, generic across methods.
"""

from __future__ import annotations

from .acquisition import (
    ACQUISITION_SCORES,
    acquisition_score,
    expected_gradient_length_score,
    least_confidence_score,
    margin_score,
)
from .adam_detection import (
    ADAMDetectionMetric,
    adam_detection_counts,
    adam_reference_hits,
    froc_candidates,
    froc_summary,
)
from .box_iou import slice_box_iou
from .cohen_kappa import CohenKappaMetric, kappa_from_counts
from .cluster_agreement import cluster_nmi, cluster_purity, majority_label_map
from .empty_aware_overlap import EMPTY_AWARE_METRICS, EmptyAwareOverlapMetric, empty_aware_overlap_scores
from .graph_features import GRAPH_FEATURES, GraphFeatureDivergence, connectome_graph_features, histogram_kl
from .inpainting_region import InpaintingRegionMetric, completion_spread, hole_bounding_box, region_envelope_snr
from .instance_overlap import INSTANCE_SHAPE_SCORES, instance_overlap_scores, match_instances
from .label_volume import ClassVolumeMetric
from .landmark_error import LandmarkErrorMetric
from .lung_parenchyma import lung_texture
from .mask_overlap import mask_dice
from .needle_tracking import fit_needle, needle_errors
from .point_match import PointMatchF1Metric, match_points
from .pooled_dice import PooledDiceMetric
from .pooled_iou import PooledIoUMetric
from .slice_consistency import (
    adjacent_slice_mad,
    bright_columns,
    highpass_z_correlation,
    seam_ratio,
    slice_mean_std,
    slice_pair_mad,
    z_power_spectrum,
    z_spectrum_log_distance,
)
from .slice_fid import (
    axial_slice_features,
    slice_level_classifier,
    slice_level_inception_score,
    slicewise_fid,
    train_slice_level_classifier,
)
from .speckle_texture import (
    SPECKLE_STATISTICS,
    SpeckleStyleFidelity,
    speckle_distance,
    speckle_statistics,
    style_fidelity_ratio,
)
from .surface_dice import SpacingAwareSurfaceDiceMetric, spacing_from_affine
from .uncertainty import (
    case_uncertainty,
    mc_dropout_probabilities,
    mc_variance,
    mutual_information,
    predictive_entropy,
    rank_by_uncertainty,
)
from .mahalanobis import MahalanobisDistanceMetric
from .max_ms_ssim import MS_SSIM_SCALE_WEIGHTS, MaxMSSSIMSimilarity
from .template_matching import TemplateMatchingScore, image_mosaic

__all__ = [
    "ADAMDetectionMetric",
    "CohenKappaMetric",
    "adam_detection_counts",
    "adam_reference_hits",
    "kappa_from_counts",
    "froc_candidates",
    "froc_summary",
    "PointMatchF1Metric",
    "match_points",
    "ACQUISITION_SCORES",
    "acquisition_score",
    "expected_gradient_length_score",
    "least_confidence_score",
    "margin_score",
    "cluster_nmi",
    "cluster_purity",
    "majority_label_map",
    "fit_needle",
    "needle_errors",
    "InpaintingRegionMetric",
    "completion_spread",
    "hole_bounding_box",
    "region_envelope_snr",
    "MahalanobisDistanceMetric",
    "MS_SSIM_SCALE_WEIGHTS",
    "MaxMSSSIMSimilarity",
    "TemplateMatchingScore",
    "image_mosaic",

    "GRAPH_FEATURES",
    "GraphFeatureDivergence",
    "connectome_graph_features",
    "histogram_kl",
    "slice_box_iou",
    "mask_dice",
    "PooledDiceMetric",
    "PooledIoUMetric",
    "case_uncertainty",
    "mc_dropout_probabilities",
    "mc_variance",
    "mutual_information",
    "predictive_entropy",
    "rank_by_uncertainty",
    "ClassVolumeMetric",
    "LandmarkErrorMetric",
    "INSTANCE_SHAPE_SCORES",
    "instance_overlap_scores",
    "match_instances",
    "EMPTY_AWARE_METRICS",
    "EmptyAwareOverlapMetric",
    "empty_aware_overlap_scores",
    "lung_texture",
    "adjacent_slice_mad",
    "bright_columns",
    "highpass_z_correlation",
    "seam_ratio",
    "slice_mean_std",
    "slice_pair_mad",
    "z_power_spectrum",
    "z_spectrum_log_distance",
    "axial_slice_features",
    "slice_level_classifier",
    "slice_level_inception_score",
    "slicewise_fid",
    "train_slice_level_classifier",
    "SPECKLE_STATISTICS",
    "SpeckleStyleFidelity",
    "speckle_distance",
    "speckle_statistics",
    "style_fidelity_ratio",
    "spacing_from_affine",
    "SpacingAwareSurfaceDiceMetric",
]
