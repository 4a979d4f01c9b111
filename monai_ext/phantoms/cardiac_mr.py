"""Cardiac MR series of several sequences and views, the embedded data of the DeepMCAT series-clustering bundle.

Like the UK Biobank cardiac MR archive that Kart et al. (DeepMCAT, DGM4MICCAI/DALI 2021) sorted without labels: each
series is one sequence / view (short-axis cine stack, 2-, 3- and 4-chamber long-axis cine, aortic flow magnitude and
phase, a ShMOLLI-like T1 map, late gadolinium enhancement, tagging, a coronal localiser), stored as a NIfTI volume
whose slices are 2D frames at one time point (as the paper's frames at t = 0, every z-slice of a stack). A frame is
64 x 64 pixels of about 5.5 mm (a 350 mm field of view).

What tells the categories apart is what tells them apart in a real archive: contrast (bright blood in bSSFP cine,
nulled myocardium in LGE, a quantitative map with air at 0, the phase image's noise in air, tag lines) and geometry
(a ring and a crescent in short axis, two / three / four chambers, one small vessel cross-section). What varies
within a category, drawn per series: heart size, position and orientation, body size, the field of view (rotation up to 26 degrees, zoom 0.8-1.25,
shift up to 10 %), slice
position along the heart (base to apex), intensity scale (arbitrary MR units, 200-3000), coil sensitivity (a smooth
multiplicative field) and Rician noise. So raw pixels separate poorly and a feature extractor has to learn contrast
and shape.

Rendering: analytic shapes (ellipses, rings, tubes) in millimetres on the frame grid, per-tissue signal of the
sequence, a slight blur (the acquisition's point spread), coil field and noise. Not a physical simulation.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..io import atomic_directory, require_empty_folder
from .nifti_writer import save_phantom_nifti
from .random_field import smooth_random_field
from .seeds import check_seed, derive_seed

__all__ = [
    "CMR_CATEGORIES",
    "CMR_SERIES_CSV",
    "cmr_category_counts",
    "generate_cmr_series",
    "sample_cmr_subject",
    "synthesize_cmr_dataset",
]

#: the sequence / view categories, in label order (label i is CMR_CATEGORIES[i])
CMR_CATEGORIES = (
    "sa_cine", "la_2ch_cine", "la_3ch_cine", "la_4ch_cine", "flow_magnitude", "flow_phase",
    "t1_map", "lge", "tagging", "localiser",
)
#: the list of a data set: one row per series (series, image, category, label, slices, subject)
CMR_SERIES_CSV = "series.csv"
_SIZE = 64
_PIXEL_MM = 5.5
#: slices per series (min, max) of each category
_SLICES = {"sa_cine": (4, 7), "t1_map": (1, 3), "lge": (3, 6), "tagging": (1, 3), "localiser": (1, 3)}
#: tissue signal of each sequence, relative (blood, myocardium, fat, lung, liver, body, air)
_SIGNAL = {
    "cine": dict(blood=1.0, myo=0.28, fat=0.85, lung=0.05, liver=0.35, body=0.4, air=0.0),
    "flow_magnitude": dict(blood=0.45, myo=0.2, fat=0.3, lung=0.04, liver=0.22, body=0.25, air=0.0),
    "t1_map": dict(blood=0.95, myo=0.55, fat=0.2, lung=0.7, liver=0.45, body=0.5, air=0.0),
    "lge": dict(blood=0.55, myo=0.03, fat=0.6, lung=0.03, liver=0.3, body=0.35, air=0.0),
    "tagging": dict(blood=0.75, myo=0.45, fat=0.8, lung=0.05, liver=0.4, body=0.5, air=0.0),
    "localiser": dict(blood=0.9, myo=0.4, fat=0.9, lung=0.08, liver=0.45, body=0.5, air=0.0),
}


def cmr_category_counts(series_per_category: int, long_tail: float = 1.0) -> dict[str, int]:
    """Series per category: ``series_per_category`` each when ``long_tail`` is 1; else geometric from
    ``series_per_category`` (the first category) down to ``series_per_category / long_tail`` (the last), at least 2.

    Raises ``ValueError`` for ``series_per_category`` < 2 or ``long_tail`` < 1."""
    if isinstance(series_per_category, bool) or int(series_per_category) != series_per_category or series_per_category < 2:
        raise ValueError(f"series_per_category must be an integer >= 2, got {series_per_category!r}.")
    if not float(long_tail) >= 1.0:
        raise ValueError(f"long_tail must be >= 1 (the ratio of the largest to the smallest category), got {long_tail!r}.")
    n = len(CMR_CATEGORIES)
    ratios = float(long_tail) ** (-np.arange(n) / (n - 1))
    return {c: max(2, int(round(series_per_category * r))) for c, r in zip(CMR_CATEGORIES, ratios)}


def sample_cmr_subject(rng: np.random.Generator) -> dict[str, Any]:
    """Per-subject anatomy in mm: body half-axes, heart centre (offset from the field-of-view centre), LV radius and
    wall thickness, short-axis in-plane rotation (radians), long-axis length."""
    return {
        "body_axes_mm": [float(rng.uniform(130, 175)), float(rng.uniform(95, 130))],
        "heart_offset_mm": [float(rng.uniform(-25, 25)), float(rng.uniform(-20, 20))],
        "lv_radius_mm": float(rng.uniform(20, 29)),
        "wall_mm": float(rng.uniform(7, 11)),
        "rotation": float(rng.uniform(-0.6, 0.6)),
        "long_axis_mm": float(rng.uniform(80, 100)),
    }


def _inside_ellipse(x: np.ndarray, y: np.ndarray, centre: tuple[float, float], axes: tuple[float, float],
             angle: float = 0.0) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u = (x - centre[0]) * c + (y - centre[1]) * s
    v = -(x - centre[0]) * s + (y - centre[1]) * c
    return (u / axes[0]) ** 2 + (v / axes[1]) ** 2 <= 1.0


def _paint(image: np.ndarray, mask: np.ndarray, value: float) -> None:
    image[mask] = value


def _body(x: np.ndarray, y: np.ndarray, subj: dict[str, Any], sig: dict[str, float]) -> np.ndarray:
    """An axial-like torso: fat rim, body, two lungs; the frame's background is air."""
    a, b = subj["body_axes_mm"]
    img = np.full(x.shape, sig["air"], np.float32)
    _paint(img, _inside_ellipse(x, y, (0, 0), (a, b)), sig["fat"])
    _paint(img, _inside_ellipse(x, y, (0, 0), (a - 12, b - 12)), sig["body"])
    for side in (-1, 1):
        _paint(img, _inside_ellipse(x, y, (side * a * 0.5, -b * 0.05), (a * 0.36, b * 0.7)), sig["lung"])
    return img


