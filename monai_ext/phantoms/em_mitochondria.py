"""Synthetic electron-microscopy volumes with mitochondria: isotropic FIB-SEM-like blocks of neural tissue.

The embedded default of the multi-planar sparse-annotation bundle (Laprade et al., DGM4MICCAI/DALI 2021, use the
EPFL hippocampus CA1 FIB-SEM volumes of Lucchi et al., ~5 nm isotropic). Appearance, in 8-bit grey values as a
FIB-SEM stack is stored (membranes and dense matrix dark, cytoplasm bright):

- cytoplasm about 175 with smooth texture and fine grain;
- mitochondria (the label): ellipsoids of random orientation, 300-900 nm long and 160-320 nm wide, 8-16 per block, a darker
  matrix (about 115) with cristae as dark bands across the long axis and a dark double membrane (about 60);
- distractors that are not labelled: dense organelles (lysosomes, multivesicular bodies: ellipsoids of the
  mitochondria's size and grey value, granular inside, no cristae, no membrane), cell membranes (thin dark sheets,
  slightly curved) and synaptic vesicles (40-70 nm spheres with a dark rim and a light lumen);
- blur of the beam (Gaussian, 0.7 voxel) and detector noise (s.d. 16 grey values).

Voxels are 20 nm isotropic by default (written as 2e-5 mm, as NIfTI stores mm).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from ..io import atomic_directory, require_empty_folder
from .grid import check_phantom_grid
from .msd_description import msd_phantom_description
from .nifti_writer import save_phantom_nifti
from .seeds import check_count, check_seed, derive_seed

__all__ = ["EM_MITOCHONDRIA_LABELS", "em_affine", "generate_em_mitochondria_case", "synthesize_em_mitochondria_dataset"]

EM_MITOCHONDRIA_LABELS = {0: "background", 1: "mitochondrion"}
NM_PER_MM = 1e6


def em_affine(spacing_nm: Sequence[float]) -> np.ndarray:
    """The voxel -> world affine (mm) of a block of ``spacing_nm`` voxels, origin at 0."""
    return np.diag([*(float(s) / NM_PER_MM for s in spacing_nm), 1.0])


def _ellipsoid_distance(grid: np.ndarray, center: np.ndarray, rot: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Normalised ellipsoid distance (< 1 inside) of the voxel centres ``grid`` (3, X, Y, Z); ``rot`` columns are
    the ellipsoid's axes, ``axes`` its semi-axes (voxels)."""
    local = np.tensordot(rot.T, grid - center.reshape(3, 1, 1, 1), axes=1)
    return np.sqrt(((local / axes.reshape(3, 1, 1, 1)) ** 2).sum(0)), local


def generate_em_mitochondria_case(seed: int, shape: Sequence[int] = (64, 64, 64), spacing_nm: float = 20.0,
                                  num_mitochondria: tuple[int, int] = (8, 16), num_distractors: int = 8,
                                  noise_sd: float = 16.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """One EM block: ``(image, label, record)``, image float32 (X, Y, Z) grey values 0-255, label uint8 (X, Y, Z)
    (1 mitochondrion), record the drawn parameters (centres, rotations, semi-axes in voxels)."""
    rng = np.random.default_rng(check_seed(seed))
    shp = tuple(int(s) for s in shape)
    nm = float(spacing_nm)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shp], indexing="ij"))
    smooth = gaussian_filter(rng.normal(0.0, 1.0, shp), 60.0 / nm)
    image = 175.0 + 14.0 * smooth / (smooth.std() + 1e-6)
    image += gaussian_filter(rng.normal(0.0, 1.0, shp), 0.8) * 10.0

    # cell membranes: 1-3 thin, slightly curved dark sheets
    membranes = []
    for _ in range(int(rng.integers(1, 4))):
        normal = Rotation.random(random_state=rng.integers(2**31)).as_matrix()[:, 2]
        point = rng.uniform(0.15, 0.85, 3) * np.asarray(shp)
        curvature = rng.uniform(-0.01, 0.01)
        rel = grid - point.reshape(3, 1, 1, 1)
        d = np.tensordot(normal, rel, axes=1) + curvature * (rel ** 2).sum(0)
        image -= 75.0 * np.exp(-0.5 * (d / (8.0 / nm * 1.2)) ** 2)
        membranes.append({"normal": normal.tolist(), "point": point.tolist(), "curvature": float(curvature)})

    label = np.zeros(shp, np.uint8)
    mitos = []
    target = int(rng.integers(num_mitochondria[0], num_mitochondria[1] + 1))
    for _ in range(400):
        if len(mitos) >= target:
            break
        long_ax = rng.uniform(150.0, 450.0) / nm
        short = rng.uniform(80.0, 160.0) / nm
        axes = np.array([max(long_ax, short), short * rng.uniform(0.8, 1.0), short * rng.uniform(0.8, 1.0)])
        rot = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
        center = rng.uniform(0.0, 1.0, 3) * (np.asarray(shp) - 1)
        dist, local = _ellipsoid_distance(grid, center, rot, axes)
        inside = dist < 1.0
        if not inside.any() or (label[dist < 1.15] > 0).any():
            continue  # outside the block, or touching another mitochondrion
        membrane_width = 1.6 / float(axes[1:].min())
        matrix = inside & (dist < 1.0 - membrane_width)
        period = rng.uniform(45.0, 80.0) / nm
        cristae = 0.5 * (1.0 + np.cos(2.0 * np.pi * local[0] / period))
        image[inside] = 60.0
        image[matrix] = 125.0 - 45.0 * cristae[matrix] ** 4
        label[inside] = 1
        mitos.append({"center": center.tolist(), "rotation": rot.tolist(), "semi_axes": axes.tolist(),
                      "cristae_period": float(period)})

    # dense organelles (lysosomes, multivesicular bodies; not labelled): ellipsoids of the mitochondria's size and
    # grey value, but granular inside, without cristae or a double membrane
    organelles = []
    for _ in range(400):
        if len(organelles) >= int(num_distractors):
            break
        axes = rng.uniform(70.0, 200.0, 3) / nm
        rot = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
        center = rng.uniform(0.0, 1.0, 3) * (np.asarray(shp) - 1)
        dist, _ = _ellipsoid_distance(grid, center, rot, axes)
        inside = dist < 1.0
        if not inside.any() or (label[dist < 1.2] > 0).any():
            continue
        grain = gaussian_filter(rng.normal(0.0, 1.0, shp), 0.9)
        image[inside] = rng.uniform(95.0, 130.0) + 60.0 * grain[inside]
        organelles.append({"center": center.tolist(), "rotation": rot.tolist(), "semi_axes": axes.tolist()})

    # synaptic vesicles (not labelled), away from the mitochondria
    vesicles = 0
    for _ in range(int(rng.integers(10, 30))):
        r = rng.uniform(20.0, 35.0) / nm
        c = rng.uniform(0.0, 1.0, 3) * (np.asarray(shp) - 1)
        d = np.sqrt(((grid - c.reshape(3, 1, 1, 1)) ** 2).sum(0))
        if (label[d < r + 1.5] > 0).any():
            continue
        image[(d < r) & (d >= r - 1.0)] = 85.0
        image[d < r - 1.0] = 190.0
        vesicles += 1

    image = gaussian_filter(image, 0.7) + rng.normal(0.0, float(noise_sd), shp)
    image = np.clip(image, 0.0, 255.0).astype(np.float32)
    record = {"seed": int(seed), "mitochondria": mitos, "organelles": organelles, "membranes": membranes,
              "vesicles": vesicles,
              "spacing_nm": nm}
    return image, label, record


