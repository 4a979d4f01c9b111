"""Few-shot COVID-19 CT lung and infection segmentation (paper 000): the data split of the bundle and the
label-free consistency checks on real scans. Bundle: ``bundles/covid19_ct_fewshot_seg``.
"""

from __future__ import annotations

from .consistency import DEFAULT_VARIANTS, ScanVariant, consistency_check, load_ras_hu, scan_variants
from .datalist import SPLITS, fewshot_segmentation_datalist

__all__ = [
    "DEFAULT_VARIANTS",
    "SPLITS",
    "ScanVariant",
    "consistency_check",
    "fewshot_segmentation_datalist",
    "load_ras_hu",
    "scan_variants",
]
