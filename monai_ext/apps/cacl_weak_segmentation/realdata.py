"""Checks of a CaCL model beyond its phantoms: a real IHC image and perturbed test patches.

- Real tissue: scikit-image ships one real brightfield IHC image (``skimage.data.immunohistochemistry``: colonic
  glands, FHL2 protein shown with DAB, haematoxylin counterstain; 512 x 512 px, about 0.5 um per pixel by its nuclei).
  There is no reference mask and the stain is membranous / cytoplasmic in colon, not a duodenal brush border, so the
  check is descriptive: how much of the image the model marks at a few scales, and how brown (DAB amount) the marked
  pixels are next to the unmarked tissue.
- Robustness on the test patches: Dice against the reference masks after Gaussian noise, blur and a rescale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...io import PathLike, atomic_write
from .baselines import dab_maps, load_scored_patches, overlap_summary
from .network import CaCLNet

__all__ = ["perturbation_check", "real_ihc_check"]


def _segment_tiles(net: CaCLNet, rgb: torch.Tensor, tile: int) -> torch.Tensor:
    """(1, H, W) mask of a (3, H, W) image segmented in non-overlapping tiles of ``tile`` px (H, W multiples)."""
    c, h, w = rgb.shape
    tiles = rgb.reshape(c, h // tile, tile, w // tile, tile).permute(1, 3, 0, 2, 4).reshape(-1, c, tile, tile)
    masks = net.segment(tiles)
    return masks.reshape(h // tile, w // tile, 1, tile, tile).permute(2, 0, 3, 1, 4).reshape(1, h, w)


def real_ihc_check(net: CaCLNet, out_dir: PathLike, scales: Sequence[int] = (4, 2), tile: int = 64) -> dict[str, Any]:
    """Segment scikit-image's real IHC image downsampled by each of ``scales`` (4: about 2 um per pixel, the
    default model's scale) in tiles of ``tile`` px; write ``real_ihc.json`` (per scale: marked fraction, mean DAB
    amount of the marked and of the unmarked tissue pixels, and the fraction of the marked pixels that are DAB
    positive) and ``real_ihc_overlay.png`` (image and mask per scale) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.data import immunohistochemistry

    image = torch.as_tensor(immunohistochemistry()).permute(2, 0, 1).float() / 255.0
    net.eval()
    results, panels = {}, []
    for s in scales:
        small = F.interpolate(image[None], scale_factor=1.0 / s, mode="area")[0]
        h, w = (small.shape[1] // tile) * tile, (small.shape[2] // tile) * tile
        small = small[:, :h, :w]
        mask = _segment_tiles(net, small, tile)[0].bool()
        dab = dab_maps(small[None])[0, 0]
        tissue = small.mean(0) < 0.85                       # not glass
        dab_positive = dab > 0.05
        results[f"downsampled_{s}x"] = {
            "pixels": [h, w], "marked_fraction": float(mask.float().mean()),
            "mean_dab_marked": float(dab[mask].mean()) if bool(mask.any()) else float("nan"),
            "mean_dab_unmarked_tissue": float(dab[~mask & tissue].mean()),
            "dab_positive_fraction_of_marked": float(dab_positive[mask].float().mean()) if bool(mask.any()) else float("nan"),
            "dab_positive_fraction_of_tissue": float(dab_positive[tissue].float().mean()),
        }
        panels.append((s, small.permute(1, 2, 0).numpy(), mask.numpy()))
    fig, axes = plt.subplots(len(panels), 2, figsize=(7, 3.5 * len(panels)), squeeze=False)
    for row, (s, rgb, mask) in zip(axes, panels):
        row[0].imshow(rgb)
        row[0].set_title(f"real IHC (skimage), 1/{s} size")
        over = rgb.copy()
        over[mask] = 0.6 * over[mask] + 0.4 * np.array([0.0, 1.0, 0.0])
        row[1].imshow(over)
        row[1].set_title(f"CaCL mask (green), {100 * mask.mean():.1f} % of the image")
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    out = Path(out_dir).expanduser()
    atomic_write(out / "real_ihc_overlay.png", lambda p: fig.savefig(p, dpi=80))
    plt.close(fig)
    atomic_write(out / "real_ihc.json", lambda p: p.write_text(json.dumps(results, indent=1) + "\n"))
    return results


def perturbation_check(net: CaCLNet, items: list[dict], out_file: PathLike, seed: int = 0) -> dict[str, Any]:
    """Dice / recall / precision (:func:`overlap_summary`) of ``net``'s masks on test patches
    (:func:`~monai_ext.apps.cacl_weak_segmentation.evaluation_items`) as they are and after: Gaussian noise of
    sd 0.02 and 0.05 (intensities in [0, 1]), a Gaussian blur of sd 1 px, and a 2x upsampling (the patch seen at
    twice the magnification, 1 um pixels; the mask is downsampled back by nearest neighbour). Writes ``out_file``
    (JSON)."""
    x, ref, labels = load_scored_patches(items)
    gen = torch.Generator().manual_seed(int(seed))
    net.eval()
    variants = {
        "clean": x,
        "noise_0.02": (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1),
        "noise_0.05": (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1),
        "blur_1px": torch.as_tensor(ndimage.gaussian_filter(x.numpy(), (0, 0, 1.0, 1.0))),
    }
    results = {name: overlap_summary(net.segment(v), ref, labels) for name, v in variants.items()}
    up = net.segment(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
    results["upsampled_2x"] = overlap_summary(F.interpolate(up, size=x.shape[2:], mode="nearest"), ref, labels)
    atomic_write(Path(out_file).expanduser(), lambda p: p.write_text(json.dumps(results, indent=1) + "\n"))
    return results
