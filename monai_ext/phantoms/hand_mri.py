"""Synthetic 3D hand MRI (T1-like) with bone labels: the embedded default data of the hand bone segmentation task.

Kayalibay, Jensen & van der Smagt, "CNN-based segmentation of medical imaging data" (arXiv 1701.03056, 2017)
segment the bones of the hand in 30 MR volumes of one hand in different postures (20 / 5 / 5 train / validation /
test; 480 x 480 x 280 voxels, cropped and downsampled to 120 x 120 x 64) with four foreground classes by bone
type: metacarpal (1), proximal phalanx (2), middle phalanx (3), distal phalanx (4); everything else, the carpal
bones and the forearm included, is background (0). Their mean class frequencies are 0.99 / 5.1e-3 / 2.3e-3 /
6.8e-4 / 4.3e-4. That data cannot be downloaded here, so this module draws look-alike cases with the same
classes (:data:`HAND_LABELS`; on the default grid their mean frequencies come out 1.9e-3 / 1.1e-3 / 4.1e-4 /
2.6e-4, the paper's order):

- a skeleton of rounded solids (capsules whose radius tapers from base to head and narrows at the shaft) along
  the kinematic chain of each finger, metacarpal -> proximal -> middle -> distal phalanx (the thumb has no
  middle phalanx), posed by per-joint flexion and spread angles; every joint rotates about the centre of the
  parent's head, and the child starts a joint gap (cartilage) beyond the head's surface, so consecutive bones
  never touch whatever the pose; eight carpal bones and the distal radius and ulna are rendered as bone but
  labelled background, as in the paper; a wrist pose (flexion, deviation) and an arm placement;
- a soft-tissue envelope (smooth union of "flesh" capsules around the bones, the palm, thenar and hypothenar
  eminences, wrist and forearm) with skin, subcutaneous fat, muscle compartments (forearm, thenar, hypothenar,
  interossei), flexor and extensor tendons, and joint cartilage;
- T1-like contrast: fatty marrow and fat bright, cortical bone and tendons dark, muscle and cartilage
  intermediate, air dark; so bone is a bright core in a dark rim, next to equally bright fat: no single
  intensity threshold separates bone from the rest, nor one class from the others (classes differ only by
  position in the chain);
- an acquisition: contrast gamma, a mild point spread, a smooth tissue texture, a MONAI ``RandBiasField``-style
  multiplicative field ``exp(Legendre polynomial of degree 3)`` whose 20 coefficients are recorded (evaluated on
  world coordinates, so it stays with the anatomy at any grid) and Rician noise (MONAI ``RandRicianNoise``-style),
  then scaling so the brightest tissue is ~1.

Random parameters and rendering are separate: :func:`sample_hand_params` draws every random number of a case
from its seed into a JSON-able dict, :func:`render_hand_case` turns such a dict into an image, a label map and an
affine deterministically (edited or replayed dicts included), :func:`generate_hand_case` does both and returns
the dict as meta data. :func:`synthesize_hand_dataset` writes an MSD-style data set atomically.

Coordinates: millimetres, RAS-like world frame centred on the field of view. Array axes follow world x, y, z
(affine ``diag(sx, sy, sz)``): fingers point to +y, the back of the hand to +z, the palm to -z; a right hand has
its thumb at +x (a left hand is the mirror image). Default grid: 64 x 80 x 48 voxels of 3 mm (192 x 240 x
144 mm: wrist to fingertips of a large extended hand). Synthetic data, not for clinical use.
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

from ..io import atomic_directory, require_empty_folder
from .grid import check_phantom_grid
from .msd_description import msd_phantom_description
from .nifti_writer import save_phantom_nifti
from .seeds import check_count, check_seed, derive_seed

__all__ = [
    "HAND_DEFAULT_SHAPE",
    "HAND_DEFAULT_SPACING",
    "HAND_LABELS",
    "HAND_TISSUES",
    "generate_hand_case",
    "hand_affine",
    "hand_landmarks",
    "render_hand_case",
    "render_hand_tissues",
    "sample_hand_params",
    "synthesize_hand_dataset",
]

#: Label values of the label maps: the paper's four bone types (carpals, radius and ulna are background).
HAND_LABELS: dict[int, str] = {
    0: "background",
    1: "metacarpal",
    2: "proximal phalanx",
    3: "middle phalanx",
    4: "distal phalanx",
}
#: Tissue classes of :func:`render_hand_tissues` (what each voxel centre lies in).
HAND_TISSUES: dict[int, str] = {
    0: "air",
    1: "skin",
    2: "subcutaneous fat",
    3: "muscle",
    4: "tendon",
    5: "cartilage / joint space",
    6: "cortical bone",
    7: "marrow (cancellous bone)",
}
HAND_DEFAULT_SHAPE: tuple[int, int, int] = (64, 80, 48)
HAND_DEFAULT_SPACING: tuple[float, float, float] = (3.0, 3.0, 3.0)

_FINGERS = ("thumb", "index", "middle", "ring", "little")
_CHAIN = {  # bone names along each finger, and their label classes
    "thumb": (("metacarpal", 1), ("proximal", 2), ("distal", 4)),
    **{f: (("metacarpal", 1), ("proximal", 2), ("middle", 3), ("distal", 4)) for f in _FINGERS[1:]},
}
# Reference skeleton, a large adult hand (hand_scale 1: ~205 mm of bone from the radiocarpal joint to the tip of
# the middle finger). Lengths are tip to tip (mm); radii (base, head, shaft narrowing) in mm.
_LENGTHS = {
    "thumb": (46.0, 32.0, 23.0),
    "index": (68.0, 41.0, 24.0, 17.0),
    "middle": (65.0, 46.0, 28.0, 19.0),
    "ring": (58.0, 43.0, 27.0, 18.0),
    "little": (54.0, 34.0, 19.0, 16.0),
}
_RADII = {"metacarpal": (5.3, 5.8, 2.0), "proximal": (5.2, 4.4, 1.4), "middle": (4.4, 3.7, 0.9),
          "distal": (3.9, 2.8, 1.0)}  # fmt: skip
_THICKNESS = {"thumb": 1.08, "index": 1.0, "middle": 1.02, "ring": 0.94, "little": 0.84}
# Metacarpal bases (start of the bone, hand frame) and fan angles (degrees, + = radial) of the four fingers.
_MC_BASE = {"index": (11.0, 31.0, 0.0), "middle": (0.0, 33.0, 1.0), "ring": (-10.5, 31.5, 0.5),
            "little": (-20.0, 29.5, -1.5)}  # fmt: skip
_MC_FAN = {"index": 7.0, "middle": 0.0, "ring": -6.0, "little": -13.0}
# Carpal bones, radius and ulna: segment end points (hand frame, mm) and radii (proximal end, distal end, shaft).
_CARPALS = (
    ("scaphoid", (15.0, 5.0, -2.0), (9.5, 14.5, -3.0), (4.3, 4.3, 0.0)),
    ("lunate", (1.0, 6.0, 0.0), (1.0, 9.0, 0.0), (5.0, 5.0, 0.0)),
    ("triquetrum", (-9.5, 7.0, 0.5), (-13.0, 10.0, 0.5), (4.0, 4.0, 0.0)),
    ("pisiform", (-13.0, 10.0, -8.5), (-13.0, 10.0, -8.5), (3.2, 3.2, 0.0)),
    ("trapezium", (16.5, 21.0, -5.0), (18.0, 23.0, -6.0), (4.4, 4.4, 0.0)),
    ("trapezoid", (9.0, 24.5, -1.5), (9.0, 24.5, -1.5), (4.0, 4.0, 0.0)),
    ("capitate", (0.0, 20.5, 0.5), (0.0, 25.5, 0.5), (5.0, 5.0, 0.0)),
    ("hamate", (-11.0, 20.5, 0.0), (-13.0, 25.0, -0.5), (4.5, 4.5, 0.0)),
)
_FOREARM_BONES = (
    ("radius", (6.0, -170.0, 0.0), (7.0, -12.0, 0.0), (9.0, 11.0, 0.0)),
    ("ulna", (-16.0, -170.0, 0.5), (-15.0, -11.0, 0.5), (7.0, 7.5, 0.0)),
)
_TRAPEZIUM_CENTRE = (17.2, 22.0, -5.5)
_TRAPEZIUM_RADIUS = 4.4
_BIAS_DEGREE = 3
_BIAS_SCALE_MM = 120.0  # world coordinates / this = the [-1, 1] domain of the bias polynomial
_FAR = np.float32(1e4)  # "no structure near here" distance (mm)
_RENDER_KEYS = (
    "side", "hand_scale", "fingers", "joint_gap_mm", "cortex_mm", "wrist", "arm", "soft_tissue", "contrast",
    "psf_sigma_mm", "texture", "bias_field", "noise_std", "noise_seed",
)  # fmt: skip


# ------------------------------------------------------------------------------------------ geometry


def _rx(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _flex(deg: float) -> np.ndarray:
    """Flexion: the local long axis (+y) turns towards the palm (-z) for positive angles."""
    return _rx(-deg)


def _spread(deg: float) -> np.ndarray:
    """Abduction: the local long axis turns towards the radial side (+x) for positive angles."""
    return _rz(-deg)


class _Prim:
    """A rounded solid: segment a-b, radius r0 + (r1 - r0) t - waist 4 t (1 - t) along it, in world mm."""

    __slots__ = ("a", "b", "cls", "finger", "name", "r0", "r1", "waist")

    def __init__(self, a, b, radii, name: str = "", cls: int = 0, finger: str = "") -> None:
        self.a, self.b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        self.r0, self.r1, self.waist = (float(v) for v in radii)
        self.name, self.cls, self.finger = name, cls, finger

    def moved(self, m: np.ndarray, t: np.ndarray) -> _Prim:
        return _Prim(m @ self.a + t, m @ self.b + t, (self.r0, self.r1, self.waist), self.name, self.cls, self.finger)

    def offset(self, v, grow: float, waist: float | None = None, name: str = "") -> _Prim:
        v = np.asarray(v, dtype=np.float64)
        w = self.waist if waist is None else waist
        return _Prim(self.a + v, self.b + v, (self.r0 + grow, self.r1 + grow, w), name or self.name)


def _skeleton(params: dict[str, Any]) -> dict[str, Any]:
    """World-frame primitives of one case: bones (with class and finger), flesh, muscle, tendon and cartilage
    solids, and landmarks. Deterministic in ``params``."""
    s = float(params["hand_scale"])
    gap = float(params["joint_gap_mm"])
    fingers = params["fingers"]
    bones: list[_Prim] = []  # hand frame first
    flesh: list[_Prim] = []
    muscle: list[_Prim] = []
    tendons: list[_Prim] = []
    cartilage: list[_Prim] = []
    joints: dict[str, list[np.ndarray]] = {}
    soft = params["soft_tissue"]
    finger_mm, palm_mm, tendon_mm = float(soft["finger_mm"]), float(soft["palm_mm"]), float(soft["tendon_radius_mm"])

    carpals = [_Prim(np.array(a) * s, np.array(b) * s, np.array(r) * s, name, 0) for name, a, b, r in _CARPALS]
    bones += carpals
    for f in _FINGERS:
        fp = fingers[f]
        if f == "thumb":
            frame = _rz(-float(fp["abduction_deg"])) @ _rx(-float(fp["palmar_tilt_deg"])) @ _ry(float(fp["opposition_deg"]))
            frame = frame @ _flex(float(fp["flexion_deg"][0]))
            d0 = frame[:, 1]
            start = np.array(_TRAPEZIUM_CENTRE) * s + d0 * (_TRAPEZIUM_RADIUS * s + gap)
            rel = [np.eye(3), _flex(float(fp["flexion_deg"][1])), _flex(float(fp["flexion_deg"][2]))]
        else:
            frame = _spread(_MC_FAN[f]) @ _flex(float(fp["flexion_deg"][0]))
            start = np.array(_MC_BASE[f]) * s
            rel = [np.eye(3), _spread(float(fp["spread_deg"])) @ _flex(float(fp["flexion_deg"][1])),
                   _flex(float(fp["flexion_deg"][2])), _flex(float(fp["flexion_deg"][3]))]
        chain = []
        pts = [start.copy()]
        head = None
        for k, ((bone, cls), length, radii) in enumerate(zip(_CHAIN[f], fp["lengths_mm"], fp["radii_mm"])):
            frame = frame @ rel[k]
            d = frame[:, 1]
            r0, r1, waist = (float(v) for v in radii)
            if head is not None:
                start = head.b + d * (head.r1 + gap)
            a = start + d * r0
            b = start + d * max(float(length) - r1, r0 + 1e-3)
            p = _Prim(a, b, (r0, r1, waist), f"{f}_{bone}", cls, f)
            p_frame = frame.copy()
            chain.append((p, p_frame))
            if head is not None:  # joint space: between the parent's head and this base
                cartilage.append(_Prim(head.b, a, (0.8 * head.r1, 0.8 * r0, 0.0), f"{f}_joint{k}"))
            head = p
            pts.append(start + d * float(length))
        joints[f] = pts
        for k, (p, fr) in enumerate(chain):
            bones.append(p)
            palmar, radial = -fr[:, 2], fr[:, 0]
            rs = 0.5 * (p.r0 + p.r1) - p.waist
            # flesh around the bone, thicker on the palmar side; metacarpals make the palm
            if k == 0 and f != "thumb":
                flesh.append(p.offset(palmar * 3.0 * s, palm_mm, waist=0.0, name="palm"))
                if f in ("index", "little"):  # the palm's radial / ulnar border
                    side_v = radial if f == "index" else -radial
                    flesh.append(p.offset(side_v * 4.0 * s + palmar * 3.0 * s, 0.75 * palm_mm, waist=0.0))
            elif k == 0:
                flesh.append(p.offset(palmar * 2.0 * s, 0.8 * palm_mm, waist=0.0, name="thenar"))
            else:
                pad = 1.6 * s if k == len(chain) - 1 else 1.0 * s
                flesh.append(p.offset(palmar * pad, finger_mm, waist=0.0, name="finger"))
            # tendons: flexor on the palmar side, extensor on the back (not past the middle of the distal bone)
            b_end = p.b if k < len(chain) - 1 else 0.5 * (p.a + p.b)
            for sign, tr in ((-1.0, tendon_mm), (1.0, 0.65 * tendon_mm)):
                off = fr[:, 2] * sign * (rs + tr + 0.6 + (p.waist if k < len(chain) - 1 else 0.0))
                tendons.append(_Prim(p.a + off, b_end + off, (tr, tr, 0.0), "tendon"))
        if f != "thumb":  # tendons through the wrist and forearm, converging in the carpal tunnel
            p, fr = chain[0]
            base_flex = p.a - fr[:, 2] * 8.0 * s
            tunnel = np.array([0.35 * base_flex[0], 5.0 * s, -13.0 * s])
            base_ext = p.a + fr[:, 2] * 7.0 * s
            tendons.append(_Prim(base_flex, tunnel, (tendon_mm,) * 2 + (0.0,), "tendon"))
            tendons.append(_Prim(base_ext, (0.6 * base_ext[0], -5.0 * s, 10.0 * s), (0.65 * tendon_mm,) * 2 + (0.0,),
                                 "tendon"))
            tendons.append(_Prim(tunnel, (0.35 * base_flex[0] - 3.0 * s, -60.0 * s, -12.0 * s),
                                 (tendon_mm,) * 2 + (0.0,), "tendon"))
        else:
            p, fr = chain[0]
            muscle.append(_Prim(0.5 * (p.a + p.b) - fr[:, 2] * 3.0 * s - fr[:, 0] * 5.0 * s,
                                np.array(_MC_BASE["index"]) * s + np.array([-2.0, 0.0, -9.0]) * s,
                                (7.0 * s, 6.0 * s, 0.0), "thenar"))
            flesh.append(muscle[-1].offset(np.zeros(3), 0.4 * palm_mm, waist=0.0, name="thenar"))
    # interossei between neighbouring metacarpals, hypothenar along the fifth
    mcs = {p.finger: p for p in bones if p.cls == 1}
    for f1, f2 in (("index", "middle"), ("middle", "ring"), ("ring", "little")):
        m1, m2 = mcs[f1], mcs[f2]
        muscle.append(_Prim(0.5 * (m1.a + m2.a) + np.array([0, 4.0, -2.0]) * s,
                            0.5 * (m1.b + m2.b) - np.array([0, 6.0, 2.0]) * s, (3.5 * s, 3.0 * s, 0.0), "interossei"))
    m5 = mcs["little"]
    hyp = np.array([-5.0, 0.0, -6.0]) * s
    muscle.append(_Prim(m5.a + hyp, m5.b + hyp - np.array([0, 12.0, 0]) * s, (6.0 * s, 4.0 * s, 0.0), "hypothenar"))
    flesh.append(muscle[-1].offset(np.zeros(3), 0.4 * palm_mm, waist=0.0))
    # wrist soft tissue around the carpal rows
    for y, r in ((10.0, 13.0), (23.0, 12.5)):
        flesh.append(_Prim(np.array([-13.0, y, -2.0]) * s, np.array([14.0, y, -2.5]) * s, (r * s, r * s, 0.0), "wrist"))

    # Wrist pose moves the hand (carpals included) about the radiocarpal joint; the forearm stays.
    wrist = params["wrist"]
    rw = _rz(-float(wrist["deviation_deg"])) @ _flex(float(wrist["flexion_deg"]))
    zero = np.zeros(3)
    bones = [p.moved(rw, zero) for p in bones]
    flesh = [p.moved(rw, zero) for p in flesh]
    muscle = [p.moved(rw, zero) for p in muscle]
    tendons = [p.moved(rw, zero) for p in tendons]
    cartilage = [p.moved(rw, zero) for p in cartilage]
    joints = {f: [rw @ q for q in v] for f, v in joints.items()}
    # Forearm: radius, ulna, flesh and muscle (not moved by the wrist).
    fore = [_Prim(np.array(a) * s, np.array(b) * s, np.array(r) * s, name, 0) for name, a, b, r in _FOREARM_BONES]
    bones += fore
    for p, grow, off in ((fore[0], 6.0, (0.0, 0.0, -2.0)), (fore[1], 5.5, (0.0, 0.0, 0.0))):
        flesh.append(p.offset(np.array(off) * s, grow * s, waist=0.0, name="forearm"))
    belly = _Prim(np.array([-5.0, -170.0, -4.0]) * s, np.array([-4.0, -20.0, -3.0]) * s, (15.0 * s, 9.0 * s, 0.0))
    flesh.append(belly)
    # forearm muscles fill the forearm under the fat, thinning towards the wrist (tendons only there)
    muscle += [q.offset(np.zeros(3), 0.0, name="forearm muscle") for q in flesh[-3:]]
    for q in muscle[-3:]:
        q.b = q.a + (q.b - q.a) * 0.9
    for p in fore:
        cartilage.append(_Prim(p.b, p.b + np.array([0.0, 7.0, 0.0]) * s, (0.8 * p.r1,) * 2 + (0.0,), "wrist joint"))

    # Arm placement: mirror for a left hand, rotate, translate.
    arm = params["arm"]
    m = np.diag([-1.0 if params["side"] == "left" else 1.0, 1.0, 1.0])
    rot = _rz(float(arm["rotation_deg"][2])) @ _ry(float(arm["rotation_deg"][1])) @ _rx(float(arm["rotation_deg"][0]))
    m = rot @ m
    t = np.asarray(arm["translation_mm"], dtype=np.float64)

    def place(ps: list[_Prim]) -> list[_Prim]:
        return [p.moved(m, t) for p in ps]

    return {
        "bones": place(bones),
        "flesh": place(flesh),
        "muscle": place(muscle),
        "tendons": place(tendons),
        "cartilage": place(cartilage),
        "wrist": t.copy(),
        "joints": {f: [m @ q + t for q in v] for f, v in joints.items()},
    }


def _hand_bbox(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box of the finger and carpal bones (radii included; the forearm leaves the field of view)."""
    sk = _skeleton(params)
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for p in sk["bones"]:
        if p.name in ("radius", "ulna"):
            continue
        r = max(p.r0, p.r1)
        lo = np.minimum(lo, np.minimum(p.a, p.b) - r)
        hi = np.maximum(hi, np.maximum(p.a, p.b) + r)
    return lo, hi


