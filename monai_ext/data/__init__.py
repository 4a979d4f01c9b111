"""Synthetic data (phantoms) and dataset lists for real public data sets."""
