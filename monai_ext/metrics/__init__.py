"""Metrics and metric wrappers that MONAI lacks."""

from .surface_dice import SpacingAwareSurfaceDiceMetric, spacing_from_affine
from .slice_fid import (  # noqa: F401,E402
    axial_slice_features,
    slice_level_classifier,
    slice_level_inception_score,
    slicewise_fid,
    train_slice_level_classifier,
)
from .lung_parenchyma import lung_texture  # noqa: F401,E402
from .slice_consistency import (  # noqa: F401,E402
    adjacent_slice_mad,
    bright_columns,
    highpass_z_correlation,
    seam_ratio,
    slice_mean_std,
    slice_pair_mad,
    z_power_spectrum,
    z_spectrum_log_distance,
)
