"""Synthetic abdominal CT in Hounsfield units for liver and liver-tumour segmentation (LiTS-like).

:func:`generate_liver_tumor_ct` builds on the chest/abdomen phantom (:func:`~monai_ext.phantoms.generate_chest_ct`):
the body, ribs, spine, lung bases, heart, liver, spleen, kidneys, stomach, pancreas, gallbladder, bowel and the table
come from it, rendered in an abdomen-centred field of view (the whole liver, from above the dome to below the tip)
and in a contrast phase of :func:`~monai_ext.phantoms.sample_acquisition` (portal venous by default). This module
adds what a liver-tumour scan needs:

- portal and hepatic vein trees inside the liver (:func:`~monai_ext.phantoms.chest_ct.grow_vessel_tree`, painted
  with partial-volume edges), enhanced in the portal-venous phase (about 130-210 HU, the liver 100-140 HU);
- 0-6 tumours of 5-60 mm diameter (log-uniform), lobulated ellipsoids inside the liver, either hypodense (20-40 HU
  below the liver; a necrotic centre in some tumours over 30 mm) or rim-enhancing (a hypodense core, 30-50 HU below
  the liver, in a 2-5 mm rim 10-40 HU above it);
- the image formation of a clinical abdominal CT: Gaussian point spread (in-plane FWHM 1.2 voxel, slice FWHM = the
  slice spacing), the case's reconstruction kernel and kernel-shaped noise
  (:func:`~monai_ext.phantoms.apply_kernel`, :func:`~monai_ext.phantoms.kernel_noise`; standard dose, 10-25 HU
  at 3 mm).

Labels follow LiTS and MSD Task03: 0 background, 1 liver (with its intrahepatic vessels), 2 tumour (always inside
the liver). Default grid 128 x 128 x 64 voxels of 3 x 3 x 4 mm (384 x 384 x 256 mm): LiTS scans have 0.6-1 mm
in-plane voxels and 0.7-5 mm slices; this coarser grid keeps CPU training feasible (a 5 mm tumour spans
about two voxels). The array axes are those of the chest phantom: i toward the patient's left, j posterior,
k superior (affine axis codes L, P, S).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..io import atomic_directory
from .chest_ct import HU_RANGE, TISSUE_NAMES, ChestCTCase, generate_chest_ct, grow_vessel_tree, paint_vessel_segments
from .chest_ct_acquisition import apply_kernel, kernel_noise, sample_acquisition
from .grid import check_phantom_grid
from .msd_description import msd_phantom_description
from .nifti_writer import save_phantom_nifti
from .seeds import check_seed, derive_seed

__all__ = [
    "LIVER_TUMOR_CONTRASTS",
    "LIVER_TUMOR_DEFAULT_SHAPE",
    "LIVER_TUMOR_DEFAULT_SPACING",
    "LIVER_TUMOR_LABELS",
    "LIVER_TUMOR_MIXED_PHASES",
    "LiverTumorCTCase",
    "generate_liver_tumor_ct",
    "synthesize_liver_tumor_dataset",
]

#: label values of the phantoms (LiTS / MSD Task03)
LIVER_TUMOR_LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "liver tumour"}
#: default grid: 128 x 128 x 64 voxels of 3 x 3 x 4 mm (384 x 384 x 256 mm field of view)
LIVER_TUMOR_DEFAULT_SHAPE: tuple[int, int, int] = (128, 128, 64)
LIVER_TUMOR_DEFAULT_SPACING: tuple[float, float, float] = (3.0, 3.0, 4.0)
#: contrast phases (those of :func:`~monai_ext.phantoms.sample_acquisition`)
LIVER_TUMOR_CONTRASTS: tuple[str, ...] = ("portal_venous", "arterial", "none")

_TAG = 32  # seed stream of this generator (issue 32)
_LIVER = next(k for k, v in TISSUE_NAMES.items() if v == "liver")
# abdomen-only slab below the lowest lung point (anatomy mm): the liver tip lies at most ~110 mm below it
_ABDOMEN_MM = 120.0
_PATIENT_SCALE = (0.85, 1.05)  # narrower than the chest phantom's 0.8-1.2: the body must fit a 384 mm field of view
_TUMOUR_COUNT_P = (0.15, 0.25, 0.2, 0.15, 0.1, 0.08, 0.07)  # P(0 .. 6 tumours)
_DIAMETER_MM = (5.0, 60.0)
#: phases of ``contrast="mixed"`` data sets and their odds: mostly portal venous (as LiTS), but also unenhanced scans
LIVER_TUMOR_MIXED_PHASES: dict[str, float] = {"portal_venous": 0.5, "none": 0.3, "arterial": 0.2}


@dataclasses.dataclass
class LiverTumorCTCase(ChestCTCase):
    """One synthetic abdominal CT (the fields of :class:`~monai_ext.phantoms.ChestCTCase`).

    Attributes:
        image: float32 (X, Y, Z) in HU, clipped to [-1024, 3071].
        label: uint8, same shape: 0 background, 1 liver, 2 tumour.
        affine: 4x4 voxel -> RAS world (mm) affine (axis codes L, P, S; the world origin at the volume centre).
        spacing: voxel size (mm).
        tissue: the chest phantom's tissue classes (:data:`~monai_ext.phantoms.TISSUE_NAMES`) before the liver's
            vessels and tumours were painted; ``findings`` is ``None``.
        info: generation record: ``seed``, ``shape``, ``spacing``, ``fov_mm``, ``patient_scale``, ``contrast``,
            ``kernel``, ``noise_std``, ``liver_hu``, ``vessel_hu`` (``portal``, ``hepatic``; ``None`` when not
            enhanced), ``liver_volume_ml`` (labels 1 + 2), ``tumour_volume_ml``, ``liver_extent_mm`` (world z
            of the liver's top and bottom), ``tumours`` (each ``kind``, ``diameter_mm``, ``centre_mm`` (RAS
            world), ``centre_voxel``, ``hu``, ``rim_hu``, ``rim_mm``, ``necrosis``, ``voxels``) and ``labels``.
    """


def _coordinates(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """Voxel-centre coordinates (mm) along each axis, 0 at the volume centre (the chest phantom's frame)."""
    return [(np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * np.float32(s) for n, s in zip(shape, spacing)]


def _nearest_point(mask: np.ndarray, axes: list[np.ndarray], target: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask)
    pts = np.stack([axes[a][idx[:, a]] for a in range(3)], axis=1)
    return pts[int(np.argmin(((pts - target) ** 2).sum(axis=1)))].astype(np.float64)


def _leaf_points(rng: np.random.Generator, mask: np.ndarray, axes: list[np.ndarray], n: int,
                 spacing: Sequence[float]) -> np.ndarray:
    idx = np.argwhere(mask)
    pick = idx[rng.choice(len(idx), size=min(n, len(idx)), replace=False)]
    pts = np.stack([axes[a][pick[:, a]] for a in range(3)], axis=1).astype(np.float64)
    return pts + rng.uniform(-0.5, 0.5, size=pts.shape) * np.asarray(spacing)


def _liver_vessels(rng: np.random.Generator, image: np.ndarray, tissue: np.ndarray, liver: np.ndarray,
                   spacing: Sequence[float], contrast: str, blood_hu: float) -> dict[str, float | None]:
    """Portal tree from the porta hepatis, hepatic-vein tree from the cava confluence below the dome; painted into
    ``image`` over liver voxels when the phase enhances them."""
    axes = _coordinates(liver.shape, spacing)
    idx = np.argwhere(liver)
    lo = np.array([axes[a][idx[:, a].min()] for a in range(3)], dtype=np.float64)
    hi = np.array([axes[a][idx[:, a].max()] for a in range(3)], dtype=np.float64)
    size = hi - lo
    depth = ndi.distance_transform_edt(liver, sampling=spacing)
    inner = depth > 6.0
    if inner.sum() < 8:
        inner = liver
    # porta hepatis: medial (toward +x, the patient's left), mid-depth, lower half of the liver;
    # hepatic veins join the cava posteriorly and medially just below the dome
    portal_root = _nearest_point(inner, axes, lo + size * np.array([0.7, 0.55, 0.35]))
    hepatic_root = _nearest_point(liver, axes, lo + size * np.array([0.8, 0.75, 0.9]))
    leaves = _leaf_points(rng, inner, axes, int(rng.integers(60, 90)), spacing)
    n_portal = len(leaves) // 2
    portal = grow_vessel_tree(rng, portal_root, leaves[:n_portal], 1.2, 7.0)
    hepatic = grow_vessel_tree(rng, hepatic_root, leaves[n_portal:], 1.0, 6.0)
    if contrast == "portal_venous":
        hu = {"portal": float(min(blood_hu + rng.uniform(-5.0, 15.0), 210.0)),
              "hepatic": float(blood_hu - rng.uniform(0.0, 20.0))}
    elif contrast == "arterial":  # portal vein partly enhanced, hepatic veins not yet (left as liver)
        hu = {"portal": float(rng.uniform(110.0, 160.0)), "hepatic": None}
    else:  # unenhanced blood is darker than liver: the vessels stay invisible (the painter only raises values)
        hu = {"portal": None, "hepatic": None}
    for name, segs in (("portal", portal), ("hepatic", hepatic)):
        if hu[name] is not None:
            paint_vessel_segments(image, tissue, spacing, segs, hu[name], (_LIVER,))
    return hu


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _tumours(rng: np.random.Generator, image: np.ndarray, liver: np.ndarray, spacing: Sequence[float],
             count: int, liver_hu: float, contrast: str) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Paint ``count`` tumours over liver voxels; returns the tumour mask and the records (voxel centres)."""
    axes = _coordinates(liver.shape, spacing)
    depth = ndi.distance_transform_edt(liver, sampling=spacing)
    h = float(min(spacing))
    mask = np.zeros(liver.shape, dtype=bool)
    records = []
    for _ in range(count):
        d = float(math.exp(rng.uniform(math.log(_DIAMETER_MM[0]), math.log(_DIAMETER_MM[1]))))
        r = d / 2.0
        # centres deep enough that at least ~60% of the radius is inside the liver
        ok = depth >= min(0.6 * r, 0.8 * float(depth.max()))
        cand = np.argwhere(ok)
        cv = cand[int(rng.integers(len(cand)))]
        c = np.array([axes[a][cv[a]] for a in range(3)], dtype=np.float64)
        semi = r * rng.uniform(0.8, 1.2, 3)
        semi *= r / float(np.prod(semi)) ** (1.0 / 3.0)  # keep the volume of a sphere of diameter d
        rot = _random_rotation(rng)
        pad = float(semi.max()) * 1.3 + 2.0 * h
        box = tuple(slice(max(0, int(np.searchsorted(axes[a], c[a] - pad))),
                          int(np.searchsorted(axes[a], c[a] + pad, side="right"))) for a in range(3))
        X, Y, Z = (axes[a][box[a]].reshape([-1 if b == a else 1 for b in range(3)]) - np.float32(c[a])
                   for a in range(3))
        u = [(X * rot[k, 0] + Y * rot[k, 1] + Z * rot[k, 2]) / np.float32(semi[k]) for k in range(3)]
        q = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
        # lobulated outline: the radius varies by a smooth random field (+-15%)
        field = ndi.zoom(rng.standard_normal((4, 4, 4)).astype(np.float32), [q.shape[a] / 4.0 for a in range(3)],
                         order=1, mode="nearest")
        q = q / (1.0 + 0.15 * np.clip(field, -2.0, 2.0))
        dist_mm = (1.0 - q) * r  # ~ signed distance to the outline (mm), > 0 inside
        inside = np.clip(dist_mm / h + 0.5, 0.0, 1.0)  # partial-volume weight
        liv = liver[box]
        kind = "hypodense" if (d < 10.0 or contrast == "none" or rng.random() < 0.6) else "rim"
        rim_mm = rim_hu = None
        necrosis = False
        if kind == "hypodense":
            core = liver_hu - float(rng.uniform(20.0, 40.0))
            target = np.full(q.shape, core, dtype=np.float32)
            if d > 30.0 and rng.random() < 0.5:
                necrosis = True
                target = np.where(q < 0.5, np.float32(core - rng.uniform(15.0, 30.0)), target)
        else:
            core = liver_hu - float(rng.uniform(30.0, 50.0))
            rim_mm = float(rng.uniform(2.0, 5.0))
            rim_hu = liver_hu + float(rng.uniform(10.0, 40.0))
            w_rim = np.clip((rim_mm - dist_mm) / h + 0.5, 0.0, 1.0)
            target = np.float32(core) + w_rim * np.float32(rim_hu - core)
        texture = ndi.zoom(rng.standard_normal((5, 5, 5)).astype(np.float32), [q.shape[a] / 5.0 for a in range(3)],
                           order=1, mode="nearest")
        target = target + np.float32(4.0) * texture
        w = inside * liv
        sub = image[box]
        sub += w * (target - sub)
        tm = (inside >= 0.5) & liv
        mask[box] |= tm
        records.append({"kind": kind, "diameter_mm": d, "centre_voxel": [int(v) for v in cv], "hu": float(core),
                        "rim_hu": rim_hu, "rim_mm": rim_mm, "necrosis": necrosis, "voxels": int(tm.sum())})
    return mask, records


def generate_liver_tumor_ct(
    seed: int = 0,
    shape: Sequence[int] = LIVER_TUMOR_DEFAULT_SHAPE,
    spacing: Sequence[float] = LIVER_TUMOR_DEFAULT_SPACING,
    tumours: int | None = None,
    contrast: str = "portal_venous",
    noise: bool = True,
) -> LiverTumorCTCase:
    """One abdominal CT with liver and tumour labels (see the module docstring for the anatomy and HU).

    Args:
        seed: case seed (non-negative integer); the same arguments give identical arrays.
        shape, spacing: the grid (default 128 x 128 x 64 voxels of 3 x 3 x 4 mm). The anatomy has adult sizes: a
            field of view under about 380 mm in-plane cuts the body, and under about 250 mm in z the liver.
        tumours: number of tumours (0-6); ``None``: drawn (P(0) = 0.15, then fewer more often).
        contrast: ``"portal_venous"`` (default: liver 100-140 HU, vessels 130-210 HU), ``"arterial"`` (liver
            60-90 HU, portal vein 110-160 HU) or ``"none"`` (liver 54-68 HU, vessels not visible).
        noise: add kernel-shaped CT noise (standard dose); ``False`` for a noise-free image.

    Raises:
        ValueError: a bad seed, grid, tumour count or contrast (the message names it), or a field of view
            without liver.
    """
    seed = check_seed(seed)
    shp, spc = check_phantom_grid(shape, spacing, (16, 1024), (0.3, 10.0))
    if contrast not in LIVER_TUMOR_CONTRASTS:
        raise ValueError(f"contrast must be one of {list(LIVER_TUMOR_CONTRASTS)}, got {contrast!r}.")
    if tumours is not None and (isinstance(tumours, bool) or int(tumours) != tumours or not 0 <= int(tumours) <= 6):
        raise ValueError(f"tumours must be an integer in 0..6 or None, got {tumours!r}.")
    rng = np.random.default_rng(derive_seed(seed, _TAG))
    ps = float(rng.uniform(*_PATIENT_SCALE))
    count = int(rng.choice(7, p=_TUMOUR_COUNT_P)) if tumours is None else int(tumours)
    # the chest phantom renders the anatomy: no truncation, arms up, no chest findings, no kernel, blur or noise
    # (this module adds them after the liver's vessels and tumours)
    chest = generate_chest_ct(
        shp, spc, seed=seed, lesions=False, nodules=False, noise_std=0.0, blur_mm=0.0, variety=True,
        abdomen_mm=_ABDOMEN_MM * ps,
        acquisition={"lateral_keep": 1.0, "ap_keep": 1.0, "craniocaudal": "none", "arms": "up", "contrast": contrast,
                     "kernel": "standard", "dose": "standard", "slice_thickness_mm": 0.6, "z_spacing_mm": spc[2],
                     "patient_scale": ps, "effusion": "none", "atelectasis": "none", "emphysema": False})
    acq = sample_acquisition(seed, spc, {"dose": "standard", "z_spacing_mm": spc[2], "contrast": contrast})
    image, tissue = chest.image, chest.tissue
    liver = tissue == _LIVER
    if not liver.any():
        raise ValueError(f"the field of view {[n * s for n, s in zip(shp, spc)]} mm holds no liver; use a larger one.")
    tissue_hu = chest.info["tissue_hu"]
    liver_hu = float(tissue_hu["liver"])
    anatomy_spacing = [s / ps for s in spc]  # the chest phantom draws the anatomy on this grid
    vessel_hu = _liver_vessels(rng, image, tissue, liver, anatomy_spacing, contrast,
                               float(tissue_hu["blood/great vessels"]))
    tumour, records = _tumours(rng, image, liver, spc, count, liver_hu, contrast)

    fwhm = [1.2 * spc[0], 1.2 * spc[1], spc[2]]
    image = ndi.gaussian_filter(image, [f / 2.3548 / s for f, s in zip(fwhm, spc)], mode="nearest", truncate=3.0)
    kern = acq["kernel"]
    strength = kern["smooth_fwhm_vox"] if kern["name"] == "smooth" else kern["sharp_k"]
    image = apply_kernel(image, kern["name"], strength)
    noise_std = float(acq["noise_std_3mm"]) * (spc[2] / 3.0) ** -0.5 if noise else 0.0
    if noise_std > 0:
        image = image + kernel_noise(rng.standard_normal(shp, dtype=np.float32), kern["name"], strength, noise_std)
    image = np.clip(image, HU_RANGE[0], HU_RANGE[1]).astype(np.float32)

    label = liver.astype(np.uint8)
    label[tumour] = 2
    affine = chest.affine
    vox_ml = float(np.prod(spc)) / 1000.0
    for rec in records:
        rec["centre_mm"] = [float(v) for v in (affine @ np.array(rec["centre_voxel"] + [1.0]))[:3]]
    zs = np.flatnonzero(liver.any(axis=(0, 1)))
    z_world = [float((affine @ np.array([0.0, 0.0, float(k), 1.0]))[2]) for k in (zs[-1], zs[0])]
    info = {
        "seed": seed, "shape": list(shp), "spacing": list(spc), "fov_mm": [n * s for n, s in zip(shp, spc)],
        "patient_scale": ps, "contrast": contrast, "kernel": kern, "noise_std": noise_std,
        "liver_hu": liver_hu, "vessel_hu": vessel_hu,
        "liver_volume_ml": float(np.count_nonzero(label)) * vox_ml,
        "tumour_volume_ml": float(np.count_nonzero(label == 2)) * vox_ml,
        "liver_extent_mm": {"top_z": z_world[0], "bottom_z": z_world[1]},
        "tumours": records, "labels": dict(LIVER_TUMOR_LABELS),
    }
    return LiverTumorCTCase(image=image, label=label, affine=affine, spacing=spc, info=info, tissue=tissue)


def synthesize_liver_tumor_dataset(
    out_dir: str | os.PathLike,
    cases: int = 40,
    seed: int = 0,
    shape: Sequence[int] = LIVER_TUMOR_DEFAULT_SHAPE,
    spacing: Sequence[float] = LIVER_TUMOR_DEFAULT_SPACING,
    layout: str = "msd",
    contrast: str = "portal_venous",
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``cases`` phantoms (:func:`generate_liver_tumor_ct`) to ``out_dir``, as MSD Task03 or as LiTS names.

    ``layout="msd"``::

        out_dir/imagesTr/liver_000.nii.gz   int16 HU
        out_dir/labelsTr/liver_000.nii.gz   uint8: 0 background, 1 liver, 2 tumour
        out_dir/dataset.json                MSD keys + ``phantom`` (settings and every case's record)

    ``layout="lits"``: ``out_dir/volume-<i>.nii.gz`` and ``out_dir/segmentation-<i>.nii.gz`` (the LiTS challenge
    names), and the record in ``out_dir/phantom.json``.

    ``contrast``: one phase of :data:`LIVER_TUMOR_CONTRASTS` for every case, or ``"mixed"``: per case a phase drawn
    with the odds of :data:`LIVER_TUMOR_MIXED_PHASES` (recorded per case).

    The folder is filled under a temporary name and renamed at the end: ``out_dir`` either does not appear or holds
    the complete data set. Case ``i`` has the seed ``derive_seed(seed, 32, i)``, so more cases keep the first ones.

    Raises:
        ValueError: bad ``cases``, ``seed``, grid, ``layout`` or ``contrast`` (nothing is written).
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    n = check_seed(cases, "cases")
    if n < 1:
        raise ValueError(f"cases must be at least 1, got {cases!r}.")
    check_seed(seed)
    shp, spc = check_phantom_grid(shape, spacing, (16, 1024), (0.3, 10.0))
    if layout not in ("msd", "lits"):
        raise ValueError(f"layout must be 'msd' or 'lits', got {layout!r}.")
    if contrast not in LIVER_TUMOR_CONTRASTS + ("mixed",):
        raise ValueError(f"contrast must be one of {list(LIVER_TUMOR_CONTRASTS) + ['mixed']}, got {contrast!r}.")
    out = Path(out_dir).expanduser()
    if out.is_file() or (out.is_dir() and next(out.iterdir(), None) is not None):
        raise FileExistsError(f"{out}: exists and is not an empty folder; the phantoms go into a new or empty one.")
    dataset: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        entries, records = [], []
        for i in range(n):
            t0 = time.perf_counter()
            cs = derive_seed(seed, _TAG, i, bits=31)
            phase = contrast
            if contrast == "mixed":
                names = list(LIVER_TUMOR_MIXED_PHASES)
                odds = np.array([LIVER_TUMOR_MIXED_PHASES[k] for k in names])
                phase = names[int(np.random.default_rng(derive_seed(seed, _TAG, i, 1)).choice(len(names), p=odds))]
            case = generate_liver_tumor_ct(cs, shp, spc, contrast=phase)
            hu = np.rint(case.image).astype(np.int16)
            if layout == "msd":
                image, label = f"imagesTr/liver_{i:03d}.nii.gz", f"labelsTr/liver_{i:03d}.nii.gz"
            else:
                image, label = f"volume-{i}.nii.gz", f"segmentation-{i}.nii.gz"
            save_phantom_nifti(hu, case.affine, tmp / image)
            save_phantom_nifti(case.label, case.affine, tmp / label)
            entries.append({"image": f"./{image}", "label": f"./{label}"})
            info = case.info
            records.append({"case": Path(image).name.split(".")[0], "seed": cs,
                            **{k: info[k] for k in ("patient_scale", "contrast", "kernel", "noise_std", "liver_hu",
                                                    "vessel_hu", "liver_volume_ml", "tumour_volume_ml", "tumours")}})
            if progress:
                print(f"liver case {i + 1}/{n} seed={cs} liver={info['liver_volume_ml']:.0f} ml "
                      f"tumours={len(info['tumours'])} ... {time.perf_counter() - t0:.1f} s", flush=True)
        dataset.update(msd_phantom_description(
            "monai_ext synthetic liver tumour CT",
            "Synthetic abdominal CT phantoms in HU (portal-venous-like contrast by default) with liver and "
            "liver-tumour labels, LiTS / MSD Task03 conventions; generated by monai_ext.phantoms.liver_tumor_ct. "
            "Synthetic data, not for clinical use.",
            "CT",
            LIVER_TUMOR_LABELS,
            entries,
            {"generator": "monai_ext.phantoms.synthesize_liver_tumor_dataset", "seed": int(seed), "cases": n,
             "shape": list(shp), "spacing": list(spc), "layout": layout, "contrast": contrast, "records": records},
        ))
        name = "dataset.json" if layout == "msd" else "phantom.json"
        (tmp / name).write_text(json.dumps(dataset, indent=1) + "\n")

    installed = atomic_directory(out, fill)
    if not installed:
        raise FileExistsError(f"{out}: another writer filled it meanwhile; its data set was kept, this one dropped.")
    return dataset
