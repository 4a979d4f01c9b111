"""The bundle's data: labelled, unlabelled, validation and test radiographs from a folder of images plus a landmark
table (:func:`monai_ext.datalists.landmark_table_datalist`), the synthetic hand or pelvis radiographs by default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...datalists import landmark_table_datalist
from ...io import PathLike, ensure_dataset
from ...phantoms import XRAY_ANATOMIES, synthesize_xray_landmark_dataset

__all__ = ["dag_datalist", "dag_mean_shape", "labelled_ratio_weights"]


def dag_datalist(dataset_dir: PathLike, landmarks_file: str = "landmarks.csv", images_subdir: str = "images",
                 labelled: int = 5, validation: int = 10, test: int = 100, unlabelled: int | None = None,
                 num_landmarks: int | None = None, synth_anatomy: str = "pelvis", synth_labelled: int = 140,
                 synth_unlabelled: int = 400, synth_size: int = 128, synth_seed: int = 0) -> dict[str, Any]:
    """Splits of ``dataset_dir/images_subdir`` and its landmark table ``dataset_dir/landmarks_file``.

    The labelled images (table rows, sorted by name) give, in this order, ``test`` test images, ``validation``
    validation images and the first ``labelled`` of the rest as the labelled training images; images without a
    row are the unlabelled ones (the first ``unlabelled``; ``None``: all). A missing or empty ``dataset_dir`` is
    filled with synthetic ``synth_anatomy`` radiographs first.

    Returns ``{"training", "labelled", "unlabelled", "validation", "testing", "landmark_names"}``; training =
    labelled + unlabelled items, each with ``labelled`` (1.0 / 0.0); unlabelled items have ``points`` = [].

    Raises:
        ValueError: too few labelled images for the splits, an unknown synthetic anatomy, or a bad table.
        FileNotFoundError: the images folder or the table is missing.
    """
    if synth_anatomy not in XRAY_ANATOMIES:
        raise ValueError(f"synth_anatomy must be one of {XRAY_ANATOMIES}, got {synth_anatomy!r}.")
    for name, value in (("labelled", labelled), ("validation", validation), ("test", test)):
        if isinstance(value, bool) or int(value) != value or int(value) < (1 if name == "labelled" else 0):
            raise ValueError(f"{name} must be a whole number ({'>= 1' if name == 'labelled' else '>= 0'}), got "
                             f"{value!r}.")
    root = ensure_dataset(dataset_dir, lambda out: synthesize_xray_landmark_dataset(
        out, synth_anatomy, synth_labelled, synth_unlabelled, synth_size, synth_seed, progress=True),
        f"synthetic {synth_anatomy} radiographs")
    names, rows, others = landmark_table_datalist(root / images_subdir, root / landmarks_file, num_landmarks)
    need = int(test) + int(validation) + int(labelled)
    if len(rows) < need:
        raise ValueError(f"{root / landmarks_file}: {len(rows)} labelled images; the splits need {need} ({test} test + "
                         f"{validation} validation + {labelled} labelled training).")
    if unlabelled is not None:
        others = others[: int(unlabelled)]
    test_items, val_items = rows[: int(test)], rows[int(test): int(test) + int(validation)]
    train_items = rows[int(test) + int(validation): need]
    lab = [{**item, "labelled": 1.0} for item in train_items]
    unl = [{**item, "points": [], "labelled": 0.0} for item in others]
    return {"training": lab + unl, "labelled": lab, "unlabelled": unl, "validation": val_items,
            "testing": test_items, "landmark_names": names}


def labelled_ratio_weights(items: Sequence[dict[str, Any]], ratio: float) -> list[float]:
    """Sampling weights (for ``torch.utils.data.WeightedRandomSampler``) that draw labelled and unlabelled items
    (``labelled`` 1 / 0) at 1 : ``ratio`` whatever their counts (Few-shot DAG: 1 : 100). With no unlabelled item
    every item weighs the same."""
    if not float(ratio) >= 0:
        raise ValueError(f"ratio must be >= 0, got {ratio!r}.")
    flags = [bool(item.get("labelled", 1.0)) for item in items]
    n_lab, n_unl = sum(flags), len(flags) - sum(flags)
    if n_lab == 0:
        raise ValueError("labelled_ratio_weights: no labelled item.")
    if n_unl == 0:
        return [1.0] * len(flags)
    return [1.0 / n_lab if f else float(ratio) / n_unl for f in flags]


def dag_mean_shape(items: Sequence[dict[str, Any]]) -> list[list[float]]:
    """The mean landmark shape of labelled ``items`` in normalised coordinates ([-1, 1] over each image's grid, the
    initial graph of :class:`monai_ext.networks.DeepAdaptiveGraph`). Image sizes are read from the files."""
    from monai.transforms import LoadImage

    shapes = []
    for item in items:
        if not item.get("points"):
            continue
        image = LoadImage(image_only=True)(item["image"])
        size = np.asarray(image.shape[:2], dtype=np.float64)
        shapes.append(2.0 * np.asarray(item["points"], dtype=np.float64) / (size - 1.0) - 1.0)
    if not shapes:
        raise ValueError("dag_mean_shape: no labelled item with points.")
    return np.mean(shapes, axis=0).tolist()
