"""One dataset list over several Medical Segmentation Decathlon style data sets with different label sets, for
joint training (FS-Net): the first data set is the target, split into training / validation / testing; the others
are auxiliary training data. Each item carries its data set's index, and the list records the union of classes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import PathLike
from .case_split import split_cases
from .json_lists import read_json_file
from .msd import msd_datalist

__all__ = ["joint_msd_datalist", "msd_label_names"]


def msd_label_names(dataset_json: PathLike) -> list[str]:
    """Foreground class names of an MSD ``dataset.json`` (its ``labels``, values 1..K in order; 0 is background).

    Raises ``ValueError`` when ``labels`` is missing, has no foreground class, or its values are not 0..K."""
    path = Path(dataset_json).expanduser()
    if path.is_dir():
        path = path / "dataset.json"
    content = read_json_file(path.resolve(), "MSD dataset file")
    labels = content.get("labels") if isinstance(content, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"{path}: no 'labels' object (expected MSD format, e.g. {{\"0\": \"background\", "
                         f"\"1\": \"left ventricle\"}}); joint training needs each data set's classes.")
    try:
        values = sorted(int(k) for k in labels)
    except ValueError:
        raise ValueError(f"{path}: 'labels' keys must be label values 0..K, got {sorted(labels)}.") from None
    if values != list(range(len(values))) or len(values) < 2:
        raise ValueError(f"{path}: 'labels' must hold the values 0 (background) and 1..K without gaps, got {values}.")
    return [str(labels[str(v)]) for v in values[1:]]


def joint_msd_datalist(
    dataset_dirs: Sequence[PathLike],
    num_val: int = 0,
    num_test: int = 0,
    split_seed: int = 0,
    check_files: bool = True,
) -> dict[str, Any]:
    """Lists for training one network on several MSD-style data sets (folders holding ``dataset.json``).

    Args:
        dataset_dirs: the data sets, the target first (two or more; any MSD task folders, e.g. Task02_Heart with
            another heart data set).
        num_val, num_test: target cases held out for validation and testing (fixed by ``split_seed``).
        split_seed: seed of the target split (:func:`monai_ext.datalists.split_cases`).
        check_files: raise when a listed file is missing.

    Returns:
        ``{"training": [...], "validation": [...], "testing": [...], "datasets": [{"name", "folder", "classes",
        "num_training"}], "class_counts": [K_0, K_1, ...], "union_labels": {"0": "background", "1":
        "<dataset 0>/<class 1>", ...}}``; every item is ``{"image", "label", "dataset": index, "case"}``. Validation
        and testing hold target cases only; training holds the target's remaining cases and every labelled case of
        the other data sets.

    Raises:
        ValueError: fewer than two data sets, a ``dataset.json`` without usable ``labels``, too few target cases
            for the split.
        FileNotFoundError: a missing ``dataset.json`` or listed file.
    """
    dirs = [Path(d).expanduser() for d in dataset_dirs]
    if len(dirs) < 2:
        raise ValueError(f"joint_msd_datalist: joint training needs at least two data sets (target first), got {dirs}.")
    datasets, lists = [], []
    for m, folder in enumerate(dirs):
        classes = msd_label_names(folder)
        items = msd_datalist(folder, check_files=check_files)["training"]
        lists.append([{**it, "dataset": m, "case": Path(it["image"]).name.split(".")[0]} for it in items])
        datasets.append({"name": folder.name, "folder": str(folder), "classes": classes})
    target = split_cases(lists[0], num_val, num_test, split_seed, dirs[0])
    training = target["training"] + [it for items in lists[1:] for it in items]
    for m, info in enumerate(datasets):
        info["num_training"] = sum(1 for it in training if it["dataset"] == m)
    union = {"0": "background"}
    for info in datasets:
        for name in info["classes"]:
            union[str(len(union))] = f"{info['name']}/{name}"
    return {"training": training, "validation": target["validation"], "testing": target["testing"],
            "datasets": datasets, "class_counts": [len(d["classes"]) for d in datasets], "union_labels": union}
