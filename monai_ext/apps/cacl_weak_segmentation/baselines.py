"""The baselines of CaCL's Table 1 and the scores of every method on patches with reference masks.

- colour deconvolution: the DAB amount of each pixel (:class:`monai_ext.transforms.StainDeconvolution`);
- Grad-CAM (Selvaraju et al. 2017): MONAI's :class:`~monai.visualize.GradCAM` of an image-level classifier (2 classes:
  pattern absent / present) for the class "present". The maps are kept in their own units (not min-max scaled per
  image), so one threshold means the same on every patch and a negative patch can come out empty;
- the paper thresholds each baseline at its best value over the test patches ("iterating all the intensity values
  as thresholds"); :func:`best_threshold` does that over quantiles of the map values. That is an upper bound for the
  baselines (the threshold is chosen on the test masks); CaCL's code mask has no threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from monai.transforms import AsDiscreted, Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityRanged
from monai.visualize import GradCAM
from torch import nn

from ...io import atomic_write
from ...metrics.empty_aware_overlap import EMPTY_AWARE_METRICS, empty_aware_overlap_scores
from ...transforms.mask_morphology import MaskMorphology
from ...transforms.stain_deconvolution import StainDeconvolution

__all__ = [
    "BASELINES",
    "best_threshold",
    "dab_maps",
    "evaluate_baseline",
    "gradcam_maps",
    "load_scored_patches",
    "overlap_summary",
]

#: the baselines of :func:`evaluate_baseline`
BASELINES = ("colour_deconvolution", "gradcam", "empty_mask")


def dab_maps(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) DAB amounts of (N, 3, H, W) RGB images in [0, 1]."""
    deconvolve = StainDeconvolution("dab", max_value=1.0)
    return torch.stack([torch.as_tensor(deconvolve(img.cpu())) for img in images])


def gradcam_maps(classifier: nn.Module, images: torch.Tensor, target_layer: str, batch_size: int = 32,
                 class_idx: int = 1) -> torch.Tensor:
    """(N, 1, H, W) Grad-CAM maps of ``class_idx`` for ``images`` (N, C, H, W), upsampled to the image (bilinear),
    not normalised. ``classifier`` is put in eval mode."""
    classifier.eval()
    cam = GradCAM(classifier, target_layers=target_layer, postprocessing=lambda x: x)
    device = next(classifier.parameters()).device
    out = [cam(images[i : i + batch_size].to(device), class_idx=class_idx).detach().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).float()


def overlap_summary(pred: torch.Tensor, ref: torch.Tensor, labels: Sequence[int] | None = None) -> dict[str, float]:
    """Mean Dice / recall / precision (the empty-reference rule,
    :func:`monai_ext.metrics.empty_aware_overlap_scores`) of binary masks (N, 1, H, W), over all patches, and Dice
    over the positive and negative patches (by ``labels``, else by whether the reference is empty)."""
    scores = empty_aware_overlap_scores(pred.float(), ref.float())
    pos = (torch.as_tensor(labels).bool() if labels is not None else (ref.flatten(1) > 0.5).any(1)).cpu()
    out = {m: float(scores[:, k].mean()) for k, m in enumerate(EMPTY_AWARE_METRICS)}
    out["dice_positive"] = float(scores[pos, 0].mean()) if bool(pos.any()) else float("nan")
    out["dice_negative"] = float(scores[~pos, 0].mean()) if bool((~pos).any()) else float("nan")
    return out


