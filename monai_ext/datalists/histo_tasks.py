"""Several histopathology segmentation tasks, one folder each, with their own label sets (MetaHistoSeg's "unified
preprocessing": every source as RGB tiles plus masks of class indices).

Layout of a root folder (one sub-folder per task; the folder name is the task name)::

    root/<task>/images/<tile>.png     RGB tiles (PNG / JPEG / TIFF)
    root/<task>/masks/<tile>.png      one-channel masks of class indices, same stem as the tile
    root/<task>/task.json             optional: {"labels": {"0": "background", "1": "gland", ...}}

Without ``task.json`` a task's classes are ``0 .. max mask value`` (named ``class k``). Real sources converted to
this layout: GlaS, MoNuSeg (outlines filled), DigestPath, BreastPathQ (centroids drawn as disks), Gleason2019
(fused annotations).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..io import PathLike, folder_listing
from .case_split import split_cases

__all__ = ["HISTO_TILE_SUFFIXES", "histo_task_datalist", "read_histo_task"]

HISTO_TILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _mask_max(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except Exception as err:  # PIL raises several kinds for a damaged file
        raise ValueError(f"mask {path} cannot be read as an image ({err}); expected a one-channel PNG / TIFF of class "
                         "indices.") from err
    if arr.ndim != 2:
        raise ValueError(f"mask {path} has shape {arr.shape}; expected one channel of class indices (H, W).")
    return int(arr.max()) if arr.size else 0


def read_histo_task(folder: PathLike, check_masks: bool = True) -> dict[str, Any]:
    """One task folder: ``{"name", "labels" (list of class names, index = value), "items" ([{"image", "label"}],
    sorted by tile name, absolute paths)}``.

    With ``check_masks`` every mask is opened once: it must be one-channel with values below the number of classes.

    Raises:
        FileNotFoundError: no folder, no ``images`` sub-folder, or tiles without a mask (all named).
        ValueError: no tiles, a ``task.json`` without a ``labels`` mapping of consecutive values from 0, fewer than
            two classes, or a mask that is unreadable, multi-channel or has a value outside the labels (named).
    """
    root = Path(folder).expanduser()
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir():
        found = folder_listing(root) if root.is_dir() else "the folder does not exist"
        raise FileNotFoundError(f"task folder {root}: no images/ sub-folder (expected images/ and masks/ with tiles of "
                                f"the same names); found: {found}")
    tiles = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in HISTO_TILE_SUFFIXES)
    if not tiles:
        raise ValueError(f"task folder {root}: images/ holds no tiles ({', '.join(HISTO_TILE_SUFFIXES)}).")
    masks = {p.stem: p for p in masks_dir.iterdir()} if masks_dir.is_dir() else {}
    missing = [t.name for t in tiles if t.stem not in masks]
    if missing:
        shown = ", ".join(missing[:8]) + (f" ... ({len(missing) - 8} more)" if len(missing) > 8 else "")
        raise FileNotFoundError(f"task folder {root}: {len(missing)} tile(s) without a mask of the same name in "
                                f"{masks_dir}: {shown}")
    items = [{"image": str(t.resolve()), "label": str(masks[t.stem].resolve())} for t in tiles]
    spec_path = root / "task.json"
    if spec_path.is_file():
        try:
            labels_map = json.loads(spec_path.read_text())["labels"]
            labels = [str(labels_map[str(k)]) for k in range(len(labels_map))]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{spec_path}: expected {{\"labels\": {{\"0\": \"background\", \"1\": ...}}}} with "
                             f"consecutive values from 0 ({type(err).__name__}: {err}).") from err
    else:
        labels = []
    if check_masks or not labels:
        top = -1
        for it in items:
            value = _mask_max(Path(it["label"]))
            if labels and value >= len(labels):
                raise ValueError(f"mask {it['label']} has class value {value}; task {root.name!r} declares "
                                 f"{len(labels)} classes {labels} in {spec_path} (values 0..{len(labels) - 1}).")
            top = max(top, value)
        labels = labels or ["background"] + [f"class {k}" for k in range(1, top + 1)]
    if len(labels) < 2:
        raise ValueError(f"task folder {root}: {len(labels)} class(es) {labels}; a segmentation task needs a "
                         "background and at least one class.")
    return {"name": root.name, "labels": labels, "items": items}


def histo_task_datalist(root: PathLike, tasks: list[str] | None = None, num_test: int = 12, split_seed: int = 0,
                        check_masks: bool = True) -> dict[str, Any]:
    """Every task folder under ``root`` (or those named in ``tasks``, in that order), each split into training and
    ``num_test`` test tiles (shuffled with ``split_seed``).

    Returns ``{"tasks": [names], "labels": [[class names] per task], "class_counts": [classes incl. background per
    task], "training": [...], "testing": [...]}``; an item is ``{"image", "label", "task" (index into tasks),
    "task_name"}``.

    Raises:
        FileNotFoundError: ``root`` or a named task folder does not exist.
        ValueError: no task folders, a task with fewer than ``num_test + 1`` tiles
            (:func:`~monai_ext.datalists.split_cases`), plus :func:`read_histo_task`'s errors.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"histology task root {base} does not exist; expected one folder per task with "
                                "images/ and masks/.")
    names = list(tasks) if tasks else sorted(p.name for p in base.iterdir() if (p / "images").is_dir())
    if not names:
        raise ValueError(f"{base} holds no task folders (sub-folders with images/ and masks/); found: "
                         f"{folder_listing(base)}")
    out: dict[str, Any] = {"tasks": names, "labels": [], "class_counts": [], "training": [], "testing": []}
    for index, name in enumerate(names):
        if not (base / name).is_dir():
            raise FileNotFoundError(f"task {name!r}: folder {base / name} does not exist; tasks under {base}: "
                                    f"{folder_listing(base)}")
        task = read_histo_task(base / name, check_masks=check_masks)
        tagged = [{**it, "task": index, "task_name": name} for it in task["items"]]
        split = split_cases(tagged, 0, int(num_test), split_seed, f"task {name!r} ({base / name}) tiles",
                            sort_key=lambda it: it["image"])
        out["testing"] += sorted(split["testing"], key=lambda it: it["image"])
        out["training"] += sorted(split["training"], key=lambda it: it["image"])
        out["labels"].append(task["labels"])
        out["class_counts"].append(len(task["labels"]))
    return out
