"""Acquisition and patient variety of the chest-CT phantoms: the random draws and the image-domain steps.

:func:`sample_acquisition` draws, per case, what a real chest-CT collection varies: field-of-view
truncation, arm position, contrast phase, reconstruction kernel, dose (noise level), slice thickness
and z spacing, patient size, inspiration depth, and three non-COVID findings (pleural effusion,
dependent atelectasis, emphysema).  :func:`generate_chest_ct(..., variety=True)
<monai_ext.phantoms.chest_ct.generate_chest_ct>` paints the anatomy-dependent parts; this module
holds the image-domain parts that need no anatomy: the reconstruction-kernel filter
(:func:`apply_kernel`), kernel-shaped CT noise (:func:`kernel_noise`) and the affine of a cropped
volume (:func:`crop_affine`).

Every option draws from its own generator ``np.random.default_rng([seed, 28, k])`` (k = the
option's index in :data:`ACQUISITION_OPTIONS`), never from the generator of the anatomy, so that
the phantoms without variety stay bit-identical and forcing one option (``overrides``) leaves the
draws of the others unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "ACQUISITION_OPTIONS",
    "sample_acquisition",
    "apply_kernel",
    "kernel_noise",
    "crop_affine",
]

#: The options of :func:`sample_acquisition`, in stream order, with the values an override may take.
ACQUISITION_OPTIONS: dict[str, str] = {
    "lateral_keep": "float in [0.6, 1]: kept fraction of the body width (1 = not truncated)",
    "ap_keep": "float in [0.6, 1]: kept fraction of the body depth (1 = not truncated)",
    "craniocaudal": "'none' | 'bases' | 'chest' | 'top' | 'both'",
    "arms": "'up' | 'down'",
    "contrast": "'none' | 'arterial' | 'portal_venous'",
    "kernel": "'smooth' | 'standard' | 'sharp'",
    "dose": "'standard' | 'low'",
    "slice_thickness_mm": "float in [0.6, 5]",
    "z_spacing_mm": "float > 0: generation spacing along z (None: the requested one)",
    "patient_scale": "float in [0.8, 1.2]",
    "lung_hu": "float in [-900, -700]: mean lung parenchyma HU (inspiration depth)",
    "effusion": "'none' | 'left' | 'right' | 'both'",
    "atelectasis": "'none' | 'left' | 'right' | 'both'",
    "emphysema": "bool",
}

_CC_MODES = ("none", "bases", "chest", "top", "both")
_SIDES = ("none", "left", "right", "both")
_Z_SPACINGS = (1.5, 2.0, 3.0, 5.0)


def _pick(rng: np.random.Generator, values: Sequence[Any], p: Sequence[float]) -> Any:
    return values[int(rng.choice(len(values), p=np.asarray(p, dtype=float) / float(np.sum(p))))]


def _check_option(name: str, value: Any, allowed: Sequence[Any] | None = None,
           lo: float | None = None, hi: float | None = None) -> Any:
    if allowed is not None and value not in allowed:
        raise ValueError(f"acquisition override {name}={value!r}: expected one of {list(allowed)}")
    if lo is not None and not (lo <= float(value) <= hi):
        raise ValueError(f"acquisition override {name}={value!r}: expected a number in [{lo}, {hi}]")
    return value


def sample_acquisition(seed: int, spacing: Sequence[float],
                       overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Draw the acquisition and patient parameters of one case (a JSON-serialisable dict).

    Args:
        seed: the case seed; option k draws from ``np.random.default_rng([seed, 28, k])``.
        spacing: the requested voxel size (mm); only its z component is used (kept z spacing).
        overrides: forced values of some options (keys and values of :data:`ACQUISITION_OPTIONS`);
            the continuous parameters that depend on a forced choice are still drawn from the
            option's own stream.

    Returns:
        A dict with the keys below (probabilities are per case):

        * ``truncation``: ``lateral_keep`` (p 0.25: U(0.6, 0.95), else 1), ``lateral_shift``
          (U(-1, 1): where the kept window sits, -1/+1 cuts only the patient's left/right side),
          ``ap_keep`` (p 0.15: U(0.6, 0.95)), ``ap_shift``, ``craniocaudal`` (p 0.25: one of
          ``bases`` (lung bases + upper abdomen), ``chest`` (no abdomen), ``top`` (apices cut),
          ``both`` (top and bottom slabs)) and ``cc_u`` (two uniforms the generator maps to slab
          sizes).  About half of the cases are truncated somewhere.
        * ``arms``: ``position`` (``down`` with p 0.35, else ``up`` = out of view), the gap to the
          body ``gap_mm`` (5-40 mm, or -8..0 = touching with p 0.25), the arm semi-axes, fat and
          humerus sizes (mm), the elbow height below the right dome (mm).
        * ``contrast``: ``phase`` (none 0.35 / arterial 0.30 / portal_venous 0.35), ``set_hu``
          (absolute HU per structure: ``blood`` (heart chambers, aorta, great vessels; arterial
          250-450, portal 140-200), ``lung_vessels`` (arterial 150-350, portal 120-180) and in the
          portal phase ``liver`` 100-140, ``spleen`` 110-140, ``kidney`` 150-220) and ``add_hu``
          (enhancement added to the case's unenhanced HU: myocardium +30..70 arterial / +30..50
          portal, pancreas, gut wall, and in the arterial phase liver +5..20, spleen +40..80,
          kidney +80..150).
        * ``kernel``: ``name`` (smooth 0.3 / standard 0.4 / sharp 0.3), ``smooth_fwhm_vox``
          (extra in-plane Gaussian FWHM, 0.7-1.4 voxel) or ``sharp_k`` (unsharp-mask gain
          0.6-1.5 with a 1-voxel Gaussian).
        * ``dose``: ``standard`` (p 0.7, noise 10-25 HU at 3 mm) or ``low`` (40-90 HU at 3 mm);
          ``noise_std_3mm`` the drawn level.
        * ``slice_thickness_mm``: 0.6-1.25 (p 0.35), 1.5-3 (0.35) or 3-5 mm (0.3).
        * ``z_spacing_mm``: with p 0.4 the case is generated at the z spacing of {1.5, 2, 3, 5}
          nearest below the thickness (the number of slices changes to keep the FOV), else the
          requested z spacing; ``z_resampled`` says which.
        * ``patient_scale``: U(0.8, 1.2), the factor on every anatomical length.
        * ``lung_hu``: U(-900, -700), mean HU of the lung parenchyma (deep inspiration to
          expiration); the gravity gradient toward the back is kept.
        * ``effusion``: ``None`` or (p 0.25) ``sides``, ``thickness_mm`` per side (5-40 mm at the
          base), ``height_mm`` (50-110 mm above the lowest lung point), ``hu`` (0-20).
        * ``atelectasis``: ``None`` or (p 0.6 beside an effusion, else 0.25) ``sides``,
          ``thickness_mm`` (5-20 mm band), ``height_mm`` (30-80 mm), ``hu`` (-200..+40).
        * ``emphysema``: ``None`` or (p 0.2) ``fraction`` (0.03-0.15 of the upper-lobe
          parenchyma as low-attenuation patches), ``bullae`` (0-3 bullae, radius 8-25 mm),
          ``hu`` (-1000..-950).
    """
    ov = dict(overrides or {})
    unknown = sorted(set(ov) - set(ACQUISITION_OPTIONS))
    if unknown:
        raise ValueError(f"unknown acquisition overrides {unknown}; known: {list(ACQUISITION_OPTIONS)}")
    streams = {name: np.random.default_rng([int(seed), 28, k]) for k, name in enumerate(ACQUISITION_OPTIONS)}

    def U(name: str, lo: float, hi: float) -> float:
        return float(streams[name].uniform(lo, hi))

    out: dict[str, Any] = {"variety": True}

    # field of view
    r = streams["lateral_keep"]
    lat = float(r.uniform(0.6, 0.95)) if r.random() < 0.25 else 1.0
    lat_shift = float(r.uniform(-1.0, 1.0))
    r = streams["ap_keep"]
    ap = float(r.uniform(0.6, 0.95)) if r.random() < 0.15 else 1.0
    ap_shift = float(r.uniform(-1.0, 1.0))
    r = streams["craniocaudal"]
    cc = _pick(r, _CC_MODES, (0.75, 0.0625, 0.0625, 0.0625, 0.0625))
    cc_u = [float(v) for v in r.uniform(0.0, 1.0, 2)]
    if "lateral_keep" in ov:
        lat = float(_check_option("lateral_keep", ov["lateral_keep"], lo=0.6, hi=1.0))
    if "ap_keep" in ov:
        ap = float(_check_option("ap_keep", ov["ap_keep"], lo=0.6, hi=1.0))
    cc = _check_option("craniocaudal", ov.get("craniocaudal", cc), _CC_MODES)
    out["truncation"] = {"lateral_keep": lat, "lateral_shift": lat_shift, "ap_keep": ap, "ap_shift": ap_shift,
                         "craniocaudal": cc, "cc_u": cc_u}

    # arms
    r = streams["arms"]
    pos = "down" if r.random() < 0.35 else "up"
    pos = _check_option("arms", ov.get("arms", pos), ("up", "down"))
    touching = bool(r.random() < 0.25)
    gap = float(r.uniform(-8.0, 0.0)) if touching else float(r.uniform(5.0, 40.0))
    semi = [float(r.uniform(38.0, 50.0)), float(r.uniform(42.0, 55.0))]  # lateral, AP semi-axes of the upper arm
    out["arms"] = {"position": pos, "gap_mm": gap, "semi_mm": semi,
                   "y_offset": float(r.uniform(-0.25, 0.15)), "fat_mm": float(r.uniform(4.0, 15.0)),
                   "humerus_radius_mm": float(r.uniform(10.0, 13.0)),
                   "elbow_below_dome_mm": float(r.uniform(60.0, 130.0))}

    # contrast
    r = streams["contrast"]
    phase = _pick(r, ("none", "arterial", "portal_venous"), (0.35, 0.30, 0.35))
    phase = _check_option("contrast", ov.get("contrast", phase), ("none", "arterial", "portal_venous"))
    set_hu: dict[str, float] = {}
    add_hu: dict[str, float] = {}
    if phase == "arterial":
        set_hu = {"blood": U("contrast", 250.0, 450.0), "lung_vessels": U("contrast", 150.0, 350.0)}
        add_hu = {"myocardium": U("contrast", 30.0, 70.0), "liver": U("contrast", 5.0, 20.0),
                  "spleen": U("contrast", 40.0, 80.0), "kidney": U("contrast", 80.0, 150.0),
                  "pancreas": U("contrast", 40.0, 80.0), "gut_wall": U("contrast", 10.0, 30.0)}
    elif phase == "portal_venous":
        set_hu = {"blood": U("contrast", 140.0, 200.0), "lung_vessels": U("contrast", 120.0, 180.0),
                  "liver": U("contrast", 100.0, 140.0), "spleen": U("contrast", 110.0, 140.0),
                  "kidney": U("contrast", 150.0, 220.0)}
        add_hu = {"myocardium": U("contrast", 30.0, 50.0), "pancreas": U("contrast", 40.0, 70.0),
                  "gut_wall": U("contrast", 20.0, 40.0)}
    out["contrast"] = {"phase": phase, "set_hu": set_hu, "add_hu": add_hu}

    # reconstruction kernel
    r = streams["kernel"]
    kern = _pick(r, ("smooth", "standard", "sharp"), (0.3, 0.4, 0.3))
    kern = _check_option("kernel", ov.get("kernel", kern), ("smooth", "standard", "sharp"))
    sm, sk = float(r.uniform(0.7, 1.4)), float(r.uniform(0.6, 1.5))
    out["kernel"] = {"name": kern, "smooth_fwhm_vox": sm if kern == "smooth" else 0.0,
                     "sharp_k": sk if kern == "sharp" else 0.0}

    # dose
    r = streams["dose"]
    dose = "low" if r.random() < 0.3 else "standard"
    dose = _check_option("dose", ov.get("dose", dose), ("standard", "low"))
    lo_n, hi_n = (40.0, 90.0) if dose == "low" else (10.0, 25.0)
    out["dose"] = dose
    out["noise_std_3mm"] = float(r.uniform(lo_n, hi_n))

    # slice thickness and z spacing
    r = streams["slice_thickness_mm"]
    band = _pick(r, ((0.6, 1.25), (1.5, 3.0), (3.0, 5.0)), (0.35, 0.35, 0.3))
    thk = float(r.uniform(*band))
    if "slice_thickness_mm" in ov:
        thk = float(_check_option("slice_thickness_mm", ov["slice_thickness_mm"], lo=0.6, hi=5.0))
    out["slice_thickness_mm"] = thk
    r = streams["z_spacing_mm"]
    resample = bool(r.random() < 0.4)
    zs = float(spacing[2])
    if resample:
        zs = max([v for v in _Z_SPACINGS if v <= max(thk, _Z_SPACINGS[0])])
    if ov.get("z_spacing_mm") is not None:
        zs = float(ov["z_spacing_mm"])
        if zs <= 0:
            raise ValueError(f"acquisition override z_spacing_mm={zs}: expected a positive number")
    out["z_spacing_mm"] = zs
    out["z_resampled"] = bool(zs != float(spacing[2]))

    # patient
    scale = U("patient_scale", 0.8, 1.2)
    if "patient_scale" in ov:
        scale = float(_check_option("patient_scale", ov["patient_scale"], lo=0.8, hi=1.2))
    out["patient_scale"] = scale
    lung = U("lung_hu", -900.0, -700.0)
    if "lung_hu" in ov:
        lung = float(_check_option("lung_hu", ov["lung_hu"], lo=-900.0, hi=-700.0))
    out["lung_hu"] = lung

    # confounders
    r = streams["effusion"]
    eff = _pick(r, _SIDES, (0.75, 0.0833, 0.0833, 0.0834))
    eff = _check_option("effusion", ov.get("effusion", eff), _SIDES)
    thick = {"left": float(r.uniform(5.0, 40.0)), "right": float(r.uniform(5.0, 40.0))}
    eff_h, eff_hu = float(r.uniform(50.0, 110.0)), float(r.uniform(0.0, 20.0))
    eff_sides = [] if eff == "none" else (["left", "right"] if eff == "both" else [eff])
    out["effusion"] = None if not eff_sides else {
        "sides": eff_sides, "thickness_mm": {s: thick[s] for s in eff_sides}, "height_mm": eff_h, "hu": eff_hu}

    r = streams["atelectasis"]
    u = r.random()
    if eff_sides:
        at = ("both" if len(eff_sides) == 2 else eff_sides[0]) if u < 0.6 else "none"
    else:
        at = _pick(r, _SIDES[1:], (0.4, 0.3, 0.3)) if u < 0.25 else "none"
    at = _check_option("atelectasis", ov.get("atelectasis", at), _SIDES)
    at_sides = [] if at == "none" else (["left", "right"] if at == "both" else [at])
    at_p = (float(r.uniform(5.0, 20.0)), float(r.uniform(30.0, 80.0)), float(r.uniform(-200.0, 40.0)))
    out["atelectasis"] = None if not at_sides else {
        "sides": at_sides, "thickness_mm": at_p[0], "height_mm": at_p[1], "hu": at_p[2]}

    r = streams["emphysema"]
    emph = bool(r.random() < 0.2)
    emph = bool(_check_option("emphysema", ov.get("emphysema", emph), (True, False)))
    frac, nb, hu_e = float(r.uniform(0.03, 0.15)), int(r.integers(0, 4)), float(r.uniform(-1000.0, -950.0))
    radii = [float(v) for v in r.uniform(8.0, 25.0, 3)][:nb]
    out["emphysema"] = {"fraction": frac, "bullae_radius_mm": radii, "hu": hu_e} if emph else None
    return out


