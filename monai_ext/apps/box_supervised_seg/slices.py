"""The 2.5D training slices of the box-supervised bundle, for each kind of supervision, and the boxes' quality.

Every volume is loaded and checked (a 3D CT in HU, labels 0-2 on its grid), put in RAS at ``pixdim`` mm, windowed
to [0, 1] and given its adjacent axial slices as channels (the network sees slices z-1, z, z+1 and segments z). The
target of each slice depends on ``box_source``:

- ``box3d``: the 3D box cut into slices (non-tight; the paper's baseline);
- ``corrected``: those boxes tightened by the patch classifier (:class:`SliceBoxCorrector`); the fully labelled
  volumes give their tight boxes;
- ``tight``: each slice's tight box from its mask (the paper's "tight 2D boxes", an oracle here);
- ``full``: the masks (full supervision).

Slices with a target box (or mask) are all kept, plus ``background_fraction`` as many without, spread evenly
(outside the box every pixel is background). Slices whose corrected box was dropped are left out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    AsDiscreted,
    Compose,
    EnsureChannelFirstd,
    Orientationd,
    ResizeWithPadOrCrop,
    ScaleIntensityRanged,
    Spacingd,
)

from ...bundle_helpers import check_best_model_schedule, load_weights
from ...io import PathLike, atomic_write
from ...metrics.box_iou import slice_box_iou
from ...transforms import CheckLabeld, CheckVolumed, LoadScand
from ...transforms.adjacent_slices import AdjacentSlices
from ...transforms.slice_boxes import TightSliceBoxes, WorldBoxToSliceBoxes
from .correction import SliceBoxCorrector, box_patch_samples, patch_classifier

__all__ = [
    "BOX_SOURCES",
    "box_training_slices",
    "check_box_switches",
    "corrector_training_patches",
    "load_box_corrector",
    "load_box_volume",
    "volume_transforms",
]

BOX_SOURCES = ("box3d", "corrected", "tight", "full")


def check_box_switches(box_source: str, num_labelled: int, patch_size: int, keep_model: str = "final",
                       max_epochs: int | None = None, val_interval: int | None = None) -> None:
    """Fail early, naming the setting, on a ``box_source`` that is not one of :data:`BOX_SOURCES`, a negative
    ``num_labelled`` (or 0 with corrected boxes), a patch size under 2 px, a ``keep_model`` other than
    ``final`` / ``best_val``, or ``best_val`` with no validation in ``max_epochs`` (when both are given)."""
    if box_source not in BOX_SOURCES:
        raise ValueError(f"box_source must be one of {list(BOX_SOURCES)}, got {box_source!r}.")
    if isinstance(num_labelled, bool) or int(num_labelled) != num_labelled or int(num_labelled) < 0:
        raise ValueError(f"num_labelled must be a non-negative integer, got {num_labelled!r}.")
    if box_source == "corrected" and int(num_labelled) == 0:
        raise ValueError("box_source 'corrected' needs fully labelled volumes for the box corrector: num_labelled >= 1.")
    if isinstance(patch_size, bool) or int(patch_size) != patch_size or int(patch_size) < 2:
        raise ValueError(f"patch_size must be an integer >= 2 (pixels), got {patch_size!r}.")
    if keep_model not in ("final", "best_val"):
        raise ValueError(f"keep_model must be final or best_val, got {keep_model!r}.")
    if keep_model == "best_val" and max_epochs is not None and val_interval is not None:
        check_best_model_schedule(max_epochs, val_interval)


def volume_transforms(pixdim: Sequence[float], window_min: float, window_max: float, with_label: bool = True) -> list:
    """Load, check, reorient (RAS), resample to ``pixdim`` mm and window [window_min, window_max] HU -> [0, 1];
    with a label: checked for values 0-2 on the image's grid (MSD Task03 / LiTS) and made binary (any value > 0)."""
    keys = ["image", "label"] if with_label else ["image"]
    steps = [
        LoadScand(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys),
        CheckVolumed(keys="image", min_size=4, hu_range_check=True),
    ]
    if with_label:
        steps.append(CheckLabeld(keys="label", image_key="image", num_classes=3,
                                 hint="Expected 0 background and 1 (liver) or 2 (tumour inside it), MSD Task03 / LiTS."))
    steps += [
        Orientationd(keys=keys, axcodes="RAS"),
        Spacingd(keys=keys, pixdim=list(pixdim), mode=["bilinear", "nearest"][: len(keys)]),
        ScaleIntensityRanged(keys="image", a_min=float(window_min), a_max=float(window_max), b_min=0.0, b_max=1.0,
                             clip=True),
    ]
    if with_label:
        steps.append(AsDiscreted(keys="label", threshold=0.5))
    return steps


def load_box_volume(case: dict[str, Any], pixdim: Sequence[float], window: Sequence[float]) -> dict[str, Any]:
    """One case on the training grid: ``image`` (1, H, W, D) in [0, 1], ``label`` (1, H, W, D) 0/1, ``box`` (its 3D
    box cut into slices; a box outside the image is an error that names the case) and ``tight`` (tight slice boxes)."""
    d = Compose(volume_transforms(pixdim, window[0], window[1]))({"image": case["image"], "label": case["label"]})
    d["box"] = WorldBoxToSliceBoxes()(d["image"], case["box_mm"], name=f"case {case['case']}")
    d["tight"] = TightSliceBoxes()(d["label"])
    return d