def _short_axis(img: np.ndarray, x: np.ndarray, y: np.ndarray, subj: dict[str, Any], sig: dict[str, float],
                position: float) -> None:
    """LV ring and RV crescent at ``position`` along the LV (0 base, 1 apex)."""
    cx, cy = subj["heart_offset_mm"]
    r = subj["lv_radius_mm"] * (1.0 - 0.45 * position)
    w = subj["wall_mm"]
    rot = subj["rotation"]
    rv_c = (cx + np.cos(rot + np.pi) * (r + w) * 0.95, cy + np.sin(rot + np.pi) * (r + w) * 0.95)
    _paint(img, _inside_ellipse(x, y, rv_c, ((r + w) * 0.9, (r + w) * 1.35), rot), sig["myo"])
    _paint(img, _inside_ellipse(x, y, rv_c, ((r + w) * 0.9 - 3, (r + w) * 1.35 - 3), rot), sig["blood"])
    _paint(img, _inside_ellipse(x, y, (cx, cy), (r + w, (r + w) * 1.05), rot), sig["myo"])
    _paint(img, _inside_ellipse(x, y, (cx, cy), (r, r * 1.05), rot), sig["blood"])
    # papillary muscles: two small dark spots in the blood pool
    for k in (0.6, 2.0):
        px, py = cx + np.cos(rot + k) * r * 0.55, cy + np.sin(rot + k) * r * 0.55
        _paint(img, _inside_ellipse(x, y, (px, py), (3.0, 3.0)), sig["myo"])


