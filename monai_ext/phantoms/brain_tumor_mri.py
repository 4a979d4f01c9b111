"""Synthetic brain-tumour MR cases in four contrasts with BraTS labels, built on the MNI152 template.

Groundwork for the BraTS part of Kayalibay, Jensen & van der Smagt, "CNN-based segmentation of medical
imaging data" (arXiv:1701.03056, 2017), which trains a multi-scale 3D U-Net on BRATS 2015 (Menze et al.,
"The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", IEEE TMI 34(10), 2015). BraTS cannot be
downloaded here, so this module makes a small look-alike, the embedded default data of a brain-tumour bundle:

- anatomy: the grey-matter, white-matter and brain-mask maps of the MNI152 (ICBM 2009a) template that ships
  inside ``nilearn`` (:func:`~monai_ext.phantoms.mni152_tissue_maps`; CSF = brain mask minus GM and WM, the
  ventricles included), per case posed (rotation, scale, shift) and warped by a smooth random deformation;
  healthy look-alikes of tumour signal: periventricular white-matter hyperintensities (FLAIR / T2 bright),
  enhancing choroid plexus and cortical veins (T1c bright); the skull and scalp (bone, diploe and subcutaneous
  fat, skin) as layers around the brain, removed by default (``skull_strip=True``: BraTS images are
  skull-stripped, background exactly 0);
- one glioma: an ellipsoid of random size, axes and orientation at a random deep white-matter site, its surface
  made irregular by a smooth random field; high grade (75 %): a necrotic core inside a rim that enhances in
  patches (its non-enhancing parts are tumour core too), low grade: a non-enhancing core; peritumoral edema
  grown from the core along the white matter (grey matter only for the first millimetres, never into CSF),
  with finger-like gaps and a strength that fades outwards; in a third of the necrotic tumours subacute
  haemorrhage (T1 bright, labelled core); a mass effect of random strength pushes the healthy tissue
  (ventricles included) away from the tumour; intensity heterogeneity inside the tumour;
- contrasts from MR signal equations, not painted grey values: every compartment has a T1, T2 (ms) and
  proton density (healthy tissue: the BrainWeb 1.5 T values, Kwan, Evans & Pike, IEEE TMI 18(11), 1999,
  jittered per case; tumour, edema and necrosis: prolonged T1 and T2 in plausible 1.5 T ranges), and each
  sequence has its timing: T1 and T1c spin echo (TR 450-650 ms, TE 8-15 ms; T1c adds gadolinium, R1 +=
  r1 x concentration with r1 = 4 / (mM s), in the enhancing tumour and the choroid plexus), T2 fast spin echo
  (TR 3.5-6 s, TE 85-110 ms), FLAIR inversion recovery (TR 8-11 s, TE 110-150 ms, TI nulling CSF +- 3 %).
  This gives T1: WM > GM > CSF; T2: CSF > GM > WM; FLAIR: CSF dark, GM > WM, edema bright; T1c: as T1 with the
  enhancing rim bright and the necrosis dark. Tissue fractions mix linearly (partial volume);
- acquisition per contrast: a polynomial bias field (MONAI ``RandBiasField``), Rician noise (MONAI
  ``RandRicianNoise``, standard deviation relative to the brain's 99th percentile) and a scanner gain
  (log-uniform 300-3000 arbitrary units), so one global threshold does not segment anything.

Labels (BraTS 2017-2021 convention, the values of ``<case>_seg.nii.gz``): 0 background, 1 necrotic and
non-enhancing tumour core (NCR/NET; BRATS 2015's labels 1 and 3 merged), 2 peritumoral edema (ED), 4 GD-enhancing
tumour (ET). Tumour core = 1 + 4, whole tumour = 1 + 2 + 4.

Random parameters and rendering are separate, as in :mod:`monai_ext.phantoms.brain_mri`:
:func:`sample_brain_tumor_params` draws every random number from the case seed into a JSON-able dict,
:func:`render_brain_tumor_case` applies it deterministically, :func:`generate_brain_tumor_case` does both.
:func:`synthesize_brain_tumor_dataset` writes a BraTS-layout folder.

Geometry: arrays are (X, Y, Z) in RAS voxel order (x: left->right, y: posterior->anterior, z: inferior->superior),
coordinates in MNI mm; the default grid is 64 x 64 x 48 voxels of 3.25 mm (208 x 208 x 156 mm, the whole
template brain, 144 x 180 x 148 mm, with a margin), centred at MNI (0, -16, 8): :func:`brain_tumor_affine`.
Synthetic data, not for clinical use.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation
from scipy.special import expit, ndtri

from ..io import PathLike, atomic_directory, ensure_dataset, folder_listing
from .brain_mri import mni152_tissue_maps, mr_bias_and_noise
from .grid import check_phantom_grid
from .nifti_writer import save_phantom_nifti
from .seeds import check_count, derive_seed

__all__ = [
    "BRAIN_TUMOR_CONTRASTS",
    "BRAIN_TUMOR_LABELS",
    "BrainTumorCase",
    "brain_tumor_affine",
    "ensure_brain_tumor_dataset",
    "generate_brain_tumor_case",
    "render_brain_tumor_case",
    "sample_brain_tumor_params",
    "synthesize_brain_tumor_dataset",
]

#: channel order of the image (BraTS names: FLAIR, T1, T1 post-contrast, T2)
BRAIN_TUMOR_CONTRASTS: tuple[str, ...] = ("flair", "t1", "t1c", "t2")
#: label values (BraTS 2017-2021)
BRAIN_TUMOR_LABELS: dict[int, str] = {
    0: "background",
    1: "necrotic and non-enhancing tumour core (NCR/NET)",
    2: "peritumoral edema (ED)",
    4: "GD-enhancing tumour (ET)",
}

DEFAULT_SHAPE = (64, 64, 48)
DEFAULT_SPACING = (3.25, 3.25, 3.25)
_CENTRE_MM = np.array([0.0, -16.0, 8.0])  # centre of the template brain (x +-72, y -106..74, z -66..82 mm)
_TEMPLATE_RES_MM = 2.0
_R1_PER_MM_S = 4.0  # gadolinium T1 relaxivity at 1.5 T, 1 / (mM s) (gadoterate ~3.6, gadobutrol ~5.2)
_CHOROID_MM = ((-25.0, -38.0, 12.0), (25.0, -38.0, 12.0))  # glomus of the choroid plexus in the atria
# Healthy tissue: (T1 ms, T2 ms, PD, relative jitter per case), BrainWeb 1.5 T values (Kwan et al. 1999; skin: its
# muscle/skin class; bone: no signal); all T1 and all T2 also share a per-case scale of +-8 % (scanner).
# Pathological and confounding compartments: (low, high) ranges of T1, T2 and PD, drawn uniformly per case.
_HEALTHY = {
    "csf": (2569.0, 329.0, 1.0, 0.03),
    "gm": (833.0, 83.0, 0.86, 0.03),
    "wm": (500.0, 70.0, 0.77, 0.03),
    "fat": (350.0, 70.0, 1.0, 0.03),
    "skin": (900.0, 47.0, 1.0, 0.03),
    "bone": (1000.0, 1.0, 0.0, 0.0),
}
_PATHOLOGICAL = {  # T1 range, T2 range, PD range
    "wmh": ((800.0, 1000.0), (100.0, 140.0), (0.80, 0.88)),
    "choroid": ((1000.0, 1300.0), (90.0, 130.0), (0.85, 0.95)),
    "vessel": ((1200.0, 1500.0), (100.0, 200.0), (0.85, 0.95)),  # venous blood (no flow void modelled)
    "edema": ((1000.0, 1300.0), (140.0, 220.0), (0.86, 0.95)),
    "tumor": ((950.0, 1200.0), (100.0, 140.0), (0.85, 0.92)),  # enhancing (solid, viable) tumour
    "nonenh": ((1100.0, 1400.0), (120.0, 200.0), (0.86, 0.94)),  # non-enhancing solid tumour
    "necrosis": ((1600.0, 3000.0), (200.0, 500.0), (0.90, 1.00)),
    "hemorrhage": ((300.0, 500.0), (80.0, 300.0), (0.85, 0.95)),  # subacute (methaemoglobin): T1 bright
}
# Skull and scalp layers outside the brain mask (start, end in mm from the brain surface).
_HEAD_LAYERS = (("csf", 0.0, 2.0), ("bone", 2.0, 4.5), ("fat", 4.5, 6.5), ("bone", 6.5, 8.5),
                ("fat", 8.5, 12.0), ("skin", 12.0, 14.0))  # fmt: skip
_FILES = {  # layout -> (suffix per contrast and label, label value of the enhancing tumour)
    "brats": ({"flair": "_flair", "t1": "_t1", "t1c": "_t1ce", "t2": "_t2", "label": "_seg"}, 4),
    "brats2023": ({"flair": "-t2f", "t1": "-t1n", "t1c": "-t1c", "t2": "-t2w", "label": "-seg"}, 3),
}


class BrainTumorCase(NamedTuple):
    """One synthetic case of :func:`generate_brain_tumor_case`.

    Attributes:
        image: float32 (4, X, Y, Z), contrasts in the order of :data:`BRAIN_TUMOR_CONTRASTS` (FLAIR, T1, T1c, T2),
            arbitrary scanner units (>= 0; 0 outside the brain when skull-stripped).
        label: uint8 (X, Y, Z), values of :data:`BRAIN_TUMOR_LABELS` (0, 1, 2, 4).
        affine: float64 4 x 4 voxel-to-MNI-mm (RAS) affine, :func:`brain_tumor_affine`.
        meta: the parameters of :func:`sample_brain_tumor_params` plus ``shape``, ``spacing``, ``affine``,
            ``contrasts``, ``labels`` and ``label_volumes_ml`` (JSON-able).
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any]


