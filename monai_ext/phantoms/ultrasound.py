"""Synthetic B-mode ultrasound: one anatomy, many "machine styles", with masks.

The embedded default data of the ultrasound style-transfer work (Hung & Galeotti, "Ultrasound Variational
Style Transfer to Generate Images Beyond the Observed Domain", DGM4MICCAI 2021). That paper pools images
of eight sources (linear probes at clinical and ultra-high frequency, phantoms, animal tissue) whose
appearance differs by machine and settings while the anatomy is what a segmenter must find. Here content
and style are generated separately, so they are known exactly:

- :func:`generate_us_anatomy` draws the *content*: a style-free map of tissue backscatter (skin, fat with
  septa, muscle with fibres, fascia, deep parenchyma) with vessels, cysts and solid lesions, their label
  map, and a map of relative attenuation (fluid attenuates little, solid lesions a lot).
- :func:`simulate_bmode` images that content with one :class:`UltrasoundStyle` (a "machine": centre
  frequency and bandwidth, beam width, scatterer density, gain, time-gain compensation, dynamic range,
  depth, noise floor, linear or curvilinear field of view, speckle smoothing, grey map).
- :func:`synthesize_us_dataset` writes PNG images of every subject in every style, one label per subject
  and a ``dataset.json`` split by subject.

Physics of :func:`simulate_bmode` (2D, along each scan line; numpy/scipy, about 20-40 ms for 128x128):

1. The anatomy is sampled on the simulation grid: rows = depth, columns = scan lines (for a curvilinear
   style, the grid is polar: radius x angle around a virtual apex above the image). Depth is sampled
   finely enough to carry the RF signal (spacing <= c / (4 f_max), f_max = the top of the pulse spectrum).
2. Scatterers: each fine cell holds a Poisson number of point scatterers (mean = ``speckle_density`` per
   resolution cell) with Gaussian amplitudes; their backscattered power is scaled by the echogenicity, so
   fluid is nearly empty and low densities give non-Rayleigh, "spotty" speckle.
3. Point-spread function: Gaussian beam profile laterally (-6 dB width = wavelength x f-number; constant in
   mm for a linear array, constant in angle for a curvilinear one) and, along depth, a Gaussian-modulated
   cosine at the centre frequency with the style's fractional bandwidth. The axial pulse is applied in the
   frequency domain keeping only positive frequencies, which yields the analytic signal (RF + i Hilbert(RF))
   in the same step; its magnitude is the envelope.
4. The envelope is averaged into display pixels, attenuated along the beam (round trip, 2 alpha f0 times
   the integral of the relative attenuation map: posterior enhancement behind cysts, shadows behind
   solid lesions), electronic noise is added (Rician), then TGC (dB per cm of depth) and gain are applied
   and the result is log-compressed: ``(dB - (ceiling - DR)) / DR`` clipped to [0, 1], ``ceiling`` =
   :data:`DISPLAY_CEILING_DB` above the mean echo of reference tissue. Optional smoothing (speckle
   reduction) of the log image and a grey-map gamma follow; curvilinear images are scan-converted onto
   the Cartesian pixel grid (black outside the fan).

The anatomy is defined on the image's pixel grid; ``depth_cm`` sets the physical size of a pixel (square
pixels, the image height is the imaging depth), so one anatomy yields the same mask in every style while
the physics (PSF size in pixels, attenuation per pixel) changes with depth. All structures are placed
inside the field of view every built-in style shares (a fan of at least 60 degrees whose apex is at least
0.35 image heights above the top row).

Label values: 0 background (tissue), 1 vessel lumen, 2 cyst (anechoic fluid), 3 solid lesion.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft as _fft
from scipy import ndimage

from ..io import atomic_write
from .random_field import smooth_random_field
from .seeds import derive_seed

__all__ = [
    "UltrasoundStyle",
    "ULTRASOUND_STYLES",
    "US_LABELS",
    "DISPLAY_CEILING_DB",
    "SPEED_OF_SOUND_M_S",
    "generate_us_anatomy",
    "simulate_bmode",
    "ultrasound_fov_mask",
    "blend_ultrasound_styles",
    "sample_ultrasound_style",
    "synthesize_us_dataset",
]

#: Speed of sound assumed in soft tissue (m/s).
SPEED_OF_SOUND_M_S = 1540.0
#: Top of the displayed range, in dB above the mean echo power of reference tissue (echogenicity 1).
DISPLAY_CEILING_DB = 30.0
#: Label values of :func:`generate_us_anatomy`.
US_LABELS: dict[int, str] = {0: "background", 1: "vessel", 2: "cyst", 3: "solid_lesion"}

# Every structure lies inside this fan (and so inside the field of view of every style whose fan is at
# least as wide: opening angle >= 60 degrees, apex >= 0.35 image heights above the image).
_SAFE_SECTOR_ANGLE_DEG = 60.0
_SAFE_APEX_OFFSET = 0.35
_SAFE_ROWS = (0.18, 0.93)  # fraction of the image height


@dataclass(frozen=True)
class UltrasoundStyle:
    """One ultrasound "machine" (probe, settings and medium), in physical units.

    Args:
        name: identifier.
        centre_frequency_mhz: transmit centre frequency f0 (MHz); wavelength = c / f0 with c = 1540 m/s.
        speckle_density: mean number of point scatterers per resolution cell (axial -6 dB pulse length x
            lateral -6 dB beam width). Above about 10 speckle is fully developed (Rayleigh); a few per cell
            gives sparse, spotty texture.
        gain_db: overall receive gain (dB), added before log compression.
        tgc_db_per_cm: time-gain compensation slope (dB per cm of depth). Tissue attenuates
            ``2 * attenuation_db_cm_mhz * f0`` dB per cm (round trip); what TGC leaves is
            :attr:`net_attenuation_db_per_cm` (positive: images darken with depth).
        dynamic_range_db: displayed dynamic range of the log compression (dB).
        depth_cm: imaging depth = image height (cm); the pixel size is ``depth_cm * 10 / H`` mm (square).
        fractional_bandwidth: -6 dB pulse-echo bandwidth divided by f0 (sets the axial pulse length).
        f_number: lateral -6 dB beam width = wavelength x ``f_number`` (linear: at every depth; curvilinear:
            at mid depth, the width then grows in proportion to the radius).
        sector_angle_deg: opening angle of a curvilinear field of view (degrees); 0 = linear array
            (rectangular field).
        apex_offset: curvilinear only: distance of the virtual apex above the top row, in image heights.
        noise_floor_db: rms electronic noise relative to the mean echo of reference tissue at zero depth
            (before TGC and gain, so TGC amplifies it with depth).
        attenuation_db_cm_mhz: one-way attenuation of reference tissue (dB / cm / MHz).
        smoothing_px: Gaussian sigma (pixels) of the machine's speckle-reduction filter on the log image;
            0 = none.
        gamma: grey-map exponent applied to the [0, 1] display values (1 = linear grey map).
        focus_depth: depth of the transmit focus as a fraction of the imaging depth.
        beam_spread: growth of the lateral beam width away from the focus: the width is multiplied by
            ``1 + beam_spread * |depth / depth_cm - focus_depth|`` (0 = uniform, e.g. many focal zones).
    """

    name: str
    centre_frequency_mhz: float
    speckle_density: float
    gain_db: float
    tgc_db_per_cm: float
    dynamic_range_db: float
    depth_cm: float
    fractional_bandwidth: float = 0.6
    f_number: float = 2.0
    sector_angle_deg: float = 0.0
    apex_offset: float = 0.4
    noise_floor_db: float = -60.0
    attenuation_db_cm_mhz: float = 0.5
    smoothing_px: float = 0.0
    gamma: float = 1.0
    focus_depth: float = 0.5
    beam_spread: float = 0.5

    def __post_init__(self) -> None:
        positive = (
            "centre_frequency_mhz",
            "speckle_density",
            "dynamic_range_db",
            "depth_cm",
            "fractional_bandwidth",
            "f_number",
            "gamma",
        )
        for field in dataclasses.fields(self):
            if field.name == "name":
                continue
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                raise ValueError(f"UltrasoundStyle {self.name!r}: {field.name} must be a finite number, got {value!r}.")
            if field.name in positive and value <= 0:
                raise ValueError(f"UltrasoundStyle {self.name!r}: {field.name} must be > 0, got {value!r}.")
        if not 0 <= self.sector_angle_deg < 170:
            raise ValueError(
                f"UltrasoundStyle {self.name!r}: sector_angle_deg must be in [0, 170) (0 = linear), got "
                f"{self.sector_angle_deg!r}."
            )
        if self.fractional_bandwidth > 1.5:
            raise ValueError(
                f"UltrasoundStyle {self.name!r}: fractional_bandwidth must be in (0, 1.5], got {self.fractional_bandwidth!r}."
            )
        if not 0 <= self.focus_depth <= 1:
            raise ValueError(f"UltrasoundStyle {self.name!r}: focus_depth must be in [0, 1], got {self.focus_depth!r}.")
        for name in ("apex_offset", "attenuation_db_cm_mhz", "smoothing_px", "beam_spread"):
            if getattr(self, name) < 0:
                raise ValueError(f"UltrasoundStyle {self.name!r}: {name} must be >= 0, got {getattr(self, name)!r}.")
        if self.sector_angle_deg > 0 and self.apex_offset <= 0:
            raise ValueError(f"UltrasoundStyle {self.name!r}: a curvilinear style needs apex_offset > 0.")

    # ---- derived quantities (all in mm unless named otherwise)
    @property
    def is_sector(self) -> bool:
        """Curvilinear (fan-shaped) field of view."""
        return self.sector_angle_deg > 0

    @property
    def wavelength_mm(self) -> float:
        """Wavelength at the centre frequency (mm)."""
        return SPEED_OF_SOUND_M_S / (self.centre_frequency_mhz * 1e3)

    @property
    def axial_resolution_mm(self) -> float:
        """-6 dB (FWHM) length of the pulse-echo envelope along depth (mm)."""
        return 2.0 * math.log(2.0) * SPEED_OF_SOUND_M_S / (math.pi * self.fractional_bandwidth * self.centre_frequency_mhz * 1e3)

    @property
    def lateral_resolution_mm(self) -> float:
        """-6 dB (FWHM) lateral beam width (mm; curvilinear: at mid depth)."""
        return self.wavelength_mm * self.f_number

    @property
    def net_attenuation_db_per_cm(self) -> float:
        """Depth falloff of reference tissue left after TGC (dB/cm): round-trip attenuation minus TGC."""
        return 2.0 * self.attenuation_db_cm_mhz * self.centre_frequency_mhz - self.tgc_db_per_cm

    def pixel_size_mm(self, shape: Sequence[int]) -> float:
        """Side of a (square) display pixel for an image of ``shape`` = (H, W): depth / H."""
        return self.depth_cm * 10.0 / int(shape[0])

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-serialisable dict (``UltrasoundStyle(**d)`` rebuilds it)."""
        return dataclasses.asdict(self)


