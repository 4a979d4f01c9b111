"""Embedded AD-vs-CN brain MRI benchmark: synthetic subjects warped from the MNI152 T1 template.

The RHVAE data-augmentation paper (Chadebec & Allassonniere, DGM4MICCAI 2021) evaluates on OASIS-1:
416 masked, atlas-registered (T88) T1 images, one 2D slice of 208 x 176 per subject, 316 CN / 100 AD,
70 / 10 / 20 % train / validation / test, CN aged 45.1 +- 23.9 y, AD 76.8 +- 7.1 y with CDR 0.5 : 1 : 2 =
70 : 28 : 2 (its Table 1). OASIS cannot be downloaded here, so this module builds a small look-alike from
the MNI152 (ICBM 2009a) template that ships inside ``nilearn`` (no download):

- per subject, an anatomy: global affine jitter, a random smooth deformation, an individual ventricle size;
- normal ageing and, for AD, a disease effect of graded severity (CDR-like stage, then a severity in
  [0, 1]): ventricle enlargement and hippocampal shrinkage (a diffeomorphic push/pull flow around the
  masks), hippocampal and cortical grey-matter loss (tissue replaced by CSF-like signal, stronger on a
  random regional pattern);
- an acquisition: contrast (gamma) jitter, a polynomial bias field (MONAI ``RandBiasField``), Rician
  noise (MONAI ``RandRicianNoise``), brain masking (the OASIS images are masked) and scaling to [0, 1].

CN and AD overlap on purpose (old CN subjects age-atrophy, AD subjects are often CDR 0.5), so a small CNN
trained on 50 subjects per class does not reach 100 %.

Random parameters and rendering are separate: :func:`sample_brain_subject_params` draws every random
number from the subject seed and returns a JSON-able dict, :func:`render_brain_subject` applies it
deterministically; :func:`generate_brain_subject` does both and returns the parameters as meta data, so
every subject can be replayed from its record.

Coordinates are MNI (RAS, mm). A 2D subject is an oblique axial slice, by default 64 x 64 pixels of
3.25 mm (208 mm field of view, the OASIS slice size divided by ~3.2), through the frontal horns, the third
ventricle and the atria / hippocampal tails (plane through MNI (0, -17, 4), tilted 15 degrees nose-up);
array axes are (x: left->right, y: posterior->anterior). A 3D subject is 48 x 56 x 48 voxels of 3.5 mm
(168 x 196 x 168 mm) in (x, y, z) RAS order. Synthetic data, not for clinical use.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..io import atomic_write
from .nifti_writer import save_phantom_nifti
from .seeds import check_seed, derive_seed

__all__ = [
    "mr_bias_and_noise",
    "mni152_t1",
    "mni152_tissue_maps",
    "sample_brain_subject_params",
    "render_brain_subject",
    "generate_brain_subject",
    "brain_subject_affine",
    "synthesize_brain_ad_dataset",
]

DEFAULT_SHAPE = {2: (64, 64), 3: (48, 56, 48)}
_FOV_MM = {2: (208.0, 208.0), 3: (168.0, 196.0, 168.0)}
_CENTRE_MM = {2: (0.0, -17.0, 4.0), 3: (0.0, -17.0, 6.0)}
_SLICE_TILT_DEG = 15.0  # 2D plane: z rises anteriorly, so the slice meets the frontal horns and the atria
_FIELD_RES_MM = 2.0  # grid of the atrophy masks and flow fields (they are smooth)
_CSF_LEVEL = 0.28  # template T1 intensity of CSF (median over voxels with CSF probability > 0.8 is 0.31)

# Table 1 of the paper (OASIS-1): age mean / sd per class, AD CDR stage frequencies.
_AGE = {0: (45.1, 23.9, 18.0, 94.0), 1: (76.8, 7.1, 62.0, 96.0)}
_CDR_STAGES = ((0.5, 0.70, (0.25, 0.60)), (1.0, 0.28, (0.50, 0.90)), (2.0, 0.02, (0.80, 1.00)))
# Atrophy load per unit of disease severity (ventricles, hippocampi, cortex). Set so that the mean central
# CSF area of AD slices is about 3x that of CN ones (CN are 45 +- 24 years old), and a small CNN trained on
# 50 real subjects per class reaches about 70 % balanced accuracy but about 85 % with 500 per class: the
# small-sample regime the paper's augmentation addresses (gains 1.2 / 1.2 / 1.0 gave 58 % and 65 %).
_DISEASE_GAIN = {"ventricle": 3.0, "hippocampal": 2.0, "cortical": 2.0}


# ------------------------------------------------------------------------------------------ template


def _nilearn_template_images():
    try:
        from nilearn import datasets
    except ImportError as e:  # pragma: no cover - nilearn is a dependency
        raise ImportError("the brain AD benchmark needs nilearn (MNI152 template): pip install nilearn") from e
    return (
        datasets.load_mni152_template(resolution=1),
        datasets.load_mni152_gm_template(resolution=1),
        datasets.load_mni152_wm_template(resolution=1),
        datasets.load_mni152_brain_mask(resolution=1),
    )


@lru_cache(maxsize=1)
def _template_1mm() -> dict[str, np.ndarray]:
    """t1 (scaled to [0, 1]), gm, wm, mask at 1 mm and the affine: files shipped inside nilearn."""
    t1, gm, wm, mask = _nilearn_template_images()
    t = np.asarray(t1.get_fdata(), dtype=np.float32)
    t = np.clip(t / max(float(t.max()), 1e-6), 0.0, 1.0)
    return {
        "t1": t,
        "gm": np.clip(np.asarray(gm.get_fdata(), dtype=np.float32), 0, 1),
        "wm": np.clip(np.asarray(wm.get_fdata(), dtype=np.float32), 0, 1),
        "mask": (np.asarray(mask.get_fdata()) > 0.5).astype(np.float32),
        "affine": np.asarray(t1.affine, dtype=np.float64),
    }


def _check_resolution(resolution_mm: float) -> float:
    r = float(resolution_mm)
    if not np.isfinite(r) or r < 0.5 or r > 8.0:
        raise ValueError(f"resolution_mm must be in [0.5, 8] mm, got {resolution_mm!r}.")
    return r


def _resample_to(vol: np.ndarray, affine: np.ndarray, res: float, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``vol`` (1 mm template grid) on a grid of ``res`` mm covering the same box; anti-aliased."""
    step = res / float(affine[0, 0])
    if abs(step - 1.0) < 1e-6:
        return vol.astype(np.float32, copy=True), affine.copy()
    src = ndi.gaussian_filter(vol, sigma=0.4 * step) if step > 1 else vol
    shape = tuple(int(math.floor((n - 1) / step)) + 1 for n in vol.shape)
    out = ndi.affine_transform(src, np.full(3, step), output_shape=shape, order=order, mode="constant")
    aff = affine.copy()
    aff[:3, :3] = affine[:3, :3] * step
    return out.astype(np.float32), aff