def _long_axis(img: np.ndarray, x: np.ndarray, y: np.ndarray, subj: dict[str, Any], sig: dict[str, float],
               chambers: int, angle: float) -> None:
    """2, 3 or 4 chambers along a long axis at ``angle`` (radians): LV (+ RV), atria at the base, an outflow tract."""
    cx, cy = subj["heart_offset_mm"]
    r, w, length = subj["lv_radius_mm"], subj["wall_mm"], subj["long_axis_mm"]
    c, s = np.cos(angle), np.sin(angle)

    def along(t: float, n: float) -> tuple[float, float]:   # t along the axis, n across it (mm)
        return cx + t * c - n * s, cy + t * s + n * c

    lv_n = -0.55 * r if chambers == 4 else 0.0
    lv_c = along(length * 0.15, lv_n)
    _paint(img, _inside_ellipse(x, y, lv_c, (length * 0.5 + w, r + w), angle), sig["myo"])
    if chambers == 4:
        rv_c = along(length * 0.1, r * 1.25)
        _paint(img, _inside_ellipse(x, y, rv_c, (length * 0.42, r * 0.75), angle), sig["myo"])
        _paint(img, _inside_ellipse(x, y, rv_c, (length * 0.42 - 3, r * 0.75 - 3), angle), sig["blood"])
    _paint(img, _inside_ellipse(x, y, lv_c, (length * 0.5, r), angle), sig["blood"])
    la_c = along(-length * 0.5, lv_n)
    _paint(img, _inside_ellipse(x, y, la_c, (r * 0.9, r * 0.85), angle), sig["blood"])
    if chambers == 4:
        _paint(img, _inside_ellipse(x, y, along(-length * 0.48, r * 1.2), (r * 0.8, r * 0.7), angle), sig["blood"])
    if chambers == 3:   # the left ventricular outflow tract and aortic root, leaving the base at an angle
        for t in np.linspace(0.0, 1.0, 9):
            _paint(img, _inside_ellipse(x, y, along(-length * 0.2 - t * r * 1.6, r * (0.6 + 0.9 * t)), (7.0, 7.0)), sig["blood"])


