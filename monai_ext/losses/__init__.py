"""Losses that MONAI lacks, generic across methods.
"""

from __future__ import annotations

from .channel_softmax_js import ChannelSoftmaxJSDivergenceLoss
from .box_constraints import BoxSizeConstraintLoss, BoxSupervisedLoss, BoxTightnessPriorLoss, OutsideBoxBackgroundCELoss
from .dice_hausdorff import DiceHausdorffDTLoss
from .feature_statistics import (
    ContentFeatureLoss,
    GramStyleLoss,
    StyleFeatureExtractor,
    feature_distance,
    gram_distance,
    gram_matrix,
    layer_weights,
    random_feature_extractor,
)
from .gradient_penalty import critic_gradient_penalty
from .ignore_masked_ce import IgnoreMaskedCELoss
from .pyramid_reconstruction import DistanceWeightedLaplacianPyramidLoss, gaussian_pyramid, laplacian_pyramid
from .landmark_l1 import MarginL1LandmarkLoss
from .per_sample import PerSampleLoss
from .log_barrier import LogBarrierExtension
from .residual_gaussian_kl import ResidualGaussianKLLoss
from .seam_penalty import seam_excess_loss, seam_spikiness
from .soft_label import SoftLabelDiceCELoss
from .z_spectrum import bone_z_spectrum_loss, z_spectrum_loss

__all__ = [
    "ChannelSoftmaxJSDivergenceLoss",
    "MarginL1LandmarkLoss",
    "PerSampleLoss",
    "ContentFeatureLoss",
    "GramStyleLoss",
    "StyleFeatureExtractor",
    "feature_distance",
    "gram_distance",
    "gram_matrix",
    "layer_weights",
    "random_feature_extractor",
    "DistanceWeightedLaplacianPyramidLoss",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "ResidualGaussianKLLoss",
    "BoxSizeConstraintLoss",
    "BoxSupervisedLoss",
    "BoxTightnessPriorLoss",
    "IgnoreMaskedCELoss",
    "LogBarrierExtension",
    "OutsideBoxBackgroundCELoss",
    "DiceHausdorffDTLoss",
    "critic_gradient_penalty",
    "seam_excess_loss",
    "seam_spikiness",
    "SoftLabelDiceCELoss",
    "bone_z_spectrum_loss",
    "z_spectrum_loss",
]
