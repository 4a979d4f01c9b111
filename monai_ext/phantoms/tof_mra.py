"""Synthetic time-of-flight MR angiograms (TOF-MRA) of the circle-of-Willis region with saccular aneurysms, for
aneurysm detection (ADAM challenge layout; Assis et al., "An Efficient Data Strategy for the Detection of Brain
Aneurysms from MRA with Deep Learning", DGM4MICCAI / DALI 2021).

:func:`generate_tof_mra_case` renders one patch (default 80 x 80 x 72 voxels of 0.47 x 0.47 x 0.4 mm, the
paper's voxel size; 37.6 x 37.6 x 28.8 mm) in arbitrary MR units:

- brain background 120-200 (a smooth low-frequency field around a level of 145-165, faint texture, a few darker
  CSF-like spots down to about 90);
- a bright branching vessel tree, 450-650 inside the vessels (smaller vessels up to 12 % darker): 2-3 roots entering
  from the volume's faces (the first from below), binary trees of
  :func:`~monai_ext.phantoms.chest_ct.grow_vessel_tree` made tortuous by smooth sideways waves, radii 0.4-1.6 mm,
  painted with partial-volume edges (:func:`~monai_ext.phantoms.chest_ct.paint_vessel_segments`);
- 1-3 saccular aneurysms: spheres of 1-6 mm diameter (uniform, so 40 % are under 3 mm) attached to the wall of a
  vessel, 65 % at a bifurcation apex (along the parent's direction), the others on a side wall. The sphere's
  centre lies ``R + 0.3 r`` from a centreline point (``R`` the sphere's, ``r`` the vessel's radius): its near pole,
  the neck, is inside the lumen 0.3 vessel radii off the centreline, so the sphere overlaps the vessel. Intensity
  that of the parent vessel at the neck, falling by 10-30 % toward the dome (slow flow). Each sphere lies inside
  the volume with a 3 mm margin;
- 1-3 mimics that are not aneurysms: infundibula (a cone 1.5-3 mm long from the wall, base radius 0.5-1 mm,
  tapering to a small vessel) and tight loops (a vessel of radius 0.45-0.8 mm coiling once on a 1-2 mm circle
  near a bifurcation);
- a mild drop-off of 8-20 % along the slab axis (array axis 2, toward superior: inflow saturation) and Rician
  noise (the magnitude of complex Gaussian noise, sigma 15-25).

The label is 1 on the voxels whose centre lies inside an aneurysm sphere (not on the parent vessel, nor on a
mimic). The affine is :func:`~monai_ext.phantoms.phantom_affine` (NIfTI: voxel index -> RAS world mm, array axes
toward L, P, S, world origin at the volume centre). Aneurysms are recorded as the two-point annotation of the paper
(neck and dome, RAS world mm; centre = their midpoint, radius = half their distance).

:func:`synthesize_tof_mra_dataset` writes a data set in the ADAM challenge layout (``<id>/orig/TOF.nii.gz``,
``<id>/aneurysms.nii.gz``, ``<id>/location.txt``) plus the two-point annotations (``<id>/points.json``); read it
with :func:`monai_ext.datalists.adam_aneurysm_datalist`.
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

from ..io import atomic_directory, require_empty_folder, voxel_to_world, world_to_voxel
from .chest_ct import grow_vessel_tree, paint_vessel_segments, phantom_affine
from .grid import check_phantom_grid
from .nifti_writer import save_phantom_nifti
from .random_field import smooth_random_field
from .seeds import check_count, check_seed, derive_seed

__all__ = ["ANEURYSM_SHAPES", "TofMraCase", "generate_tof_mra_case", "synthesize_tof_mra_dataset"]

#: the aneurysm shapes of :func:`generate_tof_mra_case`
ANEURYSM_SHAPES = ("sphere", "irregular")

_TAG = 67  # seed stream of this generator (no other phantom uses 67)
_SHAPE_RANGE = (24, 512)
_SPACING_RANGE_MM = (0.1, 2.0)
_MARGIN_MM = 3.0  # aneurysms lie this far inside the volume (voxel-centre extent)
_DIAMETER_MM = (1.0, 6.0)  # uniform: P(d < 3 mm) = 0.4
_COUNT_P = (0.5, 0.3, 0.2)  # P(1, 2, 3) aneurysms; the same for mimics
_BIFURCATION_P = 0.65
_NECK_DEPTH = 0.3  # neck pole: this fraction of the vessel radius off the centreline
_RADIUS_MM = (0.4, 1.6)
_LABELS = {0: "background", 1: "aneurysm"}


@dataclasses.dataclass
class TofMraCase:
    """One synthetic TOF-MRA patch.

    Attributes:
        image: float32 (H, W, D), arbitrary MR units (background 120-200, vessels 450-650, Rician noise).
        label: uint8 (H, W, D): 1 aneurysm (voxel centre inside an aneurysm sphere), 0 elsewhere.
        affine: float64 4 x 4, voxel index -> NIfTI RAS world (mm).
        spacing: voxel size (mm), per array axis.
        info: generation record: ``seed``, ``shape``, ``spacing``, ``aneurysms`` (each ``neck``, ``dome``,
            ``centre`` (RAS world mm), ``radius_mm``, ``diameter_mm``, ``centre_voxel``, ``kind``
            (``"bifurcation"`` | ``"sidewall"``), ``parent_point`` (the centreline point it sits on, world mm),
            ``parent_radius_mm``, ``neck_intensity``, ``dome_intensity``, ``voxels``), ``mimics`` (each ``kind``
            (``"infundibulum"`` | ``"loop"``), ``centre`` (world mm), ``centre_voxel``, ``size_mm``),
            ``noise_sigma``, ``background_level``, ``vessel_intensity``, ``roots``, ``slab_axis``, ``slab_drop``,
            ``labels``.
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    info: dict[str, Any]


