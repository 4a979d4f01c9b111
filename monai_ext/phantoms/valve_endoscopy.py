"""Endoscopic mitral-valve frames with suture points in two domains, the embedded data of the AdaptOR bundle.

Like the AdaptOR 2021 challenge data (Sharan et al., DGM4MICCAI/DALI 2021): during annuloplasty, white and blue
mattress sutures are stitched into the mitral annulus; the landmarks are the points where a suture enters or exits
the tissue, 0-15 per frame. Each frame shows the annulus as an elliptical band of tissue around the leaflets and the
dark orifice; each suture is a pair of points a few millimetres apart on the band, and from each point the thread
runs outward, over the tissue and out of the view, as the threads are held outside the heart. A landmark is the end
of a thread on the tissue. Threads that cross the whole view (held, not yet stitched) have no landmark.

Two domains, as in the challenge:

- ``sim``: a silicone valve in a surgical simulator: even, saturated colours, smooth surface, sharp, little noise;
- ``intraop``: real tissue: yellow-red with blood-red patches and texture, uneven light with endoscope vignetting,
  defocus blur, sensor noise, specular highlights (white spots that look like thread ends), duller threads.

Frames come in surgeries (simulations or patients): the frames of one surgery share the valve's geometry and the
style, each frame moved and lit a little differently, so splits go by surgery as the challenge's do. Frames are
``width x height`` RGB (default 256 x 144, half the challenge's 512 x 288). Labels are labelme JSON files, the tool
the challenge's annotators used: one ``point`` shape per landmark, (x, y) pixel coordinates.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..io import atomic_directory, labelme_point_file, require_empty_folder
from .random_field import smooth_random_field
from .seeds import check_count, check_seed, derive_seed

__all__ = [
    "VALVE_DOMAINS",
    "generate_valve_frame",
    "sample_valve_surgery",
    "synthesize_valve_dataset",
]

#: the two domains: simulator frames and intraoperative frames
VALVE_DOMAINS = ("sim", "intraop")
_WHITE, _BLUE = np.array([0.95, 0.95, 0.93]), np.array([0.22, 0.35, 0.80])


def sample_valve_surgery(rng: np.random.Generator, domain: str) -> dict[str, Any]:
    """The settings of one surgery: valve geometry (fractions of the frame) and the domain's colours and optics."""
    if domain not in VALVE_DOMAINS:
        raise ValueError(f"domain must be one of {VALVE_DOMAINS}, got {domain!r}.")
    sim = domain == "sim"
    tissue = np.array([0.86, 0.62, 0.55]) if sim else np.array([0.78, 0.45, 0.30])
    return {
        "domain": domain,
        "centre": [float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.45, 0.62))],   # (x, y) fractions
        "radii": [float(rng.uniform(0.30, 0.40)), float(rng.uniform(0.38, 0.50))],    # of width, of height
        "band": float(rng.uniform(0.07, 0.10)),          # annulus thickness, fraction of the height
        "tilt_deg": float(rng.uniform(-15, 15)),
        "tissue_rgb": (tissue + rng.uniform(-0.05, 0.05, 3)).tolist(),
        "leaflet_rgb": ((tissue * (0.85 if sim else 0.75)) + rng.uniform(-0.04, 0.04, 3)).tolist(),
        "background_rgb": ([0.25, 0.12, 0.12] if sim else [0.20, 0.06, 0.04]),
        "texture": 0.03 if sim else 0.12,
        "blood": 0.0 if sim else float(rng.uniform(0.2, 0.5)),
        "blur_px": float(rng.uniform(0.3, 0.5) if sim else rng.uniform(0.9, 1.5)),
        "noise": 0.01 if sim else float(rng.uniform(0.03, 0.05)),
        "vignette": 0.1 if sim else float(rng.uniform(0.35, 0.55)),
        "speculars": (0, 2) if sim else (4, 12),
        "thread_gain": 1.0 if sim else float(rng.uniform(0.7, 0.85)),
    }


