"""``python -m monai_ext gan-report``: the GAN evaluation suite (:func:`monai_ext.engines.gan_evaluation_report`) on
three folders of images: the real training images a generator learnt from, held-out real images, and its output.

Images are read with MONAI's ``LoadImage`` (NIfTI, PNG/JPEG/TIFF, DICOM files, ``.npy``); colour is averaged to
grey; volumes give their middle axial slice(s) or all of them (``slices``); every slice is resized to
``size`` x ``size``; one intensity window maps all three sets to [0, 1] (given, or the 0.5-99.5 percentiles of the
real training images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["GAN_REPORT_SUFFIXES", "load_image_slices", "run_gan_report"]

GAN_REPORT_SUFFIXES = (".nii", ".nii.gz", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".npy")
SLICE_MODES = ("middle", "middle3", "all")


def _files(source: str | Path, what: str) -> list[Path]:
    root = Path(source).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{what}: {root} does not exist (expected a folder of images or one image file).")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(GAN_REPORT_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"{what}: no images in {root} (expected files ending in {', '.join(GAN_REPORT_SUFFIXES)}).")
    return files


def load_image_slices(source: str | Path, size: int = 64, slices: str = "middle3", what: str = "images",
                      return_groups: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, size, size)`` raw intensities of the images in ``source`` (a folder, searched recursively, or one
    file): 2D images as they are, volumes as their middle axial slice (``middle``), three middle slices
    (``middle3``) or every slice (``all``), colour channels averaged. ``return_groups``: also the ``(N,)`` index
    of the file each slice comes from (slices of one volume are not compared in the collapse check)."""
    from monai.transforms import LoadImage, Resize

    if slices not in SLICE_MODES:
        raise ValueError(f"slices must be one of {', '.join(SLICE_MODES)}, got {slices!r}.")
    load, resize = LoadImage(image_only=True, ensure_channel_first=True), Resize((int(size), int(size)), mode="area")
    out: list[torch.Tensor] = []
    groups: list[int] = []
    for index, f in enumerate(_files(source, what)):
        try:
            img = torch.as_tensor(np.asarray(load(str(f))), dtype=torch.float32)
        except Exception as e:
            raise ValueError(f"{what}: cannot read {f}: {e}") from e
        img = img.mean(0, keepdim=True)
        if img.ndim == 4 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim == 3:
            stack = [img]
        elif img.ndim == 4:
            d = img.shape[-1]
            idx = {"middle": [d // 2], "middle3": sorted({max(d // 2 - 1, 0), d // 2, min(d // 2 + 1, d - 1)}), "all": range(d)}[slices]
            stack = [img[..., k] for k in idx]
        else:
            raise ValueError(f"{what}: {f} has shape {tuple(img.shape)}; expected a 2D image or a 3D volume.")
        out += [torch.as_tensor(np.asarray(resize(s)), dtype=torch.float32) for s in stack]
        groups += [index] * len(stack)
    images = torch.stack(out)
    return (images, torch.tensor(groups)) if return_groups else images


def _groups_or_none(groups: torch.Tensor) -> torch.Tensor | None:
    """File ids as collapse-check groups, unless every image is its own file or one file holds them all (then
    within-set pairs would be all allowed or all excluded, and grouping means nothing)."""
    n = int(groups.unique().numel())
    return groups if 1 < n < len(groups) else None


def run_gan_report(
    real_train: str,
    real_test: str,
    synthetic: str,
    out: str,
    title: str | None = None,
    size: int = 64,
    slices: str = "middle3",
    intensity_range: tuple[float, float] | str | None = None,
    epochs: int = 20,
    max_images: int = 128,
    seed: int = 0,
    device: str | None = None,
    repeats: int = 3,
    min_iterations: int = 200,
) -> dict:
    """Load the three image sets, window them to [0, 1] and write the GAN evaluation report into ``out`` (missing
    or empty). ``intensity_range``: ``"lo,hi"`` in the images' units (e.g. ``-1000,500`` for CT in HU).
    ``repeats`` two-sample test runs of at least ``min_iterations`` CNN steps each (more steps: ``epochs``)."""
    from ..engines import gan_evaluation_report
    from ..io import require_empty_folder

    require_empty_folder(out, "out")
    loaded = {name: load_image_slices(src, size, slices, name, return_groups=True) for name, src in
              (("real_train", real_train), ("real_test", real_test), ("synthetic", synthetic))}
    sets = {k: v[0] for k, v in loaded.items()}
    if intensity_range is None:
        lo, hi = (float(v) for v in np.quantile(sets["real_train"].numpy(), [0.005, 0.995]))
    else:
        parts = intensity_range.split(",") if isinstance(intensity_range, str) else list(intensity_range)
        if len(parts) != 2:
            raise ValueError(f"intensity_range must be 'lo,hi', got {intensity_range!r}.")
        lo, hi = float(parts[0]), float(parts[1])
    if not hi > lo:
        raise ValueError(f"intensity window [{lo}, {hi}] is empty (real_train images are constant, or lo >= hi).")
    scaled = {k: ((v - lo) / (hi - lo)).clamp(0, 1) for k, v in sets.items()}
    print(f"gan-report: {', '.join(f'{len(v)} {k}' for k, v in scaled.items())} images of {size} x {size}, window [{lo:.4g}, {hi:.4g}]")
    return gan_evaluation_report(
        scaled["real_train"], scaled["real_test"], scaled["synthetic"], out_dir=out,
        real_train_groups=_groups_or_none(loaded["real_train"][1]), synthetic_groups=_groups_or_none(loaded["synthetic"][1]),
        title=title or Path(synthetic).expanduser().name, epochs=epochs, max_images=max_images, seed=seed, device=device,
        repeats=repeats, min_iterations=min_iterations,
    )