def load_box_corrector(path: PathLike, patch_size: int, device: str | torch.device = "cpu", threshold: float = 0.5,
                       cluster_fraction: float = 0.5, context: int = 0) -> SliceBoxCorrector:
    """The trained box corrector (weights of ``train_box_corrector.yaml``); a missing file or weights of another
    patch size are errors that name the file."""
    if not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"{path}: no box-corrector weights; run configs/train_box_corrector.yaml first "
                                "(with the same num_labelled, patch_size and corrector_context).")
    net = load_weights(patch_classifier(patch_size, context), path).to(device)
    return SliceBoxCorrector(net, patch_size, threshold=threshold, cluster_fraction=cluster_fraction, device=device,
                             context=context)


def corrector_training_patches(cases: Sequence[dict[str, Any]], patch_size: int, pixdim: Sequence[float],
                               window: Sequence[float], max_samples: int | None = 60000, seed: int = 0,
                               context: int = 0) -> list[dict]:
    """The box classifier's training patches from the fully labelled cases (``labelled: True``) of a datalist."""
    labelled = [c for c in cases if c.get("labelled")]
    if not labelled:
        raise ValueError("no fully labelled training case (num_labelled = 0): the box corrector needs some.")
    volumes = [load_box_volume(c, pixdim, window) for c in labelled]
    samples = box_patch_samples(volumes, patch_size, max_samples=max_samples, seed=seed, context=context)
    positive = sum(float(s["label"][0]) for s in samples)
    print(f"box corrector: {len(samples)} patches of {patch_size} px from {len(labelled)} labelled case(s), "
          f"{positive / len(samples):.0%} foreground", flush=True)
    return samples


def box_training_slices(
    cases: Sequence[dict[str, Any]],
    box_source: str,
    pixdim: Sequence[float],
    window: Sequence[float],
    slice_size: Sequence[int],
    corrector: SliceBoxCorrector | None = None,
    background_fraction: float = 0.5,
    report_path: PathLike | None = None,
) -> list[dict[str, Any]]:
    """Training samples ``{"image": (3, H, W), "label": (1, H, W) target, "case", "z"}`` of every training case.

    Args:
        cases: the training list of :func:`box_seg_datalist`.
        box_source: one of :data:`BOX_SOURCES` (see the module docstring).
        pixdim, window: the grid (mm) and the HU window of the volumes.
        slice_size: in-plane size (H, W) of every sample: centred crop or pad (the image padded with its edge).
        corrector: the box corrector (``box_source="corrected"`` only).
        background_fraction: slices without target per slice with one, spread evenly over those available.
        report_path: a JSON file for the boxes' quality: per-slice IoU of the boxes of each case's training target
            (the box, or the mask's extent) against its tight boxes, for the cases that are not fully labelled (what
            the correction changes; 1 for ``tight`` and ``full``), and the slices dropped.
    """
    if box_source not in BOX_SOURCES:
        raise ValueError(f"box_source must be one of {list(BOX_SOURCES)}, got {box_source!r}.")
    if box_source == "corrected" and corrector is None:
        raise ValueError("box_source 'corrected' needs the box corrector (load_box_corrector).")
    if not 0.0 <= float(background_fraction) <= 10.0:
        raise ValueError(f"background_fraction must be in [0, 10], got {background_fraction!r}.")
    stack = AdjacentSlices(context=1)
    samples, report, t0 = [], {"box_source": box_source, "cases": {}}, time.perf_counter()
    for n, case in enumerate(cases):
        d = load_box_volume(case, pixdim, window)
        dropped: list[int] = []
        if box_source == "full":
            target = np.asarray(d["label"], np.uint8)
        elif box_source == "tight" or (box_source == "corrected" and case.get("labelled")):
            target = np.asarray(d["tight"], np.uint8)
        elif box_source == "box3d":
            target = np.asarray(d["box"], np.uint8)
        else:
            target, dropped = corrector(d["image"], d["box"])
        if not case.get("labelled"):
            iou = slice_box_iou(target, d["tight"])
            report["cases"][case["case"]] = {"mean_iou": float(np.nanmean(iou)), "slices": int(np.sum(~np.isnan(iou))),
                                             "dropped": len(dropped)}
        size = [int(slice_size[0]), int(slice_size[1]), -1]
        arrays = {"image": np.asarray(ResizeWithPadOrCrop(size, mode="edge")(stack(d["image"])), np.float32),
                  "label": np.asarray(ResizeWithPadOrCrop(size)(target))}
        with_target = [k for k in range(target.shape[-1]) if arrays["label"][..., k].any()]
        empty = [k for k in range(target.shape[-1]) if k not in with_target and k not in dropped]
        n_bg = min(len(empty), int(round(float(background_fraction) * len(with_target))))
        background = [empty[int(i)] for i in np.linspace(0, len(empty) - 1, n_bg)] if n_bg else []
        for k in sorted(with_target + background):
            samples.append({"image": arrays["image"][..., k], "label": arrays["label"][..., k].astype(np.float32),
                            "case": case["case"], "z": int(k)})
        print(f"{box_source} slices: case {n + 1}/{len(cases)} {case['case']}: {len(with_target)} with target, "
              f"{len(background)} background, {len(dropped)} dropped ({time.perf_counter() - t0:.0f} s)", flush=True)
    if report["cases"]:
        values = [c["mean_iou"] for c in report["cases"].values()]
        report["mean_iou"] = float(np.mean(values))
        report["dropped_slices"] = int(sum(c["dropped"] for c in report["cases"].values()))
        print(f"{box_source} boxes: mean IoU against the tight slice boxes {report['mean_iou']:.3f} over "
              f"{len(values)} box-only case(s)", flush=True)
    if report_path is not None:
        atomic_write(report_path, lambda p: Path(p).write_text(json.dumps(report, indent=1) + "\n"))
    return samples
