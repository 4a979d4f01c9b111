"""Frontal chest radiographs of three classes, the embedded data of the active-learning benchmark bundle.

Like the COVID-19 Radiography Database (Rahman et al. 2021) that Chong et al. (DGM4MICCAI/DALI 2021) used for their
unbalanced active-learning benchmark: normal chests, COVID-19 pneumonia (bilateral, peripheral, lower-zone
ground-glass opacities) and other (viral or bacterial) pneumonia (a denser consolidation, mostly of one lobe, one
side). Written in that database's folder layout (``Normal/images/Normal-1.png``, ``COVID/images/...``,
``Viral Pneumonia/images/...``), so :func:`monai_ext.datalists.covid_radiography_datalist` reads both.

An image is 64 x 64 pixels of about 5.5 mm (a 350 mm field of view), 8-bit, bright = attenuating: body outline,
two lung fields with vessel texture, ribs, clavicles, spine and mediastinum, the heart shadow, the diaphragm domes.
Varying per image: lung size and shape, patient rotation and position, heart size, exposure (contrast and gamma),
blur and quantum noise; lesions vary in extent and density down to faint ones, so the classes overlap as real ones
do. Analytic shapes and smooth random fields, not a projection of a 3D model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..io import atomic_directory, require_empty_folder
from .random_field import smooth_random_field
from .seeds import check_seed, derive_seed

__all__ = ["CXR_CLASSES", "CXR_FOLDERS", "cxr_class_counts", "generate_cxr_image", "synthesize_cxr_dataset"]

#: the classes in label order, and the database folder of each
CXR_CLASSES = ("normal", "covid", "other_pneumonia")
CXR_FOLDERS = {"normal": "Normal", "covid": "COVID", "other_pneumonia": "Viral Pneumonia"}
#: the database's class shares (10,192 normal, 3,616 COVID-19, 1,345 viral pneumonia of 15,153)
_UNBALANCED = (10192, 3616, 1345)


def cxr_class_counts(total: int, balanced: bool) -> dict[str, int]:
    """Images per class for ``total`` images: equal thirds, or the database's 67 / 24 / 9 % shares."""
    if isinstance(total, bool) or int(total) != total or total < 3:
        raise ValueError(f"total must be an integer >= 3, got {total!r}.")
    shares = np.ones(3) / 3 if balanced else np.array(_UNBALANCED) / sum(_UNBALANCED)
    counts = np.maximum(1, np.floor(shares * total)).astype(int)
    counts[0] += int(total) - counts.sum()
    return dict(zip(CXR_CLASSES, (int(c) for c in counts)))


