"""H&E tiles of five histopathology segmentation task families, the embedded data of the MetaHistoSeg bundle.

MetaHistoSeg (Yuan et al., DGM4MICCAI/DALI 2021) pools five public segmentation sources whose label sets differ.
Each family here imitates one of them, with its own magnification, tissue and stain statistics:

============  =================  =====================================================================  =======
family        like               classes                                                                  pixel
============  =================  =====================================================================  =======
nuclei        MoNuSeg            background, nucleus                                                      0.5 um
cellularity   BreastPathQ        background, lymphocyte, malignant epithelial, normal epithelial          0.5 um
glands        GlaS               background, gland (epithelium and lumen)                                 2 um
lesion        DigestPath         background, lesion (crowded atypical mucosa)                             4 um
gleason       Gleason2019        background (glass), stroma, benign gland, Gleason 3, Gleason 4, Gleason 5  2 um
============  =================  =====================================================================  =======

``cellularity`` labels are disks of a fixed radius around the cell centroids, as the paper turned BreastPathQ's
centroid annotations into masks (its 12 px at 0.25 um; here 4 px at 0.5 um), so they do not follow the nuclei's
outlines. Rendering is Beer-Lambert (:mod:`.brightfield`) with haematoxylin and eosin; every family has its own
stain vectors, strengths and white level (one lab's protocol and scanner), and every tile draws small deviations
around them (batch-to-batch variation).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_directory, require_empty_folder
from .brightfield import ellipse_depth, render_brightfield, soft_ellipses
from .random_field import smooth_random_field
from .seeds import check_seed, derive_seed

__all__ = [
    "HISTO_TASK_FAMILIES",
    "HISTO_TASK_JSON",
    "generate_histo_tile",
    "sample_tile_stain",
    "synthesize_histo_tasks",
]

#: the task description file of a task folder (labels, pixel size, source)
HISTO_TASK_JSON = "task.json"

#: per family: class names (index = label value), pixel size (um), the public source it imitates, and its stain
#: protocol: haematoxylin and eosin vectors (OD per unit concentration, R G B), their strengths and the white level
HISTO_TASK_FAMILIES: dict[str, dict[str, Any]] = {
    "nuclei": {
        "classes": ["background", "nucleus"], "pixel_um": 0.5, "like": "MoNuSeg (multi-organ nuclei, 40x)",
        "stain": {"h": [0.62, 0.74, 0.26], "e": [0.10, 0.95, 0.20], "h_strength": 1.0, "e_strength": 0.8,
                  "white": 0.94},
    },
    "cellularity": {
        "classes": ["background", "lymphocyte", "malignant epithelial", "normal epithelial"], "pixel_um": 0.5,
        "like": "BreastPathQ (cellularity, centroids as disks)",
        "stain": {"h": [0.55, 0.78, 0.30], "e": [0.05, 0.90, 0.35], "h_strength": 0.85, "e_strength": 0.6,
                  "white": 0.96},
    },
    "glands": {
        "classes": ["background", "gland"], "pixel_um": 2.0, "like": "GlaS (colon glands, 20x)",
        "stain": {"h": [0.70, 0.68, 0.22], "e": [0.15, 1.00, 0.12], "h_strength": 1.15, "e_strength": 1.0,
                  "white": 0.92},
    },
    "lesion": {
        "classes": ["background", "lesion"], "pixel_um": 4.0, "like": "DigestPath (colonoscopy tissue lesions)",
        "stain": {"h": [0.60, 0.70, 0.38], "e": [0.20, 0.95, 0.08], "h_strength": 1.0, "e_strength": 1.15,
                  "white": 0.90},
    },
    "gleason": {
        "classes": ["background", "stroma", "benign gland", "Gleason 3", "Gleason 4", "Gleason 5"], "pixel_um": 2.0,
        "like": "Gleason2019 (prostate, Gleason grade map)",
        "stain": {"h": [0.66, 0.70, 0.28], "e": [0.08, 0.98, 0.18], "h_strength": 0.9, "e_strength": 0.7,
                  "white": 0.95},
    },
}


def sample_tile_stain(rng: np.random.Generator, family: str) -> dict[str, Any]:
    """One tile's stain and focus: the family's protocol with deviations (vectors turned by a few degrees, strengths
    +-30 %, white level +-0.02) and an optical blur of 0.5-1.4 px (focus varies over a slide)."""
    spec = HISTO_TASK_FAMILIES[family]["stain"]
    vec = np.array([spec["h"], spec["e"]], dtype=float)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    vec = np.abs(vec + rng.normal(0.0, 0.06, vec.shape))
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    return {
        "stain_vectors": vec.round(4).tolist(),
        "h_strength": float(spec["h_strength"] * rng.uniform(0.7, 1.3)),
        "e_strength": float(spec["e_strength"] * rng.uniform(0.7, 1.3)),
        "white": float(np.clip(spec["white"] + rng.uniform(-0.02, 0.02), 0.8, 0.99)),
        "blur_px": float(rng.uniform(0.5, 1.4)),
    }


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    return yy, xx


def _stroma(rng: np.random.Generator, shape: tuple[int, int], where: np.ndarray, nuclei_per_px: float,
            nucleus_px: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Fibrous pink stroma with scattered spindle nuclei: ``(h, e)`` concentration maps on ``where``."""
    e = 0.45 * (1.0 + 0.3 * smooth_random_field(rng, shape, 1.5)) * where
    h = 0.9 * soft_ellipses(rng, shape, where, int(rng.poisson(where.sum() * nuclei_per_px)), nucleus_px, 2.2)
    return h + 0.04 * where, e


