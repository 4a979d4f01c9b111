"""The Medical Segmentation Decathlon ``dataset.json`` of a phantom data set: the MSD keys every phantom writer
shares, plus a ``phantom`` entry with the generator's settings and per-case parameters (for replay)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["msd_phantom_description"]


def msd_phantom_description(
    name: str,
    description: str,
    modality: str,
    labels: Mapping[int, str],
    training: Sequence[Mapping[str, str]],
    phantom: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``dataset.json`` content of a synthetic, labelled, training-only MSD-style data set (CC0, 3D, one
    modality): ``training`` items ``{"image": "./imagesTr/...", "label": "./labelsTr/..."}``, ``phantom`` the
    generation record. Keys in MSD order, so the files written stay comparable."""
    return {
        "name": name,
        "description": description,
        "reference": "monai_ext",
        "licence": "CC0 (synthetic)",
        "release": "1.0",
        "tensorImageSize": "3D",
        "modality": {"0": modality},
        "labels": {str(k): v for k, v in labels.items()},
        "numTraining": len(training),
        "numTest": 0,
        "training": list(training),
        "test": [],
        "phantom": dict(phantom),
    }