def hand_landmarks(params: dict[str, Any]) -> dict[str, Any]:
    """World coordinates (mm) of the joints of a case: JSON-able.

    Returns:
        ``{"wrist": [x, y, z]`` (centre of the radiocarpal joint), ``"fingers": {finger: [[x, y, z], ...]}}``
        with, per finger, the base of the metacarpal, the joint after each bone and the tip of the distal
        phalanx (5 points for the fingers, 4 for the thumb).
    """
    _check_params(params)
    sk = _skeleton(params)
    return {
        "wrist": [round(float(v), 3) for v in sk["wrist"]],
        "fingers": {f: [[round(float(v), 3) for v in q] for q in pts] for f, pts in sk["joints"].items()},
    }


# --------------------------------------------------------------------------------------- parameters


def _r4(x: float) -> float:
    return round(float(x), 4)


def sample_hand_params(seed: int) -> dict[str, Any]:
    """Draw every random number of one case from ``seed`` (same seed: same case).

    Returns:
        A JSON-able dict, the input of :func:`render_hand_case`:

        - ``seed``, ``side`` (``"right"`` / ``"left"``), ``hand_scale`` (~0.82-1.05 of a large adult hand),
          ``grasp`` (the shared pose level the finger angles were drawn around: 0 open, 1 loose fist);
        - ``fingers``: per finger (``thumb``, ``index``, ``middle``, ``ring``, ``little``) the ``bones`` names,
          ``lengths_mm`` (tip to tip) and ``radii_mm`` (base, head, shaft narrowing) per bone, scaled by the hand
          size with individual jitter, and the pose: ``flexion_deg`` per joint (fingers: carpometacarpal, MCP,
          PIP, DIP; thumb: carpometacarpal, MCP, IP), ``spread_deg`` at the MCP (fingers), ``abduction_deg``,
          ``palmar_tilt_deg`` and ``opposition_deg`` (thumb metacarpal); the pose is a shared grasp level plus
          per-finger variation, from an open flat hand to a loose fist;
        - ``joint_gap_mm`` (bone-to-bone distance at every joint), ``cortex_mm`` (cortical thickness);
        - ``wrist``: ``flexion_deg``, ``deviation_deg``; ``arm``: ``rotation_deg`` (x, y, z) and
          ``translation_mm`` (the bones' bounding box is centred on the field of view, plus a jitter);
        - ``soft_tissue``: ``finger_mm``, ``palm_mm`` (flesh around the bones), ``skin_mm``, ``fat_mm``,
          ``tendon_radius_mm``; ``contrast``: T1-like tissue intensities (``air``, ``skin``, ``fat``, ``muscle``,
          ``tendon``, ``cartilage``, ``cortex``, ``marrow``) and ``gamma``;
        - acquisition: ``psf_sigma_mm``, ``texture`` (``amplitude``, ``seed``), ``bias_field`` (``degree`` 3,
          ``scale_mm``, 20 Legendre ``coefficients`` as MONAI ``RandBiasField`` draws them, uniform in
          +-``coeff``), ``noise_std`` (Rician, relative to the fat intensity) and ``noise_seed``.
    """
    check_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 31, 2017]))
    scale = float(np.clip(rng.normal(0.93, 0.05), 0.82, 1.05))
    grasp = float(rng.beta(1.3, 1.6))  # 0 open flat hand ... 1 loose fist
    spread = float(rng.uniform(-2.0, 14.0))
    fingers: dict[str, Any] = {}
    for f in _FINGERS:
        thick = _THICKNESS[f] * float(rng.uniform(0.95, 1.05))
        lengths = [_r4(v * scale * rng.uniform(0.97, 1.03)) for v in _LENGTHS[f]]
        radii = []
        for bone, _ in _CHAIN[f]:
            r0, r1, w = _RADII[bone]
            k = scale * thick
            radii.append([_r4(r0 * k), _r4(r1 * k), _r4(w * k)])
        if f == "thumb":
            g = float(np.clip(grasp + rng.normal(0.0, 0.15), 0.0, 1.0))
            fingers[f] = {
                "bones": [b for b, _ in _CHAIN[f]], "lengths_mm": lengths, "radii_mm": radii,
                "abduction_deg": _r4(rng.uniform(30.0, 50.0) + 0.5 * spread),
                "palmar_tilt_deg": _r4(rng.uniform(20.0, 40.0)),
                "opposition_deg": _r4(rng.uniform(50.0, 80.0)),
                "flexion_deg": [_r4(5.0 * g + rng.normal(0, 3)), _r4(np.clip(35.0 * g + rng.normal(0, 8), -5, 50)),
                                _r4(np.clip(45.0 * g + rng.normal(0, 10), -10, 60))],
            }  # fmt: skip
        else:
            g = float(np.clip(grasp + rng.normal(0.0, 0.12), 0.0, 1.0))
            side = {"index": 1.0, "middle": 0.1, "ring": -0.7, "little": -1.3}[f]
            cmc = {"index": 0.0, "middle": 0.0, "ring": 4.0, "little": 8.0}[f] * g
            mcp = float(np.clip(60.0 * g + rng.normal(0, 8), -10.0, 70.0))
            pip = float(np.clip(75.0 * g + rng.normal(0, 10), 0.0, 90.0))
            dip = float(np.clip(0.6 * pip + rng.normal(0, 8), 0.0, 60.0))
            fingers[f] = {
                "bones": [b for b, _ in _CHAIN[f]], "lengths_mm": lengths, "radii_mm": radii,
                "spread_deg": _r4(np.clip(side * spread * (1.0 - 0.6 * g) + rng.normal(0, 2.0), -4.0, 20.0)),
                "flexion_deg": [_r4(cmc), _r4(mcp), _r4(pip), _r4(dip)],
            }  # fmt: skip
    n_coeff = int(np.prod([(_BIAS_DEGREE + k) / k for k in range(1, 4)]))
    coeff = float(rng.uniform(0.08, 0.3))
    params: dict[str, Any] = {
        "seed": int(seed),
        "side": "right" if rng.random() < 0.5 else "left",
        "hand_scale": _r4(scale),
        "fingers": fingers,
        "grasp": _r4(grasp),
        "joint_gap_mm": _r4(rng.uniform(2.0, 3.2)),
        "cortex_mm": _r4(rng.uniform(1.0, 1.8)),
        "wrist": {"flexion_deg": _r4(rng.uniform(-10.0, 15.0)), "deviation_deg": _r4(rng.uniform(-12.0, 12.0))},
        "arm": {"rotation_deg": [_r4(v) for v in rng.uniform(-1, 1, 3) * np.array([6.0, 8.0, 10.0])],
                "translation_mm": [0.0, 0.0, 0.0]},
        "soft_tissue": {
            "finger_mm": _r4(rng.uniform(3.8, 5.2) * scale), "palm_mm": _r4(rng.uniform(8.5, 11.0) * scale),
            "skin_mm": _r4(rng.uniform(1.0, 1.6)), "fat_mm": _r4(rng.uniform(3.0, 6.0)),
            "tendon_radius_mm": _r4(rng.uniform(1.6, 2.3) * scale),
        },
        "contrast": {
            "air": 0.0, "skin": _r4(rng.uniform(0.40, 0.55)), "fat": _r4(rng.uniform(0.88, 1.0)),
            "muscle": _r4(rng.uniform(0.28, 0.40)), "tendon": _r4(rng.uniform(0.04, 0.10)),
            "cartilage": _r4(rng.uniform(0.30, 0.45)), "cortex": _r4(rng.uniform(0.03, 0.08)),
            "marrow": _r4(rng.uniform(0.72, 0.90)), "gamma": _r4(rng.uniform(0.85, 1.15)),
        },
        "psf_sigma_mm": _r4(rng.uniform(0.6, 1.2)),
        "texture": {"amplitude": _r4(rng.uniform(0.03, 0.08)), "seed": int(rng.integers(2**31))},
        "bias_field": {"degree": _BIAS_DEGREE, "scale_mm": _BIAS_SCALE_MM, "coeff": _r4(coeff),
                       "coefficients": [_r4(v) for v in rng.uniform(-coeff, coeff, n_coeff)]},
        "noise_std": _r4(rng.uniform(0.02, 0.06)),
        "noise_seed": int(rng.integers(2**31)),
    }  # fmt: skip
    jitter = rng.uniform(-6.0, 6.0, 3)
    lo, hi = _hand_bbox(params)
    params["arm"]["translation_mm"] = [_r4(v) for v in (-0.5 * (lo + hi) + jitter)]
    return params


