"""Synthetic temporal-bone CT with a spiral cochlea and three cochlear landmarks: the embedded default data of the
one-shot 3D landmark bundle.

The one-shot cochlea landmark paper (extra paper of DGM4MICCAI/DALI 2021; ``seeds/notes/002-lines-1890-3430.md``
section 8) places three landmarks (top / apex, centre, round window) in left temporal-bone CTs of 0.25 mm voxels
from a single annotated reference. Those scans are not public, so this module draws look-alike volumes:

- the inner ear in its own frame (mm): the cochlea, a fluid-filled tube along a conical logarithmic spiral of
  2.4-2.7 turns about the modiolus (local z axis), basal-turn radius ~3.6 mm shrinking to ~1 mm at the apex and
  rising ~3.5 mm, tube radius 0.9 -> 0.45 mm; the vestibule (an ellipsoid beside the basal end), three
  semicircular canals (tori in orthogonal planes) and the internal auditory canal (a cylinder along the modiolus
  axis, medial): fluid-filled look-alikes of the cochlea near it;
- the landmarks, analytic on the spiral: ``round_window`` = the centre line at the basal end, ``top`` = the centre
  line at the apex, ``centre`` = the modiolus axis at half the spiral's height;
- dense otic-capsule bone (1800-2200 HU) within ~2 mm of the inner ear, inside petrous bone (1000-1500 HU with a
  smooth trabecular texture) whose outline is a perturbed ellipsoid, mastoid air cells (-900 HU) in the bone away
  from the inner ear, soft tissue (~40 HU) outside;
- a pose per case: the inner ear rotated by up to +-25 degrees about each axis from a fixed base orientation,
  its centre shifted up to +-4 mm from the middle of the field of view, and scaled by 0.9-1.1;
- acquisition: a Gaussian point spread (0.3-0.45 mm) and Gaussian noise (25-60 HU), stored as int16 HU.

:func:`sample_temporal_bone_params` draws every random number of a case into a JSON-able dict;
:func:`render_temporal_bone_case` turns it into an image, the cochlea mask (the structure of interest) and the
landmarks (world mm); :func:`synthesize_temporal_bone_dataset` writes a reference, a validation and ``test``
volumes atomically. World coordinates: RAS-like mm, centred on the field of view, affine ``diag(spacing)``.
Synthetic data, not for clinical use.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ..io import atomic_directory, require_empty_folder, write_landmarks
from .grid import check_phantom_grid
from .nifti_writer import save_phantom_nifti
from .random_field import smooth_random_field
from .seeds import check_count, check_seed, derive_seed

__all__ = [
    "COCHLEA_LANDMARKS",
    "TEMPORAL_BONE_DEFAULT_SHAPE",
    "TEMPORAL_BONE_DEFAULT_SPACING",
    "render_temporal_bone_case",
    "sample_temporal_bone_params",
    "synthesize_temporal_bone_dataset",
    "temporal_bone_affine",
]

#: the three landmarks, in the order of every landmark file
COCHLEA_LANDMARKS: tuple[str, ...] = ("top", "centre", "round_window")
TEMPORAL_BONE_DEFAULT_SHAPE: tuple[int, int, int] = (96, 96, 96)
TEMPORAL_BONE_DEFAULT_SPACING: tuple[float, float, float] = (0.3, 0.3, 0.3)
_BASE_ORIENTATION = Rotation.from_euler("xyz", [20.0, -35.0, 50.0], degrees=True)  # cochlear axis oblique to the scan


def temporal_bone_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Voxel -> world (mm) affine of a grid of ``shape`` voxels of ``spacing`` mm centred on the origin."""
    aff = np.diag([float(s) for s in spacing] + [1.0])
    aff[:3, 3] = -(np.asarray(shape, dtype=np.float64) - 1.0) / 2.0 * np.asarray(spacing, dtype=np.float64)
    return aff


def _temporal_bone_grid(shape: Sequence[int] | None, spacing: Sequence[float] | None) -> tuple[tuple[int, ...], tuple[float, ...]]:
    return check_phantom_grid(TEMPORAL_BONE_DEFAULT_SHAPE if shape is None else shape,
                              TEMPORAL_BONE_DEFAULT_SPACING if spacing is None else spacing, (32, 256), (0.1, 1.0))