def generate_valve_frame(seed: int, surgery: dict[str, Any], width: int = 256, height: int = 144,
                         max_points: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """One frame: ``(image, points)``; image (3, height, width) uint8 RGB, points (N, 2) float (x, y) pixels with
    0 <= N <= ``max_points`` (uniform). Depends on ``seed`` and ``surgery`` only."""
    rng = np.random.default_rng(check_seed(seed))
    h, w = int(height), int(width)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    cx = (surgery["centre"][0] + rng.normal(0, 0.03)) * w
    cy = (surgery["centre"][1] + rng.normal(0, 0.03)) * h
    ra = surgery["radii"][0] * w * rng.uniform(0.95, 1.05)
    rb = surgery["radii"][1] * h * rng.uniform(0.95, 1.05)
    tilt = np.deg2rad(surgery["tilt_deg"] + rng.normal(0, 4))
    u = ((xx - cx) * np.cos(tilt) + (yy - cy) * np.sin(tilt)) / ra
    v = (-(xx - cx) * np.sin(tilt) + (yy - cy) * np.cos(tilt)) / rb
    r = np.sqrt(u**2 + v**2)                          # 1 on the annulus' mid-line
    band = surgery["band"] * h / rb                   # half-thickness in r units (approximately)

    def colour(rgb: list[float]) -> np.ndarray:
        return np.asarray(rgb, np.float64)[:, None, None]

    annulus = np.clip((band - np.abs(r - 1.0)) / (0.25 * band), 0, 1)
    leaflet = np.clip((1.0 - band - r) / 0.08, 0, 1)
    orifice = np.clip((0.12 - np.sqrt((u / 2.2) ** 2 + (v / 0.35) ** 2) * 0.3) / 0.03, 0, 1) * leaflet
    tex = smooth_random_field(rng, (h, w), 3.0) * surgery["texture"]
    img = colour(surgery["background_rgb"]) * (1 + tex) * np.ones((3, h, w))
    tissue = colour(surgery["tissue_rgb"]) * (1 + tex + 0.05 * smooth_random_field(rng, (h, w), 10.0))
    img = img * (1 - leaflet) + colour(surgery["leaflet_rgb"]) * (1 + tex) * leaflet
    img = img * (1 - orifice) + colour([0.05, 0.02, 0.02]) * orifice
    img = img * (1 - annulus) + tissue * annulus
    if surgery["blood"] > 0:
        blood = np.clip(smooth_random_field(rng, (h, w), 12.0) - 0.8, 0, None) * surgery["blood"]
        img = img * (1 - blood) + colour([0.45, 0.03, 0.03]) * blood

    n_points = int(rng.integers(0, int(max_points) + 1))
    pairs = (n_points + 1) // 2
    points: list[list[float]] = []
    threads: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []   # (start, end, rgb): a thread drawn start -> end
    angles = _spread_angles(rng, pairs)
    for k, a in enumerate(angles):
        rgb = (_WHITE if k % 2 == 0 else _BLUE) * surgery["thread_gain"]
        gap = rng.uniform(0.035, 0.06)                 # half the angle between a pair's two points, radians
        ends = [a - gap, a + gap] if (k < pairs - 1 or n_points % 2 == 0) else [a]
        for e in ends:
            depth = 1.0 + rng.uniform(-0.6, 0.6) * band
            pu, pv = depth * np.cos(e), depth * np.sin(e)
            px = cx + pu * ra * np.cos(tilt) - pv * rb * np.sin(tilt)
            py = cy + pu * ra * np.sin(tilt) + pv * rb * np.cos(tilt)
            if not (2 <= px <= w - 2 and 2 <= py <= h - 2):
                continue
            out = np.array([px - cx, py - cy])
            out = out / (np.linalg.norm(out) + 1e-9)
            far = np.array([px, py]) + (out + rng.normal(0, 0.25, 2)) * 2 * (w + h)
            points.append([float(px), float(py)])
            threads.append((np.array([px, py]), far, rgb))
    for _ in range(int(rng.integers(0, 3))):          # held threads crossing the view: no landmark
        a, b = rng.uniform(0, 2 * np.pi, 2)
        start = np.array([cx, cy]) + 2 * (w + h) * np.array([np.cos(a), np.sin(a)])
        threads.append((start, np.array([cx, cy]) + 2 * (w + h) * np.array([np.cos(b), np.sin(b)]),
                        (_WHITE if rng.random() < 0.5 else _BLUE) * surgery["thread_gain"]))
    for start, end, rgb in threads:
        cover = _thread_cover(xx, yy, start, end, width_px=rng.uniform(1.4, 2.0))
        img = img * (1 - cover) + colour(rgb.tolist()) * cover
    for px, py in points:                              # the puncture: a small dark dimple under the thread's end
        dimple = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 1.2**2)) * 0.35
        img = img * (1 - dimple)

    lo, hi = surgery["speculars"]
    for _ in range(int(rng.integers(lo, hi + 1))):
        sx, sy = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(0.8, 1.8)
        spot = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * s**2)) * annulus.clip(0.3, 1)
        img = img * (1 - spot) + spot
    light = 1 - surgery["vignette"] * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / 2
    light = light * rng.uniform(0.85, 1.15) * (1 + 0.15 * (xx / w - 0.5) * rng.normal())
    img = img * light
    img = np.stack([ndimage.gaussian_filter(c, surgery["blur_px"]) for c in img])
    img = img + rng.normal(0, surgery["noise"], img.shape)
    image = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return image, np.asarray(points, np.float64).reshape(-1, 2)


