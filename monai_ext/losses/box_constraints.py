"""Box supervision for segmentation (Kervadec et al., "Bounding boxes for weakly supervised segmentation: global
constraints get close to full supervision", MIDL 2020; used by "Medical image segmentation with imperfect 3D
bounding boxes", DGM4MICCAI/DALI 2021): three terms that need only a box per image, never a mask.

- :class:`OutsideBoxBackgroundCELoss`: everything outside the box is background (cross-entropy there).
- :class:`BoxTightnessPriorLoss`: a tight box touches the object on every row and column, so every band of ``w``
  lines across the box holds at least ``w`` foreground pixels (one per line).
- :class:`BoxSizeConstraintLoss`: the object fills between ``lower`` and ``upper`` of the box's area.
- By default both constraints are normalised (by the band's line count, by the box area), see the classes.
- :class:`BoxSupervisedLoss`: their weighted sum (weights of Kervadec et al.'s code: 1, 1e-4, 1e-2).

The inequality constraints go through one :class:`~monai_ext.losses.LogBarrierExtension`, whose temperature
grows every epoch. Shapes: the network output ``input`` is (B, C, *spatial) logits (2D or 3D); ``box`` is
(B, 1, *spatial), 1 inside the sample's box and 0 outside, one filled axis-aligned box per sample or none (an
empty mask: the whole sample is background).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .log_barrier import LogBarrierExtension

__all__ = ["BoxSizeConstraintLoss", "BoxSupervisedLoss", "BoxTightnessPriorLoss", "OutsideBoxBackgroundCELoss"]

_ACTIVATIONS = ("sigmoid", "softmax")


def _check_activation(activation: str) -> str:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(_ACTIVATIONS)}, got {activation!r}.")
    return activation


def _box_inputs(input: torch.Tensor, box: torch.Tensor, activation: str) -> torch.Tensor:
    """Check the shapes and return the box as a float mask (B, 1, *spatial)."""
    if input.ndim < 3:
        raise ValueError(f"input must be (B, C, *spatial) logits, got shape {tuple(input.shape)}.")
    channels = input.shape[1]
    if (activation == "sigmoid" and channels != 1) or (activation == "softmax" and channels < 2):
        raise ValueError(
            f"activation {activation!r} needs {'1 channel' if activation == 'sigmoid' else '2 or more channels'} "
            f"(foreground: the {'only' if activation == 'sigmoid' else 'second'} one), got {channels}."
        )
    if box.ndim != input.ndim or box.shape[0] != input.shape[0] or box.shape[1] != 1 or box.shape[2:] != input.shape[2:]:
        raise ValueError(
            f"box must be a (B, 1, *spatial) mask matching input {tuple(input.shape)}, got {tuple(box.shape)}."
        )
    return (box > 0).to(input.dtype)


def _foreground_probability(input: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "sigmoid":
        return torch.sigmoid(input)
    return torch.softmax(input, dim=1)[:, 1:2]


class OutsideBoxBackgroundCELoss(torch.nn.Module):
    """Cross-entropy toward background on the pixels outside the box, averaged over those pixels of the batch.

    Args:
        activation: ``"sigmoid"`` (1 output channel, foreground logit) or ``"softmax"`` (channel 0 background,
            channel 1 foreground, more channels allowed and counted as not background).
    """

    def __init__(self, activation: str = "sigmoid") -> None:
        super().__init__()
        self.activation = _check_activation(activation)

    def forward(self, input: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Scalar loss; 0 when every pixel of the batch is inside a box."""
        outside = 1.0 - _box_inputs(input, box, self.activation)
        if self.activation == "sigmoid":
            nll = F.softplus(input)  # -log(1 - sigmoid(x))
        else:
            nll = -F.log_softmax(input, dim=1)[:, :1]
        return (nll * outside).sum() / outside.sum().clamp_min(1.0)


