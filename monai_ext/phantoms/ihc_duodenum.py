"""IHC-stained duodenum patches (RGB brightfield), the embedded data of the CaCL bundle.

Like the Human Protein Atlas duodenum micro-arrays that Deng et al. (CaCL, DGM4MICCAI/DALI 2021) used: villi of
epithelium on lamina propria, counterstained with haematoxylin (nuclei, blue) and eosin-like cytoplasm (pink), and
immunostained with DAB (brown). On slides that express the protein, the brush border, a thin (2-4 um) apical rim of
the epithelium facing the lumen, is brown: that rim is the mask to segment. Both kinds of slide also carry DAB that
is *not* the target (brown immune cells in the lamina propria, brown cytoplasm of the epithelium on half of the
slides, a faint non-specific background), so a colour threshold alone cannot tell the target from the rest; what
separates the classes is where the brown is (the apical rim).

Rendering follows the Beer-Lambert model behind colour deconvolution (Ruifrok & Johnston 2001): per pixel, the
optical density is the sum of stain concentration x stain vector, and the transmitted light ``exp(-OD)``. Every slide
gets its own stain vectors (a few degrees off the standard H / E / DAB vectors), stain strengths and white level, as
real slides do. Pixels are 2 um (a 64 px patch is 128 um). Image labels: a patch is positive when it shows at least
``min_positive_px`` pixels of stained brush border; masks come with every patch, for evaluation only.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_directory, require_empty_folder
from .brightfield import render_brightfield, soft_ellipses
from .random_field import smooth_random_field
from .seeds import check_seed, derive_seed

__all__ = [
    "IHC_STAIN_VECTORS",
    "IHC_LABELS_CSV",
    "generate_ihc_patch",
    "sample_ihc_slide",
    "synthesize_ihc_dataset",
]

#: optical density per unit concentration (R, G, B) of haematoxylin, eosin and DAB (Ruifrok & Johnston's vectors, as
#: in ``skimage.color.rgb_from_hed``), before the per-slide perturbation
IHC_STAIN_VECTORS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
#: the labels file of a data set: one row per patch, columns image, label, mask, slide
IHC_LABELS_CSV = "labels.csv"
_PX_UM = 2.0


def sample_ihc_slide(rng: np.random.Generator, positive: bool) -> dict[str, Any]:
    """Per-slide settings: stain vectors (rows H, E, DAB, unit norm, each rotated by up to ~8 degrees), stain
    strengths, the brush border's DAB strength and width (um; 0 on a slide that does not express the protein),
    the density of DAB-positive immune cells, the DAB of the enterocytes' cytoplasm (half of the slides, of either
    kind: the protein elsewhere in the cell) and the non-specific DAB level."""
    vec = IHC_STAIN_VECTORS / np.linalg.norm(IHC_STAIN_VECTORS, axis=1, keepdims=True)
    vec = np.abs(vec + rng.normal(0.0, 0.07, vec.shape))
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    return {
        "positive": bool(positive),
        "stain_vectors": vec.round(4).tolist(),
        "haematoxylin": float(rng.uniform(0.8, 1.3)),
        "eosin": float(rng.uniform(0.6, 1.4)),
        "border_dab": float(rng.uniform(0.5, 1.1)) if positive else 0.0,
        "border_um": float(rng.uniform(4.0, 8.0)),
        "immune_cells_per_patch": float(rng.uniform(0.5, 3.0)),
        "cytoplasm_dab": float(rng.uniform(0.05, 0.6)) if rng.random() < 0.5 else 0.0,
        "background_dab": float(rng.uniform(0.0, 0.12)),
        "white": float(rng.uniform(0.90, 0.98)),
    }


def _segment_distance(yy: np.ndarray, xx: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    d = p1 - p0
    t = np.clip(((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / max(float(d @ d), 1e-8), 0.0, 1.0)
    return np.hypot(yy - (p0[0] + t * d[0]), xx - (p0[1] + t * d[1]))


def generate_ihc_patch(seed: int, slide: dict[str, Any], size: int = 64,
                       min_positive_px: int = 12) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One RGB patch of ``slide``: ``(image, mask, record)``.

    ``image``: (3, size, size) uint8 RGB; ``mask``: (size, size) uint8, 1 on the stained brush border (all zeros on a
    negative patch); ``record``: the patch kind (``villus``: villus edges in view, ``deep``: tissue only, ``lumen``:
    mostly empty), the label and the mask area in pixels. Pixels are 2 um.
    """
    rng = np.random.default_rng(check_seed(seed))
    shape = (int(size), int(size))
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    kind = str(rng.choice(["villus", "deep", "lumen"], p=[0.6, 0.25, 0.15]))
    # signed distance to the tissue edge in pixels (negative inside the tissue)
    if kind == "deep":
        dist = np.full(shape, -40.0)
    else:
        dist = np.full(shape, 1e3)
        n_villi = int(rng.integers(1, 4)) if kind == "villus" else 1
        for _ in range(n_villi):
            radius = rng.uniform(9.0, 16.0) if kind == "villus" else rng.uniform(5.0, 9.0)
            c = rng.uniform(-0.2, 1.2, 2) * size if kind == "villus" else rng.choice([-1.0, 1.0], 2) * size * 0.55 + size / 2
            a = rng.uniform(0.0, np.pi)
            half = rng.uniform(20.0, 60.0)
            d = np.array([np.cos(a), np.sin(a)]) * half
            dist = np.minimum(dist, _segment_distance(yy, xx, c - d, c + d) - radius)
        dist = dist + 1.5 * smooth_random_field(rng, shape, 4.0)
    tissue = dist < 0.0
    depth = np.clip(-dist, 0.0, None)
    epithelium = tissue & (depth < 6.0)
    lamina = tissue & ~epithelium
    border_px = slide["border_um"] / _PX_UM
    border = tissue & (depth < border_px) & (dist > -border_px)
    if kind == "deep":
        border[:] = False

    e = np.where(tissue, 0.35, 0.0) + np.where(epithelium, 0.15, 0.0)
    e = e * (1.0 + 0.25 * smooth_random_field(rng, shape, 2.0)) * tissue
    nuclei_epi = soft_ellipses(rng, shape, epithelium & (depth > 2.0) & (depth < 5.0), int(epithelium.sum() / 10), (1.2, 1.8), 1.8)
    nuclei_lp = soft_ellipses(rng, shape, lamina, int(lamina.sum() / 45), (1.0, 1.6))
    h = 0.9 * np.maximum(nuclei_epi, nuclei_lp) + 0.05 * tissue
    goblet = soft_ellipses(rng, shape, epithelium & (depth > 1.5), int(rng.poisson(epithelium.sum() / 250)), (1.5, 2.5))
    e = e * (1.0 - 0.8 * goblet)
    immune = soft_ellipses(rng, shape, lamina, int(rng.poisson(slide["immune_cells_per_patch"] * lamina.mean() * 3.0)), (1.5, 2.5))
    dab = slide["background_dab"] * tissue * (1.0 + 0.3 * smooth_random_field(rng, shape, 3.0))
    dab = dab + 1.0 * immune
    dab = dab + slide.get("cytoplasm_dab", 0.0) * epithelium * (1.0 + 0.3 * smooth_random_field(rng, shape, 2.0))
    stained_border = border & (slide["border_dab"] > 0)
    if stained_border.any():
        patchy = np.clip(0.75 + 0.35 * smooth_random_field(rng, shape, 3.0), 0.25, 1.3)
        dab = dab + slide["border_dab"] * patchy * stained_border
    mask = stained_border.astype(np.uint8)
    if int(mask.sum()) < min_positive_px:
        mask[:] = 0
    conc = np.stack([h * slide["haematoxylin"], e * slide["eosin"], np.clip(dab, 0.0, None)])
    image = render_brightfield(rng, conc, slide["stain_vectors"], slide["white"])
    record = {"kind": kind, "label": int(mask.any()), "mask_px": int(mask.sum())}
    return image, mask, record


