"""Dataset list of a ``datalist_fewshot_5fold.json``, as this project's chest-CT phantom generator writes it."""

from __future__ import annotations

from pathlib import Path

from ..io import PathLike
from .json_lists import absolute_item, check_listed_files, read_json_file

__all__ = ["FEWSHOT_DATALIST_NAME", "fewshot_datalist"]

FEWSHOT_DATALIST_NAME = "datalist_fewshot_5fold.json"


def fewshot_datalist(dataset_dir: PathLike, fold: int = 0, check_files: bool = True) -> dict[str, list[dict]]:
    """One fold of a ``datalist_fewshot_5fold.json`` (written by this project's synthetic data generator).

    The JSON is ``{"fold_0": {"training": [{"image": "./imagesTr/a.nii.gz", "label": ...}, ...],
    "testing": [...]}, "fold_1": ...}`` with paths relative to its folder (other top-level keys are ignored).

    Args:
        dataset_dir: folder holding ``datalist_fewshot_5fold.json`` (or the JSON file itself).
        fold: which ``fold_<k>`` entry to return.
        check_files: raise if any listed file does not exist.

    Returns:
        ``{"training": [...], "testing": [...], "validation": <same list as testing>}``, absolute paths.

    Raises:
        FileNotFoundError: the JSON or a listed file is missing.
        ValueError: malformed JSON, the fold is not in the file, or a fold lacks ``training``/``testing``.
    """
    path = Path(dataset_dir).expanduser()
    if path.is_dir() or path.suffix != ".json":
        path = path / FEWSHOT_DATALIST_NAME
    path = path.resolve()
    content = read_json_file(path, "few-shot datalist")
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object with 'fold_0', 'fold_1', ... keys.")
    folds = sorted(k for k in content if isinstance(k, str) and k.startswith("fold_"))
    try:
        key = f"fold_{int(fold)}"
    except (TypeError, ValueError):
        raise ValueError(f"fold must be an integer, got {fold!r}.") from None
    if key not in content:
        raise ValueError(f"{path}: no {key!r} entry (folds in the file: {folds}).")
    entry = content[key]
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) for k in ("training", "testing")):
        raise ValueError(f"{path}: {key!r} must hold 'training' and 'testing' lists of {{'image', 'label'}} items.")
    base = path.parent
    training = [
        absolute_item(item, base, path, f"{key}.training[{i}]", require_label=True)
        for i, item in enumerate(entry["training"])
    ]
    testing = [
        absolute_item(item, base, path, f"{key}.testing[{i}]", require_label=False)
        for i, item in enumerate(entry["testing"])
    ]
    result = {"training": training, "testing": testing, "validation": testing}
    if check_files:
        check_listed_files(path, {"training": training, "testing": testing})
    return result