def _check_params(params: dict[str, Any]) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"params must be the dict of sample_hand_params, got {type(params).__name__}.")
    missing = [k for k in _RENDER_KEYS if k not in params]
    if missing:
        raise KeyError(f"params lacks {missing}; expected the dict of sample_hand_params.")
    if params["side"] not in ("right", "left"):
        raise ValueError(f"params['side'] must be 'right' or 'left', got {params['side']!r}.")
    missing_f = [f for f in _FINGERS if f not in params["fingers"]]
    if missing_f:
        raise KeyError(f"params['fingers'] lacks {missing_f}.")
    for f in _FINGERS:  # one entry per bone of the finger: a shorter list would silently drop bones
        for key, n in (("lengths_mm", len(_CHAIN[f])), ("radii_mm", len(_CHAIN[f])), ("flexion_deg", len(_CHAIN[f]))):
            if len(params["fingers"][f].get(key, ())) != n:
                raise ValueError(f"params['fingers'][{f!r}][{key!r}] needs {n} entries (one per bone of the {f}), "
                                 f"got {params['fingers'][f].get(key)!r}.")


def _check_grid(shape: Sequence[int] | None, spacing: Sequence[float] | None) -> tuple[tuple[int, ...], np.ndarray]:
    shp, spc = check_phantom_grid(HAND_DEFAULT_SHAPE if shape is None else shape,
                                  HAND_DEFAULT_SPACING if spacing is None else spacing, (16, 512), (0.25, 10.0))
    return shp, np.array(spc, dtype=np.float64)