def synthesize_ihc_dataset(out_dir: str | os.PathLike, slides: int = 24, patches_per_slide: int = 24,
                           positive_fraction: float = 0.6, size: int = 64, seed: int = 0,
                           progress: bool = True) -> dict[str, Any]:
    """Write ``slides x patches_per_slide`` RGB patches to ``out_dir``.

    Layout::

        out_dir/images/s03_p007.png   RGB uint8, size x size, 2 um pixels
        out_dir/masks/s03_p007.png    uint8 0 / 1, the stained brush border (evaluation only)
        out_dir/labels.csv            image,label,mask,slide (label 1: the patch shows stained brush border)
        out_dir/phantom.json          settings, every slide's stain settings and every patch's record

    The first ``round(positive_fraction * slides)`` slides express the protein (as 27 of the paper's 42 images).
    Written under a temporary name and renamed at the end. Patch ``(s, p)``'s seed depends on ``(seed, s, p)`` only.

    Raises:
        ValueError: ``slides`` < 2, ``patches_per_slide`` < 1, ``size`` outside 32-256 or a fraction outside [0, 1].
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    for name, v, lo in (("slides", slides, 2), ("patches_per_slide", patches_per_slide, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 32 <= int(size) <= 256:
        raise ValueError(f"size must be an integer in 32-256 pixels, got {size!r}.")
    if not 0.0 <= float(positive_fraction) <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction!r}.")
    check_seed(seed)
    from PIL import Image

    out = require_empty_folder(out_dir)
    n_pos = int(round(float(positive_fraction) * int(slides)))
    description: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rows, slide_records = [], []
        for s in range(int(slides)):
            t0 = time.perf_counter()
            slide = sample_ihc_slide(np.random.default_rng(derive_seed(seed, 61, s, bits=31)), positive=s < n_pos)
            patches = []
            for p in range(int(patches_per_slide)):
                name = f"s{s:02d}_p{p:03d}.png"
                image, mask, rec = generate_ihc_patch(derive_seed(seed, 62, s, p, bits=31), slide, size)
                Image.fromarray(np.moveaxis(image, 0, -1)).save(tmp / "images" / name)
                Image.fromarray(mask).save(tmp / "masks" / name)
                rows.append({"image": f"images/{name}", "label": rec["label"], "mask": f"masks/{name}", "slide": f"s{s:02d}"})
                patches.append({"image": name, **rec})
            slide_records.append({"slide": f"s{s:02d}", **slide, "patches": patches})
            if progress:
                n_lab = sum(r["label"] for r in patches)
                print(f"IHC slide {s + 1}/{slides} ({'expressing' if slide['positive'] else 'not expressing'}): "
                      f"{len(patches)} patches, {n_lab} positive ... {time.perf_counter() - t0:.2f} s", flush=True)
        with open(tmp / IHC_LABELS_CSV, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["image", "label", "mask", "slide"])
            w.writeheader()
            w.writerows(rows)
        description.update({
            "name": "monai_ext synthetic IHC duodenum patches",
            "description": "RGB brightfield patches of duodenal villi (haematoxylin, eosin, DAB), 2 um pixels; label 1: "
                           "DAB-stained brush border in view. Synthetic data (monai_ext.phantoms.ihc_duodenum).",
            "generator": "monai_ext.phantoms.synthesize_ihc_dataset", "seed": int(seed), "slides": int(slides),
            "patches_per_slide": int(patches_per_slide), "positive_fraction": float(positive_fraction),
            "size": int(size), "pixel_um": _PX_UM, "positive_patches": int(sum(r["label"] for r in rows)),
            "slide_records": slide_records,
        })
        (tmp / "phantom.json").write_text(json.dumps(description, indent=1) + "\n")

    if not atomic_directory(out, fill):
        raise FileExistsError(f"out_dir {out} appeared while the data set was written; kept the other writer's.")
    return description