def _inplane_gauss(a: np.ndarray, sigma_vox: float) -> np.ndarray:
    for axis in (0, 1):
        if a.shape[axis] > 1 and sigma_vox > 1e-3:
            a = ndi.gaussian_filter1d(a, sigma_vox, axis=axis, mode="reflect", truncate=3.0)
    return a


def apply_kernel(image: np.ndarray, kernel: str, strength: float) -> np.ndarray:
    """Emulate a reconstruction kernel in-plane (axes 0 and 1) on a float32 image.

    ``smooth``: an extra Gaussian blur of FWHM ``strength`` voxels; ``standard``: unchanged;
    ``sharp``: an unsharp mask ``image + strength * (image - G(image))`` with a 1-voxel Gaussian G,
    which raises the high spatial frequencies (edge overshoot, as with a bone/lung kernel).
    Returns a new array (or ``image`` itself for ``standard``).
    """
    if kernel == "standard" or strength <= 0:
        return image
    if kernel == "smooth":
        return _inplane_gauss(image, strength / 2.3548)
    if kernel == "sharp":
        low = _inplane_gauss(image, 1.0)
        out = image + np.float32(strength) * (image - low)
        return out.astype(np.float32, copy=False)
    raise ValueError(f"unknown reconstruction kernel {kernel!r}")