# ----------------------------------------------------------------------------------------------- geometry


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _perpendicular(rng: np.random.Generator, axis: np.ndarray) -> np.ndarray:
    """A random unit vector orthogonal to the unit ``axis``."""
    v = rng.standard_normal(3)
    v -= (v @ axis) * axis
    if np.linalg.norm(v) < 1e-6:  # (practically never) a draw along the axis
        v = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    return _unit(v)


def _face_point(rng: np.random.Generator, half: np.ndarray, face: int, outside_mm: float) -> np.ndarray:
    """A point on face ``face`` (axis = face // 2, side = face % 2) within 60 % of the half extents, pushed
    ``outside_mm`` beyond it (phantom frame, mm)."""
    p = rng.uniform(-0.6, 0.6, 3) * half
    axis, side = divmod(face, 2)
    p[axis] = (half[axis] + outside_mm) * (1.0 if side else -1.0)
    return p


def _tortuous(rng: np.random.Generator, segs) -> tuple[list[tuple], list[tuple]]:
    """Split each straight tree segment into pieces of about 1.5 mm along smooth sideways waves (zero at both ends,
    so the tree stays connected). Returns the pieces ``(p0, p1, r0, r1)`` and the bifurcations
    ``(point, parent direction, parent radius)``."""
    pieces, bifurcations = [], []
    for p0, p1, r0, r1, n in segs:
        v = np.asarray(p1, float) - np.asarray(p0, float)
        length = float(np.linalg.norm(v))
        if length < 1e-6:
            continue
        t_hat = v / length
        e1 = _perpendicular(rng, t_hat)
        e2 = np.cross(t_hat, e1)
        k = max(2, math.ceil(length / 1.5))
        t = np.linspace(0.0, 1.0, k + 1)[:, None]
        amp = min(0.2 * length, 2.5)
        a1, a2 = amp * rng.uniform(-1.0, 1.0, 2)
        m1, m2 = rng.integers(1, 3, 2)
        pts = p0 + t * v + a1 * np.sin(np.pi * m1 * t) * e1 + a2 * np.sin(np.pi * m2 * t) * e2
        rad = np.clip(r0 + (r1 - r0) * t[:, 0], *_RADIUS_MM)
        for j in range(k):
            pieces.append((pts[j], pts[j + 1], float(rad[j]), float(rad[j + 1])))
        if n > 1:
            bifurcations.append((pts[-1].copy(), _unit(pts[-1] - pts[-2]), float(rad[-1])))
    return pieces, bifurcations