def synthesize_em_mitochondria_dataset(out_dir: str | os.PathLike, cases: int = 7, seed: int = 0,
                                       shape: Sequence[int] = (64, 64, 64), spacing_nm: float = 20.0,
                                       progress: bool = True) -> dict[str, Any]:
    """Write ``cases`` EM blocks with mitochondria labels to ``out_dir`` in the MSD layout.

    Layout::

        out_dir/imagesTr/em_000.nii.gz    float32 (X, Y, Z) grey values 0-255, isotropic spacing_nm voxels
        out_dir/labelsTr/em_000.nii.gz    uint8: 0 background, 1 mitochondrion
        out_dir/dataset.json              MSD keys + ``phantom`` (settings and every case's parameters)

    Written under a temporary name and renamed at the end (nothing half-written is left). Case ``i``'s seed
    depends on ``(seed, i)`` only.

    Raises:
        ValueError: invalid ``cases``, ``shape`` (16-256 voxels per axis) or ``spacing_nm`` (1-100 nm).
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    check_count(cases)
    check_seed(seed)
    shp, spc = check_phantom_grid(shape, float(spacing_nm) / NM_PER_MM, (16, 256), (1e-6, 1e-4), scalar_spacing=True)
    out = require_empty_folder(out_dir)
    affine = em_affine([s * NM_PER_MM for s in spc])
    dataset: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        entries, records = [], []
        for i in range(int(cases)):
            t0 = time.perf_counter()
            name = f"em_{i:03d}"
            image, label, rec = generate_em_mitochondria_case(derive_seed(seed, 47, i, bits=31), shp, spacing_nm)
            save_phantom_nifti(image, affine, tmp / "imagesTr" / f"{name}.nii.gz")
            save_phantom_nifti(label, affine, tmp / "labelsTr" / f"{name}.nii.gz")
            entries.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
            records.append({"case": name, **rec})
            if progress:
                print(f"EM block {i + 1}/{cases} {name}: {len(rec['mitochondria'])} mitochondria, "
                      f"{100.0 * label.mean():.1f} % of the voxels ... {time.perf_counter() - t0:.2f} s", flush=True)
        dataset.update(msd_phantom_description(
            "monai_ext synthetic EM mitochondria",
            "Synthetic isotropic FIB-SEM-like blocks of neural tissue with mitochondria labels (as the EPFL "
            "hippocampus data of Lucchi et al.); membranes and vesicles are rendered but labelled background. "
            "Generated by monai_ext.phantoms.em_mitochondria. Synthetic data.",
            "EM",
            EM_MITOCHONDRIA_LABELS,
            entries,
            {"generator": "monai_ext.phantoms.synthesize_em_mitochondria_dataset", "seed": int(seed),
             "cases": int(cases), "shape": list(shp), "spacing_nm": float(spacing_nm), "records": records},
        ))
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=1) + "\n")

    if not atomic_directory(out, fill):
        raise FileExistsError(f"out_dir {out} appeared while the data set was written; kept the other writer's.")
    return dataset
