"""Reading MONAI "decathlon" style JSON data lists: the checks every dataset-list module shares.

Items are ``{"image": <absolute path>, "label": <absolute path>}``, the format of MONAI's
:py:func:`monai.data.load_decathlon_datalist` and of ``Dataset(data=...)``. Errors name the file at fault and
what was expected: ``FileNotFoundError`` for missing files, ``ValueError`` for malformed lists or bad arguments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..io import folder_listing

__all__ = ["absolute_item", "check_fold", "check_listed_files", "read_json_file"]


def read_json_file(path: Path, what: str) -> Any:
    """The parsed JSON file ``path``; ``what`` names it in the error when it is missing or malformed."""
    if not path.is_file():
        where = path.parent
        hint = f" Found in {where}: {folder_listing(where)}" if where.is_dir() else f" The folder {where} does not exist."
        raise FileNotFoundError(f"{what} {path} not found.{hint}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text (JSON) file ({e}).") from e


def absolute_item(item: Any, base: Path, json_path: Path, where: str, require_label: bool) -> dict:
    """One datalist item with its ``image``/``label`` paths made absolute (relative to ``base``)."""
    if isinstance(item, (str, os.PathLike)):  # MSD "test" lists hold bare image paths
        item = {"image": item}
    if not isinstance(item, dict):
        raise ValueError(f"{json_path}: {where} must be a dict with 'image' and 'label' paths, got {item!r}.")
    keys = ("image", "label") if require_label else ("image",)
    missing = [k for k in keys if k not in item]
    if missing:
        raise ValueError(f"{json_path}: {where} has no {' or '.join(repr(k) for k in missing)} key: {item!r}.")
    out = dict(item)
    for key in ("image", "label"):
        if key not in out:
            continue
        value = out[key]
        if isinstance(value, (str, os.PathLike)):
            out[key] = str((base / value).resolve())
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
            out[key] = [str((base / v).resolve()) for v in value]
        else:
            raise ValueError(f"{json_path}: {where}[{key!r}] must be a path (or list of paths), got {value!r}.")
    return out


def check_listed_files(json_path: Path, datalist: dict[str, list[dict]]) -> None:
    """Raise ``FileNotFoundError`` naming ``json_path`` and every listed image/label file that does not exist."""
    missing: list[str] = []
    for items in datalist.values():
        for item in items:
            for key in ("image", "label"):
                for p in [item[key]] if isinstance(item.get(key), str) else item.get(key) or []:
                    if not os.path.exists(p):
                        missing.append(p)
    if missing:
        shown = "\n  ".join(missing[:10]) + (f"\n  ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        raise FileNotFoundError(f"{json_path} lists {len(missing)} file(s) that do not exist:\n  {shown}")


def check_fold(fold: int, num_folds: int) -> int:
    """``fold`` as an int in ``0..num_folds-1`` (also from a numpy integer or a string); else ``ValueError``."""
    try:
        fold_i = int(fold)  # also a numpy integer or "0" from a command line
        if isinstance(fold, bool) or (not isinstance(fold, str) and fold_i != fold):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"fold must be an integer in 0..{num_folds - 1}, got {fold!r}.") from None
    if not 0 <= fold_i < num_folds:
        raise ValueError(f"fold must be in 0..{num_folds - 1}, got {fold}.")
    return fold_i