def _spread_angles(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` angles spread around the ring (stitches go around the annulus), at least 0.3 rad apart."""
    step = 2 * np.pi / max(count, 1)
    jitter = rng.uniform(-0.5, 0.5, count) * max(step - 0.3, 0.0)
    return rng.uniform(0, 2 * np.pi) + step * np.arange(count) + jitter


def _thread_cover(xx: np.ndarray, yy: np.ndarray, start: np.ndarray, end: np.ndarray, width_px: float) -> np.ndarray:
    """Coverage in [0, 1] of a straight thread from ``start`` to ``end`` (pixels), anti-aliased over one pixel."""
    d = end - start
    t = np.clip(((xx - start[0]) * d[0] + (yy - start[1]) * d[1]) / (d @ d), 0.0, 1.0)
    dist = np.hypot(xx - start[0] - t * d[0], yy - start[1] - t * d[1])
    return np.clip(width_px / 2 + 0.5 - dist, 0.0, 1.0)


def synthesize_valve_dataset(out_dir: str | os.PathLike, sim_surgeries: int = 8, intraop_surgeries: int = 5,
                             frames_per_surgery: int = 30, width: int = 256, height: int = 144, seed: int = 0,
                             progress: bool = True) -> dict[str, Any]:
    """Write the two domains' frames to ``out_dir``.

    Layout (the AdaptOR layout as the bundle's dataset list reads it)::

        out_dir/sim/sim01/images/frame_0000.png          RGB uint8, width x height
        out_dir/sim/sim01/point_labels/frame_0000.json   labelme, one point shape per suture point (x, y)
        out_dir/intraop/op01/...
        out_dir/phantom.json                             settings and every surgery's style

    Written under a temporary name and renamed at the end. Frame ``(domain, s, f)``'s seed depends on
    ``(seed, domain, s, f)`` only.

    Raises:
        ValueError: fewer than 1 surgery per domain or frame per surgery, or a size outside 64-1024 pixels.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    counts = {"sim": check_count(sim_surgeries, "sim_surgeries"),
              "intraop": check_count(intraop_surgeries, "intraop_surgeries")}
    frames = check_count(frames_per_surgery, "frames_per_surgery")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 64 <= int(v) <= 1024:
            raise ValueError(f"{name} must be an integer in 64-1024 pixels, got {v!r}.")
    check_seed(seed)
    from PIL import Image

    out = require_empty_folder(out_dir)
    description: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        records = []
        for d_index, domain in enumerate(VALVE_DOMAINS):
            prefix = "sim" if domain == "sim" else "op"
            for s in range(counts[domain]):
                t0 = time.perf_counter()
                name = f"{prefix}{s + 1:02d}"
                surgery = sample_valve_surgery(np.random.default_rng(derive_seed(seed, 71, d_index, s, bits=31)), domain)
                folder = tmp / domain / name
                (folder / "images").mkdir(parents=True)
                (folder / "point_labels").mkdir()
                n_points = 0
                for f in range(frames):
                    image, points = generate_valve_frame(derive_seed(seed, 72, d_index, s, f, bits=31), surgery,
                                                         width, height)
                    frame = f"frame_{f:04d}"
                    Image.fromarray(np.moveaxis(image, 0, -1)).save(folder / "images" / f"{frame}.png")
                    doc = labelme_point_file(points, f"../images/{frame}.png", width, height)
                    (folder / "point_labels" / f"{frame}.json").write_text(json.dumps(doc) + "\n")
                    n_points += len(points)
                records.append({"surgery": name, **surgery, "frames": frames, "points": n_points})
                if progress:
                    print(f"valve frames {domain}/{name}: {frames} frames, {n_points} suture points ... "
                          f"{time.perf_counter() - t0:.1f} s", flush=True)
        description.update({
            "name": "monai_ext synthetic endoscopic mitral-valve frames",
            "description": "RGB frames of an annuloplasty scene with 0-15 suture entry / exit points, two domains "
                           "(sim: simulator, intraop: real-tissue-like). Synthetic data "
                           "(monai_ext.phantoms.valve_endoscopy).",
            "generator": "monai_ext.phantoms.synthesize_valve_dataset", "seed": int(seed), "width": int(width),
            "height": int(height), "frames_per_surgery": frames, "surgeries": records,
        })
        (tmp / "phantom.json").write_text(json.dumps(description, indent=1) + "\n")

    if not atomic_directory(out, fill):
        raise FileExistsError(f"out_dir {out} appeared while the data set was written; kept the other writer's.")
    return description