def _vessel_tree(rng: np.random.Generator, half: np.ndarray) -> tuple[list[tuple], list[tuple], int]:
    """2-3 trees entering from the faces (the first from below, -z), their leaves partly on faces (vessels leaving
    the patch) and partly inside (vessels thinning out)."""
    n_roots = int(rng.integers(2, 4))
    faces = [4] + [int(f) for f in rng.choice([0, 1, 2, 3, 5], size=n_roots - 1, replace=False)]
    pieces, bifurcations = [], []
    for face in faces:
        root = _face_point(rng, half, face, 2.0)
        n_leaf = int(rng.integers(5, 10))
        n_exit = int(rng.integers(1, max(2, n_leaf // 2) + 1))
        exits = [_face_point(rng, half, int(f), 1.0) for f in rng.choice([f for f in range(6) if f != face], n_exit)]
        inner = rng.uniform(-0.8, 0.8, (n_leaf - n_exit, 3)) * half
        leaves = np.concatenate([np.array(exits).reshape(-1, 3), inner], axis=0)
        r_root = float(rng.uniform(1.1, _RADIUS_MM[1]))
        r_leaf = max(_RADIUS_MM[0], r_root / n_leaf ** 0.42)
        segs = grow_vessel_tree(rng, root, leaves, r_leaf, r_root)
        p, b = _tortuous(rng, segs)
        pieces += p
        bifurcations += b
    return pieces, bifurcations, n_roots


def _wall_candidates(rng: np.random.Generator, pieces: list[tuple], bifurcations: list[tuple], kind: str,
                     half: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centreline points inside the volume, an outward direction at each and the vessel radius there: bifurcation
    apices (about the parent's direction) or side walls (perpendicular to the vessel)."""
    pts, dirs, rads = [], [], []
    if kind == "bifurcation":
        for p, d, r in bifurcations:
            if np.all(np.abs(p) < half):
                for _ in range(3):
                    pts.append(p)
                    dirs.append(_unit(d + 0.35 * rng.standard_normal(3)))
                    rads.append(r)
    else:
        for p0, p1, r0, r1 in pieces:
            p = 0.5 * (p0 + p1)
            if np.all(np.abs(p) < half) and max(r0, r1) >= 0.5:
                t_hat = _unit(p1 - p0)
                for _ in range(2):
                    pts.append(p)
                    dirs.append(_perpendicular(rng, t_hat))
                    rads.append(0.5 * (r0 + r1))
    return np.array(pts).reshape(-1, 3), np.array(dirs).reshape(-1, 3), np.array(rads)


def _place_aneurysms(rng: np.random.Generator, pieces, bifurcations, half: np.ndarray, count: int) -> list[dict]:
    placed: list[dict] = []
    for _ in range(count):
        for attempt in range(40):
            d = float(rng.uniform(*_DIAMETER_MM)) if attempt < 30 else _DIAMETER_MM[0]
            radius = d / 2.0
            first = "bifurcation" if (bifurcations and rng.random() < _BIFURCATION_P) else "sidewall"
            found = None
            for kind in (first, "sidewall" if first == "bifurcation" else "bifurcation"):
                pts, dirs, rads = _wall_candidates(rng, pieces, bifurcations, kind, half)
                if not len(pts):
                    continue
                centres = pts + (radius + _NECK_DEPTH * rads)[:, None] * dirs
                ok = np.all(np.abs(centres) + radius <= half - _MARGIN_MM, axis=1)
                for a in placed:
                    ok &= np.linalg.norm(centres - a["centre"], axis=1) > radius + a["radius"] + 1.0
                good = np.flatnonzero(ok)
                if len(good):
                    j = int(good[rng.integers(len(good))])
                    found = {"kind": kind, "centre": centres[j], "radius": radius, "u": dirs[j],
                             "parent_point": pts[j], "parent_radius": float(rads[j])}
                    break
            if found is not None:
                placed.append(found)
                break
        else:
            fov = [round(2 * h, 1) for h in half]
            raise ValueError(f"no room for a {_DIAMETER_MM[0]:g} mm aneurysm {_MARGIN_MM:g} mm inside a field of view "
                             f"of {fov} mm on a vessel; use a larger shape or spacing (about 16 mm per axis or more).")
    return placed


def _place_mimics(rng: np.random.Generator, pieces, bifurcations, half: np.ndarray, count: int,
                  aneurysms: list[dict]) -> list[dict]:
    """Infundibula (cones from a side wall) and loops (near bifurcations), kept 1 mm clear of the aneurysms."""
    placed: list[dict] = []
    for _ in range(count):
        for _attempt in range(20):
            kind = "infundibulum" if rng.random() < 0.5 else "loop"
            pts, dirs, rads = _wall_candidates(rng, pieces, bifurcations,
                                               "bifurcation" if kind == "loop" and bifurcations else "sidewall", half)
            if not len(pts):
                continue
            if kind == "infundibulum":
                length, base = float(rng.uniform(1.5, 3.0)), float(rng.uniform(0.5, 1.0))
                reach = rads + length  # the cone's tip from the centreline
                centres = pts + (rads + 0.5 * length)[:, None] * dirs
                extent = 0.5 * length + base
            else:
                rho, r_loop = float(rng.uniform(1.0, 2.0)), float(rng.uniform(0.45, 0.8))
                reach = 0.5 * rads + 2.0 * rho + r_loop
                centres = pts + (0.5 * rads + rho)[:, None] * dirs
                extent = rho + r_loop + 0.5
            tips = pts + reach[:, None] * dirs
            ok = np.all(np.abs(tips) <= half - 1.0, axis=1) & np.all(np.abs(centres) <= half - 1.0, axis=1)
            for a in aneurysms:
                ok &= np.linalg.norm(centres - a["centre"], axis=1) > a["radius"] + extent + 1.0
                ok &= np.linalg.norm(tips - a["centre"], axis=1) > a["radius"] + 1.5
            for m in placed:
                ok &= np.linalg.norm(centres - m["centre"], axis=1) > m["extent"] + extent
            good = np.flatnonzero(ok)
            if not len(good):
                continue
            j = int(good[rng.integers(len(good))])
            p, u, rv = pts[j], dirs[j], float(rads[j])
            if kind == "infundibulum":
                tip = p + (rv + length) * u
                segs = [(p, tip, base + 0.3 * rv, 0.3)]
                if rng.random() < 0.5:  # the small vessel that leaves the infundibulum
                    w = _unit(u + 0.6 * _perpendicular(rng, u))
                    segs.append((tip, tip + float(rng.uniform(2.0, 5.0)) * w, 0.3, 0.25))
                size = length
            else:
                v = _perpendicular(rng, u)
                w = np.cross(u, v)
                c = p + (0.5 * rv + rho) * u
                theta = np.linspace(0.0, 1.8 * np.pi, 12)
                pitch = 2.0 * r_loop + 0.3
                path = [c + rho * (-np.cos(a) * u + np.sin(a) * v) + (a / (2 * np.pi)) * pitch * w for a in theta]
                path.append(path[-1] + 1.5 * rho * u)
                segs = [(path[i], path[i + 1], r_loop, r_loop) for i in range(len(path) - 1)]
                size = 2.0 * rho
            placed.append({"kind": kind, "centre": centres[j], "extent": extent, "size_mm": size, "segs": segs})
            break
    return placed


# ----------------------------------------------------------------------------------------------- rendering


def _axes(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """Voxel-centre coordinates (mm) along each axis, 0 at the volume centre (the chest phantom's frame)."""
    return [(np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * np.float32(s) for n, s in zip(shape, spacing)]


def _smooth_field(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], cell_mm: float,
                  sigma: float) -> np.ndarray:
    """A unit-std smooth random field on a coarse grid of ``cell_mm`` cells, linearly resampled to ``shape``."""
    coarse = [max(3, math.ceil(n * s / cell_mm) + 1) for n, s in zip(shape, spacing)]
    field = smooth_random_field(rng, coarse, sigma).astype(np.float32)
    return ndi.zoom(field, [n / c for n, c in zip(shape, coarse)], order=1, mode="nearest", grid_mode=True)


def _background(rng: np.random.Generator, shape, spacing) -> tuple[np.ndarray, float]:
    level = float(rng.uniform(145.0, 165.0))
    img = level + float(rng.uniform(8.0, 12.0)) * _smooth_field(rng, shape, spacing, 6.0, 1.0)
    img += 4.0 * _smooth_field(rng, shape, spacing, 1.2, 1.0)
    spots = np.clip((_smooth_field(rng, shape, spacing, 2.0, 1.0) - 1.8) / 0.5, 0.0, 1.0)
    img -= float(rng.uniform(40.0, 60.0)) * spots
    return np.clip(img, 85.0, 210.0).astype(np.float32), level


def _irregular_shape(rng: np.random.Generator, an: dict) -> dict:
    """An irregular aneurysm around the two-point sphere: an ellipsoid whose semi-axis along the neck-dome line is the
    sphere's radius (so neck and dome stay the annotated poles) and whose two others are 0.6-1.4 times it, plus 0-2
    daughter blebs (balls of 0.25-0.45 radii centred on the dome half of the surface)."""
    u = np.asarray(an["u"], float)
    v = _perpendicular(rng, u)
    w = np.cross(u, v)
    scales = (1.0, float(rng.uniform(0.6, 1.4)), float(rng.uniform(0.6, 1.4)))
    blebs = []
    for _ in range(int(rng.integers(0, 3))):
        d = _unit(u * float(rng.uniform(0.2, 1.0)) + v * float(rng.normal()) + w * float(rng.normal()))
        surface = d / np.sqrt((d @ u) ** 2 + ((d @ v) / scales[1]) ** 2 + ((d @ w) / scales[2]) ** 2)
        blebs.append((surface * an["radius"], float(rng.uniform(0.25, 0.45)) * an["radius"]))
    return {"frame": np.stack([u, v, w]), "scales": scales, "blebs": blebs}


def _paint_sphere(image: np.ndarray, label: np.ndarray, axes: list[np.ndarray], h: float, an: dict,
                  value_neck: float, value_dome: float, shape: dict | None = None) -> int:
    """Blend one aneurysm sphere (partial-volume edge, intensity falling from neck to dome) into ``image`` where it
    raises the value; label the voxels whose centre is inside. ``shape`` (:func:`_irregular_shape`) makes it an
    ellipsoid with blebs instead. Returns the labelled voxel count."""
    c, radius, u = an["centre"], an["radius"], an["u"]
    reach = radius
    if shape is not None:
        reach = radius * max(shape["scales"])
        reach = max([reach] + [float(np.linalg.norm(o)) + r for o, r in shape["blebs"]])
    box = tuple(slice(int(np.searchsorted(axes[a], c[a] - reach - h)),
                      int(np.searchsorted(axes[a], c[a] + reach + h, side="right"))) for a in range(3))
    X, Y, Z = (axes[a][box[a]].reshape([-1 if b == a else 1 for b in range(3)]) - np.float32(c[a]) for a in range(3))
    if shape is None:
        d = np.sqrt(X * X + Y * Y + Z * Z)
    else:
        f, sc = shape["frame"].astype(np.float32), shape["scales"]
        d = np.sqrt(sum(((X * f[k, 0] + Y * f[k, 1] + Z * f[k, 2]) / np.float32(sc[k])) ** 2 for k in range(3)))
        for o, r in shape["blebs"]:   # a bleb as the distance that puts its own surface at ``radius``
            db = np.sqrt((X - np.float32(o[0])) ** 2 + (Y - np.float32(o[1])) ** 2 + (Z - np.float32(o[2])) ** 2)
            d = np.minimum(d, db * np.float32(radius / r))
    along = (X * np.float32(u[0]) + Y * np.float32(u[1]) + Z * np.float32(u[2])) / np.float32(radius)
    s = np.clip((along + 1.0) * 0.5, 0.0, 1.0)  # 0 at the neck pole, 1 at the dome pole
    value = np.float32(value_neck) + s * np.float32(value_dome - value_neck)
    w = np.clip((np.float32(radius) - d) / np.float32(h) + 0.5, 0.0, 1.0)
    sub = image[box]
    new = sub + w * (value - sub)
    np.copyto(sub, new, where=new > sub)
    inside = d <= radius
    label[box][inside] = 1
    return int(inside.sum())


def generate_tof_mra_case(
    seed: int,
    shape: Sequence[int] = (80, 80, 72),
    spacing: Sequence[float] = (0.47, 0.47, 0.4),
    aneurysm_shape: str = "sphere",
) -> TofMraCase:
    """One TOF-MRA patch with 1-3 saccular aneurysms, 1-3 mimics and its aneurysm label (see the module docstring).

    Args:
        seed: case seed (non-negative integer); the same arguments give identical arrays and records.
        shape: (H, W, D) voxels, each 24-512 (default 80 x 80 x 72). For the full 1-6 mm range every axis should
            span at least about 16 mm (a sphere plus 3 mm margins on both sides); in smaller fields of view the
            aneurysms that do not fit are redrawn, so they come out smaller.
        spacing: voxel size (mm) per axis, 0.1-2.0 (default 0.47 x 0.47 x 0.4 mm, the paper's TOF-MRA).
        aneurysm_shape: ``"sphere"`` (the aneurysm is exactly the ball of its two-point annotation) or
            ``"irregular"``: an ellipsoid through the same neck and dome, 0.6-1.4 times as wide across, with 0-2
            daughter blebs, so the two-point sphere only approximates it, as with real aneurysms. The label
            (``aneurysms.nii.gz``) is the true shape; the annotation stays neck and dome. Everything else of a seed
            is the same for both shapes.

    Returns:
        :class:`TofMraCase`: ``image`` float32 (H, W, D) arbitrary units, ``label`` uint8 (H, W, D) 1 = aneurysm,
        ``affine`` 4 x 4 voxel -> RAS world mm, ``spacing``, ``info`` (aneurysm neck / dome / centre in world mm).

    Raises:
        ValueError: a bad seed or grid (the message names it), or a field of view too small for an aneurysm.
    """
    seed = check_seed(seed)
    shp, spc = check_phantom_grid(shape, spacing, _SHAPE_RANGE, _SPACING_RANGE_MM)
    if aneurysm_shape not in ANEURYSM_SHAPES:
        raise ValueError(f"aneurysm_shape={aneurysm_shape!r}: expected one of {list(ANEURYSM_SHAPES)}.")
    rng = np.random.default_rng(derive_seed(seed, _TAG))
    shape_rng = np.random.default_rng(derive_seed(seed, _TAG, 1))  # extra draws that leave the spheres' case as it is
    half = (np.asarray(shp, float) - 1.0) / 2.0 * np.asarray(spc)
    axes = _axes(shp, spc)
    h = float(np.prod(spc)) ** (1.0 / 3.0)

    pieces, bifurcations, n_roots = _vessel_tree(rng, half)
    aneurysms = _place_aneurysms(rng, pieces, bifurcations, half, 1 + int(rng.choice(3, p=_COUNT_P)))
    mimics = _place_mimics(rng, pieces, bifurcations, half, 1 + int(rng.choice(3, p=_COUNT_P)), aneurysms)

    image, level = _background(rng, shp, spc)
    vessel = float(rng.uniform(520.0, 630.0))
    tissue = np.zeros(shp, dtype=np.uint8)  # the painter's "where allowed" mask: everywhere

    def vessel_value(r: float) -> float:  # smaller vessels: up to 12 % darker (partial saturation)
        return vessel * (0.88 + 0.12 * min(1.0, r / 1.2))

    for p0, p1, r0, r1 in pieces:
        paint_vessel_segments(image, tissue, spc, [(p0, p1, r0, r1, 1)], vessel_value(0.5 * (r0 + r1)), (0,))
    for m in mimics:
        for p0, p1, r0, r1 in m["segs"]:
            paint_vessel_segments(image, tissue, spc, [(p0, p1, r0, r1, 1)], vessel_value(max(r0, r1)), (0,))
    label = np.zeros(shp, dtype=np.uint8)
    for an in aneurysms:
        an["neck_value"] = vessel_value(an["parent_radius"])
        an["dome_value"] = an["neck_value"] * (1.0 - float(rng.uniform(0.1, 0.3)))
        irregular = _irregular_shape(shape_rng, an) if aneurysm_shape == "irregular" else None
        an["voxels"] = _paint_sphere(image, label, axes, h, an, an["neck_value"], an["dome_value"], irregular)
        an["shape"] = aneurysm_shape

    slab_drop = float(rng.uniform(0.08, 0.2))
    z = np.linspace(0.0, 1.0, shp[2], dtype=np.float32)
    image *= (1.0 - np.float32(slab_drop) * z ** 1.5)[None, None, :]
    sigma = float(rng.uniform(15.0, 25.0))
    real = image + np.float32(sigma) * rng.standard_normal(shp, dtype=np.float32)
    imag = np.float32(sigma) * rng.standard_normal(shp, dtype=np.float32)
    image = np.sqrt(real * real + imag * imag).astype(np.float32)

    affine = phantom_affine(shp, spc)
    centre_vox = (np.asarray(shp, float) - 1.0) / 2.0

    def world(points: np.ndarray) -> np.ndarray:  # phantom frame (LPS mm, centred) -> RAS world mm of ``affine``
        return voxel_to_world(np.asarray(points, float).reshape(-1, 3) / np.asarray(spc) + centre_vox, affine)

    def as_list(v: np.ndarray) -> list[float]:
        return [float(x) for x in np.asarray(v).ravel()]

    an_records = []
    for an in aneurysms:
        neck = an["centre"] - an["radius"] * an["u"]
        dome = an["centre"] + an["radius"] * an["u"]
        wn, wd = world(neck)[0], world(dome)[0]
        centre = 0.5 * (wn + wd)
        an_records.append({
            "neck": as_list(wn), "dome": as_list(wd), "centre": as_list(centre),
            "radius_mm": float(an["radius"]), "diameter_mm": 2.0 * float(an["radius"]),
            "centre_voxel": as_list(world_to_voxel(centre, affine)[0]), "kind": an["kind"],
            "parent_point": as_list(world(an["parent_point"])[0]), "parent_radius_mm": an["parent_radius"],
            "neck_intensity": float(an["neck_value"]), "dome_intensity": float(an["dome_value"]),
            "voxels": an["voxels"], "shape": an["shape"]})
    mimic_records = [{"kind": m["kind"], "centre": as_list(world(m["centre"])[0]),
                      "centre_voxel": as_list(m["centre"] / np.asarray(spc) + centre_vox),
                      "size_mm": float(m["size_mm"])} for m in mimics]
    info = {"seed": seed, "shape": list(shp), "spacing": list(spc), "aneurysms": an_records, "mimics": mimic_records,
            "noise_sigma": sigma, "background_level": level, "vessel_intensity": vessel, "roots": n_roots,
            "slab_axis": 2, "slab_drop": slab_drop, "labels": dict(_LABELS)}
    return TofMraCase(image=image, label=label, affine=affine, spacing=spc, info=info)


# ----------------------------------------------------------------------------------------------- data set


def synthesize_tof_mra_dataset(
    out_dir: str | os.PathLike,
    cases: int = 20,
    seed: int = 0,
    shape: Sequence[int] = (80, 80, 72),
    spacing: Sequence[float] = (0.47, 0.47, 0.4),
    progress: bool = True,
    aneurysm_shape: str = "sphere",
) -> dict[str, Any]:
    """Write ``cases`` phantoms (:func:`generate_tof_mra_case`) to ``out_dir`` in the ADAM challenge layout::

        out_dir/10000/orig/TOF.nii.gz      int16 (H, W, D), the image rounded (arbitrary units)
        out_dir/10000/aneurysms.nii.gz     uint8 (H, W, D): 1 aneurysm, 0 background
        out_dir/10000/location.txt         per aneurysm "x, y, z, r": centre in voxel indices of TOF.nii.gz (0-based,
                                           2 decimals), radius in voxels of the first array axis (4 decimals)
        out_dir/10000/points.json          {"aneurysms": [{"neck": [x, y, z], "dome": [x, y, z]}], "units": "mm",
                                            "frame": "RAS (NIfTI world)"}: the two-point annotations
        out_dir/dataset.json               generator, seed, cases, shape, spacing, labels and every case's record

    Case ``i`` is named ``f"1{i:04d}"`` and has the seed ``derive_seed(seed, 67, i, bits=31)``, so more cases keep the
    first ones. ``aneurysm_shape``: see :func:`generate_tof_mra_case`. The folder is filled under a temporary name and renamed at the end: ``out_dir`` either does not
    appear or holds the complete data set. Returns the ``dataset.json`` content.

    Raises:
        ValueError: bad ``cases``, ``seed`` or grid (nothing is written).
        FileExistsError: ``out_dir`` exists and is not an empty folder (nothing is written).
    """
    n = check_count(cases, "cases")
    seed = check_seed(seed)
    shp, spc = check_phantom_grid(shape, spacing, _SHAPE_RANGE, _SPACING_RANGE_MM)
    if aneurysm_shape not in ANEURYSM_SHAPES:
        raise ValueError(f"aneurysm_shape={aneurysm_shape!r}: expected one of {list(ANEURYSM_SHAPES)}.")
    out = require_empty_folder(out_dir, "out_dir")
    dataset: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        records = []
        for i in range(n):
            t0 = time.perf_counter()
            cs = derive_seed(seed, _TAG, i, bits=31)
            case = generate_tof_mra_case(cs, shp, spc, aneurysm_shape)
            cid = f"1{i:04d}"
            folder = tmp / cid
            (folder / "orig").mkdir(parents=True)
            tof = np.clip(np.rint(case.image), -32768, 32767).astype(np.int16)
            save_phantom_nifti(tof, case.affine, folder / "orig" / "TOF.nii.gz")
            save_phantom_nifti(case.label, case.affine, folder / "aneurysms.nii.gz")
            ans = case.info["aneurysms"]
            lines = []
            for a in ans:
                x, y, z = world_to_voxel(a["centre"], case.affine)[0]
                lines.append(f"{x:.2f}, {y:.2f}, {z:.2f}, {a['radius_mm'] / spc[0]:.4f}\n")
            (folder / "location.txt").write_text("".join(lines))
            points = {"aneurysms": [{"neck": a["neck"], "dome": a["dome"]} for a in ans], "units": "mm",
                      "frame": "RAS (NIfTI world)"}
            (folder / "points.json").write_text(json.dumps(points, indent=1) + "\n")
            info = case.info
            records.append({"case": cid, "seed": cs,
                            **{k: info[k] for k in ("aneurysms", "mimics", "noise_sigma", "background_level",
                                                    "vessel_intensity", "roots", "slab_axis", "slab_drop")}})
            if progress:
                sizes = ", ".join(f"{a['diameter_mm']:.1f}" for a in ans)
                print(f"TOF-MRA case {i + 1}/{n} {cid} seed={cs} aneurysms={len(ans)} ({sizes} mm) "
                      f"mimics={len(info['mimics'])} ... {time.perf_counter() - t0:.2f} s", flush=True)
        dataset.update({
            "name": "monai_ext synthetic TOF-MRA aneurysms",
            "description": "Synthetic time-of-flight MR angiograms of the circle-of-Willis region with saccular "
                           "aneurysms and non-aneurysm mimics, ADAM challenge layout; generated by "
                           "monai_ext.phantoms.tof_mra. Synthetic data, not for clinical use.",
            "modality": "MR (TOF-MRA)", "layout": "adam", "labels": {str(k): v for k, v in _LABELS.items()},
            "generator": "monai_ext.phantoms.synthesize_tof_mra_dataset", "seed": int(seed), "cases": n,
            "shape": list(shp), "spacing": list(spc), "aneurysm_shape": aneurysm_shape, "records": records,
        })
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=1) + "\n")

    if not atomic_directory(out, fill):
        raise FileExistsError(f"{out}: another writer filled it meanwhile; its data set was kept, this one dropped.")
    return dataset