#: Built-in styles. Keys are the style names.
ULTRASOUND_STYLES: dict[str, UltrasoundStyle] = {
    s.name: s
    for s in (
        # vascular / small-parts linear probe on a current machine: fine speckle, shallow, even, mid grey
        UltrasoundStyle(
            "linear_high_freq", centre_frequency_mhz=12.0, speckle_density=12.0, gain_db=-4.0, tgc_db_per_cm=10.5,
            dynamic_range_db=60.0, depth_cm=3.0, fractional_bandwidth=0.7, f_number=1.5, noise_floor_db=-65.0,
            beam_spread=0.3,
        ),
        # general-purpose linear probe, older machine: coarser speckle, low dynamic range, falls off with depth
        UltrasoundStyle(
            "linear_mid_freq", centre_frequency_mhz=6.0, speckle_density=8.0, gain_db=3.0, tgc_db_per_cm=3.5,
            dynamic_range_db=45.0, depth_cm=4.5, fractional_bandwidth=0.4, f_number=3.0, noise_floor_db=-50.0,
            focus_depth=0.35, beam_spread=1.5, gamma=0.85,
        ),
        # abdominal curvilinear probe: fan, coarse laterally smeared speckle, deep, smoothed
        UltrasoundStyle(
            "curvilinear_low_freq", centre_frequency_mhz=3.5, speckle_density=10.0, gain_db=-4.0, tgc_db_per_cm=3.0,
            dynamic_range_db=65.0, depth_cm=12.0, fractional_bandwidth=0.5, f_number=3.5, sector_angle_deg=70.0,
            apex_offset=0.45, noise_floor_db=-58.0, smoothing_px=0.5, beam_spread=2.0,
        ),
        # ultra-high-frequency preclinical scanner (e.g. Vevo): very fine grain, very shallow, high contrast
        UltrasoundStyle(
            "ultra_high_freq", centre_frequency_mhz=30.0, speckle_density=4.0, gain_db=-1.0, tgc_db_per_cm=26.0,
            dynamic_range_db=50.0, depth_cm=1.5, fractional_bandwidth=0.8, f_number=2.0, noise_floor_db=-62.0,
            beam_spread=0.8, gamma=1.2,
        ),
        # tissue-mimicking gel phantom on a linear probe: sparse scatterers, high contrast
        UltrasoundStyle(
            "gel_phantom", centre_frequency_mhz=9.0, speckle_density=1.5, gain_db=5.0, tgc_db_per_cm=4.5,
            dynamic_range_db=42.0, depth_cm=4.0, fractional_bandwidth=0.6, f_number=2.0, noise_floor_db=-70.0,
            attenuation_db_cm_mhz=0.3, beam_spread=0.5, gamma=1.3,
        ),
        # low-end handheld curvilinear probe: noisy, narrow dynamic range, strong smoothing, bright near field
        UltrasoundStyle(
            "handheld_curvilinear", centre_frequency_mhz=5.0, speckle_density=6.0, gain_db=9.0, tgc_db_per_cm=4.0,
            dynamic_range_db=40.0, depth_cm=8.0, fractional_bandwidth=0.45, f_number=3.5, sector_angle_deg=64.0,
            apex_offset=0.6, noise_floor_db=-42.0, smoothing_px=1.0, focus_depth=0.4, beam_spread=1.5, gamma=0.8,
        ),
    )
}


