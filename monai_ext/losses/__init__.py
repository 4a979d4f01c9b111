"""Losses that MONAI lacks."""