# ------------------------------------------------------------------------------------------ geometry


def _bt_check_geometry(shape: Sequence[int] | None, spacing: Sequence[float] | float | None):
    return check_phantom_grid(DEFAULT_SHAPE if shape is None else shape,
                              DEFAULT_SPACING if spacing is None else spacing, (8, 512), (0.5, 8.0), scalar_spacing=True)


def brain_tumor_affine(
    shape: Sequence[int] | None = None, spacing: Sequence[float] | float | None = None
) -> np.ndarray:
    """4 x 4 voxel-to-MNI-mm (RAS) affine of the sampling grid: ``diag(spacing)``, centred at MNI (0, -16, 8).

    Args:
        shape: (X, Y, Z) voxels, default (64, 64, 48).
        spacing: voxel size in mm, one value or three, default 3.25 mm.
    """
    shp, sp = _bt_check_geometry(shape, spacing)
    aff = np.eye(4)
    aff[:3, :3] = np.diag(sp)
    aff[:3, 3] = _CENTRE_MM - np.array(sp) * (np.array(shp) - 1) / 2.0
    return aff


# ------------------------------------------------------------------------------------------ template


@lru_cache(maxsize=1)
def _bt_template() -> dict[str, Any]:
    """Template channels on the 2 mm grid (gm, wm, brain mask, periventricular weight, choroid plexus weight,
    brain-surface weight),
    the grid affine and the deep white-matter sites a tumour may grow from (MNI mm and depth in mm)."""
    maps = mni152_tissue_maps(_TEMPLATE_RES_MM)
    aff = maps["affine"]
    h = _TEMPLATE_RES_MM
    vent = maps["ventricles"]
    pv = ndi.gaussian_filter(vent, 3.0 / h)
    pv = np.clip(pv / max(float(pv.max()), 1e-6) * 2.0, 0.0, 1.0)
    x, y, z = np.meshgrid(*[aff[i, i] * np.arange(vent.shape[i]) + aff[i, 3] for i in range(3)], indexing="ij")
    blob = sum(np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 6.0**2)) for c in _CHOROID_MM)
    choroid = vent * blob
    depth = ndi.distance_transform_edt(maps["brain_mask"] > 0.5) * h
    surface = np.exp(-depth / 5.0) * (depth > 0)  # where the cortical veins run
    channels = np.stack([maps["gm"], maps["wm"], maps["brain_mask"], pv, choroid, surface], 0).astype(np.float32)
    ok = (maps["wm"] > 0.6) & (depth > 12.0) & (z > -15.0) & (np.abs(x) > 10.0) & (y > -90.0)
    sites = np.stack([x[ok], y[ok], z[ok]], 1)
    return {"channels": channels, "affine": aff, "sites": sites, "site_depth": depth[ok]}


