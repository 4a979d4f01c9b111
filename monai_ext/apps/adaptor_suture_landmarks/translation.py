"""Simulator -> intraop translation of the training frames by a CycleGAN (paper 1: the translated frames keep the
simulator labels and enlarge the scarce intraop training set): unpaired training pairs and the writing of every
translated frame."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...io import PathLike, atomic_directory, require_empty_folder

__all__ = ["cyclegan_pairs", "translate_frames"]


def cyclegan_pairs(source: list[dict[str, Any]], target: list[dict[str, Any]], seed: int = 0) -> list[dict[str, str]]:
    """One ``{"image_a", "image_b"}`` pair per ``source`` frame, its partner a target frame drawn at random (seeded):
    unpaired training data, one epoch = every source frame once."""
    if not source or not target:
        raise ValueError(f"CycleGAN needs frames of both domains, got {len(source)} source and {len(target)} target "
                         "frames.")
    rng = random.Random(int(seed))
    return [{"image_a": s["image"], "image_b": rng.choice(target)["image"]} for s in source]


@torch.no_grad()
def translate_frames(generator: torch.nn.Module, items: list[dict[str, Any]], out_dir: PathLike,
                     device: str | torch.device = "cpu", progress: bool = True) -> Path:
    """Write ``generator(frame)`` of every item's RGB frame to ``out_dir/<surgery>/<frame>.png`` (what
    ``adaptor_datalist(sim_frames="translated")`` reads). Frames are padded to a multiple of 4 px (reflection) and
    cropped back. The folder is written under a temporary name and renamed at the end; raises ``FileExistsError``
    when ``out_dir`` already holds files (delete it to translate again)."""
    from PIL import Image

    out = require_empty_folder(out_dir, "translated_dir")
    generator = generator.to(device).eval()

    def fill(tmp: Path) -> None:
        for n, item in enumerate(items):
            with Image.open(item["image"]) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            x = torch.as_tensor(rgb).permute(2, 0, 1)[None].to(device)
            h, w = x.shape[2:]
            x = torch.nn.functional.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
            y = generator(x)[0, :, :h, :w].clamp(0, 1)
            folder = tmp / item["surgery"]
            folder.mkdir(exist_ok=True)
            image = (y.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            Image.fromarray(image).save(folder / f"{item['frame']}.png")
            if progress and (n + 1) % 50 == 0:
                print(f"translated {n + 1}/{len(items)} frames", flush=True)

    if not atomic_directory(out, fill):
        raise FileExistsError(f"translated_dir {out} appeared while the frames were written; kept the other writer's.")
    return out
