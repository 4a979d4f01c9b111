"""Metrics and metric wrappers that MONAI lacks."""
