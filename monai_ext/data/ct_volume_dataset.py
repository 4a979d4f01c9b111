"""Chest CT -> fixed-size, normalised volumes for CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021).

CT-SGAN learns from whole volumes of one size (224^3 in the paper). :func:`ct_volume_transforms` builds
the MONAI chain that turns any chest CT (NIfTI file or DICOM series folder, in HU) into a
``(1, H, W, D)`` float32 volume in ``[-1, 1]``:

1. load (:class:`~monai_ext.transforms.LoadScand`), channel first, check it is a single-channel 3D CT in HU;
2. orientation RAS, resampling to ``pixdim`` mm (same physical scale for every scan);
3. crop to the body (voxels above ``body_threshold_hu``), then centre pad/crop to ``spatial_size`` (padding
   is air);
4. HU window ``hu_range`` -> ``[-1, 1]`` (clipped).

Defaults: 64 x 64 x 48 voxels of 6 mm (384 x 384 x 288 mm), window [-1000, 500] HU. The slice axis of
the result (the generator's slice axis) is the last one, superior-inferior.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import torch
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    Orientationd,
    ResizeWithPadOrCropd,
    ScaleIntensityRanged,
    SelectItemsd,
    Spacingd,
)

from ..transforms.input_checks import CheckVolumed, LoadScand

__all__ = ["ct_volume_transforms", "load_ct_volumes", "volume_to_hu"]


def _above(x: torch.Tensor, threshold: float) -> torch.Tensor:
    return x > threshold


def ct_volume_transforms(
    keys: str = "image",
    spatial_size: Sequence[int] = (64, 64, 48),
    pixdim: Sequence[float] = (6.0, 6.0, 6.0),
    hu_range: Sequence[float] = (-1000.0, 500.0),
    body_threshold_hu: float | None = -500.0,
    load: bool = True,
    select_keys: bool = True,
) -> list:
    """The MONAI transforms (a list, for ``Compose``/``CacheDataset``) from a CT file to a normalised volume.

    Args:
        keys: the image key.
        spatial_size: output size ``(H, W, D)`` in voxels.
        pixdim: voxel size in mm after resampling.
        hu_range: ``(min, max)`` HU mapped to ``[-1, 1]``.
        body_threshold_hu: crop to voxels above this before centring; ``None`` keeps the whole field of view.
        load: start with loading (``data[keys]`` is a path); ``False`` when the data are already arrays
            (channel first, HU, with an affine in their meta data).
        select_keys: end with ``SelectItemsd(keys)`` so datalist extras (nodule lists) do not reach collation.

    Raises:
        ValueError: bad sizes or HU range.
    """
    size = tuple(int(s) for s in spatial_size)
    dims = tuple(float(p) for p in pixdim)
    lo, hi = (float(v) for v in hu_range)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"spatial_size must be three positive integers, got {spatial_size}.")
    if len(dims) != 3 or min(dims) <= 0:
        raise ValueError(f"pixdim must be three positive spacings in mm, got {pixdim}.")
    if not hi > lo:
        raise ValueError(f"hu_range must be (min, max) with max > min, got {hu_range}.")
    xs: list[Any] = []
    if load:
        xs += [LoadScand(keys=keys, image_only=True), EnsureChannelFirstd(keys=keys)]
    xs += [
        CheckVolumed(keys=keys, num_channels=1, spatial_dims=3, min_size=2, hu_range_check=True),
        Orientationd(keys=keys, axcodes="RAS"),
        Spacingd(keys=keys, pixdim=dims, mode="bilinear", padding_mode="border"),
    ]
    if body_threshold_hu is not None:
        xs.append(CropForegroundd(keys=keys, source_key=keys, margin=2, allow_smaller=True,
                                  select_fn=functools.partial(_above, threshold=float(body_threshold_hu))))
    xs += [
        ScaleIntensityRanged(keys=keys, a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True),
        ResizeWithPadOrCropd(keys=keys, spatial_size=size),  # pads 0 = air
        ScaleIntensityRanged(keys=keys, a_min=0.0, a_max=1.0, b_min=-1.0, b_max=1.0),
        EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False),
    ]
    if select_keys:
        xs.append(SelectItemsd(keys=keys))
    return xs


def load_ct_volumes(datalist: Sequence[dict | str], key: str = "image", **kwargs: Any) -> torch.Tensor:
    """Load and normalise scans (datalist items or paths) into one tensor ``(N, 1, H, W, D)`` in ``[-1, 1]``.

    ``kwargs`` go to :func:`ct_volume_transforms`."""
    if len(datalist) == 0:
        raise ValueError("load_ct_volumes: the datalist is empty; expected at least one scan.")
    chain = Compose(ct_volume_transforms(keys=key, **kwargs))
    vols = []
    for item in datalist:
        d = {key: item} if isinstance(item, str) else {key: item[key]}
        vols.append(torch.as_tensor(chain(d)[key]))
    return torch.stack(vols)


def volume_to_hu(volume: torch.Tensor, hu_range: Sequence[float] = (-1000.0, 500.0)) -> torch.Tensor:
    """Inverse of the normalisation: ``[-1, 1]`` -> HU (``hu_range``)."""
    lo, hi = (float(v) for v in hu_range)
    return (torch.as_tensor(volume).clamp(-1.0, 1.0) + 1.0) * 0.5 * (hi - lo) + lo