def kernel_noise(white: np.ndarray, kernel: str, strength: float, std: float) -> np.ndarray:
    """Shape white noise like reconstructed CT noise of ``kernel`` and scale it to ``std`` HU.

    The noise is first correlated in-plane by the 3-tap [0.12, 0.76, 0.12] filter of the standard
    phantom noise, then passed through :func:`apply_kernel` (a smooth kernel moves its power to low
    frequencies, a sharp one to high frequencies), and normalised to the standard deviation
    ``std``; slices stay independent.  ``white`` is modified in place and returned.
    """
    w = 0.12
    taps = np.array([w, 1.0 - 2.0 * w, w], dtype=np.float32)
    n = white
    for axis in (0, 1):
        if n.shape[axis] > 1:
            n = ndi.correlate1d(n, taps, axis=axis, mode="reflect")
    n = apply_kernel(n, kernel, strength)
    sd = float(np.std(n, dtype=np.float64))
    if sd > 0:
        n *= np.float32(std / sd)
    return n


def crop_affine(affine: np.ndarray, start: Sequence[int]) -> np.ndarray:
    """Affine of ``volume[start[0]:, start[1]:, start[2]:]``: same axes, origin moved to voxel ``start``.

    Every kept voxel keeps its world position, so world coordinates (landmarks, lesion centres) of
    the uncropped phantom stay valid in the cropped one.
    """
    out = np.array(affine, dtype=np.float64, copy=True)
    out[:3, 3] = (out @ np.array([float(s) for s in start] + [1.0]))[:3]
    return out
