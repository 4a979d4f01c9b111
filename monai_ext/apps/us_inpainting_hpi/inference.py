"""Inpaint a folder of ultrasound images with their hole masks using a trained HPI network: several completions per
image and the per-pixel spread of the completions, written as PNG files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from monai_ext.datalists import ultrasound_datalist
from monai_ext.io import atomic_directory, require_empty_folder
from monai_ext.transforms import LoadUltrasound

from .evaluation import inpaint, load_hpi_network

__all__ = ["inpaint_folder"]


def _png(array: torch.Tensor, path: Path) -> None:
    from PIL import Image

    a = np.clip(array.detach().cpu().numpy().reshape(array.shape[-2:]), 0.0, 1.0)
    Image.fromarray(np.round(a * 255).astype(np.uint8)).save(path)


def inpaint_folder(ckpt_path: str | Path, dataset_dir: str | Path, mask_dir: str | Path, output_dir: str | Path,
                   mask_suffix: str = "", num_samples: int = 8, temperature: float = 1.0, image_size: int = 64,
                   seed: int = 0, device: str | torch.device = "cpu") -> list[str]:
    """Inpaint every image of ``dataset_dir`` (PNG, JPEG, DICOM; grey, rows = depth) where its mask in ``mask_dir``
    (same name, or ``<stem><mask_suffix>``; non-zero = missing) is set.

    Each image and mask is resized to ``image_size`` x ``image_size`` (the training size: the mask by area, so any
    missing pixel marks its low-resolution pixel), completed ``num_samples`` times (``temperature`` 0: one prior-mean
    completion), and each completion is resized back and used only inside the original mask: known pixels keep
    their values. Writes, all or nothing, into ``output_dir`` (missing or empty): ``<stem>_completion<k>.png``,
    ``<stem>_spread.png`` (per-pixel SD of the completions, x4, for K > 1) and ``inpainting.json`` (settings and
    the files). Returns the written PNG paths.

    Raises:
        FileNotFoundError: no images, an image without a mask (the message names both), missing weights.
        ValueError: a mask whose size differs from its image's, an empty mask, bad settings.
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    k = 1 if float(temperature) == 0 else int(num_samples)
    out = require_empty_folder(output_dir, "output_dir")  # before any work: a filled folder ends the run at once
    items = ultrasound_datalist(dataset_dir, masks=mask_dir, mask_suffix=mask_suffix)
    network = load_hpi_network(ckpt_path, device)
    if image_size % network.grid_multiple:
        raise ValueError(f"image_size {image_size}: the network needs a multiple of {network.grid_multiple}.")
    method = "hpi" if network.latent_channels and float(temperature) > 0 else ("hpi_mean" if network.latent_channels else "deterministic")
    load_image, load_mask = LoadUltrasound(), LoadUltrasound(label=True)
    torch.manual_seed(int(seed))
    results = []
    for item in items:
        image = load_image(item["image"]).as_tensor().float()[:1]
        hole = (load_mask(item["label"]).as_tensor()[:1] > 0).float()
        if not hole.any():
            raise ValueError(f"mask {item['label']} has no missing pixel (all 0); nothing to inpaint in {item['image']}.")
        size = tuple(image.shape[1:])
        small = F.interpolate(image[None], size=(image_size, image_size), mode="area")[0]
        small_hole = (F.interpolate(hole[None], size=(image_size, image_size), mode="area")[0] > 0).float()
        outs = inpaint(method, small, small_hole, network, k, float(temperature))
        up = F.interpolate(outs, size=size, mode="bilinear", align_corners=False)
        results.append((Path(item["image"]).stem, hole * up + (1 - hole) * image, hole))
    written: list[str] = []

    def fill(tmp: Path) -> None:
        listing = []
        for stem, comps, hole in results:
            files = []
            for j, c in enumerate(comps):
                _png(c, tmp / f"{stem}_completion{j}.png")
                files.append(f"{stem}_completion{j}.png")
            if len(comps) > 1:
                _png(4 * comps.std(dim=0) * hole, tmp / f"{stem}_spread.png")
                files.append(f"{stem}_spread.png")
            listing.append({"image": stem, "files": files})
        (tmp / "inpainting.json").write_text(json.dumps(
            {"model": str(ckpt_path), "method": method, "num_samples": k, "temperature": float(temperature),
             "image_size": int(image_size), "seed": int(seed), "images": listing}, indent=1) + "\n", encoding="utf-8")
        written.extend(str(out / f) for e in listing for f in e["files"])

    atomic_directory(out, fill)
    return written