def mni152_t1(resolution_mm: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 (ICBM 2009a, skull-stripped) T1 template shipped inside ``nilearn`` (works offline).

    Args:
        resolution_mm: isotropic voxel size in mm (0.5-8; 1 is the native grid, 197 x 233 x 189).

    Returns:
        ``(volume, affine)``: float32 array (X, Y, Z) in RAS voxel order, intensities in [0, 1], and the
        4 x 4 voxel-to-MNI-mm affine. The brain mask and tissue maps are in :func:`mni152_tissue_maps`.
    """
    res = _check_resolution(resolution_mm)
    tpl = _template_1mm()
    vol, aff = _resample_to(tpl["t1"], tpl["affine"], res)
    return np.clip(vol, 0.0, 1.0), aff


def mni152_tissue_maps(resolution_mm: float = 2.0) -> dict[str, np.ndarray]:
    """Tissue maps of the nilearn MNI152 template on a ``resolution_mm`` grid (float32, (X, Y, Z), [0, 1]).

    Keys: ``brain_mask``, ``gm``, ``wm`` (nilearn's probability maps), ``csf`` (brain mask minus GM and WM),
    ``ventricles`` (deep CSF: lateral and third ventricles and the basal cisterns) and ``hippocampus``
    (grey matter inside two capsules drawn along the hippocampi; nilearn ships no hippocampus atlas, so
    this is an approximation), ``affine`` (4 x 4, voxel to MNI mm).
    """
    res = _check_resolution(resolution_mm)
    maps = dict(_atrophy_maps_2mm()["masks"])
    aff = _atrophy_maps_2mm()["affine"]
    if abs(res - _FIELD_RES_MM) > 1e-6:
        tpl = _template_1mm()
        out = {}
        for key in ("brain_mask", "gm", "wm"):
            src = tpl["mask" if key == "brain_mask" else key]
            out[key], aff = _resample_to(src, tpl["affine"], res)
        out["csf"] = np.clip(out["brain_mask"] - out["gm"] - out["wm"], 0, 1) * out["brain_mask"]
        for key in ("ventricles", "hippocampus"):  # masks are built on the 2 mm grid; resample them
            zoom = _FIELD_RES_MM / res
            shape = out["gm"].shape
            src = maps[key]
            m = ndi.affine_transform(src, np.full(3, 1.0 / zoom), output_shape=shape, order=1, mode="constant")
            out[key] = m.astype(np.float32)
        maps = out
    return {**{k: np.clip(v, 0, 1).astype(np.float32) for k, v in maps.items()}, "affine": aff}


@lru_cache(maxsize=1)
def _atrophy_maps_2mm() -> dict[str, Any]:
    """Masks, atrophy maps and unit flow fields on the 2 mm template grid (computed once per process)."""
    tpl = _template_1mm()
    gm, aff = _resample_to(tpl["gm"], tpl["affine"], _FIELD_RES_MM)
    wm, _ = _resample_to(tpl["wm"], tpl["affine"], _FIELD_RES_MM)
    mask, _ = _resample_to(tpl["mask"], tpl["affine"], _FIELD_RES_MM)
    gm, wm, mask = (np.clip(a, 0, 1) for a in (gm, wm, mask))
    csf = np.clip(mask - gm - wm, 0, 1) * mask
    h = _FIELD_RES_MM
    x, y, z = np.meshgrid(*[aff[i, i] * np.arange(gm.shape[i]) + aff[i, 3] for i in range(3)], indexing="ij")

    # Ventricles: CSF more than 10 mm inside the brain, in a central box, large components only.
    depth = ndi.distance_transform_edt(mask > 0.5) * h
    vent = (csf > 0.5) & (depth > 10) & (np.abs(x) < 35) & (y > -50) & (y < 40) & (z > -25) & (z < 35)
    lab, n = ndi.label(vent)
    if n:
        sizes = ndi.sum(vent, lab, range(1, n + 1))
        vent = np.isin(lab, 1 + np.flatnonzero(sizes * h**3 > 200.0))
    # Hippocampi: grey matter inside capsules from the head (anterior, low) to the tail (posterior, high).
    hip = np.zeros(gm.shape, dtype=bool)
    pts = np.stack([x, y, z], -1)
    for side in (-1.0, 1.0):
        a, b = np.array([25.0 * side, -10.0, -20.0]), np.array([28.0 * side, -36.0, -4.0])
        t = np.clip(((pts - a) @ (b - a)) / float((b - a) @ (b - a)), 0.0, 1.0)
        hip |= np.linalg.norm(pts - (a + t[..., None] * (b - a)), axis=-1) < 6.0
    hip &= gm > 0.3
    vent_f, hip_f = vent.astype(np.float32), hip.astype(np.float32)

    def unit_flow(m: np.ndarray, sigma_mm: float, sign: float) -> np.ndarray:
        s = ndi.gaussian_filter(m, sigma_mm / h)
        g = np.stack(np.gradient(s, h), 0)
        return (sign * g / max(float(np.linalg.norm(g, axis=0).max()), 1e-8)).astype(np.float32)

    # Grey matter that touches sulcal CSF or the outside of the brain: where cortical atrophy shows.
    near_ventricle = ndi.binary_dilation(vent, iterations=2)
    surface = ndi.gaussian_filter((1.0 - mask) + csf * (~near_ventricle), 1.0)
    cortex = gm * np.clip(2.5 * surface, 0, 1) * (~near_ventricle) * (1.0 - hip_f)
    return {
        "affine": aff,
        "masks": {"brain_mask": mask, "gm": gm, "wm": wm, "csf": csf, "ventricles": vent_f, "hippocampus": hip_f},
        "flow_ventricles": unit_flow(vent_f, 5.0, +1.0),  # sampling towards the ventricles enlarges them
        "flow_hippocampus": unit_flow(hip_f, 3.0, -1.0),  # sampling away from the hippocampi shrinks them
        "hippocampus_soft": ndi.gaussian_filter(hip_f, 0.75).astype(np.float32),
        "cortex": cortex.astype(np.float32),
    }


class _GridSampler:
    """Trilinear sampling of a multi-channel (C, X, Y, Z) volume at MNI points (torch ``grid_sample``)."""

    def __init__(self, channels: np.ndarray, affine: np.ndarray) -> None:
        import torch

        self.volume = torch.from_numpy(np.ascontiguousarray(channels, dtype=np.float32))[None]
        size = np.array(channels.shape[1:], dtype=np.float64)
        # MNI mm -> voxel -> grid_sample's [-1, 1] (align_corners=True), in (z, y, x) order.
        norm = np.diag(np.append(2.0 / np.maximum(size - 1, 1), 1.0))
        norm[:3, 3] = -1.0
        m = (norm @ np.linalg.inv(affine))[:3][::-1]
        self.matrix, self.offset = m[:, :3].T.copy(), m[:, 3].copy()

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) MNI mm -> (N, C); zero outside the volume."""
        import torch
        import torch.nn.functional as F

        g = torch.from_numpy((pts @ self.matrix + self.offset).astype(np.float32)).view(1, 1, 1, -1, 3)
        with torch.no_grad():
            out = F.grid_sample(self.volume, g, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.view(self.volume.shape[1], -1).T.numpy().astype(np.float64)


@lru_cache(maxsize=1)
def _field_samplers() -> tuple[_GridSampler, _GridSampler]:
    """Samplers of the 6 flow channels (ventricles, hippocampi) and of the 2 grey-matter-loss maps."""
    maps = _atrophy_maps_2mm()
    flows = np.concatenate([maps["flow_ventricles"], maps["flow_hippocampus"]], 0)
    losses = np.stack([maps["cortex"], maps["hippocampus_soft"]], 0)
    return _GridSampler(flows, maps["affine"]), _GridSampler(losses, maps["affine"])


@lru_cache(maxsize=8)
def _intensity_sampler(spacing_mm: float) -> _GridSampler:
    """Sampler of (t1, brain mask), pre-smoothed for an output grid of ``spacing_mm`` (no aliasing)."""
    tpl = _template_1mm()
    res = 1.0 if spacing_mm < 2.5 else 2.0
    t1, aff = _resample_to(tpl["t1"], tpl["affine"], res)
    mask, _ = _resample_to(tpl["mask"], tpl["affine"], res)
    sigma = math.sqrt(max(spacing_mm**2 - res**2, 0.0)) / (2.355 * res)
    if sigma > 0.2:
        t1 = ndi.gaussian_filter(t1, sigma)
        mask = ndi.gaussian_filter(mask, sigma)
    return _GridSampler(np.stack([t1, mask], 0), aff)


# --------------------------------------------------------------------------------------- parameters


def _check_label(label: int) -> int:
    if isinstance(label, bool) or int(label) != label or int(label) not in (0, 1):
        raise ValueError(f"label must be 0 (CN) or 1 (AD), got {label!r}.")
    return int(label)


def _check_dim_shape(dim: int, shape: Sequence[int] | None) -> tuple[int, tuple[int, ...]]:
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}.")
    shp = tuple(DEFAULT_SHAPE[dim]) if shape is None else tuple(int(s) for s in shape)
    if len(shp) != dim or min(shp) < 8 or max(shp) > 512:
        raise ValueError(f"shape for dim={dim} must be {dim} sizes in [8, 512], got {shape!r}.")
    return dim, shp


def sample_brain_subject_params(label: int, seed: int, severity: float | None = None, disease_scale: float = 1.0) -> dict[str, Any]:
    """Draw every random number of one subject from ``seed`` (same seed: same subject).

    Args:
        label: 0 = cognitively normal (CN), 1 = Alzheimer's disease (AD).
        seed: subject seed (non-negative integer).
        severity: AD severity in [0, 1] overriding the sampled one (the other parameters do not change);
            must be None or 0 for CN.
        disease_scale: multiplies the disease part of the atrophy loads (``_DISEASE_GAIN`` x severity); ageing
            and individual variation stay. 1 is the benchmark's default; it sets how separable CN and AD are.

    Returns:
        A JSON-able dict: ``label``, ``seed``, demographics (``age`` in years, ``sex``, ``cdr``, ``mmse``),
        ``severity``, the atrophy loads (``ventricle_load``, ``hippocampal_load``, ``cortical_load``: ageing
        plus ``_DISEASE_GAIN`` x severity plus individual variation; means over subjects: CN 0.13 / 0.15 /
        0.18, AD 1.9 / 1.2 / 1.3), the pose (``rotation_deg`` about x, y, z,
        ``scale``, ``translation_mm``), the deformation (``deformation_mm``, ``deformation_seed``), the
        cortical pattern seed and the acquisition (``gamma``, ``bias_coeff``, ``bias_seed``, ``noise_std``
        relative to the brain's 99.5th percentile, ``noise_seed``).
    """
    label = _check_label(label)
    check_seed(seed)
    if not (0.0 <= float(disease_scale) <= 10.0):
        raise ValueError(f"disease_scale must be in [0, 10], got {disease_scale!r}.")
    gain = {k: v * float(disease_scale) for k, v in _DISEASE_GAIN.items()}
    if severity is not None:
        severity = float(severity)
        if not (0.0 <= severity <= 1.0):
            raise ValueError(f"severity must be in [0, 1], got {severity!r}.")
        if label == 0 and severity != 0.0:
            raise ValueError(f"severity must be None or 0 for a CN subject (label 0), got {severity!r}.")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20211001, label]))
    mean, sd, lo, hi = _AGE[label]
    age = float(np.clip(rng.normal(mean, sd), lo, hi))
    sex = "F" if rng.random() < (197 / 316 if label == 0 else 59 / 100) else "M"
    # AD stage and severity (always drawn, so an explicit severity leaves every other number unchanged).
    u, v = rng.random(), rng.random()
    cum, cdr, sev = 0.0, 0.0, 0.0
    for stage, p, (a, b) in _CDR_STAGES:
        cum += p
        if u <= cum or stage == _CDR_STAGES[-1][0]:
            cdr, sev = stage, a + (b - a) * v
            break
    if label == 0:
        cdr, sev = 0.0, 0.0
    if severity is not None:
        sev = severity
        if label == 1:
            cdr = 0.5 if sev < 0.5 else (1.0 if sev < 0.8 else 2.0)
    mmse_noise = rng.normal()
    mmse = 29.1 + 1.1 * mmse_noise if label == 0 else 29.0 - 11.0 * sev + 2.5 * mmse_noise
    ageing = max(age - 30.0, 0.0) / 50.0  # 0 at 30 y, 1 at 80 y
    z = rng.normal(size=3)
    params: dict[str, Any] = {
        "label": label,
        "seed": int(seed),
        "age": round(age, 1),
        "sex": sex,
        "cdr": cdr,
        "mmse": int(np.clip(round(mmse), 10, 30)),
        "severity": round(float(sev), 4),
        "ventricle_load": float(max(0.4 * ageing + gain["ventricle"] * sev + 0.25 * z[0], -0.6)),
        "hippocampal_load": float(np.clip(0.3 * ageing + gain["hippocampal"] * sev + 0.15 * z[1], 0.0, 1.6)),
        "cortical_load": float(np.clip(0.4 * ageing + gain["cortical"] * sev + 0.2 * z[2], 0.0, 1.6)),
        "rotation_deg": [float(a) for a in rng.uniform(-1, 1, 3) * np.array([5.0, 4.0, 10.0])],
        "scale": float(rng.uniform(0.92, 1.08)),
        "translation_mm": [float(t) for t in rng.uniform(-5.0, 5.0, 3)],
        "deformation_mm": float(rng.uniform(2.5, 6.0)),
        "deformation_seed": int(rng.integers(2**31)),
        "pattern_seed": int(rng.integers(2**31)),
        "gamma": float(rng.uniform(0.85, 1.15)),
        "bias_coeff": float(rng.uniform(0.05, 0.2)),
        "bias_seed": int(rng.integers(2**31)),
        "noise_std": float(rng.uniform(0.015, 0.045)),
        "noise_seed": int(rng.integers(2**31)),
    }
    if float(disease_scale) != 1.0:  # recorded only when set, so default subjects keep their records
        params["disease_scale"] = float(disease_scale)
    return params


