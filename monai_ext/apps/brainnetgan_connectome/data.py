"""The bundle's data: the user's connectomes (``dataset_dir`` with ``labels.csv`` and one matrix per subject) or, when
``dataset_dir`` is empty, the embedded synthetic connectomes generated there first."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ...datalists.connectome import connectome_datalist
from ...io import ensure_dataset
from ...phantoms.connectome import synthesize_connectome_dataset

__all__ = ["brainnetgan_datalist"]


def brainnetgan_datalist(dataset_dir: str | os.PathLike, split_seed: int = 0, classes: Sequence[str] = ("CN", "AD"),
                         val_fraction: float = 0.2, test_fraction: float = 0.2, synth_per_class: int = 110,
                         synth_seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """:func:`~monai_ext.datalists.connectome_datalist` of ``dataset_dir`` (stratified 3 : 1 : 1 by default), after
    generating ``synth_per_class`` synthetic CN and AD subjects there when it is missing or empty."""
    ensure_dataset(dataset_dir, lambda d: synthesize_connectome_dataset(d, synth_per_class, seed=synth_seed),
                   f"{2 * int(synth_per_class)} synthetic connectomes")
    return connectome_datalist(dataset_dir, classes, val_fraction, test_fraction, split_seed)