def _lung_masks(x: np.ndarray, y: np.ndarray, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Right and left lung fields (image left = patient right): ellipses, cut medially by the mediastinum, which
    widens towards the heart."""
    mediastinum = np.abs(x) < 18.0 + 0.25 * np.clip(y - p["lung_cy"], 0, None)
    masks = []
    for side in (-1, 1):
        ax = p["lung_ax"] * (0.93 if side > 0 else 1.0)
        inside = ((x - side * p["lung_dx"]) / ax) ** 2 + ((y - p["lung_cy"]) / p["lung_ay"]) ** 2 <= 1.0
        masks.append(inside & ~mediastinum & (side * x > 0))
    return masks[0], masks[1]


def generate_cxr_image(label: int, seed: int, size: int = 64) -> np.ndarray:
    """One radiograph of class ``label`` (index into :data:`CXR_CLASSES`) as uint8 (size, size); rows run from the
    apices (top) to the diaphragm (bottom). The same seed gives the same image."""
    if label not in (0, 1, 2):
        raise ValueError(f"label must be 0 (normal), 1 (covid) or 2 (other_pneumonia), got {label!r}.")
    check_seed(seed)
    rng = np.random.default_rng(seed)
    p = {"lung_dx": rng.uniform(62, 76), "lung_cy": rng.uniform(-12, 8), "lung_ax": rng.uniform(55, 68),
         "lung_ay": rng.uniform(110, 135), "rot": rng.uniform(-6, 6), "shift": rng.normal(0, 6, 2)}
    mm = 350.0 / size
    coords = (np.arange(size) - (size - 1) / 2.0) * mm
    y0, x0 = np.meshgrid(coords, coords, indexing="ij")
    t = np.deg2rad(p["rot"])
    x = np.cos(t) * x0 - np.sin(t) * y0 - p["shift"][0]
    y = np.sin(t) * x0 + np.cos(t) * y0 - p["shift"][1]
    body = (x / rng.uniform(150, 175)) ** 2 + (y / 260.0) ** 2 <= 1.0
    right, left = _lung_masks(x, y, p)
    lungs = right | left
    img = np.where(body, 0.55, 0.05)
    texture = smooth_random_field(rng, (size, size), 1.2)
    img = np.where(lungs, 0.18 + 0.035 * texture, img)
    img += 0.25 * np.exp(-(x / 14.0) ** 2) * body                            # spine and mediastinum
    heart_r = rng.uniform(45, 60)
    heart = ((x - 20) / heart_r) ** 2 + ((y - p["lung_cy"] - 0.55 * p["lung_ay"]) / (heart_r * 0.8)) ** 2 <= 1.0
    img = np.where(heart & body, np.maximum(img, 0.62), img)
    diaphragm = y > p["lung_cy"] + p["lung_ay"] * 0.78 + 12 * np.cos(x / 60.0)
    img = np.where(diaphragm & body & ~heart, np.maximum(img, 0.6), img)
    for k in range(7):                                                        # posterior ribs: arcs over the lungs
        arc = np.abs(y - (p["lung_cy"] - p["lung_ay"] * 0.8 + k * 30 - 0.004 * x ** 2)) < 3.5
        img += 0.09 * (arc & lungs)
    img += 0.08 * (np.abs(y - (p["lung_cy"] - p["lung_ay"] * 0.85 + 0.12 * np.abs(x))) < 4) * body   # clavicles
    if label == 1:     # COVID-19: bilateral, peripheral, lower-zone ground glass, patchy
        severity = rng.uniform(0.3, 1.0)
        patches = np.zeros_like(img)
        for side, mask in ((-1, right), (1, left)):
            for _ in range(rng.integers(2, 5)):
                cx = side * (p["lung_dx"] + rng.uniform(10, 30))
                cy = p["lung_cy"] + rng.uniform(0.0, 0.8) * p["lung_ay"]
                r = rng.uniform(18, 35)
                patches += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r ** 2)) * mask
        patchy = np.clip(patches, 0, 1) * (0.7 + 0.3 * smooth_random_field(rng, (size, size), 1.5))
        img += severity * 0.3 * np.clip(patchy, 0, None)
    elif label == 2:   # other pneumonia: one lobe consolidated, one side, denser, sharper upper (fissure) edge
        severity = rng.uniform(0.3, 1.0)
        mask = right if rng.random() < 0.6 else left
        lower = rng.random() < 0.65
        fissure = p["lung_cy"] + rng.uniform(-0.1, 0.3) * p["lung_ay"]
        lobe = mask & ((y > fissure) if lower else (y < fissure))
        cons = ndimage.gaussian_filter(lobe.astype(float), 1.0) * (0.8 + 0.2 * smooth_random_field(rng, (size, size), 2))
        img += severity * 0.32 * np.clip(cons, 0, None)
    img = ndimage.gaussian_filter(img, rng.uniform(0.4, 0.9))
    img = np.clip(img, 0, None) ** rng.uniform(0.75, 1.35) * rng.uniform(0.8, 1.1)
    img = img + rng.normal(0, rng.uniform(0.01, 0.035), img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def synthesize_cxr_dataset(out_dir: str | os.PathLike, total: int = 3000, balanced: bool = False, seed: int = 0,
                           size: int = 64, progress: bool = True) -> dict[str, Any]:
    """Write ``total`` radiographs (:func:`cxr_class_counts`) to ``out_dir`` in the COVID-19 Radiography Database
    layout (``<folder>/images/<folder>-<n>.png``, :data:`CXR_FOLDERS`), plus ``phantom.json`` (settings, counts).
    Image ``n`` of class ``c`` has seed ``derive_seed(seed, c, n)``. Written under a temporary name, renamed at the end.

    Raises:
        ValueError: ``total`` < 3.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    counts = cxr_class_counts(total, balanced)
    check_seed(seed)
    out = require_empty_folder(out_dir)
    description: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        from PIL import Image

        t0 = time.perf_counter()
        for c, name in enumerate(CXR_CLASSES):
            folder = tmp / CXR_FOLDERS[name] / "images"
            folder.mkdir(parents=True)
            for n in range(counts[name]):
                img = generate_cxr_image(c, derive_seed(seed, c, n, bits=31), size)
                Image.fromarray(img).save(folder / f"{CXR_FOLDERS[name]}-{n + 1}.png")
            if progress:
                print(f"chest radiographs: {counts[name]} {name} ... {time.perf_counter() - t0:.1f} s", flush=True)
        description.update({"name": "monai_ext synthetic chest radiographs", "classes": list(CXR_CLASSES),
                            "folders": CXR_FOLDERS, "counts": counts, "balanced": bool(balanced), "seed": int(seed),
                            "size": int(size)})
        with open(tmp / "phantom.json", "w") as f:
            json.dump(description, f, indent=1)

    atomic_directory(out, fill)
    return description
