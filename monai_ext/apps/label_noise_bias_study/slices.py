"""2D axial tumour / healthy slices of brain-tumour MR volumes in four contrasts: the data of the label-noise study.

Vorontsov & Kadoury (DGM4MICCAI 2021) train on 2D axial BraTS 2017 slices (FLAIR, T1, T1c, T2), about half with a
tumour ("diseased") and half without ("healthy"), and segment the whole tumour. :func:`tumour_slice_datalist`
makes that data from any BraTS-layout folder (:func:`monai_ext.datalists.brats_datalist`), or, when the folder is
missing or empty, from synthetic BraTS-like cases (:func:`monai_ext.phantoms.synthesize_brain_tumor_dataset`):

1. the cases are split by patient (``num_val``, ``num_test``, seeded), so test slices come from unseen brains;
2. each volume is put in RAS at ``pixdim`` mm, cropped to the brain (non-zero voxels), padded or cropped in-plane
   to ``spatial_size`` and normalised per contrast inside the brain (zero mean, unit variance);
3. axial slices with at least ``min_brain_fraction`` of their pixels in the brain are kept: diseased when at least
   ``min_tumour_pixels`` pixels are tumour (any BraTS label), healthy when none is; slices in between are left
   out (a few pixels of tumour at its pole); per case at most ``healthy_per_diseased`` healthy slices per diseased
   one, spread evenly over the brain;
4. every slice is written to ``slice_dir`` as two NIfTI files, ``<case>_z<k>_image.nii.gz`` (X, Y, 1, 4) and
   ``_label.nii.gz`` (X, Y, 1; uint8 0/1), with the affine of that slice in the source volume's world coordinates.

The slice folder is written as a whole (a temporary sibling renamed when complete) with ``slices.json`` (the
settings, the source and the lists); a later call with the same settings reuses it, other settings are an error
that names the differences (use another ``slice_dir``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    LoadImaged,
    NormalizeIntensityd,
    Orientationd,
    ResizeWithPadOrCropd,
    Spacingd,
    SqueezeDimd,
)

from ...datalists.brats import brats_datalist
from ...datalists.case_split import split_cases
from ...io import PathLike, atomic_directory
from ...phantoms.brain_tumor_mri import ensure_brain_tumor_dataset
from ...transforms import CheckLabeld, CheckVolumed, LoadContrastsd, LoadScand, MapLabelsd

__all__ = ["SLICE_LIST_FILE", "load_slice_transforms", "tumour_slice_datalist"]

SLICE_LIST_FILE = "slices.json"
_SPLITS = ("training", "validation", "testing")


def _volume_transforms(pixdim: Sequence[float], spatial_size: Sequence[int], label_mapping: dict) -> Compose:
    return Compose([
        LoadContrastsd(keys="image", contrasts=["flair", "t1", "t1c", "t2"], stacked_contrasts=["flair", "t1", "t1c", "t2"]),
        CheckVolumed(keys="image", num_channels=4, min_size=8),
        LoadScand(keys="label", image_only=True, ensure_channel_first=True),
        MapLabelsd(keys="label", mapping=label_mapping, strict=True),
        CheckLabeld(keys="label", image_key="image", num_classes=4),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=list(pixdim), mode=["bilinear", "nearest"]),
        CropForegroundd(keys=["image", "label"], source_key="image", margin=2, allow_smaller=True),
        ResizeWithPadOrCropd(keys=["image", "label"], spatial_size=[*spatial_size, -1]),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ])


def load_slice_transforms() -> list:
    """The transforms that load a slice item of :func:`tumour_slice_datalist`: image (4, X, Y) float32, label
    (1, X, Y) with 0/1, both MetaTensors with the slice's affine."""
    return [
        LoadImaged(keys=["image", "label"], image_only=True),
        EnsureChannelFirstd(keys="image", channel_dim=-1),
        EnsureChannelFirstd(keys="label", channel_dim="no_channel"),
        SqueezeDimd(keys=["image", "label"], dim=-1),
    ]


def _select_slices(brain: np.ndarray, tumour: np.ndarray, min_brain_fraction: float, min_tumour_pixels: int,
                   healthy_per_diseased: float) -> tuple[list[int], list[int]]:
    """Indices (last axis) of the diseased and the kept healthy slices of one volume."""
    plane = brain.shape[0] * brain.shape[1]
    brain_px = brain.reshape(plane, -1).sum(0)
    tumour_px = tumour.reshape(plane, -1).sum(0)
    in_brain = brain_px >= min_brain_fraction * plane
    diseased = [int(z) for z in np.flatnonzero(in_brain & (tumour_px >= min_tumour_pixels))]
    healthy = np.flatnonzero(in_brain & (tumour_px == 0))
    keep = int(round(healthy_per_diseased * max(len(diseased), 1)))
    if len(healthy) > keep:
        healthy = healthy[np.unique(np.linspace(0, len(healthy) - 1, keep).round().astype(int))] if keep else healthy[:0]
    return diseased, [int(z) for z in healthy]


def _slice_affine(affine: np.ndarray, z: int) -> np.ndarray:
    out = np.array(affine, dtype=np.float64)
    out[:3, 3] = out[:3, :3] @ np.array([0.0, 0.0, float(z)]) + out[:3, 3]
    return out