# ------------------------------------------------------------------------------------------ rendering


def _rotation(deg: Sequence[float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(np.asarray(deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def brain_subject_affine(dim: int = 2, shape: Sequence[int] | None = None) -> np.ndarray:
    """4 x 4 voxel-to-MNI-mm affine of the nominal sampling grid (the subject's own pose jitter excluded).

    For ``dim=2`` the third column is the plane normal scaled by the pixel size, so a (H, W) or (H, W, 1)
    NIfTI slice lands where it was cut from the template."""
    dim, shp = _check_dim_shape(dim, shape)
    spacing = np.array(_FOV_MM[dim]) / np.array(shp)
    centre = np.array(_CENTRE_MM[dim])
    if dim == 2:
        t = math.radians(_SLICE_TILT_DEG)
        axes = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(t), math.sin(t)]])
        normal = np.cross(axes[0], axes[1])
        cols = [axes[0] * spacing[0], axes[1] * spacing[1], normal * float(spacing.mean())]
        half = np.array([(shp[0] - 1) / 2.0, (shp[1] - 1) / 2.0, 0.0])
    else:
        cols = [np.eye(3)[i] * spacing[i] for i in range(3)]
        half = (np.array(shp) - 1) / 2.0
    m = np.column_stack(cols)
    aff = np.eye(4)
    aff[:3, :3] = m
    aff[:3, 3] = centre - m @ half
    return aff


def _grid_points(dim: int, shp: tuple[int, ...]) -> np.ndarray:
    """(N, 3) MNI coordinates of the nominal grid, C order over ``shp``."""
    aff = brain_subject_affine(dim, shp)
    idx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shp], indexing="ij")
    ijk = np.stack([i.ravel() for i in idx] + ([np.zeros(idx[0].size)] if dim == 2 else []), 1)
    return ijk @ aff[:3, :3].T + aff[:3, 3]