def hand_affine(shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None) -> np.ndarray:
    """4 x 4 voxel-to-world (mm) affine of a grid: ``diag(spacing)``, world origin at the centre of the volume."""
    shp, spc = _check_grid(shape, spacing)
    aff = np.eye(4)
    aff[:3, :3] = np.diag(spc)
    aff[:3, 3] = -spc * (np.array(shp) - 1) / 2.0
    return aff


# ------------------------------------------------------------------------------------------ rendering


class _HandGrid:
    """World coordinates of a grid as broadcast axes, and bounding-box slicing."""

    def __init__(self, shape: tuple[int, ...], spacing: np.ndarray) -> None:
        self.shape, self.spacing = shape, spacing
        self.origin = -spacing * (np.array(shape) - 1) / 2.0
        self.axes = [(self.origin[i] + spacing[i] * np.arange(shape[i])).astype(np.float32) for i in range(3)]

    def box(self, p: _Prim, margin: float) -> tuple[slice, ...] | None:
        r = max(p.r0, p.r1) + margin
        lo = (np.minimum(p.a, p.b) - r - self.origin) / self.spacing
        hi = (np.maximum(p.a, p.b) + r - self.origin) / self.spacing
        lo_i = np.maximum(np.floor(lo).astype(int), 0)
        hi_i = np.minimum(np.ceil(hi).astype(int) + 1, np.array(self.shape))
        if np.any(hi_i <= lo_i):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo_i, hi_i))

    def distance(self, p: _Prim, sl: tuple[slice, ...]) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) to the rounded solid, on the box ``sl``."""
        x = self.axes[0][sl[0]][:, None, None] - np.float32(p.a[0])
        y = self.axes[1][sl[1]][None, :, None] - np.float32(p.a[1])
        z = self.axes[2][sl[2]][None, None, :] - np.float32(p.a[2])
        ab = (p.b - p.a).astype(np.float32)
        ll = float(ab @ ab)
        if ll < 1e-9:
            return np.sqrt(x * x + y * y + z * z) - np.float32(p.r0)
        t = np.clip((x * ab[0] + y * ab[1] + z * ab[2]) / np.float32(ll), 0.0, 1.0)
        dx, dy, dz = x - t * ab[0], y - t * ab[1], z - t * ab[2]
        r = p.r0 + (p.r1 - p.r0) * t - p.waist * 4.0 * t * (1.0 - t)
        return (np.sqrt(dx * dx + dy * dy + dz * dz) - r).astype(np.float32)


def _min_union(grid: _HandGrid, prims: list[_Prim], margin: float, ids: bool = False):
    d = np.full(grid.shape, _FAR, dtype=np.float32)
    idx = np.zeros(grid.shape, dtype=np.int16) if ids else None
    for i, p in enumerate(prims):
        sl = grid.box(p, margin)
        if sl is None:
            continue
        di = grid.distance(p, sl)
        if ids:
            closer = di < d[sl]
            d[sl][closer] = di[closer]
            idx[sl][closer] = i + 1
        else:
            np.minimum(d[sl], di, out=d[sl])
    return (d, idx) if ids else d


def _smooth_union(grid: _HandGrid, prims: list[_Prim], k: float) -> np.ndarray:
    """Smooth minimum -k log(sum exp(-d_i / k)) of the solids' distances (blends fingers into the palm)."""
    acc = np.zeros(grid.shape, dtype=np.float32)
    margin = 4.0 * k + float(grid.spacing.max())
    for p in prims:
        sl = grid.box(p, margin)
        if sl is None:
            continue
        di = grid.distance(p, sl)
        acc[sl] += np.exp(-di / np.float32(k))
    with np.errstate(divide="ignore"):
        d = -np.float32(k) * np.log(acc)
    return np.minimum(np.nan_to_num(d, posinf=_FAR), _FAR).astype(np.float32)