def _resolve_style(style: UltrasoundStyle | str | Mapping[str, Any]) -> UltrasoundStyle:
    if isinstance(style, UltrasoundStyle):
        return style
    if isinstance(style, str):
        if style not in ULTRASOUND_STYLES:
            raise ValueError(f"unknown ultrasound style {style!r}; expected one of {sorted(ULTRASOUND_STYLES)}.")
        return ULTRASOUND_STYLES[style]
    if isinstance(style, Mapping):
        try:
            return UltrasoundStyle(**dict(style))
        except TypeError as e:
            raise ValueError(f"cannot build an UltrasoundStyle from {dict(style)!r}: {e}") from e
    raise TypeError(f"style must be an UltrasoundStyle, a style name or a dict of its fields, got {type(style).__name__}.")


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError) as e:
        raise ValueError(f"shape must be two integers (H, W), got {shape!r}.") from e
    if h < 32 or w < 32:
        raise ValueError(f"shape must be at least (32, 32), got {(h, w)}.")
    return h, w


# ------------------------------------------------------------------------------------ field of view


def ultrasound_fov_mask(shape: Sequence[int], style: UltrasoundStyle | str | None = None) -> np.ndarray:
    """Field of view of ``style`` on an image of ``shape`` = (H, W): bool (H, W), True where the probe
    images (everything for a linear style; the fan for a curvilinear one). ``style=None``: the region in
    which :func:`generate_us_anatomy` places structures (the field every built-in style covers)."""
    h, w = _check_shape(shape)
    if style is None:
        fan = _fan_mask(h, w, _SAFE_SECTOR_ANGLE_DEG, _SAFE_APEX_OFFSET)
        rows = (np.arange(h) + 0.5) / h
        fan &= ((rows >= _SAFE_ROWS[0]) & (rows <= _SAFE_ROWS[1]))[:, None]
        return fan
    style = _resolve_style(style)
    if not style.is_sector:
        return np.ones((h, w), dtype=bool)
    return _fan_mask(h, w, style.sector_angle_deg, style.apex_offset)


def _fan_mask(h: int, w: int, angle_deg: float, apex_offset: float) -> np.ndarray:
    r, theta = _cartesian_to_polar(h, w, apex_offset * h)
    r0 = apex_offset * h
    return (r >= r0) & (r <= r0 + h) & (np.abs(theta) <= math.radians(angle_deg) / 2)


def _cartesian_to_polar(h: int, w: int, r0: float) -> tuple[np.ndarray, np.ndarray]:
    """Radius (pixels) and angle (rad, 0 = straight down) of every pixel centre about the apex (-r0, w/2)."""
    y = np.arange(h, dtype=np.float64)[:, None] + 0.5 + r0
    x = np.arange(w, dtype=np.float64)[None, :] + 0.5 - w / 2.0
    return np.hypot(y, x), np.arctan2(x, y)


# ------------------------------------------------------------------------------------------ anatomy


def _wavy_boundary(rng: np.random.Generator, w: int, mean_row: float, amplitude: float) -> np.ndarray:
    """Row of a gently undulating horizontal tissue interface at every column."""
    x = np.arange(w) / w
    out = np.full(w, float(mean_row))
    for k in (1, 2, 3):
        out += amplitude / k * np.sin(2 * math.pi * k * x * rng.uniform(0.5, 1.0) + rng.uniform(0, 2 * math.pi))
    return out


