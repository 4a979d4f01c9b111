"""Few-shot COVID-19 CT lung and infection segmentation (paper 000): the data split of the bundle.
Bundle: ``bundles/covid19_ct_fewshot_seg``.
"""

from __future__ import annotations

from .datalist import fewshot_segmentation_datalist

__all__ = [
    "fewshot_segmentation_datalist",
]
