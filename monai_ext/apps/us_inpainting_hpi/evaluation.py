"""Inpainting with a trained HPI network (or a baseline) and HPI's evaluation (Hung et al., DGM4MICCAI 2021, Sect. 3):
L1 / PSNR / SSIM on the hole's bounding box grown by 5 pixels, the spread of K completions, the speckle statistic
inside the hole next to the truth's, and needle tracking (tip and shaft error) with and without inpainting.

Methods: ``hpi`` (K completions sampled from the prior at a temperature; each scored, then averaged), ``hpi_mean``
(the prior-mean completion), ``deterministic`` (the same network trained without latents, HPI-woVI), ``biharmonic``
(scikit-image's biharmonic inpainting, in place of the paper's Telea), ``none`` (the masked image itself: the needle
tracker's input without inpainting).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_ext.io import atomic_write, require_file, weights_info_path
from monai_ext.metrics import InpaintingRegionMetric, completion_spread, fit_needle, needle_errors, region_envelope_snr

from .networks import HPIInpaintingNet

__all__ = ["INPAINTING_METHODS", "load_hpi_network", "biharmonic_inpaint", "inpaint", "evaluate_inpainting", "inpainted_image_sets"]

INPAINTING_METHODS = ("hpi", "hpi_mean", "deterministic", "biharmonic", "none")


def load_hpi_network(path: str | Path, device: str | torch.device = "cpu") -> HPIInpaintingNet:
    """The :class:`HPIInpaintingNet` of a weight file written by the bundle's train configs (architecture from the
    JSON beside it), in eval mode."""
    p = require_file(path, "HPI weights (models/model.pt or models/deterministic.pt; run the train configs first)")
    info_path = weights_info_path(p)
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} not found: the architecture of {p} (written beside it by the train config).")
    config = json.loads(info_path.read_text(encoding="utf-8")).get("config") or {}
    net = HPIInpaintingNet(**config)
    state = torch.load(str(p), map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{p}: the weights do not fit the architecture in {info_path}: {str(e).splitlines()[0][:300]}") from e
    return net.to(device).eval()


def biharmonic_inpaint(image: torch.Tensor, hole_mask: torch.Tensor) -> torch.Tensor:
    """Biharmonic inpainting (scikit-image) of a ``(C, H, W)`` image where ``hole_mask`` ``(1, H, W)`` is 1."""
    from skimage.restoration import inpaint_biharmonic

    img = image.detach().cpu().numpy().astype(np.float64)
    hole = hole_mask.detach().cpu().numpy().reshape(img.shape[1:]) > 0.5
    out = np.stack([inpaint_biharmonic(c, hole) for c in img])
    return torch.as_tensor(out, dtype=image.dtype)


def _check_pair(image: torch.Tensor, hole_mask: torch.Tensor) -> None:
    if image.ndim != 3 or hole_mask.ndim != 3 or hole_mask.shape[0] != 1 or image.shape[1:] != hole_mask.shape[1:]:
        raise ValueError(f"image {tuple(image.shape)} and hole mask {tuple(hole_mask.shape)}: expected (C, H, W) and "
                         f"(1, H, W) of one size.")


@torch.no_grad()
def inpaint(method: str, image: torch.Tensor, hole_mask: torch.Tensor, network: HPIInpaintingNet | None = None,
            num_samples: int = 8, temperature: float = 1.0) -> torch.Tensor:
    """Completions ``(K, C, H, W)`` of one image ``(C, H, W)`` with hole ``(1, H, W)`` (1 = missing) by ``method``
    (:data:`INPAINTING_METHODS`; K = ``num_samples`` for ``hpi``, else 1). Known pixels are kept exactly."""
    if method not in INPAINTING_METHODS:
        raise ValueError(f"method {method!r}: expected one of {INPAINTING_METHODS}.")
    image, hole_mask = torch.as_tensor(image).float(), (torch.as_tensor(hole_mask) > 0.5).float()
    _check_pair(image, hole_mask)
    known = image * (1 - hole_mask)
    if method == "none":
        return known[None]
    if method == "biharmonic":
        return biharmonic_inpaint(known, hole_mask)[None]
    if network is None:
        raise ValueError(f"method {method!r} needs a trained network.")
    m = network.grid_multiple
    if image.shape[1] % m or image.shape[2] % m:
        raise ValueError(f"image of {tuple(image.shape[1:])} pixels: the network needs multiples of {m} (resize first).")
    dev = next(network.parameters()).device
    x = torch.cat([known, hole_mask])[None].to(dev)
    if method == "hpi":
        return network.sample(x, num_samples, temperature)[:, 0].cpu()
    return network(x).cpu()


def _finite_mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = [float(x) for x in values if math.isfinite(float(x))]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def evaluate_inpainting(method: str, free_form: Sequence[dict[str, Any]], needles: Sequence[dict[str, Any]] = (),
                        network: HPIInpaintingNet | str | Path | None = None, out_file: str | Path | None = None,
                        num_samples: int = 8, temperature: float = 1.0, pixel_mm: float | None = None,
                        device: str | torch.device = "cpu", progress: bool = True) -> dict[str, Any]:
    """Score ``method`` on free-form holes (:func:`~monai_ext.apps.us_inpainting_hpi.free_form_examples`) and on
    hidden needle segments (:func:`~monai_ext.apps.us_inpainting_hpi.hidden_needle_examples`).

    Returns (and writes to ``out_file`` as JSON, atomically) means and sample SDs over images: ``l1``, ``psnr``,
    ``ssim`` (bounding box + 5 px), ``snr_hole`` (speckle statistic of the completion in the hole),
    ``snr_truth_hole`` / ``snr_truth_known`` (the true image's, in the hole and outside), ``spread`` (``hpi``: mean
    per-pixel SD of the K completions in the hole), and for the needles ``needle_tip_px`` / ``needle_shaft_px``
    (over images where the tracker found a needle; ``_mm`` with ``pixel_mm``), ``needle_tip_px_median`` and
    ``needle_missed``, and ``needle_tip_px_tip_hidden`` over the needles whose tip was hidden. For ``hpi`` each completion is scored and the K scores averaged per image.
    """
    if isinstance(network, (str, Path)):
        network = load_hpi_network(network, device)
    if method in ("hpi", "hpi_mean", "deterministic") and network is None:
        raise ValueError(f"method {method!r} needs network (a trained HPIInpaintingNet or its weight file).")
    if method == "hpi" and not network.latent_channels:
        raise ValueError("method 'hpi' samples latents; the network has none (a deterministic network: use 'deterministic').")
    score = InpaintingRegionMetric(margin=5, data_range=1.0)
    per: dict[str, list[float]] = {k: [] for k in ("l1", "psnr", "ssim", "snr_hole", "snr_truth_hole", "snr_truth_known", "spread")}
    for i, ex in enumerate(free_form):
        truth, hole = torch.as_tensor(ex["label"]).float(), torch.as_tensor(ex["mask"]).float()
        outs = inpaint(method, truth, hole, network, num_samples, temperature)
        scores = [score(o, truth, hole) for o in outs]
        for k in ("l1", "psnr", "ssim"):
            per[k].append(float(np.mean([s[k] for s in scores])))
        per["snr_hole"].append(float(np.mean([region_envelope_snr(o, hole) for o in outs])))
        per["snr_truth_hole"].append(region_envelope_snr(truth, hole))
        per["snr_truth_known"].append(region_envelope_snr(truth, 1 - hole))
        if len(outs) > 1:
            per["spread"].append(completion_spread(outs, hole))
        if progress and (i + 1) % 50 == 0:
            print(f"[{method}] free-form holes: {i + 1}/{len(free_form)}", flush=True)
    result: dict[str, Any] = {"method": method, "num_images": len(free_form), "num_samples": int(num_samples) if method == "hpi" else 1,
                              "temperature": float(temperature) if method == "hpi" else 0.0}
    for k, v in per.items():
        if v:
            result[k], result[k + "_sd"] = _finite_mean_sd(v)
    tips, shafts, missed, hidden_tips = [], [], 0, []
    for ex in needles:
        observed, hole = torch.as_tensor(ex["observed"]).float(), torch.as_tensor(ex["mask"]).float()
        # the image as acquired (hidden segments and their echoes missing) is inpainted, not the complete one
        filled = observed[None] if method == "none" else inpaint(method, observed, hole, network, num_samples, temperature)
        errs = [needle_errors(fit_needle(o), ex["centreline"]) for o in filled]
        found = [e for e in errs if math.isfinite(e["tip"])]
        missed += len(errs) - len(found)
        tips += [e["tip"] for e in found]
        shafts += [e["shaft"] for e in found]
        if ex.get("tip_hidden"):
            hidden_tips += [e["tip"] for e in found]
    if needles:
        result["num_needle_images"] = len(needles)
        result["needle_tip_px"], result["needle_tip_px_sd"] = _finite_mean_sd(tips)
        result["needle_shaft_px"], result["needle_shaft_px_sd"] = _finite_mean_sd(shafts)
        result["needle_tip_px_median"] = float(np.median(tips)) if tips else float("nan")
        result["needle_missed"] = missed
        result["needle_tip_px_tip_hidden"], result["needle_tip_px_tip_hidden_sd"] = _finite_mean_sd(hidden_tips)
        if pixel_mm:
            result["pixel_mm"] = float(pixel_mm)
            for k in ("needle_tip", "needle_shaft"):
                result[k + "_mm"], result[k + "_mm_sd"] = result[k + "_px"] * pixel_mm, result[k + "_px_sd"] * pixel_mm
    if out_file is not None:
        text = json.dumps(result, indent=1)
        atomic_write(out_file, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return result


def inpainted_image_sets(method: str, train: Sequence[dict[str, Any]], held_out: Sequence[dict[str, Any]],
                         network: HPIInpaintingNet | str | Path | None = None, temperature: float = 1.0,
                         seed: int = 0, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The three image sets of the GAN evaluation suite (:func:`monai_ext.engines.gan_evaluation_report`) for an
    inpainting method: ``real_train`` = the training images (loaded examples: dicts with ``"label"``), ``real_test``
    = the held-out images, ``synthetic`` = each held-out image with its hole (``"mask"``, e.g. from
    :func:`~monai_ext.apps.us_inpainting_hpi.free_form_examples`) filled by ``method`` (one completion; ``hpi``
    samples at ``temperature``). All ``(N, C, H, W)`` in [0, 1]."""
    if isinstance(network, (str, Path)):
        network = load_hpi_network(network, device)
    torch.manual_seed(int(seed))
    synthetic = [inpaint(method, ex["label"], ex["mask"], network, 1, temperature)[0] for ex in held_out]
    return {"real_train": torch.stack([torch.as_tensor(e["label"]).float() for e in train]),
            "real_test": torch.stack([torch.as_tensor(e["label"]).float() for e in held_out]),
            "synthetic": torch.stack(synthetic).float().clamp(0, 1)}