def sample_temporal_bone_params(seed: int) -> dict[str, Any]:
    """Every random number of one case, drawn from ``seed``, as a JSON-able dict (see the module docstring)."""
    rng = np.random.default_rng(check_seed(seed))
    return {
        "seed": int(seed),
        "euler_deg": rng.uniform(-25.0, 25.0, size=3).tolist(),
        "shift_mm": rng.uniform(-4.0, 4.0, size=3).tolist(),
        "scale": float(rng.uniform(0.9, 1.1)),
        "turns": float(rng.uniform(2.4, 2.7)),
        "bone_hu": float(rng.uniform(1000.0, 1500.0)),
        "capsule_hu": float(rng.uniform(1800.0, 2200.0)),
        "fluid_hu": float(rng.uniform(0.0, 30.0)),
        "bone_radii_mm": rng.uniform(11.0, 16.0, size=3).tolist(),
        "bone_offset_mm": rng.uniform(-3.0, 3.0, size=3).tolist(),
        "air_cells": int(rng.integers(12, 30)),
        "psf_mm": float(rng.uniform(0.3, 0.45)),
        "noise_hu": float(rng.uniform(25.0, 60.0)),
        "texture_seed": int(rng.integers(0, 2**31 - 1)),
    }


def _spiral(turns: float, n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """Centre line (n, 3) of the cochlea in its own frame (mm, before scaling) and the tube radius (n,)."""
    theta = np.linspace(0.0, 2.0 * math.pi * turns, n)
    frac = theta / theta[-1]
    radius = 3.6 * np.exp(-math.log(3.6 / 1.0) * frac)
    height = 3.5 * frac ** 0.8
    line = np.stack([radius * np.cos(theta), radius * np.sin(theta), height], axis=1)
    return line, 0.9 - 0.45 * frac


def _torus_distance(local: np.ndarray, center: Sequence[float], normal: Sequence[float], radius: float) -> np.ndarray:
    rel = local - np.asarray(center)
    nrm = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    along = rel @ nrm
    planar = np.linalg.norm(rel - along[:, None] * nrm, axis=1)
    return np.hypot(planar - radius, along)


def render_temporal_bone_case(params: dict[str, Any], shape: Sequence[int] | None = None,
                              spacing: Sequence[float] | None = None
                              ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Image (X, Y, Z) int16 HU, cochlea mask (X, Y, Z) uint8, landmarks ``{name: (3,) world mm}`` (names
    :data:`COCHLEA_LANDMARKS`) and the affine of the case ``params`` on the grid ``shape`` x ``spacing`` (mm)."""
    shp, spc = _temporal_bone_grid(shape, spacing)
    affine = temporal_bone_affine(shp, spc)
    rot = (Rotation.from_euler("xyz", params["euler_deg"], degrees=True) * _BASE_ORIENTATION).as_matrix()
    scale = float(params["scale"])
    shift = np.asarray(params["shift_mm"], dtype=np.float64)
    idx = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shp], indexing="ij"), axis=-1).reshape(-1, 3)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    local = ((world - shift) @ rot) / scale  # the inner ear's frame, unscaled mm

    line, tube = _spiral(float(params["turns"]))
    dist, nearest = cKDTree(line).query(local, distance_upper_bound=3.0)
    cochlea = np.isfinite(dist) & (dist <= tube[np.minimum(nearest, len(tube) - 1)])
    vestibule = np.sum(((local - [4.6, -2.2, 0.6]) / [1.9, 1.4, 1.3]) ** 2, axis=1) <= 1.0
    canals = np.zeros(len(local), dtype=bool)
    for center, normal in (([6.5, -3.5, 2.5], [0, 1, 0]), ([6.0, -4.5, 0.0], [0, 0, 1]), ([7.0, -2.0, -1.0], [1, 0, 0])):
        canals |= _torus_distance(local, center, normal, 2.6) <= 0.4
    axial = local[:, 2]
    iac = (np.hypot(local[:, 0], local[:, 1]) <= 1.7) & (axial < -0.6) & (axial > -14.0)
    fluid = cochlea | vestibule | canals
    inner_ear_dist = ndi.distance_transform_edt(~fluid.reshape(shp), sampling=np.asarray(spc) / scale).reshape(-1)

    rng = np.random.default_rng(int(params["texture_seed"]))
    bone_local = (local * scale - np.asarray(params["bone_offset_mm"])) / np.asarray(params["bone_radii_mm"])
    outline = smooth_random_field(rng, shp, sigma=6.0 / spc[0]).reshape(-1)  # unit std
    bone = np.sum(bone_local ** 2, axis=1) <= 1.0 + 0.15 * outline
    texture = smooth_random_field(rng, shp, sigma=0.6 / spc[0]).reshape(-1)
    hu = np.full(len(local), 40.0)
    hu[bone] = params["bone_hu"] + 180.0 * texture[bone]
    capsule = inner_ear_dist <= 2.0
    hu[capsule] = params["capsule_hu"]
    air = np.zeros(len(local), dtype=bool)
    centres = local[bone & (inner_ear_dist > 4.0)]
    if len(centres):
        for c in centres[rng.choice(len(centres), size=min(int(params["air_cells"]), len(centres)), replace=False)]:
            air |= np.sum((local - c) ** 2, axis=1) <= rng.uniform(0.6, 2.0) ** 2
    hu[air & bone & ~capsule] = -900.0
    hu[iac] = 25.0
    hu[fluid] = params["fluid_hu"]
    img = ndi.gaussian_filter(hu.reshape(shp), sigma=float(params["psf_mm"]) / np.asarray(spc))
    img = img + rng.normal(0.0, float(params["noise_hu"]), size=shp)
    image = np.clip(np.rint(img), -1024, 3071).astype(np.int16)

    theta_mid = len(line) // 2
    landmarks_local = {"top": line[-1], "centre": np.array([0.0, 0.0, line[theta_mid, 2]]), "round_window": line[0]}
    landmarks = {name: (landmarks_local[name] * scale) @ rot.T + shift for name in COCHLEA_LANDMARKS}
    return image, cochlea.reshape(shp).astype(np.uint8), landmarks, affine


def _write_volume(folder: Path, name: str, params: dict[str, Any], shp, spc, mask: bool) -> dict[str, str]:
    image, cochlea, landmarks, affine = render_temporal_bone_case(params, shp, spc)
    entry = {"image": f"{folder.name}/{name}.nii.gz", "landmarks": f"{folder.name}/{name}.mrk.json"}
    save_phantom_nifti(image, affine, folder / f"{name}.nii.gz")
    write_landmarks(folder / f"{name}.mrk.json", landmarks)
    if mask:
        save_phantom_nifti(cochlea, affine, folder / f"{name}_mask.nii.gz")
        entry["mask"] = f"{folder.name}/{name}_mask.nii.gz"
    return entry


def synthesize_temporal_bone_dataset(out_dir: str | os.PathLike, test: int = 20, seed: int = 0,
                                     shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None,
                                     progress: bool = True) -> dict[str, Any]:
    """Write the one-shot landmark data set to ``out_dir`` (missing or empty), atomically.

    Layout::

        out_dir/reference/reference.nii.gz (+ _mask.nii.gz, .mrk.json)    the one annotated volume
        out_dir/validation/validation.nii.gz (+ _mask.nii.gz, .mrk.json)  the volume for early stopping
        out_dir/test/case_000.nii.gz (+ .mrk.json)                        volumes to place landmarks in
        out_dir/dataset.json                                              the lists above + every case's params

    Images int16 HU, masks uint8 (1 = cochlea), landmarks 3D Slicer markups JSON (world mm). Case seeds depend
    on ``(seed, role, index)`` only, so a larger ``test`` keeps the first cases.

    Raises:
        ValueError: ``test`` not a positive integer, a bad seed or grid.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    check_count(test, "test")
    check_seed(seed)
    shp, spc = _temporal_bone_grid(shape, spacing)
    out = require_empty_folder(out_dir)
    dataset: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        records: dict[str, Any] = {}
        roles = [("reference", "reference", 1, True), ("validation", "validation", 2, True)]
        roles += [("test", f"case_{i:03d}", 3 + i, False) for i in range(int(test))]
        entries: dict[str, Any] = {"reference": None, "validation": None, "test": []}
        for folder, name, key, with_mask in roles:
            t0 = time.perf_counter()
            (tmp / folder).mkdir(exist_ok=True)
            params = sample_temporal_bone_params(derive_seed(seed, 53, key, bits=31))
            entry = _write_volume(tmp / folder, name, params, shp, spc, with_mask)
            records[name] = params
            if folder == "test":
                entries["test"].append(entry)
            else:
                entries[folder] = entry
            if progress:
                print(f"temporal bone CT {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        dataset.update(entries, name="synthetic temporal-bone CT (one-shot cochlea landmarks)",
                       landmarks=list(COCHLEA_LANDMARKS), shape=list(shp), spacing=list(spc), seed=int(seed),
                       phantom=records)
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=1))

    atomic_directory(out, fill)
    return dataset
