"""Labelled 3D cardiac MR of two protocols with related label sets, the embedded data of the FS-Net bundle.

FS-Net (DGM4MICCAI/DALI 2021) helps a small target data set (HVSMR 2016: 3D whole-heart bSSFP, blood pool and
ventricular myocardium labelled) with a larger auxiliary one (M&Ms: short-axis cine stacks, left ventricle,
myocardium and right ventricle labelled). The phantoms reproduce what makes that pairing useful and hard:

- ``whole_heart_3d`` (target-like): axial 3D volumes of 64 x 64 x 24 voxels of 2.5 x 2.5 x 5 mm, bright blood;
  labels 1 blood pool (both ventricles, both atria and the aortic root), 2 myocardium (left and right ventricular
  walls);
- ``short_axis_cine`` (auxiliary-like): stacks of 64 x 64 x 16 slices of 2 x 2 x 8 mm planned on the heart's long
  axis (so the heart lies in another orientation), another contrast (darker blood, brighter fat, stronger coil
  field and noise), labels 1 left-ventricular cavity, 2 left-ventricular myocardium, 3 right-ventricular cavity
  (the atria, aorta and right-ventricular wall are visible but unlabelled).

Anatomy per case, in millimetres: the left ventricle a truncated prolate ellipsoid (cavity 60-80 mm long, 20-27 mm
radius, wall 7-11 mm), the right ventricle a flatter ellipsoid wrapped around the septum (wall 3-4 mm), both atria
and the aortic root above the base, epicardial fat, lungs, liver, chest wall and the body outline; heart size,
position and long-axis direction drawn per case. Rendering: tissue signal of the protocol, a point spread of the
slice profile, a smooth multiplicative coil field, Rician noise and an arbitrary intensity scale. Not a physical
simulation.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..io import atomic_directory, require_empty_folder
from .msd_description import msd_phantom_description
from .nifti_writer import save_phantom_nifti
from .random_field import smooth_random_field
from .seeds import check_seed, derive_seed

__all__ = ["HEART_PROTOCOLS", "generate_heart_mr_case", "sample_heart_anatomy", "synthesize_heart_mr_dataset"]

#: the two protocols: grid, planning (axial, or short axis on the heart's long axis), label names (MSD ``labels``) and
#: tissue signal (blood, myo, fat, lung, liver, body)
HEART_PROTOCOLS: dict[str, dict[str, Any]] = {
    "whole_heart_3d": {
        "shape": (64, 64, 24),
        "spacing": (2.5, 2.5, 5.0),
        "plan": "axial",
        "labels": {0: "background", 1: "blood_pool", 2: "myocardium"},
        "signal": {"blood": 1.0, "myo": 0.3, "fat": 0.8, "lung": 0.05, "liver": 0.4, "body": 0.35},
        "noise": (0.03, 0.06),
        "coil": 0.15,
        "description": "3D whole-heart bSSFP-like volumes, axial (HVSMR-like)",
    },
    "short_axis_cine": {
        "shape": (64, 64, 16),
        "spacing": (2.0, 2.0, 8.0),
        "plan": "short_axis",
        "labels": {0: "background", 1: "left_ventricle", 2: "myocardium", 3: "right_ventricle"},
        "signal": {"blood": 0.7, "myo": 0.35, "fat": 1.0, "lung": 0.08, "liver": 0.55, "body": 0.5},
        "noise": (0.05, 0.09),
        "coil": 0.3,
        "description": "short-axis cine-like stacks planned on the heart's long axis (M&Ms-like)",
    },
}


def _unit_vector(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def sample_heart_anatomy(rng: np.random.Generator) -> dict[str, Any]:
    """One case's anatomy in patient millimetres (x left, y anterior, z superior; heart centre at the origin):
    long-axis direction (base -> apex), sizes and wall thicknesses, body and organ sizes. JSON-serialisable."""
    apex = _unit_vector(np.array([0.6, 0.55, -0.55]) + rng.normal(0, 0.12, 3))
    return {
        "apex_direction": [float(a) for a in apex],
        "lv_length_mm": float(rng.uniform(60, 80)),
        "lv_radius_mm": float(rng.uniform(20, 27)),
        "lv_wall_mm": float(rng.uniform(7, 11)),
        "rv_width_mm": float(rng.uniform(1.0, 1.3)),
        "rv_wall_mm": float(rng.uniform(3, 4)),
        "atrium_radius_mm": float(rng.uniform(18, 25)),
        "aorta_radius_mm": float(rng.uniform(10, 14)),
        "fat_mm": float(rng.uniform(2, 5)),
        "body_semi_axes_mm": [float(rng.uniform(140, 175)), float(rng.uniform(95, 125))],
        "heart_offset_mm": [float(v) for v in rng.normal(0, 5, 3)],
    }


def _heart_frame(apex: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal heart frame: u towards the base, v towards the right ventricle (anterior-right), w = u x v."""
    u = -apex
    v = _unit_vector(np.array([-1.0, 0.6, 0.0]) - np.dot([-1.0, 0.6, 0.0], u) * u)
    return u, v, np.cross(u, v)