def _fields(params: dict[str, Any], shp: tuple[int, ...], spc: np.ndarray) -> dict[str, Any]:
    """Signed distance fields (mm) of every tissue and the bone index map on the grid."""
    sk = _skeleton(params)
    grid = _HandGrid(shp, spc)
    h = float(spc.max())
    d_bone, bone_id = _min_union(grid, sk["bones"], margin=1.0 * h, ids=True)
    return {
        "skeleton": sk,
        "grid": grid,
        "bone": d_bone,
        "bone_id": bone_id,
        "env": _smooth_union(grid, sk["flesh"], k=4.0 * float(params["hand_scale"])),
        "muscle": _min_union(grid, sk["muscle"], margin=h),
        "tendon": _min_union(grid, sk["tendons"], margin=h),
        "cartilage": _min_union(grid, sk["cartilage"], margin=h),
    }


def _labels(fields: dict[str, Any]) -> np.ndarray:
    """Bone classes at the voxel centres, with every voxel that touches (26-neighbourhood) another bone removed,
    so that distinct bones, consecutive bones of a finger included, are never connected in the label map; each
    bone is one 26-connected piece."""
    bid = fields["bone_id"].copy()
    bid[fields["bone"] >= 0] = 0
    big = np.iinfo(np.int16).max
    hi = ndi.maximum_filter(bid, size=3, mode="constant", cval=0)
    lo = ndi.minimum_filter(np.where(bid > 0, bid, big).astype(np.int16), size=3, mode="constant", cval=big)
    bid[(bid > 0) & ((hi > bid) | (lo < bid))] = 0
    # A thin bone (a distal tuft at a coarse grid) can fall apart into voxels; keep its largest piece.
    for i, sl in enumerate(ndi.find_objects(bid)):
        if sl is None:
            continue
        pieces, n = ndi.label(bid[sl] == i + 1, structure=np.ones((3, 3, 3), dtype=bool))
        if n > 1:
            sizes = np.bincount(pieces.ravel())[1:]
            bid[sl][(pieces > 0) & (pieces != 1 + int(np.argmax(sizes)))] = 0
    classes = np.array([0] + [p.cls for p in fields["skeleton"]["bones"]], dtype=np.uint8)
    return classes[bid]


