"""Radiographs of the hand (posterior-anterior) and the pelvis (anterior-posterior) with a fixed set of anatomical
landmarks, the embedded data of the few-shot Deep Adaptive Graph bundle (Few-shot DAG, Zhou et al., DALI 2021, who
localised landmarks on hand, pelvis and chest X-rays from 5-20 labelled and thousands of unlabelled images).

Each image comes from a parametric shape model: a mean shape in mm, a few shape modes (finger spread and length,
pelvic width and height), a jitter of every landmark, then a random pose (rotation, scale, shift). The bones are
drawn from the landmarks as projected tubes (long bones: a cortical shell brighter at its edges than the medulla),
spheres (femoral heads) and plates (iliac wings, sacrum), on a soft-tissue silhouette, then exposure, blur and
quantum noise vary per image. Analytic shapes, not a projection of a 3D model; the landmarks sit on the drawn bone
by construction.

Images are square, ``size`` pixels (default 128: hand 240 mm and pelvis 360 mm fields of view), 8-bit PNG, bright =
attenuating. Landmarks are (x, y) pixels of the picture, x to the right and y down, the index order of the array
that MONAI's ``PILReader`` loads.
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
from .random_field import smooth_random_field
from .seeds import check_count, check_seed, derive_seed

__all__ = ["XRAY_ANATOMIES", "XRAY_LANDMARK_NAMES", "generate_xray_image", "synthesize_xray_landmark_dataset"]

XRAY_ANATOMIES = ("hand", "pelvis")
_FINGERS = ("thumb", "index", "middle", "ring", "little")
_JOINTS = ("cmc", "mcp", "pip", "tip")  # thumb: its pip is the interphalangeal joint
_PELVIS_SIDE = ("iliac_crest", "asis", "femoral_head", "greater_trochanter", "lesser_trochanter",
                "ischial_tuberosity")
#: landmark names per anatomy, in file order
XRAY_LANDMARK_NAMES: dict[str, tuple[str, ...]] = {
    "hand": tuple(f"{f}_{j}" for f in _FINGERS for j in _JOINTS) + ("radial_styloid", "ulnar_styloid"),
    "pelvis": tuple(f"{s}_{p}" for s in ("right", "left") for p in _PELVIS_SIDE) + ("sacral_promontory",
                                                                                    "pubic_symphysis"),
}
_FIELD_MM = {"hand": 240.0, "pelvis": 360.0}
# hand: wrist base of each ray (mm, field centre (120, 120)), angle from vertical (deg), bone lengths (mm)
_RAY_BASE = np.array([[97.0, 178.0], [108.0, 165.0], [120.0, 162.0], [131.0, 164.0], [141.0, 168.0]])
_RAY_ANGLE = np.array([-48.0, -11.0, 0.0, 9.0, 19.0])
_RAY_LENGTH = np.array([[42.0, 30.0, 26.0], [64.0, 40.0, 44.0], [62.0, 44.0, 49.0], [56.0, 41.0, 46.0],
                        [51.0, 32.0, 37.0]])
_RAY_WIDTH = np.array([9.0, 8.0, 8.5, 8.0, 7.0])


def _hand_shape(rng: np.random.Generator) -> np.ndarray:
    """The 22 hand landmarks (mm) of one subject: spread and length modes and per-bone jitter."""
    spread = rng.normal(1.0, 0.25)
    length = rng.normal(1.0, 0.06)
    points = []
    for f in range(5):
        base = _RAY_BASE[f] + rng.normal(0.0, 1.5, 2)
        angle = np.deg2rad(_RAY_ANGLE[f] * spread + rng.normal(0.0, 3.0))
        chain = [base]
        for b in range(3):
            angle += np.deg2rad(rng.normal(0.0, 3.0)) + (np.deg2rad(8.0 * spread) if f == 0 and b == 0 else 0.0)
            seg = _RAY_LENGTH[f, b] * length * rng.normal(1.0, 0.04)
            chain.append(chain[-1] + seg * np.array([np.sin(angle), -np.cos(angle)]))
        points += chain
    wrist_width = rng.normal(1.0, 0.05)
    points.append(np.array([120.0 - 26.0 * wrist_width, 190.0]) + rng.normal(0.0, 1.5, 2))
    points.append(np.array([120.0 + 22.0 * wrist_width, 192.0]) + rng.normal(0.0, 1.5, 2))
    return np.asarray(points)


def _pelvis_shape(rng: np.random.Generator) -> np.ndarray:
    """The 14 pelvis landmarks (mm) of one subject: width / height modes, inlet shape and per-landmark jitter."""
    width, height, inlet = rng.normal(1.0, 0.06), rng.normal(1.0, 0.06), rng.normal(0.0, 1.0)
    side = np.array([[95.0 + 4 * inlet, -85.0], [115.0 + 3 * inlet, -30.0], [85.0 + 3 * inlet, 25.0],
                     [125.0 + 2 * inlet, 45.0], [97.0, 85.0], [55.0 + 4 * inlet, 70.0]])
    points = []
    for s in (-1.0, 1.0):  # image left is the patient's right
        for p in side:
            points.append([180.0 + s * p[0] * width, 180.0 + p[1] * height] + rng.normal(0.0, 2.0, 2))
    points.append([180.0, 180.0 - 55.0 * height] + rng.normal(0.0, 2.0, 2))
    points.append([180.0, 180.0 + 55.0 * height] + rng.normal(0.0, 2.0, 2))
    return np.asarray(points)


def _tube(xx: np.ndarray, yy: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, cortex: float) -> np.ndarray:
    """Projected path length (mm) through a round bone of ``radius`` mm from ``a`` to ``b`` (a sphere when a = b):
    the cortical shell (``cortex`` mm thick) counts twice as much as the medulla, so edges come out brighter."""
    d = b - a
    t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0.0, 1.0)
    r2 = (xx - a[0] - t * d[0]) ** 2 + (yy - a[1] - t * d[1]) ** 2
    outer = 2.0 * np.sqrt(np.clip(radius ** 2 - r2, 0.0, None))
    inner = 2.0 * np.sqrt(np.clip((radius - cortex) ** 2 - r2, 0.0, None))
    return 2.0 * (outer - inner) + inner


def _plate(xx: np.ndarray, yy: np.ndarray, polygon: np.ndarray, thickness: float, spacing: float) -> np.ndarray:
    """A flat bone: the polygon (mm) filled with ``thickness`` and a rim twice as dense (the cortical edge seen on
    its side), softened by 1 mm."""
    from matplotlib.path import Path as MplPath

    inside = MplPath(polygon).contains_points(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(xx.shape)
    rim = inside & ~ndimage.binary_erosion(inside, iterations=max(1, int(round(2.0 / spacing))))
    return ndimage.gaussian_filter(thickness * (inside + rim).astype(float), 1.0 / spacing)


def _hand_bones(xx: np.ndarray, yy: np.ndarray, pts: np.ndarray, rng: np.random.Generator,
                spacing: float) -> tuple[np.ndarray, np.ndarray]:
    bone, soft = np.zeros_like(xx), np.zeros_like(xx)
    for f in range(5):
        chain = pts[4 * f: 4 * f + 4]
        for b in range(3):
            a, c = chain[b], chain[b + 1]
            u = (c - a) / max(np.linalg.norm(c - a), 1e-6)
            end = c - 2.0 * u if b < 2 else c - 1.5 * u  # joint spaces; the tuft ends short of the fingertip
            bone += _tube(xx, yy, a + 1.5 * u, end, _RAY_WIDTH[f] / 2 * (1.0 - 0.12 * b), 1.2)
            soft += _tube(xx, yy, a, c, _RAY_WIDTH[f] / 2 + 5.0, 0.0) * 0.5
    carpus = pts[[0, 4, 8, 12, 16]].mean(0) + np.array([0.0, 14.0])
    for k in range(8):  # carpal bones: two rows of four small round bones
        centre = carpus + np.array([(k % 4 - 1.5) * 9.0, (k // 4 - 0.5) * 10.0]) + rng.normal(0.0, 1.0, 2)
        bone += _tube(xx, yy, centre, centre, 5.0 + rng.uniform(-0.8, 0.8), 1.0)
    down = pts[8] - pts[9]  # along the middle metacarpal, towards the wrist
    down = down / np.linalg.norm(down)
    for tip, radius in ((pts[20], 11.0), (pts[21], 7.5)):  # radius and ulna, from the styloids down
        bone += _tube(xx, yy, tip, tip + 160.0 * down, radius, 2.0)
        soft += _tube(xx, yy, tip, tip + 160.0 * down, radius + 16.0, 0.0) * 0.5
    soft += _tube(xx, yy, carpus, pts[[4, 8, 12, 16]].mean(0), 32.0, 0.0) * 0.5  # palm
    return bone, soft


def _pelvis_bones(xx: np.ndarray, yy: np.ndarray, pts: np.ndarray, rng: np.random.Generator,
                  spacing: float) -> tuple[np.ndarray, np.ndarray]:
    bone = np.zeros_like(xx)
    promontory, symphysis = pts[12], pts[13]
    for s, o in ((-1.0, 0), (1.0, 6)):
        crest, asis, head, gt, lt, tub = pts[o: o + 6]
        medial = promontory + np.array([s * 38.0, 5.0])
        wing = np.array([medial, crest + np.array([-s * 40.0, 8.0]), crest, asis, head + np.array([s * 8.0, -28.0]),
                         head + np.array([-s * 22.0, -26.0]), medial + np.array([0.0, 40.0])])
        bone += _plate(xx, yy, wing, 9.0, spacing)
        bone += _tube(xx, yy, head, head, 23.0, 3.0)
        neck_end = gt + 0.35 * (lt - gt)
        bone += _tube(xx, yy, head, neck_end, 14.0, 3.0)
        bone += _tube(xx, yy, gt, gt, 14.0, 2.5) + _tube(xx, yy, lt, lt, 8.0, 2.0)
        bone += _tube(xx, yy, neck_end, neck_end + np.array([-s * 10.0, 170.0]), 16.0, 4.0)
        ring = [head + np.array([-s * 14.0, 22.0]), tub, symphysis + np.array([s * 6.0, 6.0]),
                symphysis + np.array([s * 8.0, -12.0]), head + np.array([-s * 20.0, 10.0])]
        for a, b in zip(ring, ring[1:] + ring[:1]):  # pubic and ischial rami around the obturator foramen
            bone += _tube(xx, yy, np.asarray(a), np.asarray(b), 6.5, 2.0)
    sacrum = np.array([promontory + [-36.0, -2.0], promontory + [36.0, -2.0], promontory + [12.0, 88.0],
                       promontory + [-12.0, 88.0]])
    bone += _plate(xx, yy, sacrum, 8.0, spacing)
    for k, width in enumerate((46.0, 44.0)):  # L5 and L4 bodies above the promontory
        centre = promontory + np.array([0.0, -20.0 - 34.0 * k]) + rng.normal(0.0, 1.0, 2)
        body = np.array([centre + [-width / 2, -14.0], centre + [width / 2, -14.0], centre + [width / 2, 14.0],
                         centre + [-width / 2, 14.0]])
        bone += _plate(xx, yy, body, 10.0, spacing)
    centre = (pts[0] + pts[6]) / 2 + np.array([0.0, 90.0])
    soft = 110.0 * np.clip(1.0 - ((xx - centre[0]) / 175.0) ** 2 - ((yy - centre[1]) / 260.0) ** 2, 0.0, None) ** 0.5
    return bone, soft


def generate_xray_image(seed: int, anatomy: str = "pelvis", size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One radiograph and its landmarks.

    Returns:
        ``(image, points)``: ``image`` uint8 ``(size, size)`` indexed ``[x, y]``; ``points`` ``(N, 2)`` float, the
        (x, y) pixel coordinates of the ``XRAY_LANDMARK_NAMES[anatomy]`` landmarks.
    """
    if anatomy not in XRAY_ANATOMIES:
        raise ValueError(f"anatomy must be one of {XRAY_ANATOMIES}, got {anatomy!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 64 <= int(size) <= 1024:
        raise ValueError(f"size must be an integer in 64-1024 pixels, got {size!r}.")
    rng = np.random.default_rng(check_seed(seed))
    field = _FIELD_MM[anatomy]
    spacing = field / int(size)
    centre = np.array([field / 2, field / 2])
    while True:  # a new subject and pose until every landmark lies 3 mm or more inside the field
        shape = _hand_shape(rng) if anatomy == "hand" else _pelvis_shape(rng)
        angle = np.deg2rad(rng.uniform(-20.0, 20.0) if anatomy == "hand" else rng.uniform(-8.0, 8.0))
        scale = rng.uniform(0.88, 1.08)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
        shape = (shape - centre) @ rot.T + centre + rng.uniform(-0.06, 0.06, 2) * field
        if shape.min() >= 3.0 and shape.max() <= field - 3.0:
            break
    xx, yy = np.meshgrid((np.arange(size) + 0.5) * spacing, (np.arange(size) + 0.5) * spacing, indexing="ij")
    draw = _hand_bones if anatomy == "hand" else _pelvis_bones
    bone, soft = draw(xx, yy, shape, rng, spacing)
    texture = 1.0 + 0.15 * smooth_random_field(rng, (size, size), 1.5)
    mu_bone, mu_soft = rng.uniform(0.035, 0.05), rng.uniform(0.0035, 0.005)
    attenuation = mu_bone * bone * texture + mu_soft * soft * scale
    attenuation = ndimage.gaussian_filter(attenuation, rng.uniform(0.4, 1.0))
    signal = 1.0 - np.exp(-attenuation)  # processed radiograph: bright = attenuating
    signal = signal / max(float(np.quantile(signal, 0.995)), 1e-6)
    signal = np.clip(signal, 0.0, None) ** rng.uniform(0.7, 1.3)
    signal = signal + rng.normal(0.0, rng.uniform(0.015, 0.045), signal.shape) + rng.uniform(0.0, 0.08)
    image = np.clip(np.round(255.0 * np.clip(signal, 0.0, 1.0)), 0, 255).astype(np.uint8)
    return image, shape / spacing - 0.5


def synthesize_xray_landmark_dataset(out_dir: str | os.PathLike, anatomy: str = "pelvis", labelled: int = 140,
                                     unlabelled: int = 400, size: int = 128, seed: int = 0,
                                     progress: bool = True) -> dict[str, Any]:
    """Write ``labelled + unlabelled`` radiographs and the landmarks of the labelled ones to ``out_dir``.

    Layout (a folder of images plus a table of landmark coordinates, as :func:`monai_ext.datalists.
    landmark_table_datalist` reads it)::

        out_dir/images/pelvis_0000.png     8-bit grey, size x size; the first ``labelled`` images are labelled
        out_dir/landmarks.csv              image,<name>_x,<name>_y,... (pixels; one row per labelled image)
        out_dir/phantom.json               settings, landmark names, pixel spacing (mm)

    Image ``i``'s seed depends on ``(seed, anatomy, i)`` only. Written under a temporary name, renamed at the end.

    Raises:
        ValueError: an unknown anatomy, fewer than 1 labelled image, a negative unlabelled count or a bad size.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    if anatomy not in XRAY_ANATOMIES:
        raise ValueError(f"anatomy must be one of {XRAY_ANATOMIES}, got {anatomy!r}.")
    n_labelled = check_count(labelled, "labelled")
    n_unlabelled = 0 if unlabelled == 0 else check_count(unlabelled, "unlabelled")
    check_seed(seed)
    from PIL import Image

    out = require_empty_folder(out_dir)
    names = XRAY_LANDMARK_NAMES[anatomy]
    a_index = XRAY_ANATOMIES.index(anatomy)
    description: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        (tmp / "images").mkdir()
        t0 = time.perf_counter()
        rows = []
        for i in range(n_labelled + n_unlabelled):
            image, points = generate_xray_image(derive_seed(seed, 81, a_index, i, bits=31), anatomy, size)
            name = f"{anatomy}_{i:04d}.png"
            Image.fromarray(image.T).save(tmp / "images" / name)
            if i < n_labelled:
                rows.append([name] + [f"{v:.3f}" for v in points.reshape(-1)])
            if progress and (i + 1) % 100 == 0:
                print(f"{anatomy} radiographs: {i + 1} of {n_labelled + n_unlabelled} ... "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
        with open(tmp / "landmarks.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image"] + [f"{n}_{c}" for n in names for c in ("x", "y")])
            writer.writerows(rows)
        description.update({
            "name": f"monai_ext synthetic {anatomy} radiographs with landmarks",
            "description": f"{'Posterior-anterior hand' if anatomy == 'hand' else 'Anterior-posterior pelvis'} "
                           "radiographs from a parametric shape model with a random pose; synthetic data "
                           "(monai_ext.phantoms.xray_landmarks).",
            "generator": "monai_ext.phantoms.synthesize_xray_landmark_dataset", "anatomy": anatomy,
            "seed": int(seed), "size": int(size), "pixel_spacing_mm": _FIELD_MM[anatomy] / int(size),
            "labelled": n_labelled, "unlabelled": n_unlabelled, "landmark_names": list(names),
        })
        (tmp / "phantom.json").write_text(json.dumps(description, indent=1) + "\n")

    if not atomic_directory(out, fill):
        raise FileExistsError(f"out_dir {out} appeared while the data set was written; kept the other writer's.")
    return description