def generate_cmr_series(category: str, subject: dict[str, Any], seed: int, size: int = _SIZE) -> np.ndarray:
    """One series of ``category`` (one of :data:`CMR_CATEGORIES`) of ``subject``: float32 (size, size, slices),
    arbitrary MR units (>= 0), pixel 5.5 mm at 64 px; ``seed`` fixes slice count, pose jitter, scale, field, noise."""
    if category not in CMR_CATEGORIES:
        raise ValueError(f"category must be one of {CMR_CATEGORIES}, got {category!r}.")
    rng = np.random.default_rng(check_seed(seed))
    lo, hi = _SLICES.get(category, (1, 1))
    n_slices = int(rng.integers(lo, hi + 1))
    pixel = _PIXEL_MM * _SIZE / size
    coords = (np.arange(size) - (size - 1) / 2.0) * pixel
    x, y = np.meshgrid(coords, coords, indexing="ij")
    # the series' field of view: in-plane rotation, zoom and shift of the whole frame (planning, patient position)
    turn, zoom = float(rng.uniform(-0.45, 0.45)), float(rng.uniform(0.8, 1.25))
    shift = rng.uniform(-0.1, 0.1, 2) * size * pixel
    x, y = ((np.cos(turn) * x + np.sin(turn) * y) / zoom + shift[0],
            (-np.sin(turn) * x + np.cos(turn) * y) / zoom + shift[1])
    subj = dict(subject)
    subj["heart_offset_mm"] = [v + float(rng.normal(0, 6)) for v in subject["heart_offset_mm"]]
    subj["rotation"] = subject["rotation"] + float(rng.normal(0, 0.25))
    scale = float(rng.uniform(200, 3000))
    noise = float(rng.uniform(0.015, 0.05))
    sequence = {"sa_cine": "cine", "la_2ch_cine": "cine", "la_3ch_cine": "cine", "la_4ch_cine": "cine",
                "flow_phase": "flow_magnitude"}.get(category, category)
    sig = _SIGNAL[sequence]
    frames = []
    for k in range(n_slices):
        position = (k + float(rng.uniform(0, 1))) / max(n_slices, 1)
        if category == "localiser":   # coronal: tall torso, lungs on both sides, the heart low in the middle, liver
            a, b = subj["body_axes_mm"]
            img = np.full(x.shape, sig["air"], np.float32)
            _paint(img, _inside_ellipse(x, y, (0, 0), (a, 175.0)), sig["fat"])
            _paint(img, _inside_ellipse(x, y, (0, 0), (a - 10, 165.0)), sig["body"])
            for side in (-1, 1):
                _paint(img, _inside_ellipse(x, y, (side * a * 0.45, -45.0 + 10 * position), (a * 0.35, 80.0)), sig["lung"])
            _paint(img, _inside_ellipse(x, y, (-a * 0.25, 95.0), (a * 0.55, 45.0)), sig["liver"])
            _paint(img, _inside_ellipse(x, y, (subj["heart_offset_mm"][0], 10.0), (subj["lv_radius_mm"] * 2.0, 38.0),
                                 subj["rotation"] * 0.5), sig["blood"])
        elif category in ("flow_magnitude", "flow_phase"):   # through-plane at the aortic valve: body, lungs, vessels
            img = _body(x, y, subj, sig)
            cx, cy = subj["heart_offset_mm"]
            aorta = _inside_ellipse(x, y, (cx, cy), (14.0, 14.0))
            pulmonary = _inside_ellipse(x, y, (cx - 25.0, cy + 12.0), (12.0, 12.0))
            descending = _inside_ellipse(x, y, (cx + 20.0, cy + 55.0), (10.0, 10.0))
            _paint(img, _inside_ellipse(x, y, (cx - 10, cy + 5), (45.0, 40.0)), sig["body"])
            for m in (aorta, pulmonary, descending):
                _paint(img, m, sig["blood"])
            if category == "flow_phase":   # velocity: static tissue mid-grey, vessels bright / dark, air random
                body = img > sig["air"]
                phase = np.full(x.shape, 0.5, np.float32)
                phase[aorta] = float(rng.uniform(0.85, 1.0))
                phase[pulmonary] = float(rng.uniform(0.75, 0.95))
                phase[descending] = float(rng.uniform(0.0, 0.15))
                phase = np.where(body, phase, rng.uniform(0.0, 1.0, x.shape)).astype(np.float32)
                img = phase
        else:
            img = _body(x, y, subj, sig)
            if category.startswith("la_"):
                chambers = int(category[3])
                base_angle = {2: 1.2, 3: 0.7, 4: 0.3}[chambers]
                _long_axis(img, x, y, subj, sig, chambers, base_angle + subj["rotation"] * 0.5)
            else:
                _short_axis(img, x, y, subj, sig, position)
                if category == "lge" and rng.uniform() < 0.5:   # an enhancing infarct segment of the wall
                    cx, cy = subj["heart_offset_mm"]
                    r = subj["lv_radius_mm"] * (1.0 - 0.45 * position) + subj["wall_mm"] / 2
                    t = float(rng.uniform(0, 2 * np.pi))
                    _paint(img, _inside_ellipse(x, y, (cx + r * np.cos(t), cy + r * np.sin(t)), (subj["wall_mm"] / 2, 9.0), t),
                           0.9)
                if category == "tagging":   # a grid of saturated lines, period 5-7 mm... at this pixel: 2.5-3 px
                    period = float(rng.uniform(2.4, 3.2)) * pixel
                    phi = float(rng.uniform(-0.4, 0.4))
                    u = x * np.cos(phi) + y * np.sin(phi)
                    v = -x * np.sin(phi) + y * np.cos(phi)
                    tags = (0.5 + 0.5 * np.cos(2 * np.pi * u / period)) * (0.5 + 0.5 * np.cos(2 * np.pi * v / period))
                    img = img * (0.25 + 0.75 * tags).astype(np.float32)
        if category == "t1_map":   # a map: no coil field, smooth, air exactly 0 (masked)
            img = ndimage.gaussian_filter(img, 0.6) * (img > 0)
            img = img + (img > 0) * rng.normal(0, 0.02, x.shape)
        elif category != "flow_phase":
            img = ndimage.gaussian_filter(img, float(rng.uniform(0.5, 1.0)))
            img = img * (1.0 + 0.35 * smooth_random_field(rng, x.shape, 12.0))
            real = img + rng.normal(0, noise, x.shape)
            imag = rng.normal(0, noise, x.shape)
            img = np.hypot(real, imag)   # magnitude images: Rician noise
        else:
            img = img + rng.normal(0, noise, x.shape)
        frames.append(np.clip(img, 0, None) * scale)
    return np.stack(frames, axis=-1).astype(np.float32)


