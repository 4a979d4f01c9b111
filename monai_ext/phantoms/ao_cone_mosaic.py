"""Adaptive-optics (AO) retinal images of the cone photoreceptor mosaic, imaged twice: the embedded data of
the AO label-transfer method (Liu, Aguilera, Liu & Tam, "Automated iterative label transfer improves segmentation of
noisy cells in adaptive optics retinal images", DGM4MICCAI/DALI 2021; issue 36).

A mosaic is a jittered hexagonal lattice of cones (a few sites empty): each cone a bright Gaussian core in a darker
surround, with its own reflectivity. Its instance label is the cone's disk cut by its Voronoi cell, so touching cones
stay apart. A *visit* renders the same cones under a pixel affine (the eye and the scan are never placed the same
way twice: rotation, scale, shear, shift), through an optical blur and with detector noise. In a *noisy* visit some
smooth regions get strong noise, motion blur and dimmed cones (the cones are still there and still labelled: what
a segmenter misses and a second visit can supply). Cone ``k`` has label ``k + 1`` in every visit, so the true
correspondences between visits are known. Pixels are notional (about 1 um): the paper gives no pixel size; what
matters is the spacing of the cones in pixels (``spacing``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..io import atomic_directory, require_empty_folder
from .nifti_writer import save_phantom_nifti
from .random_field import smooth_random_field
from .seeds import check_count, check_seed, derive_seed

__all__ = [
    "render_cone_visit",
    "random_visit_affine",
    "sample_cone_mosaic",
    "generate_cone_pair",
    "synthesize_cone_dataset",
]


def _check_size_spacing(size: Any, spacing: Any) -> tuple[int, float]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 32 <= int(size) <= 1024:
        raise ValueError(f"size must be an integer in 32-1024 pixels, got {size!r}.")
    if not 4.0 <= float(spacing) <= float(size) / 4:
        raise ValueError(f"spacing must be 4 to size / 4 = {int(size) / 4:g} pixels, got {spacing!r}.")
    return int(size), float(spacing)


def sample_cone_mosaic(rng: np.random.Generator, size: int = 128, spacing: float = 12.0, jitter: float = 0.08,
                       missing: float = 0.03) -> dict[str, np.ndarray]:
    """Cones of a hexagonal lattice with ``spacing`` px between neighbours, each moved by Gaussian jitter
    (``jitter`` x spacing, sd) and a fraction ``missing`` of the sites left empty. The lattice covers the image and
    a margin of a quarter of its size around it, so that a moved second visit is still full of cones.

    Returns ``{"centres": (N, 2) (row, col) px in the first visit's image, "radius": (N,) px, "reflectivity": (N,)}``.
    """
    size, spacing = _check_size_spacing(size, spacing)
    lo, hi = -0.25 * size, 1.25 * size
    rows = np.arange(lo, hi, spacing * np.sqrt(3.0) / 2.0)
    pts = [(r, c + (spacing / 2.0 if k % 2 else 0.0)) for k, r in enumerate(rows) for c in np.arange(lo, hi, spacing)]
    centres = np.asarray(pts) + rng.normal(0.0, jitter * spacing, (len(pts), 2))
    centres = centres[rng.random(len(centres)) >= missing]
    n = len(centres)
    return {"centres": centres, "radius": spacing * rng.uniform(0.36, 0.44, n),
            "reflectivity": np.clip(rng.normal(0.75, 0.15, n), 0.3, 1.0)}


def random_visit_affine(rng: np.random.Generator, size: int, max_rotation_deg: float = 3.0, max_scale: float = 0.03,
                        max_shear: float = 0.02, max_shift: float = 8.0) -> np.ndarray:
    """A 3 x 3 matrix mapping (row, col, 1) of one visit to the other's, about the image centre: rotation, scale,
    shear and shift drawn uniformly within the given bounds (degrees, fraction, fraction, px)."""
    a = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    scale = np.diag(1.0 + rng.uniform(-max_scale, max_scale, 2))
    shear = np.array([[1.0, rng.uniform(-max_shear, max_shear)], [0.0, 1.0]])
    lin = rot @ scale @ shear
    c = np.full(2, (size - 1) / 2.0)
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = c - lin @ c + rng.uniform(-max_shift, max_shift, 2)
    return m


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length))
    c = (length - 1) / 2.0
    for t in np.linspace(-c, c, 4 * length):
        k[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
    return k / k.sum()


def render_cone_visit(mosaic: dict[str, np.ndarray], size: int, affine: np.ndarray | None = None, noisy: bool = False,
                      rng: np.random.Generator | None = None, noise_sd: float = 0.03) -> tuple[np.ndarray, np.ndarray, dict]:
    """One visit of ``mosaic``: ``(image, labels, record)``.

    ``image``: (size, size) float32 in [0, 1]; ``labels``: (size, size) int32, cone ``k``'s pixels are ``k + 1``
    (0 background); ``affine``: 3 x 3, the first visit's (row, col, 1) -> this visit's (identity: the first visit).
    ``noisy``: 1-3 smooth regions (together 30-50 % of the image) get noise of sd 0.15-0.25, a motion blur of 5-9 px
    and 50-80 % of their cones dimmed to 0.2-0.45 of their reflectivity (still labelled). Calibrated so that a U-Net
    trained on clean visits loses about 10 points of Dice on noisy ones (bundles/ao_cone_label_transfer,
    docs/experiments.md). ``record``: the noisy-region fraction and the dimmed cones (labels).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    m = np.eye(3) if affine is None else np.asarray(affine, float)
    lin = m[:2, :2]
    centres = mosaic["centres"] @ lin.T + m[:2, 2]
    radius = mosaic["radius"] * float(np.sqrt(abs(np.linalg.det(lin))))
    refl = mosaic["reflectivity"].copy()
    yy, xx = np.mgrid[:size, :size].astype(float)
    inside = np.all((centres > -2 * radius[:, None]) & (centres < size + 2 * radius[:, None]), axis=1)
    idx = np.flatnonzero(inside)
    region = np.zeros((size, size), bool)
    dimmed: list[int] = []
    if noisy:
        field = smooth_random_field(rng, (size, size), size / 10.0)
        frac = rng.uniform(0.3, 0.5)
        region = field > np.quantile(field, 1.0 - frac)
        seen = idx[np.all((centres[idx] >= 0) & (centres[idx] <= size - 1), axis=1)]   # centre in the image
        r_i = np.round(centres[seen]).astype(int)
        in_region = seen[region[r_i[:, 0], r_i[:, 1]]]
        pick = in_region[rng.random(len(in_region)) < rng.uniform(0.5, 0.8)]
        refl[pick] *= rng.uniform(0.2, 0.45, len(pick))
        dimmed = sorted(int(k) + 1 for k in pick)
    # nearest cone of every pixel (Voronoi) and the distance to it
    tree = cKDTree(centres[idx])
    dist, near = tree.query(np.stack([yy.ravel(), xx.ravel()], 1))
    near_k = idx[near].reshape(size, size)
    dist = dist.reshape(size, size)
    r_pix = radius[near_k]
    labels = np.where(dist <= r_pix, near_k + 1, 0).astype(np.int32)
    core = refl[near_k] * np.exp(-0.5 * (dist / (0.45 * r_pix)) ** 2)
    surround = 0.08 * np.exp(-0.5 * ((dist - r_pix) / (0.25 * r_pix)) ** 2)
    image = 0.18 + core - surround
    image = ndimage.gaussian_filter(image, 0.8)
    if noisy and region.any():
        k = int(rng.integers(5, 10))
        blurred = ndimage.convolve(image, _motion_kernel(k, rng.uniform(0, np.pi)), mode="reflect")
        image = np.where(region, blurred, image)
        image = image + region * rng.normal(0.0, rng.uniform(0.15, 0.25), image.shape)
    image = image + rng.normal(0.0, noise_sd, image.shape)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    return image, labels, {"noisy_fraction": float(region.mean()), "dimmed": dimmed}


def generate_cone_pair(seed: int, size: int = 128, spacing: float = 12.0) -> dict[str, Any]:
    """Two visits of one mosaic, one of them noisy (drawn), the second under a random affine.

    Returns ``{"images": (2, size, size) float32, "labels": (2, size, size) int32, "affine": 3 x 3 (visit 1 ->
    visit 2 pixels), "noisy_visit": 0 or 1, "dimmed": labels dimmed in the noisy visit, "noisy_fraction"}``; a cone has
    the same label in both visits."""
    rng = np.random.default_rng(check_seed(seed))
    size, spacing = _check_size_spacing(size, spacing)
    mosaic = sample_cone_mosaic(rng, size, spacing)
    affine = random_visit_affine(rng, size)
    noisy_visit = int(rng.integers(0, 2))
    visits = [render_cone_visit(mosaic, size, None if v == 0 else affine, noisy=v == noisy_visit, rng=rng)
              for v in (0, 1)]
    return {"images": np.stack([v[0] for v in visits]), "labels": np.stack([v[1] for v in visits]),
            "affine": affine, "noisy_visit": noisy_visit, "dimmed": visits[noisy_visit][2]["dimmed"],
            "noisy_fraction": visits[noisy_visit][2]["noisy_fraction"]}


def synthesize_cone_dataset(out_dir: str | os.PathLike, labelled: int = 40, pairs: int = 20, test: int = 30,
                            test_noisy_fraction: float = 2 / 3, size: int = 128, spacing: float = 12.0, seed: int = 0,
                            progress: bool = True) -> dict[str, Any]:
    """Write the three parts of the AO data set to ``out_dir``:

    - ``labelled/images``, ``labelled/labels``: ``labelled`` clean single visits with instance labels (the manually
      marked training set of the paper);
    - ``pairs/``: ``pairs`` visit pairs ``pair_000_v1`` / ``_v2`` (one of them noisy); their labels go to
      ``pairs_reference/`` (for scoring the transfer only: the method sees none);
    - ``test/images``, ``test/labels``: ``test`` single visits, the first ``round(test_noisy_fraction * test)`` noisy.

    2D NIfTI, float32 images in [0, 1] and int32 instance labels, 1 px = 1 notional um; ``dataset.json`` holds the
    settings and every pair's affine (visit 1 -> visit 2, (row, col, 1)), noisy visit and dimmed cones. Written under a
    temporary name and renamed at the end; item ``i`` of a part depends on ``(seed, part, i)`` only.

    Raises:
        ValueError: counts below 1 (``test``, ``pairs``, ``labelled``), a bad ``size`` / ``spacing`` or fraction.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    for name, v in (("labelled", labelled), ("pairs", pairs), ("test", test)):
        check_count(v, name)
    if not 0.0 <= float(test_noisy_fraction) <= 1.0:
        raise ValueError(f"test_noisy_fraction must be in [0, 1], got {test_noisy_fraction!r}.")
    size, spacing = _check_size_spacing(size, spacing)
    check_seed(seed)
    out = require_empty_folder(out_dir)
    eye = np.eye(4)
    description: dict[str, Any] = {}

    def single(part: int, i: int, noisy: bool) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(derive_seed(seed, 71, part, i, bits=31))
        image, labels, _ = render_cone_visit(sample_cone_mosaic(rng, size, spacing), size, noisy=noisy, rng=rng)
        return image, labels

    def fill(tmp: Path) -> None:
        t0 = time.perf_counter()
        for sub in ("labelled/images", "labelled/labels", "pairs", "pairs_reference", "test/images", "test/labels"):
            (tmp / sub).mkdir(parents=True)
        for i in range(int(labelled)):
            image, labels = single(0, i, False)
            save_phantom_nifti(image, eye, tmp / "labelled" / "images" / f"cone_{i:03d}.nii.gz")
            save_phantom_nifti(labels, eye, tmp / "labelled" / "labels" / f"cone_{i:03d}.nii.gz")
        n_noisy = int(round(float(test_noisy_fraction) * int(test)))
        for i in range(int(test)):
            image, labels = single(2, i, i < n_noisy)
            save_phantom_nifti(image, eye, tmp / "test" / "images" / f"test_{i:03d}.nii.gz")
            save_phantom_nifti(labels, eye, tmp / "test" / "labels" / f"test_{i:03d}.nii.gz")
        records = []
        for i in range(int(pairs)):
            pair = generate_cone_pair(derive_seed(seed, 71, 1, i, bits=31), size, spacing)
            for v in (0, 1):
                save_phantom_nifti(pair["images"][v], eye, tmp / "pairs" / f"pair_{i:03d}_v{v + 1}.nii.gz")
                save_phantom_nifti(pair["labels"][v], eye, tmp / "pairs_reference" / f"pair_{i:03d}_v{v + 1}.nii.gz")
            records.append({"pair": f"pair_{i:03d}", "affine_v1_to_v2": pair["affine"].round(6).tolist(),
                            "noisy_visit": pair["noisy_visit"] + 1, "dimmed": pair["dimmed"],
                            "noisy_fraction": round(pair["noisy_fraction"], 4)})
        description.update({
            "name": "monai_ext synthetic AO cone mosaic", "generator": "monai_ext.phantoms.synthesize_cone_dataset",
            "seed": int(seed), "size": size, "spacing_px": spacing, "labelled": int(labelled), "pairs": int(pairs),
            "test": int(test), "test_noisy": n_noisy, "pixel": "notional, about 1 um", "pair_records": records,
            "description": "Adaptive-optics-like images of the cone mosaic with instance labels; pairs of visits of one "
                           "mosaic under a known affine, one visit noisy. Synthetic data.",
        })
        (tmp / "dataset.json").write_text(json.dumps(description, indent=1) + "\n")
        if progress:
            print(f"AO cone mosaic: {labelled} labelled, {pairs} pairs, {test} test images ... "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)

    if not atomic_directory(out, fill):
        raise FileExistsError(f"out_dir {out} appeared while the data set was written; kept the other writer's.")
    return description