def _tissues(fields: dict[str, Any], params: dict[str, Any]) -> np.ndarray:
    soft = params["soft_tissue"]
    depth = -fields["env"]
    t = np.zeros(fields["grid"].shape, dtype=np.uint8)
    inside = depth > 0
    t[inside] = 1
    t[depth > float(soft["skin_mm"])] = 2
    t[(depth > float(soft["skin_mm"]) + float(soft["fat_mm"])) & (fields["muscle"] < 0)] = 3
    t[inside & (fields["tendon"] < 0)] = 4
    t[inside & (fields["cartilage"] < 0)] = 5
    t[fields["bone"] < 0] = 6
    t[fields["bone"] < -float(params["cortex_mm"])] = 7
    return t


def _bias_field(params: dict[str, Any], grid: _HandGrid) -> np.ndarray:
    """exp(3D Legendre polynomial) on world coordinates / scale_mm, coefficients ordered as MONAI's RandBiasField."""
    bf = params["bias_field"]
    deg = int(bf["degree"])
    pts = [(i, j, k) for i in range(deg + 1) for j in range(deg + 1 - i) for k in range(deg + 1 - i - j)]
    coeff = np.asarray(bf["coefficients"], dtype=np.float64)
    if coeff.size != len(pts):
        raise ValueError(f"bias_field has {coeff.size} coefficients; degree {deg} needs {len(pts)}.")
    mat = np.zeros((deg + 1,) * 3)
    for c, (i, j, k) in zip(coeff, pts):
        mat[i, j, k] = c
    u = [np.clip(a.astype(np.float64) / float(bf["scale_mm"]), -1.5, 1.5) for a in grid.axes]
    return np.exp(np.polynomial.legendre.leggrid3d(u[0], u[1], u[2], mat)).astype(np.float32)


