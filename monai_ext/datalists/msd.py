"""Dataset list of a Medical Segmentation Decathlon style ``dataset.json`` (absolute paths, optional k-fold split)."""

from __future__ import annotations

from pathlib import Path

from monai.data import partition_dataset

from ..io import PathLike
from .json_lists import absolute_item, check_fold, check_listed_files, read_json_file

__all__ = ["msd_datalist"]


def msd_datalist(
    dataset_json: PathLike, fold: int | None = None, num_folds: int = 5, seed: int = 0, check_files: bool = True
) -> dict[str, list[dict]]:
    """Lists of a Medical Segmentation Decathlon style ``dataset.json``, with absolute paths.

    The JSON holds ``"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}, ...]``
    and optionally ``"test": ["./imagesTs/y.nii.gz", ...]`` (and ``labels``, ``modality``, ... which are
    not used here); paths are relative to the JSON's folder.

    Args:
        dataset_json: the JSON file, or the folder holding ``dataset.json``.
        fold: ``None``: all labelled cases are returned as ``training``. An integer in
            ``0..num_folds-1``: deterministic k-fold split (MONAI's ``partition_dataset`` with
            ``shuffle=True, seed=seed``), that fold's cases are ``validation`` and the rest ``training``.
        num_folds: number of folds of the split (>= 2, at most the number of labelled cases).
        seed: seed of the shuffle before splitting.
        check_files: raise if any listed image/label file does not exist.

    Returns:
        ``{"training": [...], "validation": [...] (empty when fold is None), "testing": [...]}``; testing
        items are ``{"image": str}`` from the JSON's ``test`` list (often unlabelled).

    Raises:
        FileNotFoundError: the JSON or a listed file is missing (message names the JSON and the files).
        ValueError: malformed JSON, missing ``training`` key or items without ``image``/``label``,
            ``fold``/``num_folds`` out of range.
    """
    path = Path(dataset_json).expanduser()
    if path.is_dir():
        path = path / "dataset.json"
    path = path.resolve()
    content = read_json_file(path, "MSD dataset file")
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'training' list, got {type(content).__name__}.")
    if "training" not in content:
        raise ValueError(f"{path}: no 'training' key (expected MSD format); keys found: {sorted(content)}.")
    if not isinstance(content["training"], list) or not content["training"]:
        raise ValueError(f"{path}: 'training' must be a non-empty list of {{'image': ..., 'label': ...}} items.")
    test_raw = content.get("test", [])
    if not isinstance(test_raw, list):
        raise ValueError(f"{path}: 'test' must be a list of image paths, got {type(test_raw).__name__}.")

    base = path.parent
    labelled = [
        absolute_item(item, base, path, f"training[{i}]", require_label=True) for i, item in enumerate(content["training"])
    ]
    testing = [absolute_item(item, base, path, f"test[{i}]", require_label=False) for i, item in enumerate(test_raw)]

    if fold is None:
        training, validation = labelled, []
    else:
        if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 2:
            raise ValueError(f"num_folds must be an integer >= 2, got {num_folds!r}.")
        if num_folds > len(labelled):
            raise ValueError(f"{path}: cannot split {len(labelled)} labelled case(s) into {num_folds} folds.")
        fold_i = check_fold(fold, num_folds)
        parts = partition_dataset(labelled, num_partitions=num_folds, shuffle=True, seed=seed, even_divisible=False)
        validation = list(parts[fold_i])
        training = [item for k, part in enumerate(parts) if k != fold_i for item in part]
    result = {"training": training, "validation": validation, "testing": testing}
    if check_files:
        check_listed_files(path, result)
    return result