def _in_ellipsoid(q: tuple[np.ndarray, ...], centre: tuple[float, ...], axes: tuple[float, ...]) -> np.ndarray:
    return sum(((qi - ci) / ai) ** 2 for qi, ci, ai in zip(q, centre, axes)) <= 1.0


def _heart_grid(protocol: dict[str, Any], anatomy: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Patient-space coordinates (3, X, Y, Z) of every voxel centre and the grid's voxel -> world affine."""
    shape, spacing = np.array(protocol["shape"]), np.array(protocol["spacing"], float)
    short_axis = protocol["plan"] == "short_axis"
    if short_axis:
        u, v, w = _heart_frame(np.array(anatomy["apex_direction"]))
        angle = rng.uniform(-np.pi, np.pi)   # in-plane orientation of the short-axis plan
        ex, ey = np.cos(angle) * v + np.sin(angle) * w, -np.sin(angle) * v + np.cos(angle) * w
        rot = np.stack([ex, ey, -u], axis=1)      # slices from base to apex
    else:
        a, b = rng.uniform(-0.12, 0.12, 2)
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ \
            np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    centre_mm = np.array(anatomy["heart_offset_mm"]) + rng.uniform(-6, 6, 3)
    if short_axis:   # the stack covers the ventricles, base to apex
        centre_mm = centre_mm + np.array(anatomy["apex_direction"]) * 0.4 * anatomy["lv_length_mm"]
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")).reshape(3, -1)
    local = (idx - (shape[:, None] - 1) / 2.0) * spacing[:, None]
    points = (rot @ local + centre_mm[:, None]).reshape(3, *shape)
    affine = np.eye(4)
    affine[:3, :3] = rot * spacing[None, :]
    affine[:3, 3] = centre_mm - rot @ ((shape - 1) / 2.0 * spacing)
    return points, affine


def _heart_structures(points: np.ndarray, anatomy: dict[str, Any]) -> dict[str, np.ndarray]:
    """Boolean masks of the structures at the points (3, ...)."""
    u, v, w = _heart_frame(np.array(anatomy["apex_direction"]))
    x, y, z = points
    pu, pv, pw = (np.tensordot(d, points, axes=1) for d in (u, v, w))
    lv_len, lv_r, wall = anatomy["lv_length_mm"], anatomy["lv_radius_mm"], anatomy["lv_wall_mm"]
    base = pu > 0.0
    lv_cavity = _in_ellipsoid((pu, pv, pw), (0, 0, 0), (lv_len, lv_r, lv_r)) & ~base
    lv_outer = _in_ellipsoid((pu, pv, pw), (0, 0, 0), (lv_len + wall * 0.8, lv_r + wall, lv_r + wall)) & ~base
    rv_c = (0.0, lv_r + wall * 0.3, 0.0)
    rv_axes = (lv_len * 0.85, lv_r * anatomy["rv_width_mm"], lv_r * 1.35)
    rv_cavity = _in_ellipsoid((pu, pv, pw), rv_c, rv_axes) & ~lv_outer & ~base
    rv_wall_mm = anatomy["rv_wall_mm"]
    rv_outer = _in_ellipsoid((pu, pv, pw), rv_c, tuple(a + rv_wall_mm for a in rv_axes)) & ~base
    rv_wall = rv_outer & ~rv_cavity & ~lv_outer
    lv_myo = lv_outer & ~lv_cavity
    ra = anatomy["atrium_radius_mm"]
    atria = (_in_ellipsoid((pu, pv, pw), (ra * 0.9, -lv_r * 0.2, -ra * 0.5), (ra, ra * 1.1, ra))
             | _in_ellipsoid((pu, pv, pw), (ra * 0.8, lv_r * 1.0, ra * 0.6), (ra * 0.9, ra, ra))) & base
    ar = anatomy["aorta_radius_mm"]
    aorta = ((pv - lv_r * 0.2) ** 2 + (pw - ra * 0.3) ** 2 <= ar ** 2) & base & (pu < 55.0)
    heart = lv_outer | rv_outer | atria | aorta
    fat = ndimage.binary_dilation(heart, iterations=1) & ~heart if anatomy["fat_mm"] > 3.5 else np.zeros_like(heart)
    bx, by = anatomy["body_semi_axes_mm"]
    body = ((x / bx) ** 2 + ((y + 10.0) / by) ** 2) <= 1.0
    subcut = body & (((x / (bx - 12)) ** 2 + ((y + 10.0) / (by - 12)) ** 2) > 1.0)
    lungs = (_in_ellipsoid((x, y, z), (-65.0, -10.0, 10.0), (55.0, 70.0, 110.0))
             | _in_ellipsoid((x, y, z), (70.0, -15.0, 10.0), (50.0, 70.0, 110.0))) & body & ~heart & ~subcut
    liver = _in_ellipsoid((x, y, z), (-30.0, 0.0, -120.0), (110.0, 90.0, 60.0)) & body & ~heart
    return {"lv_cavity": lv_cavity, "lv_myo": lv_myo, "rv_cavity": rv_cavity, "rv_wall": rv_wall, "atria": atria,
            "aorta": aorta, "fat": fat | subcut, "lungs": lungs, "liver": liver, "body": body}


def _heart_labels(t: dict[str, np.ndarray], protocol_name: str) -> np.ndarray:
    label = np.zeros(t["body"].shape, np.uint8)
    if protocol_name == "whole_heart_3d":
        label[t["lv_cavity"] | t["rv_cavity"] | t["atria"] | t["aorta"]] = 1
        label[t["lv_myo"] | t["rv_wall"]] = 2
    else:
        label[t["lv_cavity"]] = 1
        label[t["lv_myo"]] = 2
        label[t["rv_cavity"]] = 3
    return label


def generate_heart_mr_case(protocol: str, seed: int) -> dict[str, Any]:
    """One case of ``protocol`` (a key of :data:`HEART_PROTOCOLS`): ``{"image": float32 (X, Y, Z) in arbitrary MR
    units >= 0, "label": uint8 (X, Y, Z) in the protocol's label values, "affine": 4 x 4 voxel -> mm,
    "anatomy": the case's :func:`sample_heart_anatomy`}``. The same seed gives the same case."""
    if protocol not in HEART_PROTOCOLS:
        raise ValueError(f"unknown heart MR protocol {protocol!r}; expected one of {sorted(HEART_PROTOCOLS)}.")
    check_seed(seed)
    spec = HEART_PROTOCOLS[protocol]
    rng = np.random.default_rng(seed)
    anatomy = sample_heart_anatomy(rng)
    points, affine = _heart_grid(spec, anatomy, rng)
    t = _heart_structures(points, anatomy)
    sig = spec["signal"]
    image = np.zeros(t["body"].shape)
    for tissue, names in (("body", ["body"]), ("liver", ["liver"]), ("lung", ["lungs"]), ("fat", ["fat"]),
                          ("myo", ["lv_myo", "rv_wall"]), ("blood", ["lv_cavity", "rv_cavity", "atria", "aorta"])):
        value = sig[tissue] * rng.uniform(0.9, 1.1)
        for name in names:
            image[t[name]] = value
    spacing = np.array(spec["spacing"])
    image = ndimage.gaussian_filter(image, sigma=0.6 * spacing.min() / spacing * np.array([1.0, 1.0, 1.5]))
    coil = np.exp(spec["coil"] * smooth_random_field(rng, image.shape, (16.0, 16.0, 4.0)))
    image = image * coil
    noise = rng.uniform(*spec["noise"])
    image = np.hypot(image + rng.normal(0, noise, image.shape), rng.normal(0, noise, image.shape))
    scale = float(np.exp(rng.uniform(np.log(200.0), np.log(2000.0))))
    return {"image": (image * scale).astype(np.float32), "label": _heart_labels(t, protocol), "affine": affine,
            "anatomy": anatomy}


def synthesize_heart_mr_dataset(out_dir: str | os.PathLike, protocol: str, cases: int, seed: int = 0,
                                progress: bool = True) -> dict[str, Any]:
    """Write ``cases`` cases of ``protocol`` to ``out_dir`` as a Medical Segmentation Decathlon style data set
    (``dataset.json`` with the protocol's ``labels``, ``imagesTr/heart_NNN.nii.gz``, ``labelsTr/``); returns the
    ``dataset.json`` content. Case ``i`` has seed ``derive_seed(seed, protocol index, i)``. Written under a temporary
    name and renamed at the end.

    Raises:
        ValueError: unknown protocol, ``cases`` < 1.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    if protocol not in HEART_PROTOCOLS:
        raise ValueError(f"unknown heart MR protocol {protocol!r}; expected one of {sorted(HEART_PROTOCOLS)}.")
    if isinstance(cases, bool) or int(cases) != cases or cases < 1:
        raise ValueError(f"cases must be an integer >= 1, got {cases!r}.")
    check_seed(seed)
    out = require_empty_folder(out_dir)
    spec = HEART_PROTOCOLS[protocol]
    p_index = list(HEART_PROTOCOLS).index(protocol)
    description: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        training, anatomies = [], []
        t0 = time.perf_counter()
        for i in range(int(cases)):
            case = generate_heart_mr_case(protocol, derive_seed(seed, 91, p_index, i, bits=31))
            name = f"heart_{i:03d}.nii.gz"
            save_phantom_nifti(case["image"], case["affine"], tmp / "imagesTr" / name)
            save_phantom_nifti(case["label"], case["affine"], tmp / "labelsTr" / name)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
            anatomies.append(case["anatomy"])
            if progress and ((i + 1) % 10 == 0 or i + 1 == cases):
                print(f"heart MR {protocol} cases {i + 1}/{cases} ... {time.perf_counter() - t0:.1f} s", flush=True)
        description.update(msd_phantom_description(
            name=f"monai_ext heart MR {protocol}",
            description=spec["description"] + ". Synthetic data (monai_ext.phantoms.heart_segmentation_mr).",
            modality="MRI",
            labels=spec["labels"],
            training=training,
            phantom={"protocol": protocol, "seed": int(seed), "cases": int(cases), "anatomy": anatomies},
        ))
        with open(tmp / "dataset.json", "w") as f:
            json.dump(description, f, indent=1)

    atomic_directory(out, fill)
    return description