def synthesize_cmr_dataset(out_dir: str | os.PathLike, series_per_category: int = 40, long_tail: float = 1.0,
                           size: int = _SIZE, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Write cardiac MR series of every category in :data:`CMR_CATEGORIES` to ``out_dir``.

    Layout::

        out_dir/series/s0012_la_4ch_cine.nii.gz   float32 (size, size, slices), 5.5 mm pixels (at 64 px), 8 mm slices
        out_dir/series.csv                         series,image,category,label,slices,subject (labels: evaluation only)
        out_dir/phantom.json                       settings and every subject's anatomy

    Category counts: :func:`cmr_category_counts` (``long_tail`` 1: balanced). Subject ``j`` has a series of every
    category whose count exceeds ``j``. Written under a temporary name and renamed at the end.

    Raises:
        ValueError: bad counts (see :func:`cmr_category_counts`) or ``size`` outside 32-256.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    counts = cmr_category_counts(series_per_category, long_tail)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 32 <= int(size) <= 256:
        raise ValueError(f"size must be an integer in 32-256 pixels, got {size!r}.")
    check_seed(seed)
    out = require_empty_folder(out_dir)
    n_subjects = max(counts.values())
    description: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        (tmp / "series").mkdir()
        rows, subjects = [], []
        t0 = time.perf_counter()
        for j in range(n_subjects):
            subj = sample_cmr_subject(np.random.default_rng(derive_seed(seed, 71, j, bits=31)))
            subjects.append(subj)
            for label, category in enumerate(CMR_CATEGORIES):
                if counts[category] <= j:
                    continue
                data = generate_cmr_series(category, subj, derive_seed(seed, 72, j, label, bits=31), size)
                name = f"s{j:04d}_{category}"
                pixel = _PIXEL_MM * _SIZE / size
                affine = np.diag([pixel, pixel, 8.0, 1.0])
                save_phantom_nifti(data, affine, tmp / "series" / f"{name}.nii.gz")
                rows.append({"series": name, "image": f"series/{name}.nii.gz", "category": category, "label": label,
                             "slices": data.shape[-1], "subject": f"s{j:04d}"})
            if progress and ((j + 1) % 10 == 0 or j + 1 == n_subjects):
                print(f"cardiac MR subjects {j + 1}/{n_subjects}: {len(rows)} series ... "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
        with open(tmp / CMR_SERIES_CSV, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["series", "image", "category", "label", "slices", "subject"])
            w.writeheader()
            w.writerows(rows)
        description.update({
            "name": "monai_ext synthetic cardiac MR series",
            "description": "2D frames of cardiac MR series of 10 sequence / view categories (UK Biobank-like), one "
                           "NIfTI volume per series. Synthetic data (monai_ext.phantoms.cardiac_mr).",
            "categories": list(CMR_CATEGORIES),
            "series_per_category": counts,
            "long_tail": float(long_tail),
            "size": int(size),
            "seed": int(seed),
            "num_series": len(rows),
            "num_frames": int(sum(r["slices"] for r in rows)),
        })
        with open(tmp / "phantom.json", "w") as f:
            json.dump({**description, "subjects": subjects}, f, indent=1)

    atomic_directory(out, fill)
    return description
