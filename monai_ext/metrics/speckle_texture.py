"""Speckle-texture statistics of 2D B-mode ultrasound and the style-fidelity ratio of a style transfer.

Independent of any network: the statistics describe what a sonographer sees as a machine's "look".

- autocorrelation width of the speckle (the image minus its local mean) along the beam (rows, axial) and
  across it (columns, lateral): the grain size. Half width at half maximum, in pixels.
- log power spectrum of the image, averaged over rings of equal spatial frequency: sharpness and blur.
- distributions of the local mean and of the local standard deviation (``window`` x ``window`` pixels):
  brightness, contrast and the strength of the speckle.
- envelope SNR: median over windows of local mean / local standard deviation (1.91 for fully developed
  Rayleigh speckle on a linear envelope; log compression raises it).

Pixels outside the imaged field of view (the black corners of a sector scan: no pixel above ``floor`` within
``window`` pixels) are left out. Rows are taken as the beam direction: exact for linear probes, an
approximation near the edges of a sector.

The style fidelity of a restyled image is its distance to the style reference divided by the content image's
distance to the same reference (:func:`style_fidelity_ratio`): 1 means no texture moved towards the
reference, 0 the reference's statistics exactly. :class:`SpeckleStyleFidelity` accumulates it per
(content style, reference style) pair. See Hung & Galeotti, DGM4MICCAI 2021 (variational style transfer), whose
point is texture beyond the observed domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "SPECKLE_STATISTICS",
    "speckle_statistics",
    "speckle_distance",
    "style_fidelity_ratio",
    "SpeckleStyleFidelity",
]

#: the statistics :func:`speckle_distance` compares, in this order
SPECKLE_STATISTICS = ("acf_axial", "acf_lateral", "log_spectrum", "local_mean", "local_std", "envelope_snr")


def _as_image(image: Any, name: str = "image") -> np.ndarray:
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected one grey 2D image (1, H, W) or (H, W), got shape {tuple(np.shape(image))}.")
    if min(a.shape) < 16:
        raise ValueError(f"{name}: image of {a.shape} pixels is too small for speckle statistics (>= 16 x 16).")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: image holds NaN or infinite values.")
    return a


def _half_width(profile: np.ndarray) -> float:
    """Lag (pixels, linear interpolation) at which a normalised autocorrelation profile first drops below 0.5."""
    below = np.nonzero(profile < 0.5)[0]
    if not len(below):
        return float(len(profile) - 1)
    k = int(below[0])
    p0, p1 = profile[k - 1], profile[k]
    return float(k - 1 + (p0 - 0.5) / max(p0 - p1, 1e-12))


def speckle_statistics(
    image: Any, window: int = 5, spectrum_bins: int = 12, quantiles: int = 32, floor: float = 0.02
) -> dict[str, Any]:
    """Speckle statistics of one grey B-mode image.

    Args:
        image: ``(1, H, W)`` or ``(H, W)``, numpy or torch, intensities of the displayed image (e.g. [0, 1]).
        window: side (pixels) of the local mean / standard deviation windows and of the speckle high-pass.
        spectrum_bins: rings of the radially averaged power spectrum (0 to the Nyquist frequency).
        quantiles: number of quantiles kept of the local mean and local standard deviation distributions.
        floor: intensity below which a neighbourhood counts as outside the field of view.

    Returns:
        dict with ``acf_axial`` and ``acf_lateral`` (pixels), ``log_spectrum`` (``spectrum_bins`` values, log10
        power), ``local_mean`` and ``local_std`` (``quantiles`` values each), ``envelope_snr`` and
        ``fov_fraction`` (share of pixels used).
    """
    a = _as_image(image)
    w = int(window)
    if w < 3 or w % 2 == 0:
        raise ValueError(f"window must be an odd number >= 3, got {window}.")
    fov = ndimage.maximum_filter(a, size=w) > float(floor)
    fov = ndimage.binary_erosion(fov, np.ones((w, w), bool), border_value=1)
    if fov.sum() < 64:
        raise ValueError(f"image: fewer than 64 pixels above the floor {floor} (an empty or black image?).")
    m = ndimage.uniform_filter(a, size=w, mode="reflect")
    s = np.sqrt(np.maximum(ndimage.uniform_filter(a * a, size=w, mode="reflect") - m * m, 0.0))

    resid = np.where(fov, a - m, 0.0)
    mask = fov.astype(np.float64)
    shape = [2 * n for n in a.shape]  # zero-padded: a linear, not circular, autocorrelation
    acf = np.fft.irfft2(np.abs(np.fft.rfft2(resid, shape)) ** 2, shape)
    support = np.fft.irfft2(np.abs(np.fft.rfft2(mask, shape)) ** 2, shape)
    acf = acf / np.maximum(support, 1.0)  # per-lag mean over the pixel pairs inside the field of view
    acf = acf / max(acf[0, 0], 1e-20)
    half = [n // 2 for n in a.shape]

    centred = np.where(fov, a - a[fov].mean(), 0.0)
    power = np.abs(np.fft.fftshift(np.fft.fft2(centred))) ** 2 / max(fov.sum(), 1)
    fy = np.fft.fftshift(np.fft.fftfreq(a.shape[0]))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(a.shape[1]))[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    edges = np.linspace(0.0, 0.5, int(spectrum_bins) + 1)
    ring = np.clip(np.digitize(radius, edges) - 1, 0, int(spectrum_bins) - 1)
    keep = radius <= 0.5
    sums = np.bincount(ring[keep], power[keep], minlength=int(spectrum_bins))
    counts = np.bincount(ring[keep], minlength=int(spectrum_bins))
    log_spectrum = np.log10(sums / np.maximum(counts, 1) + 1e-12)

    qs = (np.arange(int(quantiles)) + 0.5) / int(quantiles)
    inner = fov & (s > 1e-6)
    snr = float(np.median(m[inner] / s[inner])) if inner.any() else float("inf")
    return {
        "acf_axial": _half_width(acf[: half[0], 0]),
        "acf_lateral": _half_width(acf[0, : half[1]]),
        "log_spectrum": log_spectrum,
        "local_mean": np.quantile(m[fov], qs),
        "local_std": np.quantile(s[fov], qs),
        "envelope_snr": snr,
        "fov_fraction": float(fov.mean()),
    }


def _stats(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else speckle_statistics(x)


def speckle_distance(a: Any, b: Any) -> dict[str, float]:
    """Distance per statistic between two images (or their :func:`speckle_statistics`): absolute log ratio of
    the autocorrelation widths and of the envelope SNRs, root-mean-square difference of the log spectra, and
    the Wasserstein-1 distance (mean absolute quantile difference) of the local mean and local standard
    deviation distributions. All are 0 for identical statistics."""
    sa, sb = _stats(a), _stats(b)

    def log_ratio(x: float, y: float) -> float:
        return float(abs(np.log(max(x, 1e-3) / max(y, 1e-3))))

    return {
        "acf_axial": log_ratio(sa["acf_axial"], sb["acf_axial"]),
        "acf_lateral": log_ratio(sa["acf_lateral"], sb["acf_lateral"]),
        "log_spectrum": float(np.sqrt(np.mean((np.asarray(sa["log_spectrum"]) - np.asarray(sb["log_spectrum"])) ** 2))),
        "local_mean": float(np.mean(np.abs(np.asarray(sa["local_mean"]) - np.asarray(sb["local_mean"])))),
        "local_std": float(np.mean(np.abs(np.asarray(sa["local_std"]) - np.asarray(sb["local_std"])))),
        "envelope_snr": log_ratio(sa["envelope_snr"], sb["envelope_snr"]),
    }


def style_fidelity_ratio(restyled: Any, content: Any, reference: Any) -> dict[str, float]:
    """Per statistic, ``speckle_distance(restyled, reference) / speckle_distance(content, reference)``, and
    their mean (``"mean"``). Below 1: the restyled image moved towards the reference's texture. One image
    triple is noisy (a ratio of small distances); :class:`SpeckleStyleFidelity` pools many."""
    ref = _stats(reference)
    d_r, d_c = speckle_distance(restyled, ref), speckle_distance(content, ref)
    out = {k: d_r[k] / max(d_c[k], 1e-12) for k in SPECKLE_STATISTICS}
    out["mean"] = float(np.mean([out[k] for k in SPECKLE_STATISTICS]))
    return out


class SpeckleStyleFidelity:
    """Style fidelity of a style transfer, pooled per (content style, reference style) pair.

    Call with batches ``(B, 1, H, W)`` (or single images) of restyled images, their content images and the style
    references, and the pair name(s); optionally ``oracle``: the content anatomy imaged in the reference style
    (a simulator can give it), the floor a perfect style transfer could reach. :meth:`aggregate` returns, per
    pair and statistic, ``mean_i d(restyled_i, ref_i) / mean_i d(content_i, ref_i)`` (a ratio of means, stable
    where single content-to-reference distances are small), the mean over statistics, and the mean over pairs
    (``"mean_ratio"``; and ``"mean_oracle_ratio"``). Pairs whose content and reference share a style are kept
    out of the means when ``skip_same_style`` (their content distance is anatomy alone).
    """

    def __init__(self, skip_same_style: bool = True):
        self.skip_same_style = bool(skip_same_style)
        self.reset()

    def reset(self) -> None:
        self._d: dict[tuple[str, str], dict[str, list[dict[str, float]]]] = {}

    def __call__(self, restyled: Any, content: Any, reference: Any, pair: Any, oracle: Any = None) -> None:
        def batch(x: Any) -> list[Any]:
            if x is None:
                return []
            if isinstance(x, (torch.Tensor, np.ndarray)) and np.ndim(x) == 4:
                return list(x)
            return x if isinstance(x, (list, tuple)) else [x]

        rs, cs, refs, orc = batch(restyled), batch(content), batch(reference), batch(oracle)
        pairs = [tuple(pair)] * len(rs) if len(pair) == 2 and isinstance(pair[0], str) else [tuple(p) for p in pair]
        if not (len(rs) == len(cs) == len(refs) == len(pairs)) or (orc and len(orc) != len(rs)):
            raise ValueError(
                f"SpeckleStyleFidelity: {len(rs)} restyled, {len(cs)} content, {len(refs)} reference images, "
                f"{len(orc)} oracle images and {len(pairs)} pair names: expected the same number of each.")
        for i, (r, c, ref, p) in enumerate(zip(rs, cs, refs, pairs)):
            rst = speckle_statistics(ref)
            slot = self._d.setdefault((str(p[0]), str(p[1])), {"restyled": [], "content": [], "oracle": []})
            slot["restyled"].append(speckle_distance(r, rst))
            slot["content"].append(speckle_distance(c, rst))
            if orc:
                slot["oracle"].append(speckle_distance(orc[i], rst))

    def aggregate(self) -> dict[str, Any]:
        if not self._d:
            raise RuntimeError("SpeckleStyleFidelity: nothing accumulated yet.")
        per_pair: dict[str, Any] = {}
        for (cs, rs), slot in sorted(self._d.items()):
            mean = {k: {stat: float(np.mean([d[stat] for d in v])) for stat in SPECKLE_STATISTICS}
                    for k, v in slot.items() if v}
            entry: dict[str, Any] = {"images": len(slot["restyled"])}
            for k in ("restyled", "oracle"):
                if k in mean:
                    ratio = {s: mean[k][s] / max(mean["content"][s], 1e-12) for s in SPECKLE_STATISTICS}
                    ratio["mean"] = float(np.mean(list(ratio.values())))
                    entry[f"{k}_ratio"] = ratio
            entry["content_distance"] = mean["content"]
            per_pair[f"{cs}->{rs}"] = entry
        counted = [(k, v) for k, v in per_pair.items()
                   if not (self.skip_same_style and k.split("->")[0] == k.split("->")[1])]
        out: dict[str, Any] = {
            "pairs": len(counted),
            "mean_ratio": float(np.mean([v["restyled_ratio"]["mean"] for _, v in counted])),
            "mean_ratio_per_statistic": {
                s: float(np.mean([v["restyled_ratio"][s] for _, v in counted])) for s in SPECKLE_STATISTICS},
        }
        if all("oracle_ratio" in v for _, v in counted):
            out["mean_oracle_ratio"] = float(np.mean([v["oracle_ratio"]["mean"] for _, v in counted]))
            out["mean_oracle_ratio_per_statistic"] = {
                s: float(np.mean([v["oracle_ratio"][s] for _, v in counted])) for s in SPECKLE_STATISTICS}
        out["per_pair"] = per_pair
        return out