def _image(fields: dict[str, Any], params: dict[str, Any]) -> np.ndarray:
    grid = fields["grid"]
    spc = grid.spacing
    h = np.float32(np.cbrt(np.prod(spc)))
    c = {k: np.float32(v) for k, v in params["contrast"].items()}
    soft = params["soft_tissue"]

    def frac(d: np.ndarray) -> np.ndarray:  # fraction of the voxel inside (partial volume, linear ramp)
        return np.clip(np.float32(0.5) - d / h, 0.0, 1.0)

    env = fields["env"]
    f_in = frac(env)
    f_dermis = frac(env + np.float32(soft["skin_mm"]))
    f_deep = frac(env + np.float32(float(soft["skin_mm"]) + float(soft["fat_mm"])))
    f_mus = frac(fields["muscle"])
    img = c["air"] * (1 - f_in) + c["skin"] * (f_in - f_dermis) + c["fat"] * (f_dermis - f_deep)
    img += f_deep * (c["muscle"] * f_mus + c["fat"] * (1 - f_mus))
    for key in ("tendon", "cartilage"):
        f = np.minimum(frac(fields[key]), f_dermis)
        img += f * (c[key] - img)
    f_b = frac(fields["bone"])
    f_m = frac(fields["bone"] + np.float32(params["cortex_mm"]))
    img = img * (1 - f_b) + c["cortex"] * (f_b - f_m) + c["marrow"] * f_m
    # texture (smooth, grid-bound), gamma, point spread
    tex = params["texture"]
    rng = np.random.default_rng(int(tex["seed"]))
    n = ndi.gaussian_filter(rng.standard_normal(grid.shape, dtype=np.float32), 1.0)
    n /= max(float(n.std()), 1e-6)
    img *= 1.0 + np.float32(tex["amplitude"]) * n * f_in
    img = np.clip(img, 0.0, None) ** np.float32(params["contrast"]["gamma"])
    sigma = float(params["psf_sigma_mm"]) / spc
    if np.any(sigma > 0.1):
        img = ndi.gaussian_filter(img, sigma, mode="nearest")
    img *= _bias_field(params, grid)
    # Rician noise: magnitude of (signal + n1, n2), n ~ N(0, sd), as MONAI's RandRicianNoise
    sd = np.float32(float(params["noise_std"]) * float(params["contrast"]["fat"]))
    nrng = np.random.default_rng(int(params["noise_seed"]))
    n1 = nrng.standard_normal(grid.shape, dtype=np.float32) * sd
    n2 = nrng.standard_normal(grid.shape, dtype=np.float32) * sd
    img = np.sqrt((img + n1) ** 2 + n2**2)
    inside = f_in > 0.5
    ref = float(np.percentile(img[inside], 99.5)) if np.count_nonzero(inside) > 10 else float(img.max())
    return np.clip(img / max(ref, 1e-6), 0.0, 1.0).astype(np.float32)