def _radial_shape(rng: np.random.Generator, irregularity: float) -> tuple[np.ndarray, np.ndarray]:
    """Random low-order Fourier perturbation of a circle: (amplitudes, phases) of harmonics 2..6."""
    amps = rng.uniform(0, irregularity, size=5) / np.arange(1, 6) ** 0.5
    phases = rng.uniform(0, 2 * math.pi, size=5)
    return amps, phases


def _structure_mask(
    yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float], radii: tuple[float, float], angle: float,
    harmonics: tuple[np.ndarray, np.ndarray] | None = None, grow: float = 0.0,
) -> np.ndarray:
    """Pixels inside a rotated ellipse (optionally with a Fourier-perturbed radius), grown by ``grow`` px."""
    dy, dx = yy - centre[0], xx - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    rad = np.hypot(u / radii[1], v / radii[0])  # 1 on the ellipse
    limit = np.ones_like(rad)
    if harmonics is not None:
        phi = np.arctan2(v, u)
        amps, phases = harmonics
        for k, (a, p) in enumerate(zip(amps, phases), start=2):
            limit = limit + a * np.cos(k * phi + p)
    scale = min(radii)
    return rad <= limit + grow / scale


def generate_us_anatomy(
    seed: int,
    shape: Sequence[int] = (128, 128),
    num_vessels: int | None = None,
    num_cysts: int | None = None,
    num_lesions: int | None = None,
) -> dict[str, Any]:
    """Draw the style-free content of one ultrasound image: tissue layers and structures with labels.

    Args:
        seed: random seed (the same seed gives the same anatomy).
        shape: (H, W) pixels; rows are depth (row 0 at the probe), columns lateral position.
        num_vessels: vessel lumens (round arteries, elliptic veins); default 1 or 2.
        num_cysts: anechoic cysts; default 0..2.
        num_lesions: solid lesions (hypo- or hyperechoic, irregular outline); default 0 or 1. When neither
            ``num_cysts`` nor ``num_lesions`` is given, at least one cyst or lesion is present. Vessel walls
            and cyst capsules are bright but belong to the background label.

    Returns:
        dict with
        ``"echogenicity"``: float32 (H, W) relative backscattered power (1 = reference soft tissue; fluid
        about 0.001, fascia and vessel walls 3-12);
        ``"attenuation"``: float32 (H, W) attenuation relative to reference tissue (fluid 0.1-0.3, solid
        hypoechoic lesions about 2.5);
        ``"label"``: uint8 (H, W), 0 background, 1 vessel lumen, 2 cyst, 3 solid lesion (:data:`US_LABELS`);
        ``"seed"``: ``seed``; ``"shape"``: (H, W); ``"structures"``: list of dicts (kind, label, centre and
        radii in pixels, echogenicity) describing what was placed.
    """
    h, w = _check_shape(shape)
    seed = int(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5AB]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    size = float(min(h, w))

    # ---- layered background: skin, subcutaneous fat, fascia, muscle, fascia, deep parenchyma
    skin = _wavy_boundary(rng, w, rng.uniform(0.018, 0.03) * h, 0.004 * h)
    fat_end = _wavy_boundary(rng, w, rng.uniform(0.09, 0.17) * h, 0.02 * h)
    muscle_end = _wavy_boundary(rng, w, rng.uniform(0.36, 0.55) * h, 0.035 * h)
    rows = yy
    echo = np.empty((h, w))
    atten = np.ones((h, w))
    in_skin = rows < skin[None, :]
    in_fat = ~in_skin & (rows < fat_end[None, :])
    in_muscle = (rows >= fat_end[None, :]) & (rows < muscle_end[None, :])
    deep = rows >= muscle_end[None, :]

    septa = np.exp(-np.abs(smooth_random_field(rng, (h, w), 0.035 * size)) / 0.12)  # thin bright lines
    echo[in_fat] = (0.35 + 2.5 * septa)[in_fat]
    atten[in_fat] = 0.8
    fibre_tilt = rng.uniform(-0.15, 0.15)
    fibres = smooth_random_field(rng, (h, w), (0.004 * size + 0.3, 0.08 * size))  # elongated laterally
    fibres = ndimage.rotate(fibres, math.degrees(fibre_tilt), reshape=False, mode="wrap", order=1)
    echo[in_muscle] = (0.75 * np.exp(0.55 * fibres))[in_muscle]
    atten[in_muscle] = 1.1
    echo[deep] = (np.exp(0.35 * smooth_random_field(rng, (h, w), 0.08 * size)) * rng.uniform(0.9, 1.3))[deep]
    echo[in_skin] = 4.0
    for boundary, strength in ((fat_end, 7.0), (muscle_end, 5.0)):  # fascia: specular interfaces
        dist = np.abs(rows - boundary[None, :])
        echo += strength * np.exp(-0.5 * (dist / max(0.6, 0.006 * h)) ** 2)

    # ---- structures, placed without overlap inside the field of view every style shares
    safe = ultrasound_fov_mask((h, w), None)
    drawn_vessels, drawn_cysts, drawn_lesions = int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(0, 2))
    if num_cysts is None and num_lesions is None and drawn_cysts == 0 and drawn_lesions == 0:
        drawn_cysts = 1
    num_vessels = drawn_vessels if num_vessels is None else num_vessels
    num_cysts = drawn_cysts if num_cysts is None else num_cysts
    num_lesions = drawn_lesions if num_lesions is None else num_lesions
    for name, n in (("num_vessels", num_vessels), ("num_cysts", num_cysts), ("num_lesions", num_lesions)):
        if int(n) < 0 or int(n) > 6:
            raise ValueError(f"{name} must be in 0..6, got {n}.")
    kinds = ["lesion"] * int(num_lesions) + ["vessel"] * int(num_vessels) + ["cyst"] * int(num_cysts)
    label = np.zeros((h, w), dtype=np.uint8)
    occupied = np.zeros((h, w), dtype=bool)
    structures: list[dict[str, Any]] = []
    margin = max(2.0, 0.03 * size)
    for kind in kinds:
        for _ in range(200):
            if kind == "vessel":
                r = rng.uniform(0.045, 0.085) * size
                artery = bool(rng.random() < 0.5)
                radii = (r, r) if artery else (r * rng.uniform(0.6, 0.85), r * rng.uniform(1.0, 1.3))
                angle, harmonics = rng.uniform(-0.2, 0.2), None
            elif kind == "cyst":
                r = rng.uniform(0.05, 0.1) * size
                radii = (r * rng.uniform(0.75, 1.0), r * rng.uniform(0.9, 1.25))
                angle, harmonics = rng.uniform(-0.6, 0.6), _radial_shape(rng, 0.06)
            else:
                r = rng.uniform(0.07, 0.12) * size
                radii = (r * rng.uniform(0.7, 1.0), r * rng.uniform(0.9, 1.2))
                angle, harmonics = rng.uniform(-0.8, 0.8), _radial_shape(rng, 0.25)
            centre = (rng.uniform(0.2, 0.88) * h, rng.uniform(0.15, 0.85) * w)
            inside = _structure_mask(yy, xx, centre, radii, angle, harmonics)
            grown = _structure_mask(yy, xx, centre, radii, angle, harmonics, grow=margin)
            if inside.sum() < 12 or not safe[grown].all() or (occupied & grown).any():
                continue
            break
        else:
            raise RuntimeError(
                f"could not place a {kind} without overlap in a {(h, w)} image (seed {seed}); ask for fewer structures."
            )
        occupied |= grown
        thickness = max(1.6, 0.25 * min(radii)) if kind == "vessel" else max(1.0, 0.12 * min(radii))
        wall = _structure_mask(yy, xx, centre, radii, angle, harmonics, grow=thickness) & ~inside
        record: dict[str, Any] = {
            "kind": kind,
            "centre": [round(float(c), 2) for c in centre],
            "radii": [round(float(r_), 2) for r_ in radii],
            "angle": round(float(angle), 3),
        }
        if kind == "vessel":
            record.update(label=1, subtype="artery" if radii[0] == radii[1] else "vein", echogenicity=0.002)
            echo[wall] = 12.0 if record["subtype"] == "artery" else 5.0
            echo[inside] = 0.002
            atten[inside] = 0.3
        elif kind == "cyst":
            record.update(label=2, echogenicity=0.001)
            echo[wall] = np.maximum(echo[wall], 2.0)
            echo[inside] = 0.001
            atten[inside] = 0.1
        else:
            hyper = bool(rng.random() < 0.35)
            level = rng.uniform(4.0, 7.0) if hyper else rng.uniform(0.12, 0.3)
            texture = np.exp(0.45 * smooth_random_field(rng, (h, w), 0.02 * size))
            record.update(label=3, subtype="hyperechoic" if hyper else "hypoechoic", echogenicity=round(float(level), 3))
            if hyper:  # thin hypoechoic halo, as around many hyperechoic lesions
                echo[wall] = np.minimum(echo[wall], 0.2)
            echo[inside] = (level * texture)[inside]
            atten[inside] = 1.3 if hyper else 2.5
        label[inside] = record["label"]
        structures.append(record)

    return {
        "echogenicity": echo.astype(np.float32),
        "attenuation": atten.astype(np.float32),
        "label": label,
        "seed": seed,
        "shape": (h, w),
        "structures": structures,
    }