def _coarse_points(shp: tuple[int, ...], cshp: tuple[int, ...]) -> np.ndarray:
    """MNI points of a (cshp) grid spanning the same corners as the full 3D grid ``shp``."""
    aff = brain_subject_affine(3, shp)
    idx = np.meshgrid(*[np.linspace(0, n - 1, c) for n, c in zip(shp, cshp)], indexing="ij")
    ijk = np.stack([i.ravel() for i in idx], 1)
    return ijk @ aff[:3, :3].T + aff[:3, 3]


def _brain_upsample(a: np.ndarray, cshp: tuple[int, ...], shp: tuple[int, ...]) -> np.ndarray:
    """(prod(cshp), C) values on the coarse grid -> (prod(shp), C) by trilinear interpolation."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(a.T.reshape(a.shape[1], *cshp).astype(np.float32))[None]
    out = F.interpolate(t, size=shp, mode="trilinear", align_corners=True)[0]
    return out.reshape(a.shape[1], -1).T.numpy().astype(np.float64)


def _smooth_random_field(seed: int, sigmas_mm: Sequence[float], pts: np.ndarray) -> np.ndarray:
    """(N, len(sigmas_mm)) smooth random fields with unit standard deviation: white noise on an 8 mm grid
    covering the head, Gaussian-smoothed with correlation length ``sigma`` mm per channel."""
    rng = np.random.default_rng(seed)
    step, half = 8.0, 128.0
    n = int(2 * half / step) + 1
    fields = []
    for sigma in sigmas_mm:
        s = float(sigma) / step
        x = np.arange(-int(4 * s + 0.5), int(4 * s + 0.5) + 1)
        k = np.exp(-0.5 * (x / s) ** 2)
        k /= k.sum()
        fields.append(ndi.gaussian_filter(rng.normal(size=(n, n, n)), s, mode="wrap") / float(np.sum(k**2)) ** 1.5)
    aff = np.diag([step, step, step, 1.0])
    aff[:3, 3] = -half
    return _GridSampler(np.stack(fields, 0), aff)(pts)


def mr_bias_and_noise(
    image: np.ndarray, bias_coeff: float, bias_seed: int, noise_std: float, noise_seed: int, ref_mask: np.ndarray,
    ref_percentile: float,
) -> tuple[np.ndarray, float]:
    """An MR acquisition's bias field and Rician noise, replayable from their recorded parameters.

    ``image`` (1, *spatial) is multiplied by MONAI's ``RandBiasField`` (degree 3, coefficients in
    ``[-bias_coeff, bias_coeff]``, drawn with ``bias_seed``); ``ref`` is its ``ref_percentile`` percentile inside
    ``ref_mask`` (spatial, bool; 1.0 when empty); then MONAI's ``RandRicianNoise`` with standard deviation
    ``noise_std * ref`` (drawn with ``noise_seed``). Returns ``(image, ref)``."""
    from monai.transforms import RandBiasField, RandRicianNoise

    bias = RandBiasField(degree=3, coeff_range=(-float(bias_coeff), float(bias_coeff)), prob=1.0)
    bias.set_random_state(seed=int(bias_seed))
    image = np.asarray(bias(image))
    ref = float(np.percentile(image[0][ref_mask], ref_percentile)) if ref_mask.any() else 1.0
    noise = RandRicianNoise(prob=1.0, std=float(noise_std) * ref, sample_std=False)
    noise.set_random_state(seed=int(noise_seed))
    return np.asarray(noise(image)), ref


def render_brain_subject(params: dict[str, Any], dim: int = 2, shape: Sequence[int] | None = None) -> np.ndarray:
    """Render the subject described by ``params`` (from :func:`sample_brain_subject_params`); deterministic.

    Returns:
        float32 channel-first image, (1, H, W) for ``dim=2`` or (1, X, Y, Z) for ``dim=3``, in [0, 1]
        (0 outside the brain mask). Grid: :func:`brain_subject_affine`.
    """
    dim, shp = _check_dim_shape(dim, shape)
    missing = [k for k in _RENDER_KEYS if k not in params]
    if missing:
        raise KeyError(f"params lacks {missing}; expected the dict of sample_brain_subject_params.")
    spacing = float(np.mean(np.array(_FOV_MM[dim]) / np.array(shp)))
    flow_sampler, loss_sampler = _field_samplers()
    intensity_sampler = _intensity_sampler(round(spacing, 2))

    # The pose, deformation and atrophy flow are smooth: in 3D they are computed on a grid of half the
    # resolution and interpolated.
    coarse = dim == 3 and min(shp) >= 16
    cshp = tuple((n + 1) // 2 for n in shp) if coarse else shp
    p = _grid_points(dim, shp) if not coarse else _coarse_points(shp, cshp)
    centre = np.array(_CENTRE_MM[dim])
    rot = _rotation(params["rotation_deg"])
    y = (p - centre) @ rot.T / float(params["scale"]) + centre + np.asarray(params["translation_mm"])
    rnd = _smooth_random_field(int(params["deformation_seed"]), (20.0, 20.0, 20.0, 30.0), p)
    y += float(params["deformation_mm"]) * rnd[:, :3]
    pattern = np.exp(0.5 * rnd[:, 3:])

    # Atrophy flow: 4 explicit Euler steps of a stationary velocity field keep the map invertible.
    loads = np.array([4.0 * float(params["ventricle_load"])] * 3 + [2.5 * float(params["hippocampal_load"])] * 3)
    for _ in range(4):
        f = flow_sampler(y) * loads
        y += (f[:, :3] + f[:, 3:]) / 4.0
    if coarse:
        y, pattern = (_brain_upsample(a, cshp, shp) for a in (y, pattern))

    img, brain = intensity_sampler(y).T
    brain = np.clip(brain, 0.0, 1.0)
    # Grey-matter loss: tissue signal replaced by CSF-like signal, regionally modulated for the cortex.
    cortex, hippo = loss_sampler(y).T
    loss = 0.45 * float(params["cortical_load"]) * cortex * pattern[:, 0]
    loss += 0.55 * float(params["hippocampal_load"]) * hippo
    loss = np.clip(loss, 0.0, 0.9)
    img = img - loss * (img - _CSF_LEVEL) * (img > _CSF_LEVEL)

    img = np.clip(img, 0.0, 1.0) ** float(params["gamma"])
    img = img.reshape((1, *shp)).astype(np.float32)
    brain = brain.reshape((1, *shp)).astype(np.float32)
    img, ref = mr_bias_and_noise(img, params["bias_coeff"], params["bias_seed"], params["noise_std"],
                                 params["noise_seed"], brain[0] > 0.5, 99.5)
    img = img * brain
    return np.clip(img / max(ref, 1e-6), 0.0, 1.0).astype(np.float32)


_RENDER_KEYS = (
    "ventricle_load", "hippocampal_load", "cortical_load", "rotation_deg", "scale", "translation_mm",
    "deformation_mm", "deformation_seed", "pattern_seed", "gamma", "bias_coeff", "bias_seed", "noise_std",
    "noise_seed",
)  # fmt: skip


def generate_brain_subject(
    label: int, seed: int, dim: int = 2, shape: Sequence[int] | None = None, severity: float | None = None,
    disease_scale: float = 1.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One synthetic subject of the AD-vs-CN benchmark.

    Args:
        label: 0 = CN, 1 = AD.
        seed: subject seed; the same (label, seed, severity) always gives the same subject.
        dim: 2 (an oblique axial slice through the ventricles and the hippocampal tails) or 3 (a volume).
        shape: output size; default (64, 64) pixels of 3.25 mm for 2D, (48, 56, 48) voxels of 3.5 mm for
            3D. Another shape keeps the field of view (208 x 208 mm, 168 x 196 x 168 mm).
        severity: AD severity in [0, 1] (default: sampled from a CDR stage, Table 1 of the paper).
        disease_scale: strength of the disease effect (see :func:`sample_brain_subject_params`).

    Returns:
        ``(image, meta)``: float32 (1, H, W) or (1, X, Y, Z) in [0, 1]; ``meta`` is the parameter dict of
        :func:`sample_brain_subject_params` plus ``dim``, ``shape`` and ``affine`` (nominal grid), enough
        to replay the subject with :func:`render_brain_subject`.
    """
    dim, shp = _check_dim_shape(dim, shape)
    params = sample_brain_subject_params(label, seed, severity, disease_scale)
    image = render_brain_subject(params, dim, shp)
    meta = {**params, "dim": dim, "shape": list(shp), "affine": brain_subject_affine(dim, shp).tolist()}
    return image, meta


