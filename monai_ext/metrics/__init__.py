"""Metrics and metric wrappers that MONAI lacks."""

from .surface_dice import SpacingAwareSurfaceDiceMetric, spacing_from_affine
