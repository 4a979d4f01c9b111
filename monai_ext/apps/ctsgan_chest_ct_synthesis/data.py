"""Chest CT -> fixed-size, normalised volumes for CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021).

CT-SGAN learns from whole volumes of one size (224^3 in the paper). :func:`ct_volume_transforms` builds
the MONAI chain that turns any chest CT (NIfTI file or DICOM series folder, in HU) into a
``(1, H, W, D)`` float32 volume in ``[-1, 1]``:

1. load (:class:`~monai_ext.transforms.LoadScand`), channel first, check it is a single-channel 3D CT in HU;
2. orientation RAS, resampling to ``pixdim`` mm (same physical scale for every scan);
3. crop to the body (voxels above ``body_threshold_hu``), then centre pad/crop to ``spatial_size`` (padding
   is air);
4. HU window ``hu_range`` -> ``[-1, 1]`` (clipped).

:func:`ctsgan_datalist` lists the training and held-out scans of whatever ``dataset_dir`` holds (LIDC-IDRI, NLST,
a ``dataset.json``), generating the embedded default (nodule-free chest-CT phantoms) when it is empty.

Defaults: 64 x 64 x 48 voxels of 6 mm (384 x 384 x 288 mm), window [-1000, 500] HU. The slice axis of
the result (the generator's slice axis) is the last one, superior-inferior.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

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

from ...datalists import lidc_idri_datalist, lidc_xml_files, nlst_datalist
from ...io import PathLike, ensure_dataset
from ...phantoms import synthesize_dataset
from ...transforms import CheckVolumed, LoadScand

__all__ = ["VOLUME_HU_WINDOW", "ct_volume_transforms", "ctsgan_datalist", "load_ct_volumes"]

#: CT-SGAN's intensity window: HU in ``[-1000, 500]`` map to ``[-1, 1]`` (see ``monai_ext.transforms.hu_window``).
VOLUME_HU_WINDOW = (-1000.0, 500.0)


def _above(x: torch.Tensor, threshold: float) -> torch.Tensor:
    return x > threshold


def ct_volume_transforms(
    keys: str = "image",
    spatial_size: Sequence[int] = (64, 64, 48),
    pixdim: Sequence[float] = (6.0, 6.0, 6.0),
    hu_range: Sequence[float] = VOLUME_HU_WINDOW,
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


def ctsgan_datalist(
    dataset_dir: PathLike,
    num_holdout: int = 4,
    synthesize_if_missing: bool = True,
    synth_cases: int = 40,
    synth_seed: int = 0,
    synth_shape: tuple[int, int, int] = (128, 128, 96),
    synth_spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
    annotations_csv: PathLike | None = None,
) -> dict[str, list[dict]]:
    """Training and held-out lists for CT-SGAN from whatever ``dataset_dir`` holds.

    Recognised, in this order: ``LIDC-IDRI/`` and/or ``NLST/`` sub-folders (both used, as in the paper);
    a ``dataset.json`` (MSD style, e.g. ``python -m monai_ext synth``: its training images); LIDC XML files
    anywhere below (:func:`lidc_idri_datalist`); otherwise every scan below (:func:`nlst_datalist`). When the
    folder is missing or empty and ``synthesize_if_missing``, ``synth_cases`` nodule- and lesion-free
    chest-CT phantoms are generated there first (the embedded default).

    The last ``num_holdout`` scans (sorted by path) are held out (``"testing"``): never trained on, they
    are the real reference of the FID evaluation.
    """
    root = ensure_dataset(
        dataset_dir,
        lambda d: synthesize_dataset(d, cases=max(5, int(synth_cases)), seed=synth_seed, shape=synth_shape,
                                     spacing=synth_spacing, lesions=False, nodules=False, progress=False),
        f"{synth_cases} nodule-free synthetic chest-CT phantoms",
        enabled=synthesize_if_missing,
    )
    items: list[dict]
    if (root / "LIDC-IDRI").is_dir() or (root / "NLST").is_dir():
        items = []
        if (root / "LIDC-IDRI").is_dir():
            items += lidc_idri_datalist(root / "LIDC-IDRI", annotations_csv)
        if (root / "NLST").is_dir():
            items += nlst_datalist(root / "NLST")
    elif (root / "dataset.json").is_file():
        with open(root / "dataset.json", encoding="utf-8") as f:
            ds = json.load(f)
        entries = ds.get("training") if isinstance(ds, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{root / 'dataset.json'}: no 'training' list of images.")
        items = []
        for e in entries:
            rel = e["image"] if isinstance(e, dict) else e
            p = (root / rel).resolve()
            if not p.exists():
                raise FileNotFoundError(f"{p}: listed in {root / 'dataset.json'} but missing.")
            items.append({"image": str(p), "seriesuid": p.name.split(".")[0], "source": "dataset.json", "nodules": []})
    elif annotations_csv is not None or lidc_xml_files(root):
        items = lidc_idri_datalist(root, annotations_csv)
    else:
        items = nlst_datalist(root)
    items.sort(key=lambda it: it["image"])
    num_holdout = int(num_holdout)
    if num_holdout < 0 or num_holdout >= len(items):
        raise ValueError(f"num_holdout={num_holdout} but {root} has {len(items)} scans; at least one must be left to train on.")
    cut = len(items) - num_holdout
    return {"training": items[:cut], "testing": items[cut:]}