def best_threshold(maps: torch.Tensor, ref: torch.Tensor, labels: Sequence[int] | None = None,
                   num_thresholds: int = 200, dilation: int = 0) -> dict[str, float]:
    """The threshold of ``maps`` (N, 1, H, W) with the best mean Dice against ``ref``, over ``num_thresholds``
    quantiles of the map values (and one above the maximum: empty masks), with its :func:`overlap_summary`.
    ``dilation``: the thresholded masks are dilated by a disk of this radius (px) before scoring."""
    morph = MaskMorphology(int(dilation)) if dilation > 0 else None
    values = maps.flatten().float()
    sample = values[torch.randperm(values.numel(), generator=torch.Generator().manual_seed(0))[:200_000]]
    qs = torch.quantile(sample, torch.linspace(0.0, 1.0, int(num_thresholds))).unique().tolist()
    best: dict[str, float] = {}
    for t in [*qs, float(values.max()) + 1.0]:
        masks = (maps > t).float()
        if morph is not None:
            masks = torch.stack([torch.as_tensor(morph(m)) for m in masks])
        summary = overlap_summary(masks, ref, labels)
        if not best or summary["dice"] > best["dice"]:
            best = {"threshold": float(t), **summary}
    return best


def load_scored_patches(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``(images (N, 3, H, W) in [0, 1], reference masks (N, 1, H, W) in {0, 1}, image labels)`` of
    :func:`~monai_ext.apps.cacl_weak_segmentation.evaluation_items` (the loading of evaluate.yaml: 8-bit RGB scaled
    to [0, 1], masks thresholded at 0.5). Raises ``ValueError`` naming a patch that is not 3-channel."""
    load = Compose([LoadImaged(["image", "label"], image_only=True), EnsureChannelFirstd(["image", "label"]),
                    ScaleIntensityRanged("image", 0.0, 255.0, 0.0, 1.0, clip=True), AsDiscreted("label", threshold=0.5)])
    data = [load(dict(i)) for i in items]
    for d, i in zip(data, items):
        if d["image"].shape[0] != 3:
            raise ValueError(f"{i['image']}: {d['image'].shape[0]} channel(s); RGB patches expected.")
    images = torch.stack([torch.as_tensor(d["image"]).float() for d in data])
    ref = torch.stack([torch.as_tensor(d["label"]).float() for d in data])
    return images, ref, [int(i["class"]) for i in items]


def evaluate_baseline(method: str, items: list[dict], output_dir: str, classifier: nn.Module | None = None,
                      target_layer: str = "layer4", dilation: int = 0, num_thresholds: int = 200) -> dict[str, float]:
    """Score a baseline on test patches and write ``output_dir/metrics.csv`` (``test_dice``, ``test_recall``,
    ``test_precision``, ``test_dice_positive``, ``test_dice_negative``, ``threshold``; MONAI MetricsSaver's layout).

    Args:
        method: ``colour_deconvolution`` (DAB amount) | ``gradcam`` (needs ``classifier``, 2 classes) | ``empty_mask``
            (predicts nothing: the score of doing nothing, the share of negative patches).
        items: :func:`evaluation_items` (``image`` RGB patch files, ``label`` mask files, ``class``).
        dilation: dilate the thresholded masks by a disk of this radius (px) before scoring, as for CaCL.
    Maps are thresholded at their best value over the test masks (:func:`best_threshold`, as the paper does).
    """
    if method not in BASELINES:
        raise ValueError(f"method must be one of {BASELINES}, got {method!r}.")
    if method == "gradcam" and classifier is None:
        raise ValueError("method gradcam needs the trained classifier (configs/train_classifier.yaml).")
    images, ref, labels = load_scored_patches(items)
    if method == "empty_mask":
        maps = torch.zeros_like(ref)
    elif method == "colour_deconvolution":
        maps = dab_maps(images)
    else:
        maps = gradcam_maps(classifier, images, target_layer)
    best = best_threshold(maps, ref, labels, num_thresholds, dilation)
    rows = {f"test_{k}": v for k, v in best.items() if k != "threshold"}
    rows["threshold"] = best["threshold"]
    atomic_write(Path(output_dir) / "metrics.csv",
                 lambda p: p.write_text("".join(f"{k},{v}\n" for k, v in rows.items())))
    print(f"{method}: " + ", ".join(f"{k} {v:.4f}" for k, v in rows.items()), flush=True)
    return rows