@lru_cache(maxsize=4)
def _bt_template_smoothed(spacing: tuple[float, float, float]) -> np.ndarray:
    """Template channels pre-smoothed for an output grid of ``spacing`` mm (no aliasing)."""
    ch = _bt_template()["channels"]
    sig = [math.sqrt(max(s**2 - _TEMPLATE_RES_MM**2, 0.0)) / (2.355 * _TEMPLATE_RES_MM) for s in spacing]
    if max(sig) < 0.2:
        return ch
    return np.stack([ndi.gaussian_filter(c, sig) for c in ch], 0)


def _bt_sample_template(spacing: tuple[float, float, float], pts: np.ndarray) -> np.ndarray:
    """(C, N) template channels at MNI points ``pts`` (N, 3), trilinear, 0 outside."""
    vol = _bt_template_smoothed(spacing)
    aff = _bt_template()["affine"]
    idx = ((pts - aff[:3, 3]) / np.diag(aff)[:3]).T
    return np.stack([ndi.map_coordinates(c, idx, order=1, mode="constant", cval=0.0) for c in vol], 0)


def _bt_random_field(
    seed: int, sigma_mm: float, pts: np.ndarray, centre: Sequence[float], half_mm: float
) -> np.ndarray:
    """Smooth Gaussian random field with unit variance and correlation length ``sigma_mm``, defined in MNI mm
    (so the same case looks the same on any grid) on a box of half-size ``half_mm`` around ``centre``;
    sampled at ``pts`` (N, 3) -> (N,)."""
    step = max(sigma_mm / 1.5, 1.0)
    n = 2 * math.ceil(half_mm / step) + 1
    noise = np.random.default_rng(seed).standard_normal((n, n, n))
    field = ndi.gaussian_filter(noise, sigma_mm / step, mode="wrap", truncate=3.0)
    field /= max(float(field.std()), 1e-12)
    origin = np.asarray(centre, dtype=np.float64) - step * (n - 1) / 2.0
    return ndi.map_coordinates(field, ((pts - origin) / step).T, order=1, mode="nearest")


# --------------------------------------------------------------------------------------- parameters


