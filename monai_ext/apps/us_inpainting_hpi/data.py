"""Data of the HPI bundle: the image lists (the simulator's B-mode images by default, or a folder of the user's
ultrasound images), and fixed (seeded) hole masks for validation and evaluation: free-form strokes, or the hidden
segments of a needle drawn with :class:`~monai_ext.transforms.NeedleReverberation`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_ext.datalists import split_cases, ultrasound_datalist, ultrasound_style_datalist
from monai_ext.io import atomic_directory, ensure_dataset
from monai_ext.phantoms import generate_us_anatomy, simulate_bmode
from monai_ext.transforms import NeedleReverberation, RandFreeFormMask, RandNeedleReverberation

from .transforms import needle_gap_mask

__all__ = ["hpi_datalist", "free_form_examples", "hidden_needle_examples", "inference_examples"]


def hpi_datalist(dataset_dir: str | Path, subjects: int = 1200, style: str = "linear_mid_freq",
                 shape: Sequence[int] = (64, 64), seed: int = 0, split_seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``{"training", "validation", "test"}`` lists of ``{"image": path}``.

    ``dataset_dir`` missing, empty or holding a ``dataset.json`` (as :func:`~monai_ext.phantoms.synthesize_us_dataset`
    writes): the simulator's data set (``subjects`` anatomies imaged in one machine ``style``, ``shape`` pixels,
    generated there first when missing; split by subject 70/15/15). Otherwise a folder of the user's images (PNG,
    JPEG, DICOM; :func:`~monai_ext.datalists.ultrasound_datalist`), split 70/15/15 with ``split_seed``.
    """
    root = Path(dataset_dir).expanduser()
    if not root.exists() or (root.is_dir() and not any(root.iterdir())) or (root / "dataset.json").is_file():
        lists = ultrasound_style_datalist(root, subjects=subjects, styles=[style], seed=seed, shape=shape)
        return {k: [{"image": e["image"]} for e in v] for k, v in lists.items()}
    items = [{"image": e["image"]} for e in ultrasound_datalist(root)]
    n_hold = max(1, int(round(0.15 * len(items))))
    return split_cases(items, n_hold, n_hold, split_seed, root, sort_key=lambda c: c["image"])


def _load_all(items: Sequence[dict[str, Any]], load: Callable[[dict[str, Any]], dict[str, Any]], limit: int | None,
              image_key: str) -> list[torch.Tensor]:
    chosen = list(items)[: limit if limit else None]
    if not chosen:
        raise ValueError("no images to build examples from (empty list).")
    images = []
    for item in chosen:
        img = torch.as_tensor(load(dict(item))[image_key]).float()
        if img.ndim != 3:
            raise ValueError(f"{item.get(image_key)}: expected a (C, H, W) image after loading, got {tuple(img.shape)}.")
        images.append(img)
    return images


def free_form_examples(items: Sequence[dict[str, Any]], load: Callable[[dict[str, Any]], dict[str, Any]],
                       seed: int = 0, limit: int | None = None, image_key: str = "image",
                       **mask_ranges: Any) -> list[dict[str, Any]]:
    """Each image of ``items`` (loaded by ``load``, a transform of a data dict) with a free-form hole mask drawn by
    :class:`~monai_ext.transforms.RandFreeFormMask` seeded with ``seed + index`` (the same masks in every run).

    Returns ``[{"image": (C + 1, H, W) network input, "label": (C, H, W) complete image, "mask": (1, H, W),
    "strokes": the mask's record}]``; the hole's pixels of ``image`` are zeroed."""
    out = []
    for i, img in enumerate(_load_all(items, load, limit, image_key)):
        rand = RandFreeFormMask(**mask_ranges)
        rand.set_random_state(seed + i)
        mask = torch.as_tensor(rand(img)).float()
        out.append({"image": torch.cat([img * (1 - mask), mask]), "label": img, "mask": mask,
                    "strokes": rand.last_params["strokes"]})
    return out


def hidden_needle_examples(items: Sequence[dict[str, Any]], load: Callable[[dict[str, Any]], dict[str, Any]],
                           seed: int = 0, limit: int | None = None, image_key: str = "image", margin: float = 2.0,
                           hide_tip_prob: float = 0.5, **needle_ranges: Any) -> list[dict[str, Any]]:
    """Each image with a random needle (:class:`~monai_ext.transforms.RandNeedleReverberation`, seeded with ``seed +
    index``) of which one to two segments are invisible; with probability ``hide_tip_prob`` the last hidden segment
    is moved to the tip (the tracker then sees a shortened needle). The hole (:func:`needle_gap_mask`) covers the
    hidden stretches (within the needle's thickness plus ``margin`` pixels) and their echoes, which are missing too,
    as HPI inpaints where a needle tracker finds no candidate (Sect. 3.3); outside it the image with the gaps and the
    complete image agree.

    Returns ``[{"image": network input, "label": the image with the whole needle, "observed": the image with the
    hidden segments, "mask": hole, "centreline": (P, 2) true needle points (row, column; tip last), "needle":
    record, "tip_hidden": bool}]``."""
    ranges = {"num_dropout": (1, 2), "dropout_length": (0.15, 0.3), **needle_ranges}
    out = []
    for i, img in enumerate(_load_all(items, load, limit, image_key)):
        rand = RandNeedleReverberation(prob=1.0, **ranges)
        rand.set_random_state(seed + i)
        rand.randomize(img.shape[1:])
        params = dict(rand.last_params)
        tip_hidden = bool(rand.R.rand() < float(hide_tip_prob))
        if tip_hidden:
            a, b = params["dropout"][-1]
            params["dropout"] = sorted(params["dropout"][:-1] + [[1.0 - (b - a), 1.0]])
        needle = NeedleReverberation(**params)
        whole = NeedleReverberation(**{**params, "dropout": []})
        hole = needle_gap_mask(params, params["dropout"], img.shape[1:], margin)
        observed, complete = torch.as_tensor(needle(img)).float(), torch.as_tensor(whole(img)).float()
        mask = hole[None]
        out.append({"image": torch.cat([observed * (1 - mask), mask]), "label": complete, "observed": observed,
                    "mask": mask, "centreline": needle.points.tolist(), "needle": params,
                    "tip_hidden": tip_hidden})
    return out


def inference_examples(folder: str | Path, num_images: int = 4, seed: int = 0, size: int = 64,
                       style: str = "linear_mid_freq") -> tuple[str, str]:
    """Example inputs of the bundle's inference config, written (all or nothing) when ``folder`` is missing or empty:
    ``folder/images/example<i>.png`` (simulated B-mode, ``size`` x ``size``, 8-bit) and ``folder/masks/example<i>.png``
    (a free-form hole, 255 = missing). Returns the two folders."""
    from PIL import Image

    def fill(tmp: Path) -> None:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for i in range(int(num_images)):
            case_seed = 1_000_000 + int(seed) * 1000 + i
            img = torch.as_tensor(simulate_bmode(generate_us_anatomy(case_seed, (size, size)), style, case_seed)).float()
            rand = RandFreeFormMask()
            rand.set_random_state(int(seed) + i)
            mask = torch.as_tensor(rand(img))[0]
            Image.fromarray((img[0].clamp(0, 1) * 255).round().byte().numpy()).save(tmp / "images" / f"example{i}.png")
            Image.fromarray((mask * 255).byte().numpy()).save(tmp / "masks" / f"example{i}.png")

    root = ensure_dataset(folder, lambda r: atomic_directory(r, fill), f"{num_images} example images and hole masks")
    return str(root / "images"), str(root / "masks")
