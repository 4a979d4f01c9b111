"""Synthetic data (phantoms) and dataset lists for real public data sets."""
from .fewshot_split import fewshot_segmentation_datalist