# ------------------------------------------------------------------------------------------ imaging


def _check_anatomy(anatomy: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(anatomy, Mapping) or "echogenicity" not in anatomy:
        raise ValueError("anatomy must be a dict from generate_us_anatomy with an 'echogenicity' (H, W) map.")
    echo = np.asarray(anatomy["echogenicity"], dtype=np.float64)
    if echo.ndim != 2:
        raise ValueError(f"anatomy['echogenicity'] must be a 2D (H, W) map, got shape {echo.shape}.")
    _check_shape(echo.shape)
    if not np.isfinite(echo).all() or echo.min() < 0:
        raise ValueError("anatomy['echogenicity'] must be finite and >= 0 (relative backscattered power).")
    atten = anatomy.get("attenuation")
    atten = np.ones_like(echo) if atten is None else np.asarray(atten, dtype=np.float64)
    if atten.shape != echo.shape or not np.isfinite(atten).all() or atten.min() < 0:
        raise ValueError(
            f"anatomy['attenuation'] must be a finite, non-negative map of shape {echo.shape}, got shape {atten.shape}."
        )
    return echo, atten


def _beam_profile(style: UltrasoundStyle, h: int) -> np.ndarray:
    """Lateral beam width at every display row relative to the width at the focus."""
    depth_frac = (np.arange(h, dtype=np.float64) + 0.5) / h
    return 1.0 + style.beam_spread * np.abs(depth_frac - style.focus_depth)


def _simulation_grid(style: UltrasoundStyle, h: int, w: int) -> dict[str, Any]:
    """Where the scan lines are: sample coordinates (array indices into the (H, W) anatomy)."""
    px = style.pixel_size_mm((h, w))
    if not style.is_sector:
        n_lines = 2 * w  # two scan lines per pixel column
        rows = np.arange(h, dtype=np.float64) + 0.5
        cols = (np.arange(n_lines, dtype=np.float64) + 0.5) / 2.0
        return {
            "rows_idx": np.repeat(rows[:, None] - 0.5, n_lines, axis=1),
            "cols_idx": np.repeat(cols[None, :] - 0.5, h, axis=0),
            "n_lines": n_lines,
            "lateral_step_mm": px / 2.0,
            "lateral_sigma_lines": _beam_profile(style, h) * style.lateral_resolution_mm
            / (2.0 * math.sqrt(2.0 * math.log(2.0))) / (px / 2.0),
        }
    r0 = style.apex_offset * h
    half = math.radians(style.sector_angle_deg) / 2.0
    n_lines = int(math.ceil(2 * half * (r0 + h)))  # about one line per pixel at the bottom of the fan
    radius = r0 + np.arange(h, dtype=np.float64) + 0.5
    theta = -half + (np.arange(n_lines, dtype=np.float64) + 0.5) * (2 * half / n_lines)
    y = radius[:, None] * np.cos(theta)[None, :] - r0
    x = radius[:, None] * np.sin(theta)[None, :] + w / 2.0
    dtheta = 2 * half / n_lines
    r_mid_mm = (r0 + h / 2.0) * px
    sigma_mm = style.lateral_resolution_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return {
        "rows_idx": y - 0.5,
        "cols_idx": x - 0.5,
        "n_lines": n_lines,
        "lateral_step_mm": r_mid_mm * dtheta,
        "lateral_sigma_lines": _beam_profile(style, h) * sigma_mm / r_mid_mm / dtheta,
        "r0": r0,
        "half_angle": half,
    }


def _beam_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(4.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    return k / k.sum()


def _lateral_filter(scat: np.ndarray, sigma_rows: np.ndarray, ka: int) -> tuple[np.ndarray, np.ndarray]:
    """Convolve the fine scatterer map laterally with a Gaussian whose sigma (in lines) varies per display
    row: blend of filters at up to three sigmas. Returns the filtered map and, per display row, the energy
    (sum of squares) of the effective kernel, for normalisation."""
    lo, hi = float(sigma_rows.min()), float(sigma_rows.max())
    if hi <= 0.3:
        return scat, np.ones(len(sigma_rows))
    if hi / max(lo, 1e-6) < 1.05:
        nodes = np.array([0.5 * (lo + hi)])
    else:
        nodes = np.geomspace(max(lo, 0.3), hi, 3)
    kernels = [_beam_kernel(float(sg)) for sg in nodes]
    size = max(len(k) for k in kernels)
    padded = np.stack([np.pad(k, ((size - len(k)) // 2,)) for k in kernels])
    gram = padded @ padded.T
    # per display row: linear interpolation (in log sigma) between the two nearest nodes
    weights = np.zeros((len(sigma_rows), len(nodes)))
    if len(nodes) == 1:
        weights[:, 0] = 1.0
    else:
        pos = np.interp(np.log(np.maximum(sigma_rows, nodes[0])), np.log(nodes), np.arange(len(nodes)))
        left = np.minimum(np.floor(pos).astype(int), len(nodes) - 2)
        frac = pos - left
        weights[np.arange(len(pos)), left] = 1.0 - frac
        weights[np.arange(len(pos)), left + 1] = frac
    out = np.zeros_like(scat)
    for k, kern in enumerate(kernels):
        wk = weights[:, k]
        if not wk.any():
            continue
        filtered = ndimage.correlate1d(scat, kern.astype(np.float32), axis=1, mode="reflect")
        out += filtered * np.repeat(wk.astype(np.float32), ka)[:, None]
    energy = np.einsum("rk,kl,rl->r", weights, gram, weights)
    return out, energy


def _envelope(
    style: UltrasoundStyle, echo_lines: np.ndarray, px_mm: float, lateral_sigma: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Envelope of the beamformed RF lines, averaged into display rows: float64 (H, n_lines).

    ``echo_lines`` (H, n_lines) is the echogenicity along every scan line, ``lateral_sigma`` (H,) the beam
    sigma in lines at every display row. Reference tissue (echogenicity 1) gets mean envelope power 1.
    """
    h, n_lines = echo_lines.shape
    f0 = style.centre_frequency_mhz * 1e6
    c_mm = SPEED_OF_SOUND_M_S * 1e3  # mm/s
    sigma_f = style.fractional_bandwidth * f0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # amplitude -6 dB
    f_max = f0 + 3.5 * sigma_f
    ka = max(2, int(math.ceil(px_mm / (c_mm / (4.0 * f_max)))))  # fine depth samples per display row
    dz = px_mm / ka
    # RF along depth z (round trip): spatial frequency 2 f / c, Gaussian around 2 f0 / c
    fz0, sfz = 2.0 * f0 / c_mm, 2.0 * sigma_f / c_mm
    sigma_z = 1.0 / (2.0 * math.pi * sfz)  # envelope sigma along depth (mm)
    pad = int(math.ceil(5.0 * sigma_z / dz)) + 1
    n_fine = h * ka
    n_fft = _fft.next_fast_len(n_fine + 2 * pad, real=True)

    # scatterers: Poisson count per fine cell with N(0, 1) amplitudes -> sqrt(count) * N(0, 1)
    fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0))
    cell_fine = max(1.0, fwhm * sigma_z / dz) * max(1.0, fwhm * float(lateral_sigma.min()))
    lam = style.speckle_density / cell_fine
    counts = rng.poisson(lam, size=(n_fine, n_lines)).astype(np.float32)
    scat = np.sqrt(counts) * rng.standard_normal((n_fine, n_lines), dtype=np.float32)
    scat *= np.repeat(np.sqrt(echo_lines).astype(np.float32), ka, axis=0)
    scat, lateral_energy = _lateral_filter(scat, np.asarray(lateral_sigma, dtype=np.float64), ka)

    # axial pulse (Gaussian-modulated cosine) and Hilbert transform in one frequency-domain step
    freqs = _fft.rfftfreq(n_fft, d=dz)
    pulse = 2.0 * np.exp(-0.5 * ((freqs - fz0) / sfz) ** 2)
    pulse[0] = 0.0
    spec = _fft.rfft(scat, n=n_fft, axis=0)
    spec *= pulse[:, None].astype(np.complex64)
    analytic = _fft.ifft(spec, n=n_fft, axis=0)[:n_fine]  # negative frequencies are zero -> analytic signal
    env = np.abs(analytic).reshape(h, ka, n_lines).mean(axis=1)

    axial_energy = float(np.sum(pulse**2)) / n_fft
    power = lam * axial_energy * lateral_energy
    return env / np.sqrt(power)[:, None]


def simulate_bmode(
    anatomy: Mapping[str, Any],
    style: UltrasoundStyle | str,
    seed: int,
) -> np.ndarray:
    """B-mode image of ``anatomy`` (from :func:`generate_us_anatomy`) as seen by ``style``.

    Args:
        anatomy: dict with ``"echogenicity"`` (H, W) and optionally ``"attenuation"`` (H, W).
        style: an :class:`UltrasoundStyle`, or the name of one in :data:`ULTRASOUND_STYLES`.
        seed: seed of the scatterers and noise (speckle realisation).

    Returns:
        float32 array (1, H, W) in [0, 1]: display grey values (log-compressed), rows = depth. The pixel
        grid is the anatomy's, whatever the style, so ``anatomy["label"]`` is the mask of every style.
        Outside a curvilinear style's fan (:func:`ultrasound_fov_mask`) the image is 0.
    """
    style = _resolve_style(style)
    echo, atten = _check_anatomy(anatomy)
    h, w = echo.shape
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB0DE, zlib.crc32(style.name.encode())]))
    px = style.pixel_size_mm((h, w))
    grid = _simulation_grid(style, h, w)
    coords = np.stack([grid["rows_idx"], grid["cols_idx"]])
    if style.is_sector:
        echo_lines = ndimage.map_coordinates(echo, coords, order=1, mode="nearest")
        atten_lines = ndimage.map_coordinates(atten, coords, order=1, mode="nearest")
    else:  # two lines per pixel column, on the pixel rows
        echo_lines = np.repeat(echo, 2, axis=1)
        atten_lines = np.repeat(atten, 2, axis=1)

    env = _envelope(style, echo_lines, px, grid["lateral_sigma_lines"], rng)

    depth_cm = (np.arange(h, dtype=np.float64) + 0.5) * px / 10.0  # along each line
    path = (np.cumsum(atten_lines, axis=0) - 0.5 * atten_lines) * (px / 10.0)  # cm of reference tissue
    loss_db = 2.0 * style.attenuation_db_cm_mhz * style.centre_frequency_mhz * path
    signal = env * 10.0 ** (-loss_db / 20.0)
    noise_rms = 10.0 ** (style.noise_floor_db / 20.0)
    noise = rng.standard_normal((2,) + signal.shape) * (noise_rms / math.sqrt(2.0))
    received = np.hypot(signal + noise[0], noise[1])
    db = 20.0 * np.log10(received + 1e-12) + style.tgc_db_per_cm * depth_cm[:, None] + style.gain_db
    display = (db - (DISPLAY_CEILING_DB - style.dynamic_range_db)) / style.dynamic_range_db

    if style.is_sector:
        r, theta = _cartesian_to_polar(h, w, grid["r0"])
        half, n_lines = grid["half_angle"], grid["n_lines"]
        ri = r - grid["r0"] - 0.5
        ti = (theta + half) / (2 * half) * n_lines - 0.5
        image = ndimage.map_coordinates(display, np.stack([ri, ti]), order=1, mode="nearest")
        if style.smoothing_px > 0:
            image = ndimage.gaussian_filter(image, style.smoothing_px, mode="nearest")
        image = np.where(_fan_mask(h, w, style.sector_angle_deg, style.apex_offset), image, 0.0)
    else:
        image = display.reshape(h, w, 2).mean(axis=2)
        if style.smoothing_px > 0:
            image = ndimage.gaussian_filter(image, style.smoothing_px, mode="nearest")
    image = np.clip(image, 0.0, 1.0) ** style.gamma
    return image[None].astype(np.float32)


# ------------------------------------------------------------------------------ style interpolation


def blend_ultrasound_styles(a: UltrasoundStyle | str, b: UltrasoundStyle | str, t: float) -> UltrasoundStyle:
    """Style ``(1 - t) * a + t * b`` (every numeric field linearly, frequency and density geometrically).

    Blending a linear and a curvilinear style keeps the field of view of the nearer one. Used to make
    styles between (or, with ``t`` outside [0, 1], beyond) the observed ones.
    """
    a, b = _resolve_style(a), _resolve_style(b)
    t = float(t)
    values: dict[str, Any] = {"name": f"{a.name}~{b.name}@{t:.3g}"}
    for field in dataclasses.fields(UltrasoundStyle):
        if field.name == "name":
            continue
        va, vb = float(getattr(a, field.name)), float(getattr(b, field.name))
        if field.name in ("centre_frequency_mhz", "speckle_density"):
            values[field.name] = float(math.exp((1 - t) * math.log(va) + t * math.log(vb)))
        else:
            values[field.name] = (1 - t) * va + t * vb
    near = a if t < 0.5 else b
    values["sector_angle_deg"] = near.sector_angle_deg if (a.is_sector != b.is_sector) else values["sector_angle_deg"]
    values["apex_offset"] = near.apex_offset if (a.is_sector != b.is_sector) else values["apex_offset"]
    for name in ("fractional_bandwidth", "f_number", "gamma", "dynamic_range_db", "depth_cm"):
        values[name] = max(values[name], 1e-3)
    for name in ("apex_offset", "attenuation_db_cm_mhz", "smoothing_px", "beam_spread"):
        values[name] = max(values[name], 0.0)
    values["focus_depth"] = min(max(values["focus_depth"], 0.0), 1.0)
    return UltrasoundStyle(**values)


def sample_ultrasound_style(seed: int, name: str | None = None) -> UltrasoundStyle:
    """A random style with every field drawn uniformly within the range spanned by the built-in styles
    (frequency and density log-uniformly); linear or curvilinear with equal probability. Its fan is never
    narrower than the region where :func:`generate_us_anatomy` places structures."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x57]))
    styles = list(ULTRASOUND_STYLES.values())
    values: dict[str, Any] = {"name": name or f"sampled_{int(seed)}"}
    for field in dataclasses.fields(UltrasoundStyle):
        if field.name in ("name", "sector_angle_deg", "apex_offset"):
            continue
        vals = [float(getattr(s, field.name)) for s in styles]
        lo, hi = min(vals), max(vals)
        if field.name in ("centre_frequency_mhz", "speckle_density"):
            values[field.name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        else:
            values[field.name] = float(rng.uniform(lo, hi))
    # depth and frequency go together on real probes: deep imaging needs low frequency
    values["depth_cm"] = float(min(values["depth_cm"], 45.0 / values["centre_frequency_mhz"] + 1.0))
    if rng.random() < 0.5:
        values["sector_angle_deg"] = float(rng.uniform(_SAFE_SECTOR_ANGLE_DEG + 2, 80.0))
        values["apex_offset"] = float(rng.uniform(_SAFE_APEX_OFFSET + 0.05, 0.7))
    else:
        values["sector_angle_deg"], values["apex_offset"] = 0.0, 0.4
    # keep the tissue visible: TGC within 2 dB/cm of the round-trip attenuation
    loss = 2.0 * values["attenuation_db_cm_mhz"] * values["centre_frequency_mhz"]
    values["tgc_db_per_cm"] = float(loss - rng.uniform(-0.5, 2.0))
    return UltrasoundStyle(**values)


# ------------------------------------------------------------------------------------------ data set


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(array), mode="L")
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def synthesize_us_dataset(
    out_dir: str | os.PathLike,
    subjects: int = 40,
    styles: Sequence[str] | None = None,
    seed: int = 0,
    shape: Sequence[int] = (128, 128),
    progress: bool = True,
    split: Sequence[float] = (0.7, 0.15, 0.15),
) -> dict[str, list[dict[str, str]]]:
    """Render ``subjects`` anatomies in every style and write them as PNG with labels and a data list.

    Writes (every file to a temporary sibling, then renamed)::

        out_dir/images/<subject>_<style>.png   8-bit grey B-mode, (H, W), rows = depth
        out_dir/labels/<subject>.png           8-bit class indices: 0 background, 1 vessel, 2 cyst, 3 lesion
        out_dir/dataset.json                   {"training", "validation", "test"}: lists of
                                               {"image", "label", "style", "subject"} (paths relative to
                                               out_dir), plus "styles" (their parameters), "labels",
                                               "generator" (arguments) and "subjects" (what was placed)

    Subjects are split (not images), so no subject is in two splits.

    Args:
        out_dir: output folder (created; must not be a file).
        subjects: number of anatomies (>= 3).
        styles: style names from :data:`ULTRASOUND_STYLES`; default all of them.
        seed: data set seed (subject i uses a seed derived from ``(seed, i)``).
        shape: (H, W) of every image.
        progress: print one line per subject.
        split: fractions of subjects for training, validation and test (each split gets at least one).

    Returns:
        The three lists with absolute paths (``{"training": [...], "validation": [...], "test": [...]}``).
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir exists and is a file, not a folder: {out}")
    subjects = int(subjects)
    if subjects < 3:
        raise ValueError(f"subjects must be >= 3 (training, validation and test need one each), got {subjects}.")
    names = list(ULTRASOUND_STYLES) if styles is None else [str(s) for s in styles]
    if not names:
        raise ValueError("styles is empty; give at least one style name.")
    style_objs = [_resolve_style(n) for n in names]
    if len(set(names)) != len(names):
        raise ValueError(f"styles contains duplicates: {names}")
    h, w = _check_shape(shape)
    fractions = [float(f) for f in split]
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"split must be three non-negative fractions (training, validation, test), got {split!r}.")
    n_val = max(1, int(round(subjects * fractions[1] / sum(fractions))))
    n_test = max(1, int(round(subjects * fractions[2] / sum(fractions))))
    n_train = subjects - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{subjects} subjects leave no training subject with split {split!r}.")

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E7])).permutation(subjects)
    split_of = {}
    for rank, idx in enumerate(order):
        split_of[int(idx)] = "training" if rank < n_train else ("validation" if rank < n_train + n_val else "test")

    relative: dict[str, list[dict[str, str]]] = {"training": [], "validation": [], "test": []}
    records = []
    for i in range(subjects):
        t0 = time.perf_counter()
        subject = f"s{i:03d}"
        sseed = derive_seed(seed, i)
        anatomy = generate_us_anatomy(sseed, (h, w))
        label_rel = f"labels/{subject}.png"
        _save_png(anatomy["label"], out / label_rel)
        for style in style_objs:
            image = simulate_bmode(anatomy, style, seed=sseed)
            image_rel = f"images/{subject}_{style.name}.png"
            _save_png(np.rint(image[0] * 255.0).astype(np.uint8), out / image_rel)
            relative[split_of[i]].append(
                {"image": image_rel, "label": label_rel, "style": style.name, "subject": subject}
            )
        records.append({"subject": subject, "seed": sseed, "split": split_of[i], "structures": anatomy["structures"]})
        if progress:
            kinds = ",".join(s["kind"] for s in anatomy["structures"])
            print(f"  {subject} ({split_of[i]}): {kinds} in {len(style_objs)} styles, {time.perf_counter() - t0:.2f} s")

    description = {
        "name": "synthetic multi-style B-mode ultrasound",
        "description": (
            "Simulated B-mode ultrasound (monai_ext.phantoms.ultrasound): every subject's anatomy imaged "
            "with every style; synthetic data, not for clinical use."
        ),
        "labels": {str(k): v for k, v in US_LABELS.items()},
        "styles": {s.name: s.to_dict() for s in style_objs},
        "generator": {"subjects": subjects, "seed": int(seed), "shape": [h, w], "split": fractions},
        **relative,
        "subjects": records,
    }
    atomic_write(out / "dataset.json", lambda tmp: tmp.write_text(json.dumps(description, indent=1) + "\n"))
    return {
        k: [{**e, "image": str(out / e["image"]), "label": str(out / e["label"])} for e in v]
        for k, v in relative.items()
    }