def sample_brain_tumor_params(seed: int) -> dict[str, Any]:
    """Draw every random number of one case from ``seed`` (same seed: same case; loads the template once).

    Returns:
        A JSON-able dict: ``seed``; ``grade`` ("HGG" 75 % or "LGG"); the pose (``rotation_deg`` about x, y, z,
        ``scale``, ``translation_mm``) and smooth deformation (``deformation_mm``, ``deformation_seed``); the
        tumour (``tumor_centre_mm`` at a deep white-matter site, ``tumor_radius_mm`` mean core radius 9-24 mm,
        ``tumor_axes`` relative semi-axes, ``tumor_rotation_deg``, ``tumor_irregularity``,
        ``necrosis_fraction`` necrosis / core radius (0: none), ``enhancing_fraction`` share of the rim that
        enhances, ``hemorrhage_fraction`` share of the necrosis with blood products, ``edema_mm`` reach along
        white matter, ``edema_gm_mm`` reach into grey matter, ``edema_gap_fraction``, ``mass_effect`` in
        [0, 0.6] (displaced volume / core volume), ``heterogeneity``, ``tumor_seed``); ``wmh_load``, ``wmh_seed``
        (periventricular hyperintensities), ``vessel_load``, ``vessel_seed`` (cortical veins); ``tissues``:
        ``{compartment: [T1 ms, T2 ms, PD]}``; ``gd_mM``: gadolinium in the T1c acquisition (``tumor``,
        ``choroid``, ``vessel``);
        ``relaxivity_per_mM_s``; ``sequences``: per contrast ``TR_ms``, ``TE_ms`` (FLAIR also ``TI_ms``);
        ``acquisition``: per contrast ``gain``, ``bias_coeff``, ``bias_seed``, ``noise_std`` (relative to the
        brain's 99th percentile), ``noise_seed``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 170103056]))  # arXiv 1701.03056

    def seed_() -> int:
        return int(rng.integers(2**31))

    def unif(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    grade = "HGG" if rng.random() < 0.75 else "LGG"
    radius = unif(9.0, 24.0)
    axes = np.exp(rng.uniform(-0.25, 0.25, 3))
    axes /= np.prod(axes) ** (1.0 / 3.0)
    tpl = _bt_template()
    ok = tpl["site_depth"] >= max(12.0, 0.8 * radius)
    sites = tpl["sites"][ok] if ok.any() else tpl["sites"]
    centre = sites[int(rng.integers(len(sites)))] + rng.uniform(-1.0, 1.0, 3)
    necrosis = unif(0.35, 0.75)
    enhancing = unif(0.6, 1.0)
    if grade == "LGG" or (radius < 12.0 and rng.random() < 0.3):
        necrosis = 0.0
    hemorrhage = unif(0.1, 0.5) if necrosis > 0 and rng.random() < 0.35 else 0.0
    if grade == "LGG":
        enhancing = 0.0
    params: dict[str, Any] = {
        "seed": int(seed),
        "grade": grade,
        "rotation_deg": [float(a) for a in rng.uniform(-1, 1, 3) * np.array([4.0, 4.0, 6.0])],
        "scale": unif(0.93, 1.02),
        "translation_mm": [float(t) for t in rng.uniform(-4.0, 4.0, 3)],
        "deformation_mm": unif(1.5, 4.0),
        "deformation_seed": seed_(),
        "tumor_centre_mm": [float(c) for c in centre],
        "tumor_radius_mm": radius,
        "tumor_axes": [float(a) for a in axes],
        "tumor_rotation_deg": [float(a) for a in rng.uniform(-90.0, 90.0, 3)],
        "tumor_irregularity": unif(0.08, 0.22),
        "necrosis_fraction": necrosis,
        "enhancing_fraction": enhancing,
        "hemorrhage_fraction": hemorrhage,
        "edema_mm": unif(8.0, 30.0) if grade == "HGG" else unif(3.0, 14.0),
        "edema_gm_mm": unif(0.0, 6.0),
        "edema_gap_fraction": unif(0.05, 0.25),
        "mass_effect": unif(0.0, 0.6),
        "heterogeneity": unif(0.1, 0.25),
        "tumor_seed": seed_(),
        "wmh_load": unif(0.0, 1.0),
        "wmh_seed": seed_(),
        "vessel_load": unif(0.2, 0.8),
        "vessel_seed": seed_(),
    }
    tissues = {}
    shared = np.exp(rng.uniform(-0.08, 0.08, 2))  # per-case T1 and T2 scale of all healthy tissue (scanner)
    for name, (t1, t2, pd, jit) in _HEALTHY.items():
        j = np.exp(rng.uniform(-jit, jit, 3))
        tissues[name] = [float(t1 * shared[0] * j[0]), float(t2 * shared[1] * j[1]), float(min(pd * j[2], 1.0))]
    for name, ranges in _PATHOLOGICAL.items():
        tissues[name] = [unif(*r) for r in ranges]
    params["tissues"] = tissues
    params["gd_mM"] = {"tumor": unif(0.25, 0.7), "choroid": unif(0.2, 0.6), "vessel": unif(0.8, 2.0)}
    params["relaxivity_per_mM_s"] = _R1_PER_MM_S
    t1_tr, t1_te = unif(450.0, 650.0), unif(8.0, 15.0)
    fl_tr = unif(8000.0, 11000.0)
    csf_t1 = tissues["csf"][0]
    ti_null = csf_t1 * math.log(2.0 / (1.0 + math.exp(-fl_tr / csf_t1)))
    params["sequences"] = {
        "flair": {"TR_ms": fl_tr, "TE_ms": unif(110.0, 150.0), "TI_ms": ti_null * unif(0.97, 1.03)},
        "t1": {"TR_ms": t1_tr, "TE_ms": t1_te},
        "t1c": {"TR_ms": t1_tr, "TE_ms": t1_te},
        "t2": {"TR_ms": unif(3500.0, 6000.0), "TE_ms": unif(85.0, 110.0)},
    }
    params["acquisition"] = {
        c: {
            "gain": float(np.exp(rng.uniform(math.log(300.0), math.log(3000.0)))),
            "bias_coeff": unif(0.05, 0.2),
            "bias_seed": seed_(),
            "noise_std": unif(0.015, 0.04),
            "noise_seed": seed_(),
        }
        for c in BRAIN_TUMOR_CONTRASTS
    }
    return params


# ------------------------------------------------------------------------------------------ rendering


def _mr_signal(t1: Any, t2: Any, pd: Any, seq: dict[str, float], gd_mm: Any = 0.0, r1: float = _R1_PER_MM_S) -> Any:
    """Magnitude signal of a spin echo (``TR_ms``, ``TE_ms``) or an inversion recovery (plus ``TI_ms``)."""
    rate = 1.0 / np.asarray(t1, dtype=np.float64) + r1 * np.asarray(gd_mm, dtype=np.float64) / 1000.0  # 1/ms
    e_tr = np.exp(-seq["TR_ms"] * rate)
    mz = np.abs(1.0 - 2.0 * np.exp(-seq["TI_ms"] * rate) + e_tr) if "TI_ms" in seq else 1.0 - e_tr
    return np.asarray(pd) * mz * np.exp(-seq["TE_ms"] / np.asarray(t2, dtype=np.float64))


def _grow_edema(core: np.ndarray, wm: np.ndarray, gm: np.ndarray, csf: np.ndarray, gaps: np.ndarray,
                steps: int, gm_steps: int) -> np.ndarray:  # fmt: skip
    """Arrival step (1..steps; 0: not reached) of edema grown from ``core`` one voxel per step through white
    matter, through grey matter only for the first ``gm_steps`` steps, never into CSF or ``gaps``."""
    struct = ndi.generate_binary_structure(3, 1)
    through_wm = (wm > 0.3) & (csf < 0.5) & ~gaps
    through_gm = (gm > 0.25) & (csf < 0.5) & ~gaps
    arrival = np.zeros(core.shape, dtype=np.int16)
    front = core.copy()
    reached = core.copy()
    for k in range(1, steps + 1):
        allowed = through_wm | through_gm if k <= gm_steps else through_wm
        new = ndi.binary_dilation(front, struct) & allowed & ~reached
        if not new.any():
            break
        arrival[new] = k
        reached |= new
        front = new
    return arrival


_RENDER_KEYS = (
    "grade", "rotation_deg", "scale", "translation_mm", "deformation_mm", "deformation_seed", "tumor_centre_mm",
    "tumor_radius_mm", "tumor_axes", "tumor_rotation_deg", "tumor_irregularity", "necrosis_fraction",
    "enhancing_fraction", "hemorrhage_fraction", "edema_mm", "edema_gm_mm", "edema_gap_fraction", "mass_effect",
    "heterogeneity", "tumor_seed", "wmh_load", "wmh_seed", "vessel_load", "vessel_seed", "tissues", "gd_mM",
    "relaxivity_per_mM_s", "sequences", "acquisition",
)  # fmt: skip


def render_brain_tumor_case(
    params: dict[str, Any],
    shape: Sequence[int] | None = None,
    spacing: Sequence[float] | float | None = None,
    skull_strip: bool = True,
    return_maps: bool = False,
) -> tuple[np.ndarray, ...] | tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Render the case described by ``params`` (from :func:`sample_brain_tumor_params`); deterministic.

    Args:
        params: the case's parameter dict.
        shape: (X, Y, Z) voxels, default (64, 64, 48); the grid is :func:`brain_tumor_affine`.
        spacing: voxel size in mm (one or three values), default 3.25.
        skull_strip: zero everything outside the brain mask (BraTS style); ``False`` keeps the skull, the
            scalp and the background noise.
        return_maps: also return the compartment fractions (float32 (X, Y, Z) in [0, 1]) ``csf``, ``gm``,
            ``wm`` (healthy tissue left after tumour and edema), ``wmh``, ``choroid``, ``vessel``, ``edema``,
            ``tumor`` (enhancing), ``nonenh``, ``necrosis``, ``hemorrhage``, and the boolean ``brain`` mask
            (the skull-stripping mask, tumour included).

    Returns:
        ``(image, label)`` or ``(image, label, maps)``: float32 (4, X, Y, Z) in the order of
        :data:`BRAIN_TUMOR_CONTRASTS`, arbitrary units >= 0; uint8 (X, Y, Z) labels 0, 1, 2, 4.
    """
    shp, sp = _bt_check_geometry(shape, spacing)
    missing = [k for k in _RENDER_KEYS if k not in params]
    if missing:
        raise KeyError(f"params lacks {missing}; expected the dict of sample_brain_tumor_params.")
    p = params
    aff = brain_tumor_affine(shp, sp)
    h = float(np.mean(sp))
    idx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shp], indexing="ij")
    x = np.stack([i.ravel() for i in idx], 1) * np.array(sp) + aff[:3, 3]  # (N, 3) MNI mm of the voxels

    # Pose and deformation: voxel -> template point.
    rot = Rotation.from_euler("xyz", p["rotation_deg"], degrees=True).as_matrix()
    y = (x - _CENTRE_MM) @ rot.T / float(p["scale"]) + _CENTRE_MM + np.asarray(p["translation_mm"])
    if float(p["deformation_mm"]) > 0:
        d_seed, amplitude = int(p["deformation_seed"]), float(p["deformation_mm"])
        for k in range(3):
            y[:, k] += amplitude * _bt_random_field(derive_seed(d_seed, k), 20.0, x, _CENTRE_MM, 128.0)

    # Tumour shape in template coordinates (the tumour is where it is; healthy tissue moves around it).
    ct = np.asarray(p["tumor_centre_mm"], dtype=np.float64)
    r = float(p["tumor_radius_mm"])
    radii = r * np.asarray(p["tumor_axes"], dtype=np.float64)
    t_rot = Rotation.from_euler("xyz", p["tumor_rotation_deg"], degrees=True).as_matrix()
    rel = y - ct
    rho = np.linalg.norm((rel @ t_rot) / radii, axis=1)
    reach = r * 1.6 + float(p["edema_mm"]) + 15.0
    near = np.linalg.norm(rel, axis=1) < reach  # tumour fields are only evaluated near the tumour
    ts = int(p["tumor_seed"])

    def local_field(k: int, sigma: float) -> np.ndarray:
        out = np.zeros(len(y))
        out[near] = _bt_random_field(derive_seed(ts, k), sigma, y[near], ct, reach + 2 * sigma)
        return out

    pv_width = 0.2 * h  # logistic scale of a partial-volume edge, mm
    d_core = rho + float(p["tumor_irregularity"]) * local_field(0, max(0.4 * r, 5.0))
    core_soft = expit((1.0 - d_core) * r / pv_width)
    fn = float(p["necrosis_fraction"])
    if fn > 0:
        d_nec = rho / fn + 0.8 * float(p["tumor_irregularity"]) * local_field(1, max(0.3 * r, 4.0))
        nec_soft = expit((1.0 - d_nec) * fn * r / pv_width)
    else:
        d_nec, nec_soft = np.full(len(y), np.inf), np.zeros(len(y))
    fe = float(p["enhancing_fraction"])
    if fe > 0:
        patch = local_field(2, max(0.5 * r, 6.0))
        q = float(ndtri(min(max(1.0 - fe, 1e-6), 1 - 1e-6)))
        enh_soft = expit((patch - q) / 0.15)
        enh_hard = patch > q
    else:
        enh_soft, enh_hard = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
    fh = float(p["hemorrhage_fraction"])
    if fh > 0:  # blood products in part of the necrosis (labelled as core, 1)
        hem_soft = expit((local_field(7, 4.0) - float(ndtri(1.0 - min(fh, 0.99)))) / 0.2)
    else:
        hem_soft = np.zeros(len(y))
    het = float(p["heterogeneity"])
    het_pd = 1.0 + het * local_field(3, 4.0)
    het_gd = np.clip(1.0 + 2.0 * het * local_field(4, 5.0), 0.2, None)

    # Mass effect: the healthy tissue at distance r0 from the tumour centre moves to r with r**3 = r0**3 +
    # m a**3 exp(-(r / 2.5 a)**2), a the core radius: r0(r) is monotone (no folding), the displaced volume is m
    # times the core's near the tumour and vanishes far from it.
    yh = y
    m = float(p["mass_effect"])
    if m > 0:
        dist = np.linalg.norm(rel, axis=1)
        push = m * r**3 * np.exp(-((dist / (2.5 * r)) ** 2))
        r0 = np.cbrt(np.maximum(dist**3 - push, 0.0))
        yh = ct + rel * (r0 / np.maximum(dist, 1e-6))[:, None]
    gm, wm, mask, pv, choroid_w, surface = _bt_sample_template(sp, yh)
    mask = np.clip(mask, 0.0, 1.0)
    gm, wm = np.clip(gm, 0.0, 1.0), np.clip(wm, 0.0, 1.0)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)

    # Healthy confounders: periventricular WM hyperintensities (FLAIR / T2 bright), enhancing choroid plexus.
    wmh_field = _bt_random_field(int(p["wmh_seed"]), 5.0, yh, _CENTRE_MM, 110.0)
    wmh = wm * expit((wmh_field + 2.5 * float(p["wmh_load"]) * pv - 2.4) / 0.3)
    wm = wm - wmh
    choroid = np.clip(csf * choroid_w * 1.5, 0.0, csf)
    csf = csf - choroid
    # Cortical veins (T1c bright): tubes where two smooth random fields are both near zero, near the surface.
    vs = int(p["vessel_seed"])
    tubes = [_bt_random_field(derive_seed(vs, k), 10.0, yh, _CENTRE_MM, 110.0) for k in range(2)]
    vessel = 2.0 * float(p["vessel_load"]) * surface * np.exp(-(tubes[0] ** 2 + tubes[1] ** 2) / (2 * 0.35**2))
    vessel = np.clip(vessel, 0.0, 0.9) * mask
    gm, wm, wmh, csf, choroid = (v * (1.0 - vessel) for v in (gm, wm, wmh, csf, choroid))

    brain = mask > 0.5

    def grid(a: np.ndarray) -> np.ndarray:
        return a.reshape(shp)

    core_hard = grid((d_core < 1.0) & brain)
    if not core_hard.any():  # a tumour smaller than a voxel (coarse grid): the voxel nearest to its centre
        core_hard.flat[int(np.argmin(d_core))] = True
    nec_hard = core_hard & grid(d_nec < 1.0)
    enh_label = core_hard & ~nec_hard & grid(enh_hard)

    # Edema: grown from the core along white matter, with finger-like gaps, fading outwards.
    steps = max(round(float(p["edema_mm"]) / h), 1)
    gm_steps = round(float(p["edema_gm_mm"]) / h)
    gap_q = float(ndtri(1.0 - min(max(float(p["edema_gap_fraction"]), 1e-3), 0.99)))
    gaps = grid(local_field(5, 5.0) > gap_q) & ~core_hard
    arrival = _grow_edema(core_hard, grid(wm + wmh), grid(gm), grid(csf + choroid + vessel), gaps, steps, gm_steps)
    edema_label = (arrival > 0) & grid(brain) & ~core_hard
    strength = np.where(arrival > 0, 1.0 - 0.7 * (arrival - 1) / max(steps - 1, 1), 0.0)
    strength = np.where(core_hard, 1.0, strength) * grid(np.clip(1.0 + 0.5 * het * local_field(6, 6.0), 0.5, 1.5))
    edema_soft = np.clip(ndi.gaussian_filter(strength, 0.6 / np.array(sp) * h), 0.0, 1.0).ravel()

    label = np.zeros(shp, dtype=np.uint8)
    label[edema_label] = 2
    label[core_hard] = 1
    label[enh_label] = 4

    # Compartment fractions (sum = brain mask inside the brain).
    core = core_soft * mask
    nec = core * nec_soft
    rim = core - nec
    frac = {
        "tumor": rim * enh_soft,
        "nonenh": rim * (1.0 - enh_soft),
        "necrosis": nec * (1.0 - hem_soft),
        "hemorrhage": nec * hem_soft,
    }
    keep = 1.0 - core_soft
    tissue = gm + wm + wmh
    edema_frac = keep * edema_soft
    frac["edema"] = edema_frac * tissue
    for name, v in (("gm", gm), ("wm", wm), ("wmh", wmh)):
        frac[name] = keep * (1.0 - edema_soft) * v
    frac["csf"], frac["choroid"], frac["vessel"] = keep * csf, keep * choroid, keep * vessel
    if not skull_strip:
        outside = np.clip(1.0 - mask, 0.0, 1.0)
        dist_out = ndi.distance_transform_edt(~grid(brain), sampling=sp).ravel()
        for name, lo, hi in _HEAD_LAYERS:
            layer = grid(((dist_out > lo) & (dist_out <= hi)).astype(np.float64))
            frac[name] = frac.get(name, 0.0) + outside * ndi.gaussian_filter(layer, 0.5).ravel()
    het_keys = ("edema", "tumor", "nonenh", "necrosis", "hemorrhage")

    image = np.zeros((len(BRAIN_TUMOR_CONTRASTS), *shp), dtype=np.float32)
    tis = p["tissues"]
    brain_grid = grid(brain) | core_hard | edema_label
    interior = ndi.binary_erosion(brain_grid, iterations=2)  # the noise reference: no skull partial volume
    for ci, contrast in enumerate(BRAIN_TUMOR_CONTRASTS):
        seq = p["sequences"][contrast]
        acq = p["acquisition"][contrast]
        img = np.zeros(len(y))
        for name, f in frac.items():
            t1, t2, pd = tis[name]
            gd = 0.0
            if contrast == "t1c" and name in p["gd_mM"]:
                gd = float(p["gd_mM"][name]) * (het_gd if name == "tumor" else 1.0)
            s = _mr_signal(t1, t2, pd, seq, gd, float(p["relaxivity_per_mM_s"]))
            if name in het_keys:
                s = s * het_pd
            img += f * s
        vol = grid(img).astype(np.float32)[None]
        vol, _ = mr_bias_and_noise(vol, acq["bias_coeff"], acq["bias_seed"], acq["noise_std"], acq["noise_seed"],
                                   interior, 99.0)
        vol = vol[0] * float(acq["gain"])
        if skull_strip:
            vol = vol * brain_grid
        image[ci] = vol
    if not return_maps:
        return image, label
    maps = {k: grid(v).astype(np.float32) for k, v in frac.items() if k not in ("fat", "bone", "skin")}
    maps["brain"] = brain_grid
    return image, label, maps


