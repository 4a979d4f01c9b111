"""Transforms that MONAI lacks."""
