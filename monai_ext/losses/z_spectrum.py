"""Spectrum of a generated volume along the slice axis, matched to real data (an addition to CT-SGAN).

A generator that renders a chest CT one axial slice at a time (CT-SGAN, Pesaranghader et al. 2021) can
keep its fine texture nearly unchanged from slice to slice: coronal and sagittal views then show vertical
streaks. Measured on the project's phantoms (64 x 64 x 48 at 6 mm, 16-slice segments), the CT-SGAN v0.7.0
generator has 0.5-0.7 times the real power at periods of 2-4 slices. This term compares the two spectra along
z, in the spirit of the spectral regularisation of Durall et al., "Watch your up-convolution" (CVPR 2020),
which matches the 1D power spectrum of generated and real images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..metrics.slice_consistency import (
    bright_columns,
    z_power_spectrum,
    z_spectrum_log_distance,
)

__all__ = ["z_spectrum_loss", "bone_z_spectrum_loss"]


def z_spectrum_loss(
    fake: torch.Tensor, real: torch.Tensor, background: float = -0.99, scales: Sequence[int] = (1,)
) -> torch.Tensor:
    """Mean over frequencies (and scales) of ``|log P_fake(k) - log P_real(k)|``; gradients flow into ``fake`` only.

    ``P`` is :func:`~monai_ext.metrics.z_power_spectrum` of the whole slab (one segment of ``D`` slices per
    column inside the body; :func:`~monai_ext.metrics.z_spectrum_log_distance`). Both are ``(B, 1, H, W, D)``
    slabs of the same depth ``D >= 4`` in ``[-1, 1]`` (e.g. the generated and the real slab of a CT-SGAN step).
    ``scales`` are in-plane block sizes in voxels (the ``pool`` of ``z_power_spectrum``): ``(1,)`` compares
    voxel columns only; ``(1, 2, 4, 8)`` also the columns of 2x2 .. 8x8 block means, so variation along z must
    be coherent in-plane as it is in the real slabs. The result is unitless (log power ratio): 0 when the spectra
    agree, ``log 2 = 0.69`` when every frequency has twice or half the real power.
    """
    if fake.shape[-1] != real.shape[-1]:
        raise ValueError(f"fake and real slabs must have the same depth, got {fake.shape[-1]} and {real.shape[-1]}.")
    scales = [int(k) for k in scales]
    if not scales:
        raise ValueError("scales must name at least one in-plane block size, got none.")
    terms = [
        z_spectrum_log_distance(fake, real, segment=fake.shape[-1], background=background, pool=k) for k in scales
    ]
    return torch.stack(terms).mean()


def bone_z_spectrum_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    background: float = -0.99,
    quantile: float = 0.99,
    min_fraction: float = 0.1,
    eps: float = 1e-6,
) -> torch.Tensor:
    """:func:`z_spectrum_loss` over the bone columns of each slab only; gradients flow into ``fake`` only.

    Each slab's columns are its own :func:`~monai_ext.metrics.slice_consistency.bright_columns` (its brightest
    voxels, recurring along z: in chest CT the vertebrae and the sternum), so the generated spine is compared
    with the real spine wherever each lies. Over the whole body the spine is a few percent of the columns, and a
    generator can match the body's spectrum while its vertebrae vary slowly instead of repeating every 20-25 mm
    (measured on CT-SGAN v0.9.0 in the bone columns of the training scans: 2.7-4 x the real power at periods of 8
    and 16 slices, 0.6 x at 4 slices, the vertebral period at 6 mm). Both ``(B, 1, H, W, D)``, ``D >= 4``; a slab
    with no bone column inside the body gives 0. Unitless (mean absolute log power ratio).
    """
    if fake.shape[-1] != real.shape[-1]:
        raise ValueError(f"fake and real slabs must have the same depth, got {fake.shape[-1]} and {real.shape[-1]}.")
    segment = int(fake.shape[-1])
    if segment < 4:
        raise ValueError(f"slabs must have >= 4 slices for a spectrum along z, got {segment}.")
    real_cols = bright_columns(real, quantile, min_fraction)  # also checks the shapes and the two levels
    fake_cols = bright_columns(fake.detach(), quantile, min_fraction)
    try:
        with torch.no_grad():
            target = z_power_spectrum(real, segment, background, columns=real_cols)
        p = z_power_spectrum(fake, segment, background, columns=fake_cols)
    except ValueError:  # no bone column with a whole segment in the body
        return fake.sum() * 0.0
    return (torch.log(p + eps) - torch.log(target + eps)).abs().mean()
