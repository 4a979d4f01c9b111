"""A folder of image patches (PNG, JPEG, TIFF) with a labels CSV: image-level labels for weakly supervised training,
optional masks for evaluation, split by slide (or patient) so that no slide is in two splits.

The CSV (``labels.csv`` by default, in the folder)::

    image,label[,mask][,slide]
    images/s03_p007.png,1,masks/s03_p007.png,s03

``image`` and ``mask`` are paths relative to the folder (or absolute); ``label`` is 0 (pattern absent) or 1
(present); ``mask`` (optional, may be empty per row) a binary mask of the pattern, used for evaluation only;
``slide`` (optional) groups patches of one slide: the split keeps groups together and is stratified by whether a
group has a positive patch. Without a ``slide`` column every patch is its own group.

Also here: the list of the patches of a folder to segment (:func:`patch_images`) and the RGB check of patch files.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

from ..io import PathLike, folder_listing

__all__ = ["PATCH_IMAGE_SUFFIXES", "check_rgb_patches", "labelled_patch_datalist", "patch_images", "read_patch_labels"]

PATCH_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def read_patch_labels(csv_path: PathLike, base: PathLike | None = None) -> list[dict[str, Any]]:
    """The rows of a patch labels CSV as ``{"image", "label", ["mask"], "slide"}`` dicts with absolute paths.

    Raises:
        FileNotFoundError: the CSV, or a listed image / mask file, does not exist (all missing files named).
        ValueError: a missing ``image`` / ``label`` column, a label other than 0 / 1, an image listed twice, an image
            that is not a patch image file, or an empty CSV (the CSV and the row named).
    """
    path = Path(csv_path).expanduser()
    if not path.is_file():
        hint = f" Found in {path.parent}: {folder_listing(path.parent)}" if path.parent.is_dir() else ""
        raise FileNotFoundError(f"labels CSV {path} not found; expected columns image,label[,mask][,slide].{hint}")
    root = Path(base).expanduser() if base is not None else path.parent
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("image", "label") if c not in columns]
        if missing:
            raise ValueError(f"{path}: no {missing} column(s); found {columns}, expected image,label[,mask][,slide].")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    if not rows:
        raise ValueError(f"{path}: no rows.")
    items, seen, absent = [], set(), []
    for n, r in enumerate(rows, start=2):
        if r["label"] not in ("0", "1", "0.0", "1.0"):
            raise ValueError(f"{path}, line {n}: label {r['label']!r}; expected 0 (absent) or 1 (present).")
        image = (root / r["image"]).resolve()
        if image.suffix.lower() not in PATCH_IMAGE_SUFFIXES:
            raise ValueError(f"{path}, line {n}: {r['image']!r} is not a patch image ({', '.join(PATCH_IMAGE_SUFFIXES)}).")
        if image in seen:
            raise ValueError(f"{path}, line {n}: {r['image']!r} is listed twice.")
        seen.add(image)
        item: dict[str, Any] = {"image": str(image), "label": int(float(r["label"])),
                                "slide": r.get("slide") or image.stem}
        absent += [str(image)] if not image.is_file() else []
        if r.get("mask"):
            item["mask"] = str((root / r["mask"]).resolve())
            absent += [item["mask"]] if not Path(item["mask"]).is_file() else []
        items.append(item)
    if absent:
        shown = "\n  ".join(absent[:10]) + (f"\n  ... ({len(absent) - 10} more)" if len(absent) > 10 else "")
        raise FileNotFoundError(f"{path} lists {len(absent)} file(s) that do not exist:\n  {shown}")
    return items


def labelled_patch_datalist(dataset_dir: PathLike, labels_csv: str = "labels.csv", val_fraction: float = 0.125,
                            test_fraction: float = 0.25, split_seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``{"training", "validation", "testing"}`` lists of :func:`read_patch_labels` items of
    ``dataset_dir/labels_csv``, split by slide.

    The slides with a positive patch and those without are shuffled separately (``split_seed``) and each cut into
    test (``test_fraction`` of them, at least one), validation (``val_fraction``; at least one when > 0) and training
    slides, so every split has both kinds of slide when there are enough of them.

    Raises:
        ValueError: fractions outside [0, 1) or summing to 1 or more, or too few slides of a kind for a training slide
            to remain; plus :func:`read_patch_labels`'s errors.
    """
    if not (0.0 <= float(val_fraction) < 1.0 and 0.0 < float(test_fraction) < 1.0
            and float(val_fraction) + float(test_fraction) < 1.0):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) and (0, 1) "
                         "with a sum below 1.")
    root = Path(dataset_dir).expanduser()
    items = read_patch_labels(root / labels_csv, root)
    slides: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        slides.setdefault(it["slide"], []).append(it)
    split: dict[str, list[dict[str, Any]]] = {"training": [], "validation": [], "testing": []}
    rng = random.Random(int(split_seed))
    for positive in (True, False):
        names = sorted(s for s, its in slides.items() if any(i["label"] for i in its) == positive)
        if not names:
            continue
        rng.shuffle(names)
        n_test = max(1, round(test_fraction * len(names)))
        n_val = max(1, round(val_fraction * len(names))) if val_fraction > 0 else 0
        if n_test + n_val >= len(names):
            kind = "with" if positive else "without"
            raise ValueError(f"{root / labels_csv}: {len(names)} slide(s) {kind} a positive patch, too few for "
                             f"{n_test} test and {n_val} validation slide(s) and one training slide.")
        for part, chosen in (("testing", names[:n_test]), ("validation", names[n_test : n_test + n_val]),
                             ("training", names[n_test + n_val :])):
            split[part] += [i for s in sorted(chosen) for i in slides[s]]
    return split


def check_rgb_patches(paths: list[str]) -> None:
    """Raise ``ValueError`` naming the patch files that are not 8-bit RGB (grayscale, RGBA, palette, 16-bit ...):
    the model takes RGB patches. Reads the file headers only; run before anything is written."""
    from PIL import Image

    bad = []
    for p in paths:
        try:
            with Image.open(p) as im:
                mode = im.mode
        except OSError as e:
            raise ValueError(f"{p}: not a readable image ({e}).") from e
        if mode != "RGB":
            bad.append(f"{p} ({mode})")
    if bad:
        raise ValueError(f"{len(bad)} patch(es) are not 8-bit RGB, e.g. {bad[:3]}; the model expects RGB images "
                         "(convert grayscale / RGBA patches to RGB, or train a model for their channels).")


def patch_images(dataset_dir: PathLike) -> list[dict[str, str]]:
    """``[{"image": path}]`` of the patch images (PNG, JPEG, TIFF) in a folder (sorted, not recursive), or of the one
    image ``dataset_dir`` names. Raises ``FileNotFoundError`` when there is none and ``ValueError`` naming the
    images that are not RGB (:func:`check_rgb_patches`), before anything is segmented."""
    path = Path(dataset_dir).expanduser()
    if path.is_file():
        if path.suffix.lower() not in PATCH_IMAGE_SUFFIXES:
            raise ValueError(f"{path}: not a patch image ({', '.join(PATCH_IMAGE_SUFFIXES)}).")
        check_rgb_patches([str(path.resolve())])
        return [{"image": str(path.resolve())}]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; expected a folder of patch images or one image.")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PATCH_IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"{path}: no patch images ({', '.join(PATCH_IMAGE_SUFFIXES)}).")
    items = [{"image": str(p.resolve())} for p in found]
    check_rgb_patches([i["image"] for i in items])
    return items