def _glands(rng: np.random.Generator, shape: tuple[int, int], count: int, radius: tuple[float, float],
            elongation: tuple[float, float], irregularity: float, where: np.ndarray | None = None) -> np.ndarray:
    """Depth (px) inside the nearest of ``count`` elliptical glands with rough outlines (0 outside)."""
    yy, xx = _grid(shape)
    depth = np.full(shape, -1e3)
    allowed = np.flatnonzero(np.ones(shape, bool) if where is None else where)
    if allowed.size == 0 or count <= 0:
        return np.zeros(shape)
    for c in rng.choice(allowed, size=min(count, allowed.size), replace=False):
        cy, cx = divmod(int(c), shape[1])
        depth = np.maximum(depth, ellipse_depth(yy, xx, cy, cx, rng.uniform(*radius), rng.uniform(0.0, np.pi),
                                                rng.uniform(*elongation)))
    depth = depth + irregularity * smooth_random_field(rng, shape, 3.0)
    return np.clip(depth, 0.0, None)


def _render_glands(rng: np.random.Generator, depth: np.ndarray, ring_px: float, nucleus_px: tuple[float, float],
                   atypia: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Gland epithelium (a ring of ``ring_px`` with basal nuclei) around a pale lumen: ``(h, e)``. ``atypia`` in
    [0, 1] crowds and enlarges the nuclei and fills the lumen."""
    shape = depth.shape
    gland = depth > 0
    ring = gland & (depth < ring_px * (1.0 + atypia))
    lumen = gland & ~ring
    e = 0.55 * ring * (1.0 + 0.2 * smooth_random_field(rng, shape, 1.0)) + 0.08 * lumen
    n = int(ring.sum() / (14.0 - 8.0 * atypia))
    basal = ring & (depth < 0.7 * ring_px * (1.0 + atypia))
    scale = 1.0 + 0.6 * atypia
    h = (0.8 + 0.3 * atypia) * soft_ellipses(rng, shape, basal, n, (nucleus_px[0] * scale, nucleus_px[1] * scale), 1.5)
    return h + 0.05 * ring, e


def _nuclei_tile(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tissue = np.ones(shape, bool)
    h, e = _stroma(rng, shape, tissue, 0.0, (1.0, 1.0))
    density = rng.uniform(0.5, 1.6) * shape[0] * shape[1] / 9216.0
    elong = float(rng.uniform(1.0, 1.6))
    dark = soft_ellipses(rng, shape, tissue, int(rng.poisson(22 * density)), (3.5, 6.5), elong)
    faint = soft_ellipses(rng, shape, tissue, int(rng.poisson(10 * density)), (3.5, 7.0), elong)  # open chromatin
    chromatin = 1.0 + 0.35 * smooth_random_field(rng, shape, 0.8)
    # not nuclei: apoptotic debris (small dark specks) and red blood cells (eosin only)
    debris = soft_ellipses(rng, shape, tissue, int(rng.poisson(8 * density)), (1.0, 2.2))
    rbc = soft_ellipses(rng, shape, tissue, int(rng.poisson(6 * density)), (2.5, 3.5))
    h = np.maximum(h, np.maximum(rng.uniform(0.6, 1.0) * dark, rng.uniform(0.3, 0.45) * faint) * chromatin)
    h = np.maximum(h, 0.9 * debris)
    nuc = np.maximum(dark, faint)
    e = e * (1.0 - 0.6 * nuc) + 0.9 * rbc * (nuc < 0.5)
    return h, e, (nuc > 0.5).astype(np.uint8)


def _cellularity_tile(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = _grid(shape)
    h, e = _stroma(rng, shape, np.ones(shape, bool), 0.002, (1.2, 2.0))
    label = np.zeros(shape, np.uint8)
    # (class, count rate, radius range px, elongation, darkness, vesicular)
    kinds = [(1, rng.uniform(0, 14), (2.2, 3.0), 1.0, 1.1, 0.0),
             (2, rng.uniform(0, 10), (4.5, 7.0), 1.4, 0.55, 0.5),
             (3, rng.uniform(0, 12), (3.2, 4.2), 1.2, 0.75, 0.0)]
    nucleus = np.zeros(shape)
    for cls, rate, radius, elong, dark, vesicular in kinds:
        n = int(rng.poisson(rate * shape[0] * shape[1] / 9216.0))
        if cls == 3 and n:   # normal epithelium grows in small clusters
            centres = rng.uniform(0, shape, (max(1, n // 5), 2))
            pts = centres[rng.integers(0, len(centres), n)] + rng.normal(0.0, 5.0, (n, 2))
        else:
            pts = rng.uniform(0, shape, (n, 2))
        for cy, cx in np.clip(pts, 0, np.array(shape) - 1):
            r = rng.uniform(*radius)
            d = ellipse_depth(yy, xx, cy, cx, r, rng.uniform(0, np.pi), rng.uniform(1.0, elong))
            body = np.clip(d, 0.0, 1.0)
            rim = np.clip(1.0 - np.abs(d - 1.0), 0.0, 1.0) if vesicular else 0.0
            nucleus = np.maximum(nucleus, dark * (body * (1.0 - vesicular) + vesicular * rim + 0.15 * body))
            label[np.hypot(yy - cy, xx - cx) <= 4.0] = cls
    h = np.maximum(h, nucleus)
    e = e * (1.0 - 0.5 * np.clip(nucleus, 0, 1))
    return h, e, label


def _glands_tile(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    depth = _glands(rng, shape, int(rng.integers(1, 4)), (12.0, 24.0), (1.0, 1.8), float(rng.uniform(0.5, 2.5)))
    gland = depth > 0
    hs, es = _stroma(rng, shape, ~gland, float(rng.uniform(0.004, 0.015)), (1.0, 1.6))
    # not glands: tissue tears and fat (empty spaces in the stroma), some lined by flattened nuclei
    holes = soft_ellipses(rng, shape, ~gland, int(rng.integers(0, 4)), (4.0, 12.0), 1.8) * ~gland
    hs = hs * (1.0 - holes) + 0.7 * soft_ellipses(rng, shape, (holes > 0) & (holes < 0.6), int(rng.integers(0, 6)),
                                                  (0.8, 1.2), 2.5)
    es = es * (1.0 - holes)
    atypia = float(rng.uniform(0.0, 1.0))
    hg, eg = _render_glands(rng, depth, float(rng.uniform(4.0, 7.0)), (1.3, 2.0), atypia)
    lumen_fill = (depth > 0) * rng.uniform(0.0, 0.5) * atypia   # necrotic debris / mucus in malignant lumens
    return hs + hg + 0.3 * lumen_fill, es + eg + lumen_fill, gland.astype(np.uint8)


def _lesion_tile(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    field = smooth_random_field(rng, shape, shape[0] / 5.0)
    lesion = field > rng.uniform(-0.6, 1.6) if rng.random() < 0.8 else np.zeros(shape, bool)
    normal_depth = _glands(rng, shape, int(rng.integers(6, 12)), (3.5, 5.5), (1.0, 1.3), 0.3, ~lesion)
    h, e = _stroma(rng, shape, normal_depth <= 0, 0.01, (0.6, 1.0))
    hg, eg = _render_glands(rng, normal_depth, 2.0, (0.6, 0.9))
    # the lesion: crowded, enlarged, dark nuclei over a dense purple mass with small distorted lumens
    atypical = _glands(rng, shape, int(rng.integers(4, 10)), (3.0, 7.0), (1.0, 2.5), 1.5, lesion) * lesion
    h = np.where(lesion, 0.25 + 0.7 * soft_ellipses(rng, shape, lesion, int(lesion.sum() / 5), (0.8, 1.4), 1.4), h + hg)
    e = np.where(lesion, 0.35 * (1.0 - 0.7 * (atypical > 1.5)), e + eg)
    return h, e, lesion.astype(np.uint8)


def _gleason_tile(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    present = [1] + sorted(rng.choice([2, 3, 4, 5], size=int(rng.integers(1, 4)), replace=False).tolist())
    fields = np.stack([smooth_random_field(rng, shape, shape[0] / 6.0) + rng.uniform(0, 0.5) for _ in present])
    label = np.asarray(present, np.uint8)[np.argmax(fields, 0)]
    if rng.random() < 0.5:   # glass at one edge of the core
        label[smooth_random_field(rng, shape, shape[0] / 4.0) > 1.2] = 0
    h, e = _stroma(rng, shape, label == 1, 0.004, (1.0, 1.6))
    for cls, count, radius, ring, atypia in ((2, 3, (9.0, 15.0), 4.0, 0.0), (3, 12, (3.5, 6.0), 2.5, 0.3),
                                            (4, 6, (7.0, 12.0), 6.0, 0.8)):
        region = label == cls
        if region.any():
            depth = _glands(rng, shape, int(count * region.mean() * 4 + 1), radius, (1.0, 1.5), 0.8, region)
            h_g, e_g = _render_glands(rng, depth, ring, (1.0, 1.5), atypia)
            h_s, e_s = _stroma(rng, shape, region & (depth <= 0), 0.003, (1.0, 1.4))
            if cls == 4:   # cribriform: many small lumens punched into fused glands
                holes = soft_ellipses(rng, shape, depth > 2.0, int((depth > 2.0).sum() / 30), (0.8, 1.5))
                e_g = e_g * (1.0 - 0.7 * holes)
                h_g = h_g + 0.35 * (depth > 0) * (1.0 - holes)
            h = np.where(region, h_g + h_s, h)
            e = np.where(region, e_g + e_s, e)
    sheet = label == 5   # solid sheets of tumour cells, no lumen
    h = np.where(sheet, 0.2 + 0.8 * soft_ellipses(rng, shape, sheet, int(sheet.sum() / 7), (0.9, 1.4), 1.3), h)
    e = np.where(sheet, 0.4, e)
    glass = label == 0
    return h * ~glass, e * ~glass, label


_RENDERERS = {"nuclei": _nuclei_tile, "cellularity": _cellularity_tile, "glands": _glands_tile,
              "lesion": _lesion_tile, "gleason": _gleason_tile}


def generate_histo_tile(family: str, seed: int, size: int = 96,
                        stain: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One tile of task ``family``: ``(image (3, size, size) uint8 RGB, mask (size, size) uint8 class indices,
    record)``; ``record`` holds the stain and the pixel count of every class. ``stain`` defaults to
    :func:`sample_tile_stain` from the tile's seed.

    Raises:
        ValueError: an unknown family.
    """
    if family not in HISTO_TASK_FAMILIES:
        raise ValueError(f"unknown histology task family {family!r}; expected one of {sorted(HISTO_TASK_FAMILIES)}.")
    rng = np.random.default_rng(check_seed(seed))
    stain = sample_tile_stain(rng, family) if stain is None else stain
    h, e, mask = _RENDERERS[family](rng, (int(size), int(size)))
    conc = np.stack([np.clip(h, 0.0, None) * stain["h_strength"], np.clip(e, 0.0, None) * stain["e_strength"]])
    image = render_brightfield(rng, conc, stain["stain_vectors"], stain["white"], blur_px=stain.get("blur_px", 0.6))
    n_cls = len(HISTO_TASK_FAMILIES[family]["classes"])
    record = {"stain": stain, "class_pixels": np.bincount(mask.ravel(), minlength=n_cls).tolist()}
    return image, mask, record


def synthesize_histo_tasks(out_dir: str | os.PathLike, images_per_task: dict[str, int] | int | None = None,
                           size: int = 96, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Write one folder per task family into ``out_dir``, in the layout that
    :func:`monai_ext.datalists.histo_task_datalist` reads::

        out_dir/<task>/images/<task>_007.png   RGB uint8, size x size
        out_dir/<task>/masks/<task>_007.png    uint8 class indices (0 .. number of classes - 1)
        out_dir/<task>/task.json               labels {"0": "background", ...}, pixel_um, source, tile records

    ``images_per_task``: a count for every family, or a dict naming the families to write (default: nuclei 30,
    the others 60: MoNuSeg's 30 images is the smallest source of the paper). Written under a temporary name and
    renamed at the end. Tile ``i`` of a family depends on ``(seed, family, i)`` only.

    Raises:
        ValueError: an unknown family, a count below 1 or ``size`` outside 32-512.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    if images_per_task is None:
        images_per_task = {name: (30 if name == "nuclei" else 60) for name in HISTO_TASK_FAMILIES}
    elif not isinstance(images_per_task, dict):
        images_per_task = {name: images_per_task for name in HISTO_TASK_FAMILIES}
    for name, n in images_per_task.items():
        if name not in HISTO_TASK_FAMILIES:
            raise ValueError(f"unknown histology task family {name!r}; expected some of {sorted(HISTO_TASK_FAMILIES)}.")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 1:
            raise ValueError(f"images_per_task[{name!r}] must be an integer >= 1, got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 32 <= int(size) <= 512:
        raise ValueError(f"size must be an integer in 32-512 pixels, got {size!r}.")
    check_seed(seed)
    from PIL import Image

    out = require_empty_folder(out_dir)
    summary: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        for fi, (name, count) in enumerate(images_per_task.items()):
            t0 = time.perf_counter()
            spec = HISTO_TASK_FAMILIES[name]
            folder = tmp / name
            (folder / "images").mkdir(parents=True)
            (folder / "masks").mkdir()
            family_index = list(HISTO_TASK_FAMILIES).index(name)
            tiles = []
            for i in range(int(count)):
                image, mask, rec = generate_histo_tile(name, derive_seed(seed, 71, family_index, i, bits=31), size)
                stem = f"{name}_{i:03d}.png"
                Image.fromarray(np.moveaxis(image, 0, -1)).save(folder / "images" / stem)
                Image.fromarray(mask).save(folder / "masks" / stem)
                tiles.append({"image": stem, **rec})
            task = {"name": name, "labels": {str(k): c for k, c in enumerate(spec["classes"])},
                    "pixel_um": spec["pixel_um"], "like": spec["like"],
                    "description": f"synthetic H&E tiles like {spec['like']} (monai_ext.phantoms.histology_tasks)",
                    "generator": "monai_ext.phantoms.synthesize_histo_tasks", "seed": int(seed), "size": int(size),
                    "stain_protocol": spec["stain"], "tiles": tiles}
            (folder / HISTO_TASK_JSON).write_text(json.dumps(task, indent=1) + "\n")
            pixels = np.sum([t["class_pixels"] for t in tiles], axis=0)
            summary[name] = {"images": int(count), "class_fractions": (pixels / pixels.sum()).round(4).tolist()}
            if progress:
                print(f"histology task {fi + 1}/{len(images_per_task)} {name}: {count} tiles, class fractions "
                      f"{summary[name]['class_fractions']} ... {time.perf_counter() - t0:.1f} s", flush=True)

    if not atomic_directory(out, fill):
        raise FileExistsError(f"out_dir {out} appeared while the data set was written; kept the other writer's.")
    return summary