def _write_case(case: dict, tf: Compose, folder: Path, settings: dict) -> list[dict[str, Any]]:
    data = tf(dict(case))
    image = data["image"].numpy().astype(np.float32)           # (4, X, Y, Z)
    label = data["label"].numpy()[0]                           # (X, Y, Z), classes 0..3
    affine = np.asarray(data["image"].affine, dtype=np.float64)
    brain = np.any(image != 0, axis=0)
    tumour = label > 0
    diseased, healthy = _select_slices(brain, tumour, settings["min_brain_fraction"], settings["min_tumour_pixels"],
                                       settings["healthy_per_diseased"])
    items = []
    for z in sorted(diseased + healthy):
        stem = f"{case['case']}_z{z:03d}"
        aff = _slice_affine(affine, z)
        img_file, lab_file = folder / f"{stem}_image.nii.gz", folder / f"{stem}_label.nii.gz"
        nib.save(nib.Nifti1Image(np.moveaxis(image[..., z : z + 1], 0, -1), aff), img_file)
        nib.save(nib.Nifti1Image(tumour[..., z : z + 1].astype(np.uint8), aff), lab_file)
        items.append({"image": img_file.name, "label": lab_file.name, "case": case["case"], "slice": z,
                      "diseased": bool(z in diseased), "labelled": True})
    return items


def _absolute(listing: dict, folder: Path) -> dict[str, Any]:
    out = {k: v for k, v in listing.items() if k not in _SPLITS}
    for split in _SPLITS:
        out[split] = [{**i, "image": str(folder / i["image"]), "label": str(folder / i["label"])} for i in listing[split]]
    return out


def tumour_slice_datalist(
    dataset_dir: PathLike,
    slice_dir: PathLike,
    num_val: int = 8,
    num_test: int = 16,
    split_seed: int = 0,
    pixdim: Sequence[float] = (3.25, 3.25, 3.25),
    spatial_size: Sequence[int] = (64, 64),
    min_brain_fraction: float = 0.15,
    min_tumour_pixels: int = 10,
    healthy_per_diseased: float = 1.0,
    synth_cases: int = 84,
    synth_seed: int = 0,
    synthesize_if_missing: bool = True,
) -> dict[str, Any]:
    """Training, validation and testing lists of 2D axial slices (see the module docstring), written once.

    Args:
        dataset_dir: a BraTS data set (2015 ``.mha``, 2017-2021, 2023 layouts), or a missing / empty folder where
            ``synth_cases`` synthetic cases (seed ``synth_seed``) are generated first.
        slice_dir: where the slices and ``slices.json`` go (created; reused when its settings match).
        num_val, num_test, split_seed: patients in the validation and test sets, seed of the split.
        pixdim: voxel size in mm the volumes are resampled to before slicing.
        spatial_size: in-plane slice size in pixels (the brain is centred, padded or cropped to it).
        min_brain_fraction, min_tumour_pixels, healthy_per_diseased: the slice selection (module docstring).

    Returns:
        ``{"training", "validation", "testing": [{"image", "label" (absolute paths), "case", "slice", "diseased",
        "labelled"}], "settings": {...}, "source": str}``.

    Raises:
        FileNotFoundError: no BraTS data in ``dataset_dir`` (and nothing generated).
        ValueError: bad settings, too few cases, a case without a tumour-free / tumour slice selection that fits,
            or ``slice_dir`` written with other settings.
    """
    if not 0.0 <= float(min_brain_fraction) < 1.0:
        raise ValueError(f"min_brain_fraction must be in [0, 1), got {min_brain_fraction!r}.")
    if int(min_tumour_pixels) < 1:
        raise ValueError(f"min_tumour_pixels must be >= 1, got {min_tumour_pixels!r}.")
    if float(healthy_per_diseased) < 0:
        raise ValueError(f"healthy_per_diseased must be >= 0, got {healthy_per_diseased!r}.")
    if len(spatial_size) != 2 or min(int(s) for s in spatial_size) < 16:
        raise ValueError(f"spatial_size must be two sizes >= 16 pixels, got {spatial_size!r}.")
    root = ensure_brain_tumor_dataset(dataset_dir, synth_cases, synth_seed, enabled=synthesize_if_missing)
    listing = brats_datalist(root, ["flair", "t1", "t1c", "t2"])
    settings = {
        "source": str(root), "num_val": int(num_val), "num_test": int(num_test), "split_seed": int(split_seed),
        "pixdim": [float(p) for p in pixdim], "spatial_size": [int(s) for s in spatial_size],
        "min_brain_fraction": float(min_brain_fraction), "min_tumour_pixels": int(min_tumour_pixels),
        "healthy_per_diseased": float(healthy_per_diseased), "cases": sorted(c["case"] for c in listing["cases"]),
    }
    folder = Path(slice_dir).expanduser()
    manifest = folder / SLICE_LIST_FILE
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        if saved["settings"] != settings:
            diff = sorted(k for k in settings if saved["settings"].get(k) != settings[k])
            raise ValueError(f"slice_dir {folder} holds slices made with other settings ({diff}); use another "
                             "slice_dir or remove that folder.")
        return _absolute(saved, folder.resolve())
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"slice_dir {folder} is not empty and has no {SLICE_LIST_FILE}; expected a missing or empty "
                         "folder, or one written by tumour_slice_datalist.")
    split = split_cases(listing["cases"], int(num_val), int(num_test), int(split_seed), root)
    tf = _volume_transforms(settings["pixdim"], settings["spatial_size"], listing["label_mapping"])

    def fill(tmp: Path) -> None:
        out: dict[str, Any] = {"settings": settings}
        for name in _SPLITS:
            out[name] = []
            for case in split[name]:
                out[name].extend(_write_case(case, tf, tmp, settings))
            if not out[name]:
                raise ValueError(f"{root}: no {name} slice passes the selection ({settings}).")
        out["counts"] = {name: {"slices": len(out[name]), "diseased": sum(i["diseased"] for i in out[name])}
                         for name in _SPLITS}
        (tmp / SLICE_LIST_FILE).write_text(json.dumps(out, indent=1))

    atomic_directory(folder, fill)
    return _absolute(json.loads(manifest.read_text()), folder.resolve())
