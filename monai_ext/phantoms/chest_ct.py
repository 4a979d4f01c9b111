"""Synthetic chest + upper-abdomen CT phantoms in Hounsfield units (HU), with lung/infection labels.

:func:`generate_chest_ct` draws one patient-like case per seed: body wall (skin, subcutaneous fat,
muscle), ribs, spine, sternum, heart and great vessels, trachea and bronchi, two lungs with
branching vessel and airway trees, the diaphragm with liver, spleen, stomach (with a gas bubble),
kidneys, pancreas and gas-containing bowel below it, a patient table, and optionally COVID-19-like
lesions (ground glass / consolidation, labelled) and solid nodules (not labelled).  The volume is
a chest-abdomen scan: its lowest slices are abdomen only, the lung bases dome over the liver and
spleen, so gas outside the lungs (stomach, bowel, trachea, outside the body) is present in every
case.

With ``variety=True`` each case also draws the acquisition and patient variety of real chest CT
(field-of-view truncation, arms, contrast phase, reconstruction kernel, dose, slice thickness,
patient size, inspiration, pleural effusion, atelectasis, emphysema); the draws come from
:mod:`monai_ext.phantoms.chest_ct_acquisition` and are recorded in ``info["acquisition"]``.

Conventions
-----------
Internally every structure is described in millimetres in a patient frame centred on the field of
view: ``x`` toward the patient's LEFT, ``y`` toward POSTERIOR, ``z`` toward SUPERIOR (the DICOM LPS
axes).  Array axis i follows x, j follows y and k follows z, so the NIfTI (RAS) affine is
``diag(-sx, -sy, sz)`` plus an origin that puts world (0, 0, 0) at the centre of the volume, and
``nibabel.aff2axcodes`` gives ``('L', 'P', 'S')``: the patient's left lung is at high i and at
negative RAS world x.

Speed comes from evaluating analytic implicit shapes on broadcast coordinate axes restricted to
each structure's bounding box, from painting tissue classes (uint8) that are turned into HU by one
look-up, from smooth random fields drawn on a coarse grid and upsampled by separable linear
interpolation (matrix products), and from a 3-tap separable blur for the default point-spread.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .chest_ct_acquisition import (
    apply_kernel,
    crop_affine,
    kernel_noise,
    sample_acquisition,
)

__all__ = [
    "ChestCTCase",
    "generate_chest_ct",
    "grow_vessel_tree",
    "paint_vessel_segments",
    "phantom_affine",
    "LABELS",
    "TISSUE_NAMES",
    "HU_RANGE",
]

#: Label values of :attr:`ChestCTCase.label`.
LABELS: dict[int, str] = {0: "background", 1: "left lung", 2: "right lung", 3: "infection"}
#: HU values are clipped to this range (the range of 12-bit CT with intercept -1024).
HU_RANGE: tuple[float, float] = (-1024.0, 3071.0)

# Tissue classes of the intermediate map (:attr:`ChestCTCase.tissue`).
(AIR, SKIN, FAT, MUSCLE, VFAT, BONE, MARROW, CARTILAGE, DISC, CANAL, LUNG, BLOOD, MYOCARDIUM,
 AIRWAY, AIRWAY_WALL, LIVER, SPLEEN, KIDNEY, PANCREAS, GUT_WALL, FLUID, GAS, STOOL, TABLE,
 TABLE_FOAM) = range(25)

#: Names of the tissue classes in :attr:`ChestCTCase.tissue`.
TISSUE_NAMES: dict[int, str] = {
    AIR: "air", SKIN: "skin", FAT: "subcutaneous/epicardial fat", MUSCLE: "muscle",
    VFAT: "visceral/mediastinal fat", BONE: "cortical bone", MARROW: "cancellous bone/marrow",
    CARTILAGE: "costal cartilage", DISC: "intervertebral disc", CANAL: "spinal canal",
    LUNG: "lung parenchyma", BLOOD: "blood/great vessels", MYOCARDIUM: "myocardium",
    AIRWAY: "airway lumen (trachea/main bronchi)", AIRWAY_WALL: "airway wall", LIVER: "liver",
    SPLEEN: "spleen", KIDNEY: "kidney", PANCREAS: "pancreas", GUT_WALL: "stomach/bowel wall",
    FLUID: "fluid (gastric, bowel, bile)", GAS: "stomach/bowel gas", STOOL: "stool",
    TABLE: "table shell", TABLE_FOAM: "table foam",
}

# Per class: (range of the case mean HU, amplitude HU of the smooth texture).
_TISSUE_HU: dict[int, tuple[tuple[float, float], float]] = {
    AIR: ((-1000.0, -1000.0), 0.0),
    SKIN: ((20.0, 50.0), 4.0),
    FAT: ((-110.0, -88.0), 8.0),
    MUSCLE: ((42.0, 58.0), 6.0),
    VFAT: ((-105.0, -80.0), 14.0),
    BONE: ((700.0, 1100.0), 60.0),
    MARROW: ((120.0, 220.0), 25.0),
    CARTILAGE: ((90.0, 160.0), 10.0),
    DISC: ((70.0, 95.0), 5.0),
    CANAL: ((15.0, 35.0), 3.0),
    LUNG: ((-870.0, -835.0), 50.0),
    BLOOD: ((35.0, 48.0), 3.0),
    MYOCARDIUM: ((45.0, 58.0), 4.0),
    AIRWAY: ((-1000.0, -990.0), 0.0),
    AIRWAY_WALL: ((20.0, 50.0), 5.0),
    LIVER: ((54.0, 68.0), 6.0),
    SPLEEN: ((40.0, 52.0), 5.0),
    KIDNEY: ((28.0, 40.0), 5.0),
    PANCREAS: ((32.0, 46.0), 10.0),
    GUT_WALL: ((35.0, 50.0), 5.0),
    FLUID: ((5.0, 20.0), 3.0),
    GAS: ((-1000.0, -995.0), 0.0),
    STOOL: ((-160.0, -60.0), 90.0),
    TABLE: ((150.0, 400.0), 0.0),
    TABLE_FOAM: ((-960.0, -880.0), 5.0),
}

_COARSE_MM = 8.0  # grid used to plan vessel trees and lesion positions
_TEXTURE_MM = 7.0  # node spacing of the smooth texture field
_RIB_BAND = 7.0  # mm of chest wall holding the ribs and intercostal muscles


@dataclasses.dataclass
class ChestCTCase:
    """One synthetic chest-abdomen CT.

    Attributes:
        image: float32 array of shape ``shape`` in HU, clipped to [-1024, 3071].
        label: uint8 array of the same shape; 0 background, 1 left lung (patient's left),
            2 right lung, 3 infection (inside the lungs, replacing the lung label).
        affine: 4x4 float64 voxel-to-world (RAS, mm) affine, ``diag(-sx, -sy, sz)`` plus the
            origin that centres the volume (axis codes L, P, S); with ``variety`` a truncated
            field of view moves the origin so that the kept voxels keep their world positions.
        spacing: voxel size in mm along (i, j, k).
        info: generation record: ``seed``, ``shape``, ``spacing``, ``fov_mm``, ``landmarks_mm``
            (world z of the diaphragm domes, carina, lung apex and lowest lung point),
            ``lung_volume_ml``, ``infection_fraction``, ``lesions`` (each with ``kind``,
            ``centre_mm`` (RAS world), ``centre_voxel``, ``radius_mm``, ``hu``, ``side``,
            ``voxels``), ``nodules`` (``centre_mm``, ``centre_voxel``, ``radius_mm``, ``hu``),
            ``tissue_hu`` (mean HU per tissue class) and ``labels``; with ``variety`` also
            ``acquisition`` (see :func:`generate_chest_ct`).
        tissue: uint8 tissue-class map of the same shape (see :data:`TISSUE_NAMES`), before
            lesions/vessels are blended into the image; handy for tests and masks.  A pleural
            effusion is ``FLUID``; atelectasis and emphysema stay ``LUNG``.
        findings: only with ``variety=True``: boolean masks (same shape) of the non-COVID findings
            ``effusion`` (label 0), ``atelectasis`` and ``emphysema`` (both keep the lung label).
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    info: dict[str, Any]
    tissue: np.ndarray | None = None
    findings: dict[str, np.ndarray] | None = None


def phantom_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """RAS affine (4x4, mm) of a phantom volume: LPS array axes, world origin at the volume centre."""
    n = np.asarray(shape, dtype=np.float64)
    s = np.asarray(spacing, dtype=np.float64)
    aff = np.diag([-s[0], -s[1], s[2], 1.0])
    aff[:3, 3] = [s[0] * (n[0] - 1) / 2.0, s[1] * (n[1] - 1) / 2.0, -s[2] * (n[2] - 1) / 2.0]
    return aff


# ----------------------------------------------------------------------------------------------
# grid and geometric primitives


class _Grid:
    """Voxel-centre coordinates (mm, patient LPS frame centred on the field of view)."""

    def __init__(self, shape: Sequence[int], spacing: Sequence[float]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.spacing = tuple(float(s) for s in spacing)
        self.fov = tuple(n * s for n, s in zip(self.shape, self.spacing))
        self.ax = [((np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * s).astype(np.float32)
                   for n, s in zip(self.shape, self.spacing)]

    def sl(self, axis: int, lo: float, hi: float) -> slice:
        n, s = self.shape[axis], self.spacing[axis]
        a0 = -(n - 1) / 2.0 * s
        i0 = max(0, int(math.ceil((lo - a0) / s - 1e-6)))
        i1 = min(n, int(math.floor((hi - a0) / s + 1e-6)) + 1)
        return slice(i0, max(i0, i1))

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> tuple[slice, slice, slice] | None:
        b = (self.sl(0, lo[0], hi[0]), self.sl(1, lo[1], hi[1]), self.sl(2, lo[2], hi[2]))
        if any(s.stop <= s.start for s in b):
            return None
        return b

    def xyz(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.ax[0][box[0]][:, None, None], self.ax[1][box[1]][None, :, None],
                self.ax[2][box[2]][None, None, :])


def _seg_box(grid: _Grid, p0: np.ndarray, p1: np.ndarray, pad: float):
    lo = np.minimum(p0, p1) - pad
    hi = np.maximum(p0, p1) + pad
    return grid.box(lo, hi)


def _seg_dist(grid: _Grid, box, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) of each voxel of ``box`` to the segment p0-p1, and the projection t in [0, 1]."""
    X, Y, Z = grid.xyz(box)
    ux, uy, uz = (float(p1[i] - p0[i]) for i in range(3))
    l2 = max(ux * ux + uy * uy + uz * uz, 1e-6)
    px, py, pz = X - float(p0[0]), Y - float(p0[1]), Z - float(p0[2])
    t = (px * (ux / l2) + py * (uy / l2)) + pz * (uz / l2)
    np.clip(t, 0.0, 1.0, out=t)
    d2 = np.square(px - t * ux)
    d2 += np.square(py - t * uy)
    d2 += np.square(pz - t * uz)
    return np.sqrt(d2, out=d2), t


def _frame(axis: np.ndarray) -> np.ndarray:
    """Rows: unit ``axis`` and two unit vectors orthogonal to it."""
    v1 = axis / np.linalg.norm(axis)
    ref = np.array([0.0, 0.0, 1.0]) if abs(v1[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    v2 = np.cross(v1, ref)
    v2 /= np.linalg.norm(v2)
    v3 = np.cross(v1, v2)
    return np.stack([v1, v2, v3])


def _ellipsoid_q2(grid: _Grid, box, centre, semi, rot: np.ndarray | None = None) -> np.ndarray:
    """Normalised squared radius ``sum((R (p - c))_a / semi_a)^2`` of the voxels of ``box``."""
    X, Y, Z = grid.xyz(box)
    dx, dy, dz = X - float(centre[0]), Y - float(centre[1]), Z - float(centre[2])
    if rot is None:
        q = np.square(dx * (1.0 / semi[0])) + np.square(dy * (1.0 / semi[1]))
        return q + np.square(dz * (1.0 / semi[2]))
    q = None
    for a in range(3):
        r = rot[a] / float(semi[a])
        u = (dx * float(r[0]) + dy * float(r[1])) + dz * float(r[2])
        q = np.square(u) if q is None else q + np.square(u)
    return q


def _ellipsoid_box(grid: _Grid, centre, semi, pad: float = 0.0):
    r = max(semi) + pad
    c = np.asarray(centre, dtype=float)
    return grid.box(c - r, c + r)


def _interp_matrix(n_out: int, pos_out: np.ndarray, n_in: int, x0: float, step: float) -> np.ndarray:
    u = np.clip((pos_out - x0) / step, 0.0, n_in - 1.000001)
    i0 = np.floor(u).astype(int)
    f = (u - i0).astype(np.float32)
    w = np.zeros((n_out, n_in), dtype=np.float32)
    w[np.arange(n_out), i0] = 1.0 - f
    w[np.arange(n_out), i0 + 1] += f
    return w


def _upsample(coarse: np.ndarray, grid: _Grid, box=None, step: Sequence[float] | None = None) -> np.ndarray:
    """Trilinear upsampling of ``coarse`` (nodes spanning the FOV, or ``box``) onto grid voxels.

    Separable: three small matrix products, the last one producing the C-ordered result.
    """
    if box is None:
        box = (slice(0, grid.shape[0]), slice(0, grid.shape[1]), slice(0, grid.shape[2]))
    pos = [grid.ax[a][box[a]].astype(np.float64) for a in range(3)]
    mats = []
    for a in range(3):
        p = pos[a]
        lo, hi = (p[0], p[-1]) if len(p) else (0.0, 0.0)
        nin = coarse.shape[a]
        stp = (hi - lo) / max(nin - 1, 1) if hi > lo else 1.0
        mats.append(_interp_matrix(len(p), p, nin, lo, stp))
    cx, cy, cz = coarse.shape
    a1 = (mats[0] @ coarse.reshape(cx, cy * cz)).reshape(-1, cy, cz)  # (nx, cy, cz)
    a2 = np.matmul(mats[1], a1)  # (nx, ny, cz)
    nx, ny = a2.shape[:2]
    out = a2.reshape(nx * ny, cz) @ mats[2].T
    return out.reshape(nx, ny, -1)


def _blur3(a: np.ndarray, w: float, axis: int) -> np.ndarray:
    """3-tap [w, 1-2w, w] filter along ``axis`` (reflecting edges); variance 2w voxels^2."""
    out = a * np.float32(1.0 - 2.0 * w)
    n = a.shape[axis]
    if n < 2:
        out += np.float32(2.0 * w) * a
        return out
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
    lo, hi = tuple(lo), tuple(hi)
    wf = np.float32(w)
    out[hi] += wf * a[lo]
    out[lo] += wf * a[hi]
    e0 = [slice(None)] * 3
    e1 = [slice(None)] * 3
    e0[axis], e1[axis] = slice(0, 1), slice(n - 1, n)
    out[tuple(e0)] += wf * a[tuple(e0)]
    out[tuple(e1)] += wf * a[tuple(e1)]
    return out


def _gauss_blur(img: np.ndarray, sigma_vox: Sequence[float]) -> np.ndarray:
    """Separable Gaussian blur; a variance-matched 3-tap kernel where sigma <= 0.6 voxel."""
    for axis, s in enumerate(sigma_vox):
        if s <= 1e-3:
            continue
        if s <= 0.6:
            img = _blur3(img, 0.5 * s * s, axis)
        else:
            img = ndi.gaussian_filter1d(img, s, axis=axis, truncate=3.0)
    return img


# ----------------------------------------------------------------------------------------------
# anatomy parameters


class _Anatomy:
    """Random anatomy of one case (all lengths in mm, patient LPS frame centred on the FOV)."""

    def __init__(self, rng: np.random.Generator, fov: Sequence[float], abdomen_mm: float | None = None) -> None:
        def U(lo: float, hi: float) -> float:
            return float(rng.uniform(lo, hi))

        self.fov = tuple(float(f) for f in fov)
        zlo, zhi = -self.fov[2] / 2.0, self.fov[2] / 2.0
        self.zlo, self.zhi = zlo, zhi

        # body cross-section: superellipse (flatter back) with low-order angular harmonics
        self.a = U(160.0, 180.0)  # half width
        self.b = U(108.0, 125.0)  # half AP depth
        self.cx = U(-6.0, 6.0)
        self.cy = U(-8.0, 12.0)
        self.p_ant = U(2.0, 2.4)
        self.p_post = U(2.4, 3.0)
        self.harm = [(k, float(rng.normal(0.0, 0.012 / (k - 1))), U(0.0, 2.0 * math.pi)) for k in (2, 3, 4, 5)]
        self.F0 = U(8.0, 26.0)  # subcutaneous fat thickness
        self.F_ph = U(0.0, 2.0 * math.pi)
        self.M0 = U(4.0, 9.0)
        self.P_para = U(38.0, 50.0)  # paraspinal muscle bulge
        self.P_pec = U(6.0, 16.0)  # pectoral / abdominal wall bulge
        self.abd_gain = U(-0.03, 0.05)
        self.s_wave = (U(0.0, 0.015), U(60.0, 120.0), U(0.0, 2.0 * math.pi))

        # cranio-caudal layout: the lowest lung point sits above an abdomen-only slab
        frac = U(0.18, 0.32)
        self.z_base = zlo + (min(max(frac * self.fov[2], 15.0), 100.0) if abdomen_mm is None else abdomen_mm)
        recess = U(80.0, 100.0)
        self.zdome_R = self.z_base + recess
        self.zdome_L = self.zdome_R - U(8.0, 25.0)
        self.recess_R = recess
        self.recess_L = U(70.0, 90.0)
        self.dome_K = U(85.0, 110.0)
        self.z_car = self.zdome_R + U(95.0, 120.0)
        self.z_apex = self.zdome_R + U(165.0, 200.0)
        self.z_cap = self.z_apex - U(65.0, 85.0)

        # derived body landmarks
        R_post = float(self._R_unit(math.pi / 2))
        R_ant = float(self._R_unit(-math.pi / 2))
        F_post = float(self._fat(np.array(0.0), np.array(math.pi / 2)))
        F_ant = float(self._fat(np.array(math.pi), np.array(-math.pi / 2)))
        M_ant = float(self._muscle(np.array(math.pi)))
        self.s_max = 1.0 + max(self.abd_gain, 0.0) + self.s_wave[0] + 0.01
        self.y_back = self.cy + R_post
        self.y_front = self.cy - R_ant
        self.y_front_cav = self.y_front + 2.5 + F_ant + M_ant + _RIB_BAND
        self.d_sternum = 2.5 + F_ant + M_ant + 0.5 * _RIB_BAND

        # spine
        self.Rv = U(15.0, 19.0)
        self.xs = self.cx + U(-3.0, 3.0)
        self.yv = self.y_back - (2.5 + F_post + 8.0 + 45.0 + self.Rv)
        self.sp_len = U(30.0, 42.0)  # spinous process length

        # mediastinum
        self.xm0 = self.cx + U(0.0, 10.0)
        self.xm1 = U(-4.0, 4.0)
        self.ytr = self.yv - self.Rv - U(22.0, 28.0)

        # diaphragm domes
        self.dR = (self.xm0 - U(0.38, 0.5) * self.a, self.cy - U(0.0, 0.25) * self.b)
        self.dL = (self.xm0 + U(0.38, 0.5) * self.a, self.cy - U(0.0, 0.25) * self.b)
        self.dome_ax = U(0.45, 0.6) * self.a
        self.dome_ay = U(0.65, 0.85) * self.b

        # heart: rotated ellipsoid whose bottom rests on the central tendon
        ha, hb, hc = U(50.0, 62.0), U(38.0, 46.0), U(34.0, 42.0)
        self.heart_semi = (ha, hb, hc)
        al, be = math.radians(U(30.0, 50.0)), math.radians(U(15.0, 30.0))
        v1 = np.array([math.cos(be) * math.cos(al), -math.cos(be) * math.sin(al), -math.sin(be)])
        self.heart_rot = _frame(v1)
        ext_z = math.sqrt(sum((self.heart_semi[a] * self.heart_rot[a, 2]) ** 2 for a in range(3)))
        ext_y = math.sqrt(sum((self.heart_semi[a] * self.heart_rot[a, 1]) ** 2 for a in range(3)))
        self.heart_ext_z = ext_z
        self.z_tendon = min(self.zdome_R, self.zdome_L) - U(5.0, 15.0)
        self.heart_c = (self.xm0 + U(18.0, 32.0), self.y_front_cav + ext_y + U(2.0, 10.0),
                        self.z_tendon + ext_z - 10.0)
        self.z_heart_top = self.heart_c[2] + ext_z

        # lung apices (per side centre, semi-axes at the cap start)
        self.apex_c = {s: (self.xm0 + sgn * U(0.4, 0.48) * self.a, self.cy + U(0.05, 0.2) * self.b)
                       for s, sgn in (("L", 1.0), ("R", -1.0))}
        self.apex_semi = (U(0.45, 0.55) * self.a, U(0.8, 0.95) * self.b)

        # great vessels and airways (polylines: node list and radii)
        xm, ytr, zc, zh = self.xm0, self.ytr, self.z_car, self.heart_c[2]
        z_arch = zc + U(20.0, 35.0)
        zt = zhi + 20.0
        zb = zlo - 20.0
        self.aorta = ([(xm + 8, ytr - 45, zh + 25), (xm + 2, ytr - 42, z_arch - 10),
                       (xm + 12, ytr - 15, z_arch + 6), (xm + 26, self.yv - 18, z_arch - 10),
                       (xm + 24, self.yv - 22, self.zdome_L - 30),
                       (self.xs + U(5.0, 12.0), self.yv - self.Rv - 12, zb)],
                      [U(14.0, 16.0), 14.0, 13.0, 12.0, 11.0, U(9.0, 11.0)])
        self.svc = ([(xm - 28, ytr - 35, zt), (xm - 26, ytr - 30, zh + 25)], [9.0, 10.0])
        ivc_top = (xm - 12, self.heart_c[1] + 20, zh - 20)
        self.ivc = ([ivc_top, (xm - 24, self.yv - self.Rv - 12, self.zdome_R - 40),
                     (self.xs - 22, self.yv - self.Rv - 10, zb)], [12.0, 11.0, 10.0])
        pa_bif = (xm + 6, ytr - 22, zc - 12)
        self.pa = ([(self.heart_c[0] - 5, self.heart_c[1] - 25, zh + 30), pa_bif], [13.0, 13.0])
        self.hilum = {"L": (xm + U(50.0, 60.0), ytr + 8, zc - U(10.0, 20.0)),
                      "R": (xm - U(45.0, 55.0), ytr - 5, zc - U(15.0, 25.0))}
        self.lpa = ([pa_bif, self.hilum["L"]], [10.0, 8.0])
        self.rpa = ([pa_bif, self.hilum["R"]], [10.0, 8.0])
        self.vein_root = {"L": (xm + U(35.0, 45.0), self.heart_c[1] + 30, zh + U(0.0, 15.0)),
                          "R": (xm - U(30.0, 40.0), self.heart_c[1] + 30, zh + U(0.0, 15.0))}
        self.trachea = ([(xm, ytr, zt), (xm, ytr, zc)], [U(8.0, 10.0)] * 2)
        self.bronchus = {"R": ([(xm, ytr, zc), (xm - U(32.0, 40.0), ytr + 6, zc - U(18.0, 25.0))], [7.0, 6.0]),
                         "L": ([(xm, ytr, zc), (xm + U(42.0, 52.0), ytr + 10, zc - U(28.0, 35.0))], [6.5, 5.5])}
        self.esophagus = ([(xm + 4, ytr + 16, zt), (xm + 8, self.yv - self.Rv - 8, self.zdome_L - 5),
                           (xm + 45, self.cy - 5, self.zdome_L - 45)], [8.0, 8.0, 9.0])

        # abdominal organs
        self.liver_left = xm + U(30.0, 90.0)
        self.liver_left_h = U(70.0, 110.0)
        self.liver_hm = U(80.0, 100.0)
        self.liver_hl = U(140.0, 185.0)
        self.spleen_c = (xm + U(0.55, 0.68) * self.a, self.cy + U(0.2, 0.45) * self.b,
                         self.zdome_L - U(45.0, 65.0))
        self.spleen_semi = (U(22.0, 32.0), U(45.0, 60.0), U(40.0, 55.0))
        self.spleen_rot = _frame(np.array([0.45, 1.0, 0.15]))
        fund = (xm + U(0.3, 0.45) * self.a, self.cy + U(-0.15, 0.1) * self.b, self.zdome_L - U(40.0, 50.0))
        body = (xm + U(0.15, 0.3) * self.a, self.cy - U(0.35, 0.55) * self.b, self.zdome_L - U(85.0, 110.0))
        self.stomach = [(fund, (U(38.0, 50.0), U(38.0, 48.0), U(40.0, 50.0))),
                        (body, (U(35.0, 45.0), U(28.0, 38.0), U(45.0, 60.0)))]
        self.stomach_gas = U(20.0, 50.0)  # depth (mm) of the gas layer from the most anterior lumen
        self.kidneys = {
            "R": (self.xs - U(55.0, 70.0), self.yv + U(0.0, 15.0), self.zdome_R - U(110.0, 130.0)),
            "L": (self.xs + U(55.0, 70.0), self.yv + U(0.0, 15.0), self.zdome_L - U(95.0, 115.0)),
        }
        self.kidney_semi = (U(24.0, 30.0), U(22.0, 28.0), U(50.0, 60.0))
        self.pancreas = ([(xm - 15, self.yv - self.Rv - 40, self.zdome_L - U(110.0, 125.0)),
                          (xm + 40, self.yv - 35, self.zdome_L - U(90.0, 100.0)),
                          (xm + U(0.45, 0.55) * self.a, self.yv - 10, self.zdome_L - U(70.0, 85.0))],
                         [U(10.0, 14.0), 11.0, 9.0])
        self.gallbladder = ((xm - U(0.3, 0.4) * self.a, self.cy - U(0.45, 0.6) * self.b,
                             self.zdome_R - U(110.0, 140.0)), (U(12.0, 18.0), U(14.0, 20.0), U(30.0, 40.0)))
        zt_col = min(self.zdome_L, self.zdome_R)
        self.colon = ([(xm + U(0.58, 0.66) * self.a, self.cy + U(0.0, 0.2) * self.b, zlo - 30.0),
                       (xm + U(0.6, 0.7) * self.a, self.cy + U(-0.2, 0.1) * self.b, zt_col - U(55.0, 75.0)),
                       (xm + U(0.5, 0.6) * self.a, self.cy - U(0.45, 0.6) * self.b, zt_col - U(95.0, 115.0)),
                       (xm + U(-0.1, 0.1) * self.a, self.cy - U(0.55, 0.7) * self.b, zt_col - U(130.0, 160.0)),
                       (xm - U(0.45, 0.55) * self.a, self.cy - U(0.3, 0.5) * self.b, zt_col - U(150.0, 175.0)),
                       (xm - U(0.55, 0.65) * self.a, self.cy + U(-0.1, 0.1) * self.b, zt_col - U(200.0, 230.0))],
                      [U(16.0, 24.0) for _ in range(6)])
        self.colon_gas = [U(-0.3, 0.9) for _ in range(5)]
        nb = int(rng.integers(10, 20))
        self.bowel = []
        for _ in range(nb):
            c = (xm + U(-0.55, 0.55) * self.a, self.cy + U(-0.8, 0.2) * self.b, zt_col - U(100.0, 280.0))
            self.bowel.append((c, (U(10.0, 22.0), U(10.0, 18.0), U(12.0, 28.0)), bool(rng.random() < 0.6)))

        # ribs
        self.rib_drop = U(100.0, 130.0)
        self.rib_sp = (self.z_apex - 10.0 - (self.zdome_R - U(95.0, 115.0))) / 11.0
        self.rib_z1 = self.z_apex - 10.0
        self.rib_hd = U(2.6, 3.2)
        self.rib_hz = U(4.5, 5.5)
        self.sternum_hw = U(14.0, 19.0)

        # tissue HU of this case
        self.hu = np.zeros(25, dtype=np.float32)
        self.amp = np.zeros(25, dtype=np.float32)
        for cls, ((lo, hi), amp) in _TISSUE_HU.items():
            self.hu[cls] = U(lo, hi) if hi > lo else lo
            self.amp[cls] = amp
        self.lung_grad = U(40.0, 90.0)  # gravity-dependent density increase toward the back
        self.vessel_hu = U(30.0, 50.0)

    # --- body wall ----------------------------------------------------------------------------

    def _h(self, th):
        h = 1.0
        for k, amp, ph in self.harm:
            h = h + amp * np.cos(k * th + ph)
        return h

    def _R_unit(self, th):
        c, s = np.abs(np.cos(th)), np.abs(np.sin(th))
        p = np.where(np.sin(th) > 0, self.p_post, self.p_ant)
        norm = ((c / self.a) ** p + (s / self.b) ** p) ** (1.0 / p)
        return 1.0 / (norm * self._h(th))

    def _fat(self, phi, th):
        f = self.F0 * (0.7 + 0.3 * phi / math.pi + 0.22 * np.cos(2.0 * th + self.F_ph))
        return np.maximum(f, 2.0)

    def _muscle(self, phi):
        return (self.M0 + self.P_para * np.exp(-np.square(phi / 0.5))
                + self.P_pec * np.exp(-np.square((phi - 2.2) / 0.35)))

    def scale(self, z: np.ndarray) -> np.ndarray:
        """Body scale factor per slice (1 = the reference cross-section)."""
        z = np.asarray(z, dtype=np.float64)
        amp, wl, ph = self.s_wave
        s = (1.0 + self.abd_gain * np.clip((self.zdome_R - 20.0 - z) / 120.0, 0.0, 1.0)
             - 0.06 * np.square(np.clip((z - self.z_car) / 140.0, 0.0, 1.0))
             + amp * np.sin(z / wl + ph))
        return s.astype(np.float32)

    def wall_maps(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """2D maps over (x, y): thresholds on ``scale(z)`` of the body layers and the polar terms."""
        X, Y = x[:, None].astype(np.float64), y[None, :].astype(np.float64)
        dx, dy = X - self.cx, Y - self.cy
        r = np.hypot(dx, dy)
        th = np.arctan2(dy, dx)
        R = self._R_unit(th)
        phi = np.arccos(np.clip(dy / np.maximum(r, 1e-6), -1.0, 1.0))
        F = self._fat(phi, th)
        M = self._muscle(phi)
        depths = [0.0, 2.5, 2.5 + F, 2.5 + F + M, 2.5 + F + M + _RIB_BAND]
        S = [((r + d) / R).astype(np.float32) for d in depths]
        return {"S": S, "r": r.astype(np.float32), "R": R.astype(np.float32), "phi": phi.astype(np.float32),
                "d_rib": (2.5 + F + M + 0.5 * _RIB_BAND).astype(np.float32)}

    def diaphragm(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height (z, mm) of the upper diaphragm surface over (x, y); lungs lie above it."""
        X, Y = x[:, None].astype(np.float64), y[None, :].astype(np.float64)
        out = []
        for (xd, yd), zdome, rec in ((self.dR, self.zdome_R, self.recess_R), (self.dL, self.zdome_L, self.recess_L)):
            q2 = np.square((X - xd) / self.dome_ax) + np.square((Y - yd) / self.dome_ay)
            out.append(np.maximum(zdome - self.dome_K * q2, zdome - rec))
        w = 1.0 / (1.0 + np.exp(-(X - self.xm0) / 12.0))
        zd = (1.0 - w) * out[0] + w * out[1]
        # between the domes the central tendon (under the heart) stays high: no lung descends there
        z_mid = (self.z_tendon - 20.0 * np.square((X - self.xm0 - 5.0) / 60.0)
                 - 0.6 * np.maximum(Y - (self.yv - 30.0), 0.0))
        zd = np.maximum(zd, z_mid)
        # the heart rests on the diaphragm: lower the surface under the heart's (padded) footprint
        m = self.heart_rot / (np.asarray(self.heart_semi) + 6.0)[:, None]  # rows scaled by 1/semi
        dx, dy = X - self.heart_c[0], Y - self.heart_c[1]
        v = [m[a, 0] * dx + m[a, 1] * dy for a in range(3)]
        mz = m[:, 2]
        A = float(mz @ mz)
        B = v[0] * mz[0] + v[1] * mz[1] + v[2] * mz[2]
        C = v[0] ** 2 + v[1] ** 2 + v[2] ** 2 - 1.0
        disc = B * B - A * C
        z_low = self.heart_c[2] + (-B - np.sqrt(np.maximum(disc, 0.0))) / A
        zd = np.where(disc > 0, np.minimum(zd, z_low - 2.0), zd)
        return zd.astype(np.float32)

    def xm(self, z: np.ndarray) -> np.ndarray:
        return (self.xm0 + self.xm1 * (np.asarray(z, dtype=np.float64) - self.heart_c[2]) / 100.0).astype(np.float32)

    def mediastinum_hw(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Half width (mm) of the mediastinum over (y, z): lungs need ``|x - xm(z)| > hw``."""
        knots = np.array([self.y_front_cav - 30.0, self.ytr - 40.0, self.ytr - 12.0, self.yv,
                          self.yv + self.Rv + 20.0])
        knots = np.maximum.accumulate(knots + np.arange(5) * 1e-3)
        low = np.array([9.0, 12.0, 20.0, self.Rv + 8.0, self.Rv + 12.0])
        high = np.array([14.0, 30.0, 28.0, self.Rv + 10.0, self.Rv + 14.0])
        yy = np.asarray(y, dtype=np.float64)
        pl, ph = np.interp(yy, knots, low), np.interp(yy, knots, high)
        u = np.clip((np.asarray(z, dtype=np.float64) - (self.z_heart_top - 20.0)) / 30.0, 0.0, 1.0)
        return (pl[:, None] * (1.0 - u[None, :]) + ph[:, None] * u[None, :]).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# painting of tissue classes and labels


class _Scene:
    """Tissue-class and label volumes painted from an :class:`_Anatomy` on a :class:`_Grid`."""

    def __init__(self, an: _Anatomy, grid: _Grid) -> None:
        self.an, self.g = an, grid
        self.tissue = np.zeros(grid.shape, dtype=np.uint8)
        self.label = np.zeros(grid.shape, dtype=np.uint8)
        self.maps = an.wall_maps(grid.ax[0], grid.ax[1])
        self.zd = an.diaphragm(grid.ax[0], grid.ax[1])
        self.s = an.scale(grid.ax[2])

    # --- helpers --------------------------------------------------------------------------------

    def full_box(self, zlo: float = -1e9, zhi: float = 1e9):
        g = self.g
        return (slice(0, g.shape[0]), slice(0, g.shape[1]), g.sl(2, zlo, zhi))

    def cavity(self, box) -> np.ndarray:
        return self.s[box[2]][None, None, :] > self.maps["S"][4][box[0], box[1]][:, :, None]

    def abdomen_ok(self, box) -> np.ndarray:
        _, _, Z = self.g.xyz(box)
        return self.cavity(box) & (Z < self.zd[box[0], box[1]][:, :, None] - 5.0)

    def paint(self, box, mask: np.ndarray, cls: int) -> None:
        """Set tissue ``cls`` where ``mask``; painted voxels leave the lungs (label 0)."""
        np.copyto(self.tissue[box], np.uint8(cls), where=mask)
        np.copyto(self.label[box], np.uint8(0), where=mask)

    def carve_lung(self, box, mask: np.ndarray) -> None:
        m = mask & (self.label[box] > 0)
        np.copyto(self.label[box], np.uint8(0), where=m)
        np.copyto(self.tissue[box], np.uint8(VFAT), where=m)

    def tube(self, poly, cls: int | None, wall: tuple[float, int] | None = None,
             carve: float = 3.0, allow_lung: bool = False) -> None:
        """Paint a polyline tube (radii in mm at the nodes), optionally with a wall layer."""
        nodes, radii = poly
        for p0, p1, r0, r1 in zip(nodes[:-1], nodes[1:], radii[:-1], radii[1:]):
            p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
            extra = wall[0] if wall else 0.0
            pad = max(r0, r1) + extra + carve + 1.0
            box = _seg_box(self.g, p0, p1, pad)
            if box is None:
                continue
            d, t = _seg_dist(self.g, box, p0, p1)
            r = r0 + (r1 - r0) * t
            if carve > 0:
                self.carve_lung(box, d < r + extra + carve)
            keep = None if allow_lung else (self.tissue[box] != LUNG)
            if wall:
                m = d < r + wall[0]
                self.paint(box, m if keep is None else m & keep, wall[1])
            if cls is not None:
                m = d < r
                self.paint(box, m if keep is None else m & keep, cls)

    # --- body, lungs and exclusions (also used on the coarse planning grid) ----------------------

    def body(self) -> None:
        S = self.maps["S"]
        s3 = self.s[None, None, :]
        layer = (s3 > S[0][:, :, None]).view(np.uint8).copy()
        for k in range(1, 5):
            layer += s3 > S[k][:, :, None]
        lut = np.array([AIR, SKIN, FAT, MUSCLE, MUSCLE, VFAT], dtype=np.uint8)
        np.take(lut, layer, out=self.tissue)

    def lungs(self) -> None:
        an, g = self.an, self.g
        box = self.full_box(float(self.zd.min()), an.z_apex)
        if box[2].stop <= box[2].start:
            return
        X, Y, Z = g.xyz(box)
        lung = self.cavity(box)
        lung &= Z > self.zd[:, :, None] + 1.0
        xm = an.xm(g.ax[2][box[2]])[None, None, :]
        hw = an.mediastinum_hw(g.ax[1], g.ax[2][box[2]])[None, :, :]
        lung &= np.abs(X - xm) > hw
        # apices: per side an ellipse shrinking to a point at z_apex
        kb = g.sl(2, an.z_cap, an.z_apex)
        if kb.stop > kb.start:
            k0 = kb.start - box[2].start
            zz = g.ax[2][kb]
            f = np.sqrt(np.clip(1.0 - np.square((zz - an.z_cap) / (an.z_apex - an.z_cap)), 1e-4, 1.0))
            f = f.astype(np.float32)[None, None, :]
            left = (X > xm[:, :, k0:k0 + len(zz)])
            ok = None
            for side in ("L", "R"):
                cxa, cya = an.apex_c[side]
                q = (np.square((X - cxa) / an.apex_semi[0]) + np.square((Y - cya) / an.apex_semi[1])) < np.square(f)
                sel = left if side == "L" else ~left
                ok = (q & sel) if ok is None else ok | (q & sel)
            sub = lung[:, :, k0:k0 + len(zz)]
            # around the apices (thoracic inlet) the space outside the lungs is muscle, not fat
            outer = sub & ~ok
            tb = self.tissue[box[0], box[1], kb]
            np.copyto(tb, np.uint8(MUSCLE), where=outer & (tb == VFAT))
            sub &= ok
        right = (X < xm).astype(np.uint8)  # (nx, 1, nz)
        lab = lung.view(np.uint8) * (right + np.uint8(1))
        self.label[box] = lab
        np.copyto(self.tissue[box], np.uint8(LUNG), where=lung)

    def heart(self, paint: bool = True) -> None:
        an, g = self.an, self.g
        ha, hb, hc = an.heart_semi
        box = _ellipsoid_box(g, an.heart_c, an.heart_semi, 14.0)
        if box is None:
            return
        X, Y, Z = g.xyz(box)
        dx, dy, dz = X - an.heart_c[0], Y - an.heart_c[1], Z - an.heart_c[2]
        u = [(dx * float(r[0]) + dy * float(r[1])) + dz * float(r[2]) for r in an.heart_rot]

        def q(m: float) -> np.ndarray:
            return (np.square(u[0] / (ha + m)) + np.square(u[1] / (hb + m))) + np.square(u[2] / (hc + m))

        above = Z > self.zd[box[0], box[1]][:, :, None] + 2.0
        self.carve_lung(box, (q(12.0) < 1.0) & above)
        if paint:
            self.paint(box, (q(7.0) < 1.0) & above, FAT)
            qh = q(0.0)
            self.paint(box, (qh < 1.0) & above, MYOCARDIUM)
            self.paint(box, (qh < 0.55) & above, BLOOD)

    def exclusions(self, paint: bool = True) -> None:
        """Carve mediastinal structures out of the lungs (and paint them when ``paint``)."""
        an = self.an
        self.heart(paint)
        blood = BLOOD if paint else None
        for poly in (an.aorta, an.svc, an.pa, an.lpa, an.rpa):
            self.tube(poly, blood, carve=3.0)
        self.tube(an.ivc, blood, carve=3.0)
        self.tube(an.esophagus, MUSCLE if paint else None, carve=3.0)
        for poly in (an.trachea, an.bronchus["L"], an.bronchus["R"]):
            self.tube(poly, AIRWAY if paint else None, wall=(2.5, AIRWAY_WALL) if paint else None,
                      carve=2.0, allow_lung=True)

    # --- the rest of the anatomy (full-resolution grid only) ------------------------------------

    def table(self) -> None:
        an, g = self.an, self.g
        X = g.ax[0][:, None]
        Y = g.ax[1][None, :]
        y0 = an.cy + (an.y_back - an.cy) * an.s_max + 4.0
        ytop = y0 - 0.0012 * np.square(X - an.cx)
        t = Y - ytop
        inside = np.abs(X - an.cx) < 0.95 * an.a + 20.0
        cls = np.zeros(t.shape, dtype=np.uint8)
        cls[(t >= 0) & (t < 3.0) & inside] = TABLE
        cls[(t >= 3.0) & (t < 38.0) & inside] = TABLE_FOAM
        cls[(t >= 38.0) & (t < 41.0) & inside] = TABLE
        cols = np.flatnonzero(cls)
        if cols.size == 0:
            return
        t2 = self.tissue.reshape(-1, g.shape[2])
        sub = t2[cols]
        sub = np.where(sub == AIR, cls.reshape(-1)[cols][:, None], sub)
        t2[cols] = sub

    def ribs(self) -> None:
        """Ribs and costal cartilage: a periodic pattern in (angle, z) within the chest-wall band."""
        an, g = self.an, self.g
        mp = self.maps
        smin, smax = float(self.s.min()), float(self.s.max())
        Dmin = smin * mp["R"] - mp["r"]
        Dmax = smax * mp["R"] - mp["r"]
        d_rib = mp["d_rib"]
        hd = an.rib_hd
        sel = (Dmax > d_rib - hd - 1.0) & (Dmin < d_rib + hd + 1.0) & (mp["phi"] > 0.3)
        cols = np.flatnonzero(sel)
        if cols.size == 0:
            return
        R = mp["R"].reshape(-1)[cols][:, None]
        r = mp["r"].reshape(-1)[cols][:, None]
        phi = mp["phi"].reshape(-1)[cols][:, None]
        dr = d_rib.reshape(-1)[cols][:, None]
        z = g.ax[2][None, :]
        D = self.s[None, :] * R - r
        gphi = 0.5 * phi / math.pi + 0.25 * (1.0 - np.cos(phi))  # ribs descend from back to front
        u = (an.rib_z1 - an.rib_drop * gphi - z) / an.rib_sp
        n = np.rint(u)
        dz = (u - n) * an.rib_sp
        q = np.square((D - dr) / hd) + np.square(dz / an.rib_hz)
        idx = n + 1.0  # rib number 1..12
        # anterior end of each rib (bone) and of its cartilage, as angles from the back
        bone_end = np.where(idx <= 7, 2.35, np.where(idx <= 10, 2.2, np.where(idx <= 11, 1.9, 1.45)))
        cart_end = np.where(idx <= 7, 2.85, np.where(idx <= 10, 2.6, bone_end))
        valid = (idx >= 1) & (idx <= 12) & (q < 1.0)
        bone = valid & (phi < bone_end)
        cart = valid & (phi >= bone_end) & (phi < cart_end)
        t2 = self.tissue.reshape(-1, g.shape[2])
        sub = t2[cols]
        sub[cart] = CARTILAGE
        sub[bone] = BONE
        sub[bone & (q < 0.4)] = MARROW
        t2[cols] = sub

    def sternum(self) -> None:
        an, g = self.an, self.g
        ztop = an.z_car + 50.0
        zbot = an.heart_c[2] - 0.6 * an.heart_ext_z
        yc = an.y_front + an.d_sternum
        box = g.box((an.xs - an.sternum_hw - 2, yc - 12.0, zbot), (an.xs + an.sternum_hw + 2, yc + 12.0, ztop))
        if box is None:
            return
        X, Y, Z = g.xyz(box)
        hw = an.sternum_hw * np.clip((Z - zbot) / 40.0, 0.35, 1.0)  # narrow xiphoid
        q = np.square((X - an.xs) / hw) + np.square((Y - yc) / 6.0)
        self.paint(box, q < 1.0, BONE)
        self.paint(box, q < 0.45, MARROW)

    def spine(self) -> None:
        an, g = self.an, self.g
        Rv = an.Rv
        box = g.box((an.xs - 45.0, an.yv - Rv * 1.25 - 2.0, -1e9), (an.xs + 45.0, an.yv + Rv + 16.0 + an.sp_len, 1e9))
        if box is None:
            return
        X, Y, Z = g.xyz(box)
        rv = Rv * (1.0 + 0.2 * np.clip((an.zdome_R - Z) / 150.0, 0.0, 1.0))  # lumbar bodies larger
        qb = np.square((X - an.xs) / (1.1 * rv)) + np.square((Y - an.yv) / rv)
        ph = (Z - an.rib_z1) / an.rib_sp
        dzv = np.abs(ph - np.rint(ph)) * an.rib_sp  # distance (mm) to the nearest disc centre
        disc = dzv < 3.5
        body = qb < 1.0
        self.paint(box, body, BONE)
        self.paint(box, body & (qb < 0.85), MARROW)
        self.paint(box, body & disc, DISC)
        # posterior elements: pedicles + laminae (an arch around the canal), oblique transverse
        # processes and a spinous process sloping backward; gaps at the disc levels
        ycan = an.yv + Rv + 9.0
        rc = np.sqrt(np.square(X - an.xs) + np.square(Y - ycan))
        arch = (rc > 8.0) & (rc < 12.0) & (Y > an.yv + Rv - 4.0) & (dzv > 2.5)
        lat = np.abs(X - an.xs)
        # transverse processes run from beside the canal (lat 9, ycan) to (lat 30, ycan + 14)
        tl = np.clip((lat - 9.0) / 21.0, 0.0, 1.0)
        trans = (np.abs(Y - (ycan + 14.0 * tl)) < 2.5) & (lat > 9.0) & (lat < 30.0) & (dzv > 7.0)
        spin = (lat < 2.5) & (Y > ycan + 11.0) & (Y < ycan + 11.0 + an.sp_len) & (dzv > 5.0)
        self.paint(box, arch | trans | spin, BONE)
        self.paint(box, rc <= 8.0, CANAL)

    def diaphragm_muscle(self) -> None:
        box = self.full_box(float(self.zd.min()) - 8.0, float(self.zd.max()) + 2.0)
        if box[2].stop <= box[2].start:
            return
        _, _, Z = self.g.xyz(box)
        zd = self.zd[:, :, None]
        m = self.cavity(box) & (Z > zd - 5.0) & (Z <= zd + 1.0) & (self.label[box] == 0)
        self.paint(box, m, MUSCLE)

    def ellipsoid_organ(self, centre, semi, rot, cls: int, ok_abdomen: bool = True,
                        rng: np.random.Generator | None = None, rough: float = 0.0):
        """Paint a (rotated) ellipsoid, its surface made irregular by ``rough`` x a smooth noise."""
        box = _ellipsoid_box(self.g, centre, semi, 1.0 + rough * max(semi))
        if box is None:
            return None, None
        q = _ellipsoid_q2(self.g, box, centre, semi, rot)
        if rng is not None and rough > 0:
            q += rough * _upsample(rng.standard_normal((5, 5, 5)).astype(np.float32), self.g, box)
        m = q < 1.0
        if ok_abdomen:
            m &= self.abdomen_ok(box)
        self.paint(box, m, cls)
        return box, q

    def liver(self, rng: np.random.Generator) -> None:
        an, g = self.an, self.g
        zbot = an.zdome_R - an.liver_hl - 5.0
        box = g.box((an.cx - an.a * 1.2, -1e9, zbot), (an.liver_left + 5.0, 1e9, an.zdome_R + 2.0))
        if box is None:
            return
        X, Y, Z = g.xyz(box)
        w_ant = np.clip((an.yv - 20.0 - Y) / 60.0, 0.0, 1.0)
        w_z = np.clip(1.0 - (an.zdome_R - Z) / an.liver_left_h, 0.0, 1.0)
        xl = (an.xm0 - 15.0) + (an.liver_left - an.xm0 + 15.0) * (w_ant * w_z)
        hz = an.liver_hm + (an.liver_hl - an.liver_hm) * np.clip((an.xm0 - X) / (0.8 * an.a), 0.0, 1.0)
        # irregular edges: the left lobe tip and the inferior border wander by ~1 cm
        n = _upsample(rng.standard_normal((6, 6, 6)).astype(np.float32), g, box)
        m = self.abdomen_ok(box) & (X < xl + 8.0 * n) & (Z > an.zdome_R - hz + 10.0 * n)
        self.paint(box, m, LIVER)

    def stomach(self, rng: np.random.Generator) -> None:
        an, g = self.an, self.g
        (c1, s1), (c2, s2) = an.stomach
        lo = np.minimum(np.subtract(c1, s1), np.subtract(c2, s2)) - 1.0
        hi = np.maximum(np.add(c1, s1), np.add(c2, s2)) + 1.0
        box = g.box(lo, hi)
        if box is None:
            return
        q = np.minimum(_ellipsoid_q2(g, box, c1, s1), _ellipsoid_q2(g, box, c2, s2))
        q += 0.12 * _upsample(rng.standard_normal((6, 6, 6)).astype(np.float32), g, box)
        ok = self.abdomen_ok(box)
        outer = (q < 1.0) & ok
        inner = (q < (1.0 - 4.0 / 40.0) ** 2) & ok
        self.paint(box, outer, GUT_WALL)
        self.paint(box, inner, FLUID)
        _, Y, _ = g.xyz(box)
        ymin = min(c1[1] - s1[1], c2[1] - s2[1])
        # supine patient: gas collects anteriorly (small y) above a coronal air-fluid level
        y_level = ymin + 4.0 + an.stomach_gas
        self.paint(box, inner & (Y < y_level), GAS)
        if not np.any(inner & (Y < y_level)):
            # the gas bubble is mandatory: put it at the most anterior part of the lumen
            Yb = np.broadcast_to(Y, inner.shape)
            if inner.any():
                yl = float(Yb[inner].min()) + max(an.stomach_gas, 8.0)
                self.paint(box, inner & (Y < yl), GAS)

    def kidneys(self, rng: np.random.Generator) -> None:
        an = self.an
        for side, c in an.kidneys.items():
            sgn = -1.0 if side == "R" else 1.0
            rot = _frame(np.array([0.0, 0.0, 1.0]) + np.array([-sgn * 0.25, -0.2, 0.0]))
            rot = rot[[1, 2, 0]]  # semi (x, y, z) ~ (v2, v3, long axis)
            box, q = self.ellipsoid_organ(c, an.kidney_semi, rot, KIDNEY, rng=rng, rough=0.1)
            if box is None:
                continue
            X, _, _ = self.g.xyz(box)
            sinus = (q < 0.35) & ((X - c[0]) * sgn < 6.0) & self.abdomen_ok(box)
            self.paint(box, sinus, VFAT)

    def colon_and_bowel(self, rng: np.random.Generator) -> None:
        an, g = self.an, self.g
        nodes, radii = an.colon
        for i, (p0, p1, r0, r1) in enumerate(zip(nodes[:-1], nodes[1:], radii[:-1], radii[1:])):
            p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
            box = _seg_box(g, p0, p1, max(r0, r1) + 1.0)
            if box is None:
                continue
            d, t = _seg_dist(g, box, p0, p1)
            r = r0 + (r1 - r0) * t
            ok = self.abdomen_ok(box)
            outer = (d < r) & ok
            inner = (d < r - 3.0) & ok
            self.paint(box, outer, GUT_WALL)
            self.paint(box, inner, STOOL)
            _, Y, _ = g.xyz(box)
            yc = p0[1] + (p1[1] - p0[1]) * t
            gas = inner & (Y < yc + an.colon_gas[i] * r)
            noise = _upsample(rng.standard_normal((6, 6, 6)).astype(np.float32), g, box)
            gas |= inner & (noise > 1.1)
            self.paint(box, gas, GAS)
        for c, semi, has_gas in an.bowel:
            box, q = self.ellipsoid_organ(c, semi, None, GUT_WALL, rng=rng, rough=0.2)
            if box is None:
                continue
            inner = (q < (1.0 - 3.0 / max(semi)) ** 2) & self.abdomen_ok(box)
            self.paint(box, inner, FLUID)
            if has_gas:
                _, Y, _ = g.xyz(box)
                self.paint(box, inner & (Y < c[1] + 0.2 * semi[1]), GAS)

    def abdomen(self, rng: np.random.Generator) -> None:
        an = self.an
        self.diaphragm_muscle()
        self.liver(rng)
        gc, gs = an.gallbladder
        self.ellipsoid_organ(gc, gs, None, FLUID)
        self.ellipsoid_organ(an.spleen_c, an.spleen_semi, an.spleen_rot[[1, 0, 2]], SPLEEN, rng=rng, rough=0.25)
        self.kidneys(rng)
        self.tube(an.pancreas, PANCREAS, carve=0.0)
        self.colon_and_bowel(rng)
        self.stomach(rng)
        # psoas muscles beside the lumbar spine
        zt = an.zdome_R - 110.0
        for sgn in (-1.0, 1.0):
            poly = ([(an.xs + sgn * (an.Rv + 10.0), an.yv + 2.0, zt),
                     (an.xs + sgn * (an.Rv + 28.0), an.yv - 8.0, an.zlo - 40.0)], [8.0, 22.0])
            self.tube(poly, MUSCLE, carve=0.0)

    def paint_all(self, rng: np.random.Generator) -> None:
        self.body()
        self.table()
        self.ribs()
        self.lungs()
        self.abdomen(rng)
        self.exclusions(paint=True)
        self.spine()
        self.sternum()


# ----------------------------------------------------------------------------------------------
# planning on the coarse grid: vessel trees, lesion and nodule positions


def grow_vessel_tree(rng: np.random.Generator, root: np.ndarray, pts: np.ndarray, r_leaf: float,
               r_max: float) -> list[tuple[np.ndarray, np.ndarray, float, float, int]]:
    """Binary tree from ``root`` to every point of ``pts`` by recursive bisection of the point set.

    Returns segments ``(p0, p1, r0, r1, n_leaves)`` (mm); radii follow ``r_leaf * sqrt(leaves)``.
    """
    segs: list[tuple[np.ndarray, np.ndarray, float, float, int]] = []

    def rad(n: int) -> float:
        return min(r_max, r_leaf * n ** 0.42)

    stack = [(root, np.arange(len(pts)), 0)]
    while stack:
        p, idx, gen = stack.pop()
        n = len(idx)
        if n == 1:
            segs.append((p, pts[idx[0]], rad(1), 0.7 * rad(1), 1))
            continue
        P = pts[idx]
        c = P.mean(axis=0)
        f = float(rng.uniform(0.3, 0.5)) if gen else 0.3
        q = p + f * (c - p)
        d = P - c
        _, v = np.linalg.eigh(d.T @ d)
        order = np.argsort(d @ v[:, -1])
        k = n // 2 + int(rng.integers(-(n // 6), n // 6 + 1)) if n >= 6 else n // 2
        k = min(max(k, 1), n - 1)
        segs.append((p, q, rad(n), rad(max(k, n - k)), n))
        stack.append((q, idx[order[:k]], gen + 1))
        stack.append((q, idx[order[k:]], gen + 1))
    return segs


class _Plan:
    """Vessel trees, airway branches, lesions and nodules planned on the coarse lung mask."""

    def __init__(self, rng: np.random.Generator, an: _Anatomy, fov: Sequence[float], lesions: bool,
                 nodules: bool) -> None:
        cshape = [max(4, int(round(f / _COARSE_MM))) for f in fov]
        cg = _Grid(cshape, [f / n for f, n in zip(fov, cshape)])
        sc = _Scene(an, cg)
        sc.body()
        sc.lungs()
        sc.exclusions(paint=False)
        lab = sc.label
        vox_ml = float(np.prod(cg.spacing)) / 1000.0
        self.coarse_lung_ml = {"L": float((lab == 1).sum()) * vox_ml, "R": float((lab == 2).sum()) * vox_ml}
        X, Y, Z = (np.broadcast_to(a, cg.shape) for a in cg.xyz((slice(None),) * 3))
        jitter = np.array(cg.spacing) / 2.0

        def sample(mask: np.ndarray, n: int, weight: np.ndarray | None = None) -> np.ndarray:
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                return np.zeros((0, 3))
            p = None
            if weight is not None:
                w = weight.reshape(-1)[idx].astype(np.float64)
                p = w / w.sum()
            pick = rng.choice(idx, size=n, replace=idx.size < n, p=p)
            pts = np.stack([X.reshape(-1)[pick], Y.reshape(-1)[pick], Z.reshape(-1)[pick]], axis=1)
            return pts + rng.uniform(-1.0, 1.0, size=pts.shape) * jitter

        # vessel trees: arteries from the hilum, veins from the left atrium; their leaves are lung
        # points on a jittered lattice (1 coarse cell in 4), so vessels reach every part of the lung
        self.vessels: list[tuple[np.ndarray, np.ndarray, float, float, int]] = []
        self.airways: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        I, J, K = np.indices(cg.shape)
        off = rng.integers(0, 2, 3)
        lattice = ((I + off[0]) % 2 == 0) & ((J + K + off[1]) % 2 == 0)
        for side, lv in (("L", 1), ("R", 2)):
            m = lab == lv
            if not m.any():
                continue
            sel = np.flatnonzero(m & lattice)
            if sel.size < 4:
                sel = np.flatnonzero(m)
            pts = np.stack([X.reshape(-1)[sel], Y.reshape(-1)[sel], Z.reshape(-1)[sel]], axis=1)
            pts = pts + rng.uniform(-1.0, 1.0, size=pts.shape) * np.array(cg.spacing)
            pts = pts[rng.permutation(len(pts))]
            n_art = max(1, int(round(len(pts) * rng.uniform(0.5, 0.6))))
            art = grow_vessel_tree(rng, np.asarray(an.hilum[side], float), pts[:n_art], 1.0, 7.5)
            ven = grow_vessel_tree(rng, np.asarray(an.vein_root[side], float), pts[n_art:], 1.0, 8.0) \
                if len(pts) > n_art else []
            self.vessels += art + ven
            # bronchi run beside the larger arteries
            for p0, p1, r0, r1, nl in art:
                if nl < n_art // 10:
                    continue
                u = p1 - p0
                if np.linalg.norm(u) < 1e-3:
                    continue
                off = _frame(u)[1] * (r0 + 0.8 * r0 + 1.5)
                self.airways.append((p0 + off, p1 + off, 0.8 * r0 + 0.4, 0.8 * r1 + 0.4))

        # lesions: peripheral, posterior and lower-lobe weighted, bilateral
        self.lesions: list[dict[str, Any]] = []
        lung = lab > 0
        total_ml = sum(self.coarse_lung_ml.values())
        if lesions and lung.any():
            dist = ndi.distance_transform_edt(lung, sampling=cg.spacing)
            zl = Z[lung]
            zrel = (Z - zl.min()) / max(float(zl.max() - zl.min()), 1.0)
            post = np.clip((Y - an.cy) / an.b, -1.0, 1.0)
            w = np.exp(-dist / 20.0) * np.exp(-1.6 * zrel) * (1.2 + post) * lung
            n = int(rng.integers(2, 9))
            # more lesions, more infected lung: ~3-6% with 2 lesions up to ~15-20% with 8
            self.target_fraction = float(min(rng.uniform(0.015, 0.03) * n, 0.22))
            target = self.target_fraction * total_ml * 1000.0  # mm^3
            vols = rng.dirichlet(np.full(n, 1.5)) * target
            first = "L" if rng.random() < 0.5 else "R"
            for i in range(n):
                side = first if i % 2 == 0 else ("R" if first == "L" else "L")
                if rng.random() < 0.25:
                    side = "L" if rng.random() < 0.5 else "R"
                m = (lab == (1 if side == "L" else 2))
                if not m.any():
                    m = lung
                c = sample(m, 1, w)[0]
                if n >= 4 and i >= n - n // 3:
                    radius = float(rng.uniform(5.0, 12.0))  # small satellite lesions
                else:
                    radius = float(np.clip((3.0 * vols[i] / (4.0 * math.pi * 0.25)) ** (1.0 / 3.0), 5.0, 30.0))
                u = rng.random()
                kind = "ggo" if u < 0.6 else ("mixed" if u < 0.85 else "consolidation")
                nb = int(rng.integers(3, 7))
                blobs = []
                for _ in range(nb):
                    off = rng.normal(0.0, 0.4, 3) * radius
                    semi = radius * rng.uniform(0.6, 1.0) * rng.uniform(0.8, 1.25, 3)
                    blobs.append((c + off, np.maximum(semi, 3.0)))
                self.lesions.append({
                    "kind": kind, "centre": c, "radius_mm": radius, "side": side, "blobs": blobs,
                    "hu_ggo": float(rng.uniform(-700.0, -300.0)),
                    "hu_cons": float(rng.uniform(-100.0, 50.0)),
                    "noise": rng.standard_normal((7, 7, 7)).astype(np.float32),
                })

        # solid nodules away from the pleura
        self.nodules: list[dict[str, Any]] = []
        if nodules and lung.any():
            dist = ndi.distance_transform_edt(lung, sampling=cg.spacing)
            for _ in range(int(rng.integers(1, 5))):
                r = float(rng.uniform(2.0, 10.0))
                m = dist > r + 6.0
                if not m.any():
                    m = dist >= dist.max()
                c = sample(m, 1)[0]
                self.nodules.append({"centre": c, "radius_mm": r, "hu": float(rng.uniform(-50.0, 100.0))})


# ----------------------------------------------------------------------------------------------
# image synthesis


def _paint_segments_hu(img: np.ndarray, tissue: np.ndarray, grid: _Grid, segs, hu: float,
                       allowed: Sequence[int]) -> None:
    """Blend tapered tubes of value ``hu`` into ``img`` (raising only), with partial-volume edges."""
    h = float(np.prod(grid.spacing)) ** (1.0 / 3.0)
    for p0, p1, r0, r1, *_ in segs:
        rm = max(r0, r1, 0.5 * h)
        box = _seg_box(grid, p0, p1, rm + h)
        if box is None:
            continue
        d, t = _seg_dist(grid, box, p0, p1)
        r = r0 + (r1 - r0) * t
        # Voxel-wide ramp around max(r, h/2), scaled so that the cross-section integral of the
        # weight stays ~pi r^2: sub-voxel vessels become faint, as a partial-volume average would.
        np.maximum(r, 0.5 * h, out=r)
        w = (r - d) * (1.0 / h) + 0.5
        np.clip(w, 0.0, 1.0, out=w)
        c = min(1.0, 3.0 * ((r0 + r1) / 2.0) ** 2 / (h * h))
        if c < 1.0:
            w *= c
        tb = tissue[box]
        ok = tb == allowed[0]
        for a in allowed[1:]:
            ok |= tb == a
        sub = img[box]
        new = sub + w * (hu - sub)
        np.copyto(sub, new, where=ok & (new > sub))


def paint_vessel_segments(img: np.ndarray, tissue: np.ndarray, spacing: Sequence[float], segs, hu: float,
                          allowed: Sequence[int]) -> None:
    """Blend the tubes ``segs`` (of :func:`grow_vessel_tree`, mm in the phantom's frame: LPS, centred on the
    volume) of value ``hu`` into ``img`` in place, only over voxels whose ``tissue`` class is in ``allowed`` and only
    where that raises the value (contrast-enhanced vessels), with partial-volume edges."""
    _paint_segments_hu(img, tissue, _Grid(img.shape, spacing), segs, hu, allowed)


def _paint_airways_hu(img: np.ndarray, tissue: np.ndarray, grid: _Grid, segs, wall_hu: float) -> None:
    """Intrapulmonary bronchi: soft-tissue wall ring and air lumen blended into lung voxels."""
    h = float(np.prod(grid.spacing)) ** (1.0 / 3.0)
    for p0, p1, r0, r1 in segs:
        tw = max(0.8, 0.25 * max(r0, r1))
        box = _seg_box(grid, p0, p1, max(r0, r1) + tw + h)
        if box is None:
            continue
        d, t = _seg_dist(grid, box, p0, p1)
        r = r0 + (r1 - r0) * t
        ww = np.clip((r + tw - d) * (1.0 / h) + 0.5, 0.0, 1.0)
        wl = np.clip((r - d) * (1.0 / h) + 0.5, 0.0, 1.0)
        ok = tissue[box] == LUNG
        sub = img[box]
        new = sub + (ww - wl) * (wall_hu - sub)
        new += wl * (-1000.0 - new)
        np.copyto(sub, new, where=ok & (ww > 0))


def _paint_lesions(img: np.ndarray, label: np.ndarray, grid: _Grid, plan: _Plan,
                   tex_amp: float) -> list[dict[str, Any]]:
    """Blend the planned lesions over lung voxels (soft edges, textured) and label them 3."""
    out = []
    for les in plan.lesions:
        c, R = les["centre"], les["radius_mm"]
        box = grid.box(c - 1.9 * R - 4.0, c + 1.9 * R + 4.0)
        if box is None:
            out.append({**les, "voxels": 0})
            continue
        f = None
        for bc, semi in les["blobs"]:
            fb = 1.0 - _ellipsoid_q2(grid, box, bc, semi)
            f = fb if f is None else np.maximum(f, fb)
        noise = _upsample(les["noise"], grid, box)
        f += 0.35 * noise
        lb = label[box]
        lung = lb > 0
        mask = (f > 0.12) & lung
        alpha = np.clip(f * (1.0 / 0.24), 0.0, 1.0)
        if les["kind"] == "ggo":
            target = les["hu_ggo"] + tex_amp * noise
        elif les["kind"] == "consolidation":
            target = les["hu_cons"] + 0.5 * tex_amp * noise
        else:  # ground glass with a consolidated core
            target = np.where(f > 0.75, les["hu_cons"], les["hu_ggo"]) + tex_amp * noise
        sub = img[box]
        np.copyto(sub, sub + alpha * (target - sub), where=lung & (alpha > 0))
        np.copyto(lb, np.uint8(3), where=mask)
        out.append({**les, "voxels": int(mask.sum())})
    return out


def _paint_nodules(img: np.ndarray, label: np.ndarray, grid: _Grid, plan: _Plan) -> None:
    h = float(np.prod(grid.spacing)) ** (1.0 / 3.0)
    for nod in plan.nodules:
        c, r = nod["centre"], nod["radius_mm"]
        box = grid.box(c - r - h, c + r + h)
        if box is None:
            continue
        d = np.sqrt(_ellipsoid_q2(grid, box, c, (1.0, 1.0, 1.0)))
        w = np.clip((r - d) * (1.0 / h) + 0.5, 0.0, 1.0)
        lb = label[box]
        ok = lb > 0
        sub = img[box]
        np.copyto(sub, sub + w * (nod["hu"] - sub), where=ok & (w > 0))


# ----------------------------------------------------------------------------------------------
# acquisition and patient variety (issue 28): the anatomy-dependent parts


_CONTRAST_CLASSES: dict[str, int] = {"blood": BLOOD, "liver": LIVER, "spleen": SPLEEN, "kidney": KIDNEY,
                                     "myocardium": MYOCARDIUM, "pancreas": PANCREAS, "gut_wall": GUT_WALL}


def _apply_patient_hu(an: _Anatomy, acq: Mapping[str, Any]) -> None:
    """Inspiration depth (lung HU) and contrast phase: change the case's HU per tissue class."""
    an.hu[LUNG] = np.float32(acq["lung_hu"])
    con = acq["contrast"]
    for name, v in con["set_hu"].items():
        if name == "lung_vessels":
            an.vessel_hu = float(v)
        else:
            an.hu[_CONTRAST_CLASSES[name]] = np.float32(v)
    for name, v in con["add_hu"].items():
        an.hu[_CONTRAST_CLASSES[name]] += np.float32(v)


def _paint_arms(scene: _Scene, arms: Mapping[str, Any]) -> int:
    """Arms down beside the chest (skin, fat, muscle, humerus or forearm bones), painted on air only.

    Returns the number of arm voxels in the grid (the field of view truncates them as it comes).
    """
    an, g = scene.an, scene.g
    ax0, ay0 = (float(v) for v in arms["semi_mm"])
    yc = an.cy + float(arms["y_offset"]) * an.b
    z = g.ax[2].astype(np.float64)
    fore = z < an.zdome_R - float(arms["elbow_below_dome_mm"])
    f = np.where(fore, 0.78, 1.0)  # the forearm is thinner than the upper arm
    az, bz = ax0 * f, ay0 * f
    rh = float(arms["humerus_radius_mm"])
    n_arm = 0
    for sgn, th in ((1.0, 0.0), (-1.0, math.pi)):
        half = float(an._R_unit(np.array(th))) * scene.s.astype(np.float64)  # body half width per slice
        xc = an.cx + sgn * (half + float(arms["gap_mm"]) + az)
        box = g.box((float((xc - az).min()) - 1.0, yc - ay0 - 1.0, -1e9),
                    (float((xc + az).max()) + 1.0, yc + ay0 + 1.0, 1e9))
        if box is None:
            continue
        X, Y, _ = g.xyz(box)
        xz = xc[box[2]].astype(np.float32)[None, None, :]
        a3 = az[box[2]].astype(np.float32)[None, None, :]
        b3 = bz[box[2]].astype(np.float32)[None, None, :]
        fo = fore[box[2]][None, None, :]
        dx, dy = X - xz, Y - yc
        air = scene.tissue[box] == AIR

        q = [np.square(dx / np.maximum(a3 - m, 1.0)) + np.square(dy / np.maximum(b3 - m, 1.0)) < 1.0
             for m in (0.0, 2.5, 2.5 + float(arms["fat_mm"]))]  # skin, fat, muscle outlines
        arm = q[0] & air
        n_arm += int(arm.sum())
        scene.paint(box, arm, SKIN)
        scene.paint(box, q[1] & arm, FAT)
        scene.paint(box, q[2] & arm, MUSCLE)
        # humerus (slightly lateral in the arm) above the elbow; radius and ulna below it
        r_hum = np.sqrt(np.square(dx - sgn * 0.1 * a3) + np.square(dy))
        r_rad = np.sqrt(np.square(dx) + np.square(dy - 0.35 * b3))
        r_uln = np.sqrt(np.square(dx) + np.square(dy + 0.35 * b3))
        rf = 0.55 * rh
        bone = np.where(fo, (r_rad < rf) | (r_uln < rf), r_hum < rh) & arm
        marrow = np.where(fo, (r_rad < rf - 2.0) | (r_uln < rf - 2.0), r_hum < rh - 3.0) & arm
        scene.paint(box, bone, BONE)
        scene.paint(box, marrow, MARROW)
    return n_arm


def _dependent_band(scene: _Scene, lv: int, thick: float, height: float,
                    level: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of lung ``lv`` posterior to a per-slice coronal level: a dependent (supine) crescent.

    The band is ``thick`` mm deep (behind ``level``, default the most posterior lung point of the
    slice) at the lowest lung slice, tapering to 0 at ``height`` mm above it.  Returns the mask and
    the per-slice front of the band (y, mm) for a band stacked in front of it.
    """
    g = scene.g
    m = scene.label == lv
    ny, nz = g.shape[1], g.shape[2]
    anyj = m.any(axis=0)  # (ny, nz)
    has = anyj.any(axis=0)
    front = np.full(nz, np.inf, dtype=np.float32)
    if not has.any():
        return np.zeros(g.shape, dtype=bool), front
    jlast = ny - 1 - np.argmax(anyj[::-1, :], axis=0)
    ymax = np.where(has, g.ax[1][jlast], -np.inf).astype(np.float32)
    if level is not None:
        ymax = np.minimum(ymax, level)
    zlow = float(g.ax[2][np.flatnonzero(has)[0]])
    t = np.clip(1.0 - (g.ax[2] - zlow) / max(height, 1e-3), 0.0, 1.0) ** 0.6
    T = (thick * t).astype(np.float32)
    front = np.where(has & (T > 0), ymax - T, np.inf).astype(np.float32)
    mask = m & (g.ax[1][None, :, None] > front[None, None, :])
    return mask, front


def _paint_pleura(scene: _Scene, acq: Mapping[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Pleural effusion (fluid, label 0, carved out of the lungs) and dependent atelectasis masks."""
    eff, atel = acq.get("effusion"), acq.get("atelectasis")
    eff_mask = at_mask = None
    for side, lv in (("left", 1), ("right", 2)):
        level = None
        if eff and side in eff["sides"]:
            e, level = _dependent_band(scene, lv, float(eff["thickness_mm"][side]), float(eff["height_mm"]))
            eff_mask = e if eff_mask is None else eff_mask | e
        if atel and side in atel["sides"]:
            a, _ = _dependent_band(scene, lv, float(atel["thickness_mm"]), float(atel["height_mm"]), level)
            if eff_mask is not None:
                a &= ~eff_mask
            at_mask = a if at_mask is None else at_mask | a
    if eff_mask is not None:
        scene.paint((slice(None),) * 3, eff_mask, FLUID)
    return eff_mask, at_mask


def _paint_emphysema(img: np.ndarray, label: np.ndarray, tissue: np.ndarray, scene: _Scene,
                     emph: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Low-attenuation patches and bullae in the upper lobes (label unchanged); returns the mask."""
    an, g = scene.an, scene.g
    z0 = an.z_car - 30.0
    out = np.zeros(g.shape, dtype=bool)
    box = scene.full_box(z0, an.z_apex)
    if box[2].stop <= box[2].start:
        return out
    _, _, Z = g.xyz(box)
    lung = ((label[box] == 1) | (label[box] == 2)) & (tissue[box] == LUNG)
    if not lung.any():
        return out
    ext = [g.fov[0], g.fov[1], max(float(an.z_apex - z0), 1.0)]
    coarse = rng.standard_normal([max(2, int(math.ceil(e / 10.0)) + 1) for e in ext]).astype(np.float32)
    f = _upsample(coarse, g, box)
    f += np.clip((Z - z0) / 60.0, 0.0, 1.0) * 1.2  # more toward the apices
    thr = float(np.quantile(f[lung], 1.0 - float(emph["fraction"])))
    m = lung & (f > thr)
    idx = np.flatnonzero(lung)
    X, Y, _ = g.xyz(box)
    for r in emph["bullae_radius_mm"]:
        c = np.unravel_index(int(rng.choice(idx)), lung.shape)
        cw = (float(X[c[0], 0, 0]), float(Y[0, c[1], 0]), float(Z[0, 0, c[2]]))
        m |= lung & (np.square(X - cw[0]) + np.square(Y - cw[1]) + np.square(Z - cw[2]) < r * r)
    sub = img[box]
    m &= sub < -400.0  # spare vessels, airway walls, lesions and nodules
    new = np.float32(emph["hu"]) + np.float32(0.1) * (sub - an.hu[LUNG])
    np.copyto(sub, new, where=m)
    out[box] = m
    return out


def _body_extent(an: _Anatomy) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) of the body outline at its widest slice (mm, patient frame)."""
    th = np.linspace(0.0, 2.0 * math.pi, 721)
    R = an._R_unit(th) * an.s_max
    xs, ys = an.cx + R * np.cos(th), an.cy + R * np.sin(th)
    return float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())


def _crop_slices(an: _Anatomy, grid: _Grid, trunc: Mapping[str, Any]) -> tuple[slice, slice, slice]:
    """Field-of-view truncation: the kept index ranges of the generated grid (see sample_acquisition)."""

    def widen(s: slice, n: int, n_min: int) -> slice:
        n_min = min(n, n_min)
        a = min(max(s.start, 0), n)
        b = min(max(s.stop, a), n)
        while b - a < n_min:
            if b < n:
                b += 1
            if b - a < n_min and a > 0:
                a -= 1
        return slice(a, b)

    def window(axis: int, lo: float, hi: float, keep: float, shift: float) -> slice:
        if keep >= 1.0:
            return slice(0, grid.shape[axis])
        w = hi - lo
        c = 0.5 * (lo + hi) + shift * (1.0 - keep) * w / 2.0
        return widen(grid.sl(axis, c - keep * w / 2.0, c + keep * w / 2.0), grid.shape[axis], 8)

    x0, x1, y0, y1 = _body_extent(an)
    sx = window(0, x0, x1, float(trunc["lateral_keep"]), float(trunc["lateral_shift"]))
    sy = window(1, y0, y1, float(trunc["ap_keep"]), float(trunc["ap_shift"]))
    nz = grid.shape[2]
    zlo, zhi = float(grid.ax[2][0]), float(grid.ax[2][-1])
    fz = zhi - zlo
    u0, u1 = (float(v) for v in trunc["cc_u"])
    mode = trunc["craniocaudal"]
    if mode == "bases":  # lung bases + upper abdomen
        lo, hi = zlo + 0.1 * u0 * fz, an.z_base + 40.0 + 70.0 * u1
    elif mode == "chest":  # no abdomen; sometimes the lowest lung is cut too
        lo, hi = an.z_base - 20.0 + 60.0 * u0, zhi
    elif mode == "top":
        lo, hi = zlo, zhi - (0.1 + 0.3 * u1) * fz
    elif mode == "both":
        lo, hi = zlo + (0.05 + 0.25 * u0) * fz, zhi - (0.05 + 0.25 * u1) * fz
    else:
        lo, hi = zlo, zhi
    sz = grid.sl(2, lo - 1e-3, hi + 1e-3)
    if sz.stop <= sz.start:
        sz = slice(min(max(sz.start, 0), nz - 1), min(max(sz.start, 0), nz - 1) + 1)
    sz = widen(sz, nz, max(8, int(math.ceil(0.35 * nz))))
    return sx, sy, sz


def _to_ras(p: np.ndarray) -> list[float]:
    return [float(-p[0]), float(-p[1]), float(p[2])]


def _to_voxel(p: np.ndarray, grid: _Grid) -> list[float]:
    return [float(p[a] / grid.spacing[a] + (grid.shape[a] - 1) / 2.0) for a in range(3)]


def generate_chest_ct(
    shape: Sequence[int] = (128, 128, 96),
    spacing: Sequence[float] = (3.0, 3.0, 3.0),
    seed: int = 0,
    lesions: bool = True,
    nodules: bool = False,
    noise_std: float = 20.0,
    blur_mm: float | None = None,
    variety: bool = False,
    acquisition: Mapping[str, Any] | None = None,
    abdomen_mm: float | None = None,
) -> ChestCTCase:
    """Generate one synthetic chest + upper-abdomen CT with lung and infection labels.

    Args:
        shape: array shape (i, j, k); i toward the patient's left, j posterior, k superior.
        spacing: voxel size in mm along (i, j, k).  The field of view is ``shape * spacing`` mm;
            the anatomy has real adult sizes (body ~320-360 mm wide, ~220-250 mm deep), so a
            smaller field of view crops the body as a real scan would.  Cranio-caudally the lowest
            18-32% of the field of view (15-100 mm) is abdomen below the lung bases.
        seed: seed of ``np.random.default_rng``; the same arguments give identical arrays.
        lesions: add 2-8 COVID-19-like lesions (ground glass -700..-300 HU, consolidation
            -100..+50 HU, or mixed), peripheral, posterior and lower-lobe weighted, 10-60 mm,
            labelled 3.
        nodules: add 1-4 solid nodules (-50..+100 HU, 4-20 mm) inside the lungs; they keep the
            lung label and are listed in ``info["nodules"]``.
        noise_std: standard deviation (HU) of the additive, slightly in-plane correlated noise.
            With ``variety`` the noise level is drawn instead; 0 still disables the noise.
        blur_mm: full width at half maximum (mm) of the Gaussian point-spread function applied to
            the image (not the labels); ``None`` means 1.2 voxel along each axis, 0 disables it.
            With ``variety`` it sets the in-plane part only (z: the slice thickness).
        variety: draw per case the acquisition and patient variety of real chest CT (issue 28), from
            generators of their own (:func:`~monai_ext.phantoms.chest_ct_acquisition.sample_acquisition`,
            seeded ``[seed, 28, k]``), so ``variety=False`` gives exactly the phantoms of before:

            * field-of-view truncation (about half of the cases): lateral (60-100% of the body
              width kept, the lungs then often reach the image border), anterior-posterior (60-100%
              of the depth) and cranio-caudal (lung bases + upper abdomen, chest without abdomen,
              apices cut, or both slabs; at least 35% of the slices and 8 slices kept).  The arrays
              are cropped and the affine origin moved (:func:`crop_affine`), so the shape differs
              per case and the world position of every kept voxel is that of the uncropped volume;
              the world origin is then no longer the volume centre.
            * arms up (out of view) or down beside the chest (skin, fat, muscle, humerus; radius and
              ulna below the elbow), 5-40 mm from the body or touching; label 0.
            * contrast phase: none, arterial (blood 250-450 HU, lung vessels 150-350 HU) or portal
              venous (blood 140-200, lung vessels 120-180, liver 100-140, spleen 110-140, kidneys
              150-220, myocardium +30..50 HU).
            * reconstruction kernel: smooth (extra in-plane Gaussian, FWHM 0.7-1.4 voxel), standard,
              sharp (unsharp mask, gain 0.6-1.5); the noise is shaped by the same kernel.
            * noise: standard 10-25 HU or low dose 40-90 HU (at 3 mm, standard kernel), times
              ``(thickness / 3 mm) ** -0.5`` and a kernel factor (smooth 0.75, sharp 1 + 0.35 gain).
            * slice thickness 0.6-5 mm, the Gaussian z point-spread (FWHM = thickness); for 40% of
              the cases the volume is generated at a z spacing of 1.5, 2, 3 or 5 mm (the number of
              slices changes, the z field of view is kept).
            * patient size: every length times 0.8-1.2 (the anatomy is drawn on a grid of spacing
              ``spacing / scale``; every mm in ``info`` is a true world mm).
            * inspiration: lung parenchyma mean -900 (deep inspiration) to -700 HU (expiration), the
              gravity gradient kept.
            * confounders: pleural effusion (p 0.25; 0-20 HU, dependent crescent at the bases, 5-40
              mm, label 0), dependent atelectasis (-200..+40 HU band behind the lung or beside the
              effusion, 5-20 mm; lung label), emphysema (p 0.2; -1000..-950 HU patches and bullae in
              the upper lobes; lung label).

            What was drawn is in ``info["acquisition"]`` (JSON-serialisable; the keys of
            :func:`sample_acquisition` plus ``crop`` (``start``/``stop`` indices in the generated
            grid, ``uncropped_shape``), ``generated_shape``, ``noise_std``, ``psf_fwhm_mm``,
            ``arm_voxels`` and ``voxels`` (effusion, atelectasis, emphysema counts in the output))
            and the masks of the confounders in :attr:`ChestCTCase.findings`.
        acquisition: with ``variety``, forced values of some options (keys and values listed in
            :data:`~monai_ext.phantoms.chest_ct_acquisition.ACQUISITION_OPTIONS`, e.g.
            ``{"contrast": "arterial", "craniocaudal": "none"}``); the other options keep their draws.
        abdomen_mm: height (world mm) of the abdomen-only slab between the bottom of the field of view and the
            lowest lung point; ``None``: drawn as above (18-32% of the field of view, 15-100 mm). An abdominal
            field of view (the whole liver) needs about 120 mm.

    Returns:
        :class:`ChestCTCase` with a float32 HU image, a uint8 label map of the same shape, the
        RAS affine ``diag(-sx, -sy, sz)`` + origin, the spacing and a generation record.
    """
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive integers, got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0 HU, got {noise_std}")
    if acquisition and not variety:
        raise ValueError("acquisition overrides need variety=True")
    if abdomen_mm is not None and not float(abdomen_mm) >= 0:
        raise ValueError(f"abdomen_mm must be >= 0 mm or None, got {abdomen_mm}")
    rng = np.random.default_rng(seed)
    acq = sample_acquisition(seed, spacing, acquisition) if variety else None
    ps = 1.0  # patient scale: internal (anatomy) mm * ps = world mm
    if acq is not None:
        ps = float(acq["patient_scale"])
        zs = float(acq["z_spacing_mm"])
        shape = (shape[0], shape[1], max(1, int(round(shape[2] * spacing[2] / zs))))
        spacing = (spacing[0], spacing[1], zs)
    grid = _Grid(shape, [s / ps for s in spacing] if acq is not None else spacing)
    an = _Anatomy(rng, grid.fov, None if abdomen_mm is None else float(abdomen_mm) / ps)
    if acq is not None:
        _apply_patient_hu(an, acq)
    plan = _Plan(rng, an, grid.fov, lesions, nodules)

    scene = _Scene(an, grid)
    scene.paint_all(rng)
    tissue, label = scene.tissue, scene.label
    eff_mask = at_mask = emph_mask = None
    if acq is not None:
        if acq["arms"]["position"] == "down":
            acq["arm_voxels"] = _paint_arms(scene, acq["arms"])
        eff_mask, at_mask = _paint_pleura(scene, acq)

    # tissue classes -> HU, plus a smooth texture (coarse random nodes, trilinear upsampling)
    img = np.take(an.hu, tissue)
    tshape = [max(2, int(math.ceil(f / _TEXTURE_MM)) + 1) for f in grid.fov]
    tex = _upsample(rng.standard_normal(tshape).astype(np.float32), grid)
    tex *= np.take(an.amp, tissue)
    img += tex
    del tex
    lbox = scene.full_box(float(scene.zd.min()), an.z_apex)
    if lbox[2].stop > lbox[2].start:
        yg = (an.lung_grad * np.clip((grid.ax[1] - an.cy) / an.b, -1.0, 1.0)).astype(np.float32)
        img[lbox] += (tissue[lbox] == LUNG) * yg[None, :, None]
    if eff_mask is not None:
        np.copyto(img, np.float32(acq["effusion"]["hu"]) + 0.3 * (img - an.hu[FLUID]), where=eff_mask)
    if at_mask is not None:
        np.copyto(img, np.float32(acq["atelectasis"]["hu"]) + 0.3 * (img - an.hu[LUNG]), where=at_mask)

    painted = _paint_lesions(img, label, grid, plan, 60.0) if lesions else []
    _paint_segments_hu(img, tissue, grid, plan.vessels, an.vessel_hu, (LUNG, VFAT))
    _paint_airways_hu(img, tissue, grid, plan.airways, float(an.hu[AIRWAY_WALL]))
    if nodules:
        _paint_nodules(img, label, grid, plan)
    if acq is not None and acq["emphysema"]:
        emph_mask = _paint_emphysema(img, label, tissue, scene, acq["emphysema"],
                                     np.random.default_rng([int(seed), 28, 100]))

    if acq is None:
        fwhm = [1.2 * s for s in spacing] if blur_mm is None else [float(blur_mm)] * 3
    else:
        fxy = [1.2 * s for s in spacing[:2]] if blur_mm is None else [float(blur_mm)] * 2
        fwhm = fxy + [float(acq["slice_thickness_mm"])]
    sig = [f / 2.3548 / s for f, s in zip(fwhm, spacing)]
    img = _gauss_blur(img, sig)
    if acq is not None:
        kern = acq["kernel"]
        strength = kern["smooth_fwhm_vox"] if kern["name"] == "smooth" else kern["sharp_k"]
        img = apply_kernel(img, kern["name"], strength)
        if noise_std > 0:
            kf = {"smooth": 0.75, "standard": 1.0, "sharp": 1.0 + 0.35 * kern["sharp_k"]}[kern["name"]]
            noise_std = acq["noise_std_3mm"] * (acq["slice_thickness_mm"] / 3.0) ** -0.5 * kf
            n = kernel_noise(rng.standard_normal(shape, dtype=np.float32), kern["name"], strength, noise_std)
            img += n
            del n
        acq["noise_std"] = float(noise_std)
        acq["psf_fwhm_mm"] = [float(f) for f in fwhm]
    elif noise_std > 0:
        n = rng.standard_normal(shape, dtype=np.float32)
        w = 0.12  # in-plane correlation of reconstructed CT noise
        for axis in (0, 1):
            if shape[axis] > 1:
                n = _blur3(n, w, axis)
        norm = ((1 - 2 * w) ** 2 + 2 * w * w) ** (-0.5 * sum(1 for a in (0, 1) if shape[a] > 1))
        n *= np.float32(noise_std * norm)
        img += n
        del n
    np.clip(img, HU_RANGE[0], HU_RANGE[1], out=img)

    affine = phantom_affine(shape, spacing)
    start = [0, 0, 0]
    findings: dict[str, np.ndarray] | None = None
    if acq is not None:
        crop = _crop_slices(an, grid, acq["truncation"])
        start = [s.start for s in crop]
        acq["generated_shape"] = list(shape)
        acq["crop"] = {"start": start, "stop": [s.stop for s in crop], "uncropped_shape": list(shape)}
        img, label, tissue = img[crop].copy(), label[crop].copy(), tissue[crop].copy()
        empty = np.zeros(img.shape, dtype=bool)
        findings = {k: (empty.copy() if m is None else np.ascontiguousarray(m[crop]))
                    for k, m in (("effusion", eff_mask), ("atelectasis", at_mask), ("emphysema", emph_mask))}
        acq["voxels"] = {k: int(m.sum()) for k, m in findings.items()}
        affine = crop_affine(affine, start)
        shape = img.shape

    def world(p: Any) -> list[float]:
        return _to_ras(np.asarray(p, dtype=np.float64) * ps) if acq is not None else _to_ras(np.asarray(p))

    def vox(p: Any) -> list[float]:
        v = _to_voxel(p, grid)
        return [v[a] - start[a] for a in range(3)] if acq is not None else v

    vox_ml = float(np.prod(spacing)) / 1000.0
    n_left, n_right, n_inf = (int(np.count_nonzero(label == v)) for v in (1, 2, 3))
    lung_vox = n_left + n_right + n_inf
    info: dict[str, Any] = {
        "seed": int(seed) if isinstance(seed, (int, np.integer)) else seed,
        "shape": list(shape),
        "spacing": list(spacing),
        "fov_mm": [float(n * s) for n, s in zip(shape, spacing)] if acq is not None else [float(f) for f in grid.fov],
        "noise_std": float(noise_std),
        "blur_fwhm_mm": [float(f) for f in fwhm],
        "labels": dict(LABELS),
        "landmarks_mm": {
            # world z (mm; the centre of the uncropped volume is z = 0)
            "right_dome_z": an.zdome_R * ps, "left_dome_z": an.zdome_L * ps, "lowest_lung_z": an.z_base * ps,
            "carina_z": an.z_car * ps, "apex_z": an.z_apex * ps,
            "heart_centre": world(an.heart_c),
        },
        "body_mm": {"width": 2 * an.a * ps, "depth": 2 * an.b * ps},
        "heart_semi_axes_mm": [float(v) * ps for v in an.heart_semi],
        "infection_fraction": (n_inf / lung_vox) if lung_vox else 0.0,
        "lesions": [{
            "kind": les["kind"], "centre_mm": world(les["centre"]), "centre_voxel": vox(les["centre"]),
            "radius_mm": float(les["radius_mm"]) * ps, "side": "left" if les["side"] == "L" else "right",
            "hu": float(les["hu_ggo"] if les["kind"] != "consolidation" else les["hu_cons"]),
            "voxels": int(les["voxels"]),
        } for les in painted],
        "nodules": [{
            "centre_mm": world(nod["centre"]), "centre_voxel": vox(nod["centre"]),
            "radius_mm": float(nod["radius_mm"]) * ps, "hu": float(nod["hu"]),
        } for nod in plan.nodules] if nodules else [],
        "tissue_hu": {TISSUE_NAMES[c]: float(an.hu[c]) for c in range(len(TISSUE_NAMES))},
    }
    info["lung_volume_ml"] = {"total": lung_vox * vox_ml, "labelled_left": n_left * vox_ml,
                              "labelled_right": n_right * vox_ml, "infection": n_inf * vox_ml}
    if acq is not None:
        info["acquisition"] = acq
    return ChestCTCase(image=img, label=label, affine=affine, spacing=spacing,
                       info=info, tissue=tissue, findings=findings)
