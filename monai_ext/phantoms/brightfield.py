"""Brightfield microscopy rendering shared by the histology phantoms: soft elliptical blobs (nuclei, cells, goblet
cells) and the Beer-Lambert image formation behind colour deconvolution (Ruifrok & Johnston 2001).

Per pixel, the optical density is the sum over the stains of concentration x stain vector (OD per unit
concentration in R, G, B, base 10); the transmitted light is ``white * 10 ** -OD``, then a slight optical blur and
sensor noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["ellipse_depth", "render_brightfield", "soft_ellipses"]


def ellipse_depth(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, radius: float, angle: float,
                  elongation: float = 1.0) -> np.ndarray:
    """Depth inside an ellipse in pixels, ``(1 - d) * radius`` with ``d`` the normalised elliptical distance from
    the centre ``(cy, cx)``: ``radius`` at the centre, 0 on the outline, negative outside. The minor radius is
    ``radius``, the major ``elongation * radius``, along ``angle`` (radians from the row axis)."""
    u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
    v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
    return (1.0 - np.hypot(u / (radius * elongation), v / radius)) * radius


def soft_ellipses(rng: np.random.Generator, shape: tuple[int, int], where: np.ndarray, count: int,
                  radius: tuple[float, float], elongation: float = 1.0) -> np.ndarray:
    """Soft (anti-aliased) elliptical blobs centred at ``count`` distinct random pixels of the boolean map ``where``:
    an (H, W) map in [0, 1]. Each blob's minor radius (pixels) is uniform in ``radius``, its major radius
    ``elongation`` times that, its orientation uniform; overlapping blobs take the maximum."""
    out = np.zeros(shape)
    idx = np.flatnonzero(where)
    if count <= 0 or idx.size == 0:
        return out
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    for c in rng.choice(idx, size=min(count, idx.size), replace=False):
        cy, cx = divmod(int(c), shape[1])
        r = rng.uniform(*radius)
        a = rng.uniform(0.0, np.pi)
        out = np.maximum(out, np.clip(ellipse_depth(yy, xx, cy, cx, r, a, elongation), 0.0, 1.0))
    return out


def render_brightfield(rng: np.random.Generator, concentrations: np.ndarray, stain_vectors: np.ndarray | list,
                       white: float, blur_px: float = 0.6, noise: float = 0.012) -> np.ndarray:
    """A (3, H, W) uint8 RGB image from stain ``concentrations`` (S, H, W) and ``stain_vectors`` (S, 3) (optical
    density per unit concentration, base 10): ``white * exp(-ln 10 * OD)``, a Gaussian blur of ``blur_px`` pixels
    and Gaussian noise of ``noise`` (fraction of full scale)."""
    od = np.einsum("shw,sc->chw", concentrations, np.asarray(stain_vectors)) * np.log(10.0)
    rgb = float(white) * np.exp(-od)
    rgb = ndimage.gaussian_filter(rgb, (0, blur_px, blur_px)) + rng.normal(0.0, noise, rgb.shape)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