def render_hand_case(
    params: dict[str, Any], shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the case described by ``params`` (from :func:`sample_hand_params`, possibly edited); deterministic.

    Args:
        params: the parameter dict (a JSON round trip of it renders the same case).
        shape: grid size (X, Y, Z), each in [16, 512]; default :data:`HAND_DEFAULT_SHAPE` (64, 80, 48).
        spacing: voxel size in mm, each in [0.25, 10]; default :data:`HAND_DEFAULT_SPACING` (3 mm).

    Returns:
        ``(image, label, affine)``: float32 (1, X, Y, Z) T1-like image in [0, 1]; uint8 (X, Y, Z) labels of
        :data:`HAND_LABELS` (voxel centres inside a bone, minus voxels that touch another bone, so every bone is
        its own 26-connected piece); the 4 x 4 voxel-to-world affine (:func:`hand_affine`).
    """
    _check_params(params)
    shp, spc = _check_grid(shape, spacing)
    fields = _fields(params, shp, spc)
    return _image(fields, params)[None], _labels(fields), hand_affine(shp, spc)


def render_hand_tissues(
    params: dict[str, Any], shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Tissue class (:data:`HAND_TISSUES`) at each voxel centre of the case ``params``: uint8 (X, Y, Z).

    The noise-free anatomy behind :func:`render_hand_case` (same grid conventions), e.g. to check contrasts.
    """
    _check_params(params)
    shp, spc = _check_grid(shape, spacing)
    return _tissues(_fields(params, shp, spc), params)


def generate_hand_case(
    seed: int, shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One synthetic hand MR case: :func:`sample_hand_params` then :func:`render_hand_case`.

    Returns:
        ``(image, label, meta)``: float32 (1, X, Y, Z), uint8 (X, Y, Z), and ``meta`` = the parameter dict plus
        ``shape``, ``spacing``, ``affine`` (lists), ``landmarks`` (:func:`hand_landmarks`) and
        ``label_fractions`` (fraction of voxels per class). ``render_hand_case(meta, meta["shape"],
        meta["spacing"])`` replays the case.
    """
    shp, spc = _check_grid(shape, spacing)
    params = sample_hand_params(seed)
    image, label, affine = render_hand_case(params, shp, spc)
    counts = np.bincount(label.ravel(), minlength=len(HAND_LABELS))
    meta = {
        **params,
        "shape": list(shp),
        "spacing": [float(v) for v in spc],
        "affine": affine.tolist(),
        "landmarks": hand_landmarks(params),
        "label_fractions": {str(k): round(float(counts[k]) / label.size, 6) for k in HAND_LABELS},
    }
    return image, label, meta


# ------------------------------------------------------------------------------------------ data set


def synthesize_hand_dataset(
    out_dir: str | os.PathLike,
    cases: int = 30,
    seed: int = 0,
    shape: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``cases`` synthetic hand MR cases to ``out_dir`` as an MSD / nnU-Net-style data set.

    Layout::

        out_dir/imagesTr/hand_000.nii.gz   float32 (X, Y, Z) T1-like image, affine of :func:`hand_affine`
        out_dir/labelsTr/hand_000.nii.gz   uint8 labels: 0 background, 1 metacarpal, 2 proximal, 3 middle,
                                           4 distal phalanx
        out_dir/dataset.json               MSD keys (labels, modality, training list) + ``phantom`` (the
                                           generator settings and every case's parameters, for replay)

    The whole folder is built under a temporary sibling name and renamed at the end, so ``out_dir`` either
    does not appear or holds the complete data set (an invalid argument or an error midway leaves nothing; an
    empty ``out_dir`` stays empty). ``out_dir`` must be missing or an empty folder. Case ``i`` has a seed that
    depends on ``(seed, i)`` only, so a larger ``cases`` keeps the first cases.

    Args:
        out_dir: the folder to create.
        cases: number of cases (>= 1; the paper has 30 volumes, 20 / 5 / 5 train / validation / test).
        seed: data set seed.
        shape, spacing: the grid (default 64 x 80 x 48 voxels of 3 mm).
        progress: print one line per case.

    Returns:
        The ``dataset.json`` content.

    Raises:
        ValueError: invalid ``cases``, ``shape`` or ``spacing``.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    check_count(cases)
    check_seed(seed)
    shp, spc = _check_grid(shape, spacing)
    out = require_empty_folder(out_dir)
    n = int(cases)
    affine = hand_affine(shp, spc)
    dataset: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        entries, records = [], []
        for i in range(n):
            t0 = time.perf_counter()
            name = f"hand_{i:03d}"
            image, label, meta = generate_hand_case(derive_seed(seed, 31, i, bits=31), shp, spc)
            save_phantom_nifti(image[0], affine, tmp / "imagesTr" / f"{name}.nii.gz")
            save_phantom_nifti(label, affine, tmp / "labelsTr" / f"{name}.nii.gz")
            entries.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
            records.append({"case": name, **{k: v for k, v in meta.items() if k not in ("affine", "shape", "spacing")}})
            if progress:
                print(f"hand case {i + 1}/{n} {name} seed={meta['seed']} grasp={meta['grasp']:.2f} "
                      f"... {time.perf_counter() - t0:.2f} s", flush=True)
        dataset.update(msd_phantom_description(
            "monai_ext synthetic hand MRI",
            "Synthetic T1-like 3D hand MR phantoms in varied postures with bone labels by type (as in "
            "Kayalibay et al. 2017, arXiv 1701.03056); carpals, radius and ulna are rendered but labelled "
            "background. Generated by monai_ext.phantoms.hand_mri. Synthetic data, not for clinical use.",
            "T1w MRI",
            HAND_LABELS,
            entries,
            {"generator": "monai_ext.phantoms.synthesize_hand_dataset", "seed": int(seed), "cases": n,
             "shape": list(shp), "spacing": [float(v) for v in spc], "affine": affine.tolist(), "records": records},
        ))
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=1) + "\n")

    if not atomic_directory(out, fill):
        raise FileExistsError(f"out_dir {out} appeared while the data set was written; kept the other writer's.")
    return dataset
