"""Data of the active-learning benchmark bundle: the embedded unbalanced or balanced chest-radiograph sets and the
split of the COVID-19 Radiography Database layout."""

from __future__ import annotations

from typing import Any

from ...datalists.covid_radiography import covid_radiography_datalist
from ...io import PathLike, ensure_dataset
from ...phantoms.chest_xray import CXR_CLASSES, CXR_FOLDERS, synthesize_cxr_dataset

__all__ = ["CXR_LABEL_NAMES", "cxr_datalist"]

#: class index -> name
CXR_LABEL_NAMES = dict(enumerate(CXR_CLASSES))


def cxr_datalist(dataset_dir: PathLike, balanced: bool = False, synth_total: int = 3000, synth_seed: int = 0,
                 split_seed: int = 0) -> dict[str, Any]:
    """:func:`monai_ext.datalists.covid_radiography_datalist` of ``dataset_dir`` (80 / 10 / 10 %, stratified) with
    the classes normal, COVID-19, other pneumonia; a missing or empty folder first gets ``synth_total`` synthetic
    radiographs in the database's 67 / 24 / 9 % shares, or equal thirds with ``balanced``."""
    ensure_dataset(dataset_dir, lambda d: synthesize_cxr_dataset(d, synth_total, balanced=bool(balanced),
                                                                 seed=synth_seed),
                   f"{synth_total} synthetic {'balanced' if balanced else 'unbalanced'} chest radiographs")
    lists = covid_radiography_datalist(dataset_dir, classes=[CXR_FOLDERS[c] for c in CXR_CLASSES],
                                       split_seed=split_seed)
    lists["num_images"] = sum(len(lists[k]) for k in ("training", "validation", "testing"))
    return lists
