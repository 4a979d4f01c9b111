"""Dataset list of the COVID-19 Radiography Database (Chowdhury et al. 2020, Rahman et al. 2021; Kaggle): one folder
per class, ``<class>/images/*.png`` (older releases: ``<class>/*.png``), split into training / validation / testing
stratified by class with a fixed seed (the active-learning benchmark's 80 / 10 / 10 %)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from ..io import PathLike, folder_listing

__all__ = ["COVID_RADIOGRAPHY_CLASSES", "covid_radiography_datalist"]

#: the database's folders of the benchmark's three classes, in label order (Lung_Opacity is the fourth folder)
COVID_RADIOGRAPHY_CLASSES = ("Normal", "COVID", "Viral Pneumonia")
_SUFFIXES = (".png", ".jpg", ".jpeg")


def _class_images(root: Path, folder: str) -> list[Path]:
    base = root / folder
    if not base.is_dir():
        raise FileNotFoundError(f"{root}: no class folder {folder!r} (expected the COVID-19 Radiography Database "
                                f"layout, <class>/images/*.png). Found: {folder_listing(root)}")
    images_dir = base / "images" if (base / "images").is_dir() else base
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in _SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{images_dir}: no PNG / JPEG images. Found: {folder_listing(images_dir)}")
    return files


def covid_radiography_datalist(
    root: PathLike,
    classes: Sequence[str] = COVID_RADIOGRAPHY_CLASSES,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
) -> dict[str, list[dict]]:
    """``{"training", "validation", "testing"}`` lists of ``{"image": path, "label": class index, "case": file stem}``.

    Each class is shuffled with ``split_seed`` and cut into ``test_fraction`` / ``val_fraction`` / the rest (at least
    one image of each class per split when the class has three or more).

    Raises:
        FileNotFoundError: a class folder, or its images, is missing (the folder's content is named).
        ValueError: fractions outside [0, 1) or summing to 1 or more.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= float(f) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f!r}.")
    if float(val_fraction) + float(test_fraction) >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}.")
    root = Path(root).expanduser()
    out: dict[str, list[dict]] = {"training": [], "validation": [], "testing": []}
    for label, folder in enumerate(classes):
        files = _class_images(root, folder)
        random.Random(int(split_seed) * 1000 + label).shuffle(files)
        n = len(files)
        n_test = max(1 if n >= 3 and test_fraction > 0 else 0, round(test_fraction * n))
        n_val = max(1 if n >= 3 and val_fraction > 0 else 0, round(val_fraction * n))
        parts = {"testing": files[:n_test], "validation": files[n_test:n_test + n_val],
                 "training": files[n_test + n_val:]}
        for split, paths in parts.items():
            out[split] += [{"image": str(p), "label": label, "case": p.stem} for p in paths]
    return out