def _line_profiles(values: torch.Tensor, mask: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of ``values`` over every line across ``axis`` (B, n) and which lines cross the box (B, n)."""
    other = [d for d in range(2, values.ndim) if d != axis]
    return values.sum(dim=[1] + other), mask.amax(dim=[1] + other) > 0


def _check_filled_boxes(mask: torch.Tensor) -> None:
    extents = [mask.amax(dim=[1] + [d for d in range(2, mask.ndim) if d != a]).sum(dim=1) for a in range(2, mask.ndim)]
    expected = torch.stack(extents).prod(dim=0)
    bad = torch.nonzero(mask.flatten(1).sum(dim=1) != expected).flatten()
    if bad.numel():
        raise ValueError(
            f"box masks must be one filled axis-aligned box per sample (or empty); sample(s) {bad.tolist()} are not."
        )


class BoxTightnessPriorLoss(torch.nn.Module):
    """Tightness prior: every band of ``band_width`` lines across the box holds at least that many foreground
    pixels (soft counts), along every spatial axis; each band's constraint ``lines - sum(p) <= 0`` goes through
    the log-barrier extension, summed over bands and axes and averaged over the samples of the batch.

    Args:
        band_width: ``w``, lines per band (Kervadec et al.: 5); the last band of a box may be narrower.
        barrier: the shared :class:`LogBarrierExtension` (a new one with ``t0 = 5`` when ``None``).
        activation: see :class:`OutsideBoxBackgroundCELoss`.
        normalize: divide each constraint by its band's line count (``1 - sum(p) / lines <= 0``): the same
            feasible set, with a scale that does not grow with the band (``False``: Kervadec et al.'s pixel counts).
    """

    def __init__(self, band_width: int = 5, barrier: LogBarrierExtension | None = None, activation: str = "sigmoid",
                 normalize: bool = True):
        super().__init__()
        self.normalize = bool(normalize)
        if isinstance(band_width, bool) or int(band_width) != band_width or int(band_width) < 1:
            raise ValueError(f"band_width must be a positive integer (lines), got {band_width!r}.")
        self.band_width = int(band_width)
        self.barrier = barrier if barrier is not None else LogBarrierExtension()
        self.activation = _check_activation(activation)

    def forward(self, input: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Scalar loss (0 for a batch without boxes)."""
        mask = _box_inputs(input, box, self.activation)
        _check_filled_boxes(mask)
        inside_p = _foreground_probability(input, self.activation) * mask
        total = input.new_zeros(())
        for axis in range(2, input.ndim):
            line_sum, in_box = _line_profiles(inside_p, mask, axis)
            n = line_sum.shape[1]
            index = torch.arange(n, device=input.device)
            start = torch.where(in_box, index, n).amin(dim=1, keepdim=True)
            bands = math.ceil(n / self.band_width)
            band = ((index[None] - start).clamp_min(0) // self.band_width).clamp_max(bands - 1)
            member = F.one_hot(band, bands).to(input.dtype) * in_box[..., None]  # (B, n, bands)
            band_sum = torch.einsum("bn,bnk->bk", line_sum, member)
            band_lines = member.sum(dim=1)
            z = band_lines - band_sum
            penalty = self.barrier(z / band_lines.clamp_min(1.0) if self.normalize else z)
            total = total + torch.where(band_lines > 0, penalty, torch.zeros_like(penalty)).sum()
        return total / input.shape[0]


class BoxSizeConstraintLoss(torch.nn.Module):
    """Size constraint ``lower |B| <= S <= upper |B|``, ``S`` the soft foreground size inside the sample's box and
    ``|B|`` the box's area (pixels or voxels); both bounds through the log-barrier extension, averaged over the
    samples that have a box. Kervadec et al. count ``S`` over the whole image; outside the box the background
    cross-entropy already rules, and counting it here lets a slice with a tiny box (an organ's tip) dominate a
    batch's gradient, which stopped training on the bundle's data (docs/experiments.md of box_supervised_seg).

    Args:
        lower, upper: fractions of the box (Kervadec et al.: 0.5 and 0.9), ``0 <= lower < upper``.
        barrier, activation: see :class:`BoxTightnessPriorLoss`.
        normalize: constraints on the fraction ``S / |B|`` (``lower - S / |B| <= 0``): the same feasible set at a
            scale that does not grow with the box (``False``: Kervadec et al.'s pixel counts, whose gradients dwarf
            the cross-entropy's on boxes of hundreds of pixels).
    """

    def __init__(self, lower: float = 0.5, upper: float = 0.9, barrier: LogBarrierExtension | None = None,
                 activation: str = "sigmoid", normalize: bool = True):
        super().__init__()
        self.normalize = bool(normalize)
        if not 0.0 <= float(lower) < float(upper):
            raise ValueError(f"need 0 <= lower < upper (fractions of the box area), got lower={lower!r}, upper={upper!r}.")
        self.lower, self.upper = float(lower), float(upper)
        self.barrier = barrier if barrier is not None else LogBarrierExtension()
        self.activation = _check_activation(activation)

    def forward(self, input: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Scalar loss (0 for a batch without boxes)."""
        mask = _box_inputs(input, box, self.activation)
        area = mask.flatten(1).sum(dim=1)
        size = (_foreground_probability(input, self.activation) * mask).flatten(1).sum(dim=1)
        scale = area.clamp_min(1.0) if self.normalize else torch.ones_like(area)
        penalty = self.barrier((self.lower * area - size) / scale) + self.barrier((size - self.upper * area) / scale)
        has_box = area > 0
        return torch.where(has_box, penalty, torch.zeros_like(penalty)).sum() / has_box.sum().clamp_min(1)


class BoxSupervisedLoss(torch.nn.Module):
    """``bg_weight * OutsideBoxBackgroundCE + tightness_weight * BoxTightnessPrior + size_weight * BoxSizeConstraint``
    with one shared barrier (``self.barrier``: hand it to :class:`monai_ext.handlers.BarrierTemperatureHandler`).

    Args:
        band_width, lower, upper, normalize: see the terms.
        bg_weight, tightness_weight, size_weight: Kervadec et al.'s code: 1, 1e-4, 1e-2.
        t0: initial barrier temperature.
        activation: see :class:`OutsideBoxBackgroundCELoss`.

    Call ``loss(input, box)`` with logits (B, C, *spatial) and box masks (B, 1, *spatial); ``self.last_terms``
    holds the three unweighted terms of the last call (floats, for logging).
    """

    def __init__(self, band_width: int = 5, lower: float = 0.5, upper: float = 0.9, bg_weight: float = 1.0,
                 tightness_weight: float = 1e-4, size_weight: float = 1e-2, t0: float = 5.0,
                 activation: str = "sigmoid", normalize: bool = True) -> None:
        super().__init__()
        for name, w in (("bg_weight", bg_weight), ("tightness_weight", tightness_weight), ("size_weight", size_weight)):
            if not float(w) >= 0:
                raise ValueError(f"{name} must be non-negative, got {w!r}.")
        self.barrier = LogBarrierExtension(t0)
        self.background = OutsideBoxBackgroundCELoss(activation)
        self.tightness = BoxTightnessPriorLoss(band_width, self.barrier, activation, normalize)
        self.size = BoxSizeConstraintLoss(lower, upper, self.barrier, activation, normalize)
        self.weights = (float(bg_weight), float(tightness_weight), float(size_weight))
        self.last_terms: dict[str, float] = {}

    def forward(self, input: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Scalar loss."""
        terms = (self.background(input, box), self.tightness(input, box), self.size(input, box))
        self.last_terms = {k: float(v.detach()) for k, v in zip(("background_ce", "tightness", "size"), terms)}
        return sum(w * v for w, v in zip(self.weights, terms))