def generate_brain_tumor_case(
    seed: int,
    shape: Sequence[int] | None = None,
    spacing: Sequence[float] | float | None = None,
    skull_strip: bool = True,
) -> BrainTumorCase:
    """One synthetic brain-tumour case: :func:`sample_brain_tumor_params` then :func:`render_brain_tumor_case`.

    Args:
        seed: case seed; the same seed always gives the same case.
        shape: (X, Y, Z) voxels, default (64, 64, 48).
        spacing: voxel size in mm, default 3.25 (208 x 208 x 156 mm field of view by default).
        skull_strip: BraTS-style skull stripping (background 0); ``False`` keeps skull, scalp and noise.

    Returns:
        :class:`BrainTumorCase` ``(image, label, affine, meta)``: float32 (4, X, Y, Z) FLAIR, T1, T1c, T2; uint8
        (X, Y, Z) with 0, 1, 2, 4; the 4 x 4 RAS affine in MNI mm; ``meta`` = the parameters plus the grid, the
        contrast and label names and the label volumes in ml, enough to replay the case.
    """
    shp, sp = _bt_check_geometry(shape, spacing)
    params = sample_brain_tumor_params(seed)
    image, label = render_brain_tumor_case(params, shp, sp, skull_strip=skull_strip)
    affine = brain_tumor_affine(shp, sp)
    voxel_ml = float(np.prod(sp)) / 1000.0
    meta = {
        **params,
        "shape": list(shp),
        "spacing": list(sp),
        "skull_strip": bool(skull_strip),
        "affine": affine.tolist(),
        "contrasts": list(BRAIN_TUMOR_CONTRASTS),
        "labels": {str(k): v for k, v in BRAIN_TUMOR_LABELS.items()},
        "label_volumes_ml": {str(k): round(float((label == k).sum()) * voxel_ml, 3) for k in (1, 2, 4)},
    }
    return BrainTumorCase(image, label, affine, meta)