# ------------------------------------------------------------------------------------------ data set


def _brain_subject_seed(seed: int, split: str, label: int, index: int) -> int:
    code = {"training": 1, "validation": 2, "test": 3}[split]
    return derive_seed(seed, code, label, index, bits=31)


def synthesize_brain_ad_dataset(
    out_dir: str | os.PathLike,
    train_per_class: int | Sequence[int] = 50,
    val_per_class: int | Sequence[int] = 20,
    test_per_class: int | Sequence[int] = 100,
    dim: int = 2,
    seed: int = 0,
    progress: bool = True,
    shape: Sequence[int] | None = None,
    disease_scale: float = 1.0,
) -> dict[str, list[dict]]:
    """Write the benchmark to ``out_dir``: NIfTI images and ``dataset.json``.

    Layout: ``images/{split}_{cn|ad}_{index:03d}.nii.gz`` (float32, (H, W) for 2D or (X, Y, Z) for 3D, with
    the MNI affine of :func:`brain_subject_affine`) and ``dataset.json`` with ``training``, ``validation``,
    ``test`` lists of ``{"image": relative path, "label": 0|1}`` plus a ``subjects`` record (every
    subject's parameters). Every file is written to a temporary name and renamed, ``dataset.json`` last.
    Subject seeds depend on (seed, split, label, index), so splits never share a subject and a larger
    ``train_per_class`` keeps the first subjects.

    The counts are per class: one number for both, or ``[CN, AD]`` (e.g. the OASIS split of the paper,
    ``[220, 70]`` training). ``disease_scale`` sets the strength of the AD atrophy
    (:func:`sample_brain_subject_params`); it is recorded in ``dataset.json``.

    Returns:
        ``{"training", "validation", "test"}`` lists of ``{"image": absolute path, "label": int}``.
    """


    counts: dict[str, tuple[int, int]] = {}
    for k, v in {"training": train_per_class, "validation": val_per_class, "test": test_per_class}.items():
        pair = list(v) if isinstance(v, (list, tuple)) else [v, v]
        if len(pair) != 2 or any(isinstance(n, bool) or int(n) != n or int(n) < 0 for n in pair):
            raise ValueError(f"{k} subjects per class must be a non-negative integer or [CN, AD], got {v!r}.")
        counts[k] = (int(pair[0]), int(pair[1]))
    if min(counts["training"]) < 1:
        raise ValueError(f"train_per_class must be >= 1 for both classes, got {train_per_class!r}.")
    dim, shp = _check_dim_shape(dim, shape)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} is a file; expected a folder (created if missing).")
    (out / "images").mkdir(parents=True, exist_ok=True)
    affine = brain_subject_affine(dim, shp)
    lists: dict[str, list[dict]] = {k: [] for k in counts}
    records = []
    t_start = time.perf_counter()
    for split, per_class in counts.items():
        for label in (0, 1):
            for i in range(per_class[label]):
                sseed = _brain_subject_seed(seed, split, label, i)
                image, meta = generate_brain_subject(label, sseed, dim, shp, disease_scale=disease_scale)
                rel = f"images/{split}_{'ad' if label else 'cn'}_{i:03d}.nii.gz"
                save_phantom_nifti(image[0], affine, out / rel)
                lists[split].append({"image": rel, "label": label})
                records.append({"image": rel, "split": split, **{k: v for k, v in meta.items() if k != "affine"}})
        if progress:
            print(f"  {split}: {sum(per_class)} subjects, {time.perf_counter() - t_start:.1f} s so far", flush=True)
    description = {
        "name": "synthetic AD-vs-CN brain MRI benchmark",
        "description": (
            "Subjects warped from the MNI152 T1 template (nilearn) with ageing and graded AD atrophy "
            "(monai_ext.phantoms.brain_mri); labels 0 = CN, 1 = AD. Synthetic data, not for clinical use."
        ),
        "labels": {"0": "CN", "1": "AD"},
        "generator": {
            "seed": int(seed), "dim": dim, "shape": list(shp),
            **{f"{k}_per_class": (v[0] if v[0] == v[1] else list(v)) for k, v in counts.items()},
            **({"disease_scale": float(disease_scale)} if float(disease_scale) != 1.0 else {}),
        },
        **lists,
        "subjects": records,
    }
    atomic_write(out / "dataset.json", lambda tmp: tmp.write_text(json.dumps(description, indent=1) + "\n"))
    return {k: [{"image": str(out / e["image"]), "label": e["label"]} for e in v] for k, v in lists.items()}