# ------------------------------------------------------------------------------------------ data set


def synthesize_brain_tumor_dataset(
    out_dir: str | os.PathLike,
    cases: int = 16,
    seed: int = 0,
    shape: Sequence[int] | None = None,
    spacing: Sequence[float] | float | None = None,
    layout: str = "brats",
    progress: bool = True,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Write ``cases`` synthetic cases to ``out_dir`` in a BraTS layout, plus ``dataset.json``.

    Layout ``"brats"`` (BraTS 2017-2021): ``<out>/<case>/<case>_flair.nii.gz``, ``_t1``, ``_t1ce``, ``_t2``
    (float32) and ``_seg.nii.gz`` (uint8: 0, 1, 2, 4); ``"brats2023"``: ``-t2f``, ``-t1n``, ``-t1c``, ``-t2w``,
    ``-seg`` with the enhancing tumour as 3. Case names ``SynthBraTS_000`` ...; every file of a case has the
    affine of :func:`brain_tumor_affine` (qform and sform, mm). The whole data set (the cases and
    ``dataset.json``: the file list, labels and every case's parameters) is written into a temporary sibling
    folder that replaces ``out_dir`` only when complete, so an error leaves neither a half-written case nor a
    partial data set. Case seeds depend on (seed, index) only: more cases keep the first ones.
    :func:`monai_ext.datalists.brats_datalist` reads the result.

    Args:
        out_dir: the data set folder: missing or empty (created if missing), or any folder with ``overwrite``.
        cases: number of cases (>= 1).
        seed: data set seed.
        shape, spacing: the grid (default 64 x 64 x 48 voxels of 3.25 mm).
        layout: ``"brats"`` or ``"brats2023"``.
        progress: print one line per case.
        overwrite: replace the content of a non-empty ``out_dir`` by the new data set (else it is an error).

    Returns:
        MONAI items ``[{"case", "image": [flair, t1, t1c, t2 paths], "label": path}]`` (absolute paths).
    """

    if layout not in _FILES:
        raise ValueError(f"layout must be one of {sorted(_FILES)}, got {layout!r}.")
    check_count(cases)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    shp, sp = _bt_check_geometry(shape, spacing)
    suffixes, enhancing_value = _FILES[layout]
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} is a file; expected a folder (created if missing).")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty ({folder_listing(out)}); pass overwrite=True to replace its content "
                              "by the new data set.")
    names = [f"SynthBraTS_{i:03d}" for i in range(int(cases))]
    affine = brain_tumor_affine(shp, sp)
    items, records = [], []
    t_start = time.perf_counter()

    def fill(tmp: Path) -> None:
        for i, name in enumerate(names):
            case = generate_brain_tumor_case(derive_seed(seed, 31, i, bits=31), shp, sp)
            label = case.label.copy()
            label[case.label == 4] = enhancing_value
            (tmp / name).mkdir()
            for ci, contrast in enumerate(BRAIN_TUMOR_CONTRASTS):
                save_phantom_nifti(case.image[ci], affine, tmp / name / f"{name}{suffixes[contrast]}.nii.gz")
            save_phantom_nifti(label, affine, tmp / name / f"{name}{suffixes['label']}.nii.gz")
            files = [f"{name}/{name}{suffixes[c]}.nii.gz" for c in BRAIN_TUMOR_CONTRASTS]
            items.append({"case": name, "image": files, "label": f"{name}/{name}{suffixes['label']}.nii.gz"})
            records.append({"case": name, **{k: v for k, v in case.meta.items() if k != "affine"}})
            if progress:
                vol = case.meta["label_volumes_ml"]
                print(f"  {name} ({i + 1}/{len(names)}): {case.meta['grade']}, tumour core "
                      f"{vol['1'] + vol['4']:.1f} ml, edema {vol['2']:.1f} ml, "
                      f"{time.perf_counter() - t_start:.1f} s so far")
        (tmp / "dataset.json").write_text(json.dumps(description(), indent=1) + "\n")

    def description() -> dict[str, Any]:
        labels = {str(enhancing_value if k == 4 else k): v for k, v in BRAIN_TUMOR_LABELS.items()}
        return {
            "name": "synthetic BraTS-like brain tumour MRI",
            "description": (
                "MNI152-based (nilearn) brain phantoms with a glioma, four contrasts from MR signal equations "
                "(monai_ext.phantoms.brain_tumor_mri). Synthetic data, not for clinical use."
            ),
            "layout": layout,
            "modality": {str(i): c for i, c in enumerate(BRAIN_TUMOR_CONTRASTS)},
            "labels": labels,
            "generator": {"seed": int(seed), "cases": int(cases), "shape": list(shp), "spacing": list(sp)},
            "training": items,
            "cases": records,
        }

    if not any(out.iterdir()):
        if not atomic_directory(out, fill):
            raise FileExistsError(f"{out} got content while the data set was written; kept the other writer's.")
    else:  # overwrite: the complete new data set replaces the old one in one rename
        staged = out.with_name(f".{out.name}.new-{secrets.token_hex(4)}")
        atomic_directory(staged, fill)
        old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
        os.replace(out, old)
        os.replace(staged, out)
        shutil.rmtree(old, ignore_errors=True)
    return [
        {"case": e["case"], "image": [str(out / f) for f in e["image"]], "label": str(out / e["label"])}
        for e in items
    ]


def ensure_brain_tumor_dataset(dataset_dir: PathLike, cases: int, seed: int = 0, enabled: bool = True) -> Path:
    """``dataset_dir`` (resolved), after writing ``cases`` synthetic cases into it (:func:`synthesize_brain_tumor_dataset`,
    data seed ``seed``) when it is missing or empty and ``enabled``: the embedded default of the brain-tumour bundles
    (:func:`monai_ext.io.ensure_dataset`, whose errors it raises)."""
    return ensure_dataset(
        dataset_dir,
        lambda d: synthesize_brain_tumor_dataset(d, cases=cases, seed=seed),
        f"{cases} synthetic brain-tumour MR cases (FLAIR, T1, T1c, T2)",
        enabled=enabled,
    ).resolve()
