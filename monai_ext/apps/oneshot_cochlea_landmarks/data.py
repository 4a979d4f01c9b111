"""Data of the one-shot landmark bundle: the data-set list (one annotated reference volume with its structure mask,
a validation volume with a mask, target volumes with or without landmarks) and the loading of the reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ...io import (
    LANDMARK_SUFFIXES,
    PathLike,
    case_name,
    ensure_dataset,
    find_images,
    read_landmarks,
    require_file,
)
from ...metrics.surface_dice import spacing_from_affine
from ...phantoms.temporal_bone_ct import synthesize_temporal_bone_dataset

__all__ = ["CheckResampledSized", "oneshot_datalist", "target_items"]



def _resolve(root: Path, entry: Any, role: str, need_mask: bool, need_landmarks: bool) -> dict[str, Any]:
    if not isinstance(entry, dict) or "image" not in entry:
        raise ValueError(f"{root / 'dataset.json'}: '{role}' must be an object with an 'image' path, got {entry!r}.")
    out: dict[str, Any] = {"name": str(entry.get("name") or case_name(entry["image"]))}
    for key in ("image", "mask", "landmarks"):
        if entry.get(key):
            path = root / str(entry[key])
            if key == "image" and path.is_dir():
                out[key] = str(path)  # a DICOM series folder
                continue
            out[key] = str(require_file(path, f"the {role} {key} listed in {root / 'dataset.json'}"))
    if need_mask and "mask" not in out:
        raise ValueError(f"{root / 'dataset.json'}: the {role} volume {out['image']} has no 'mask'; the one-shot "
                         "method needs the structure of interest (e.g. the cochlea) marked in it.")
    if need_landmarks and "landmarks" not in out:
        raise ValueError(f"{root / 'dataset.json'}: the {role} volume {out['image']} has no 'landmarks' file "
                         f"({' or '.join(LANDMARK_SUFFIXES)}, 3D Slicer markups).")
    if "landmarks" in out:
        read_landmarks(out["landmarks"])  # malformed files fail here, naming the file
    return out


def oneshot_datalist(dataset_dir: PathLike, synth_test: int = 20, synth_seed: int = 0,
                     generate: bool = True) -> dict[str, Any]:
    """``{"reference": item, "validation": item, "test": [items]}`` with absolute paths, from
    ``dataset_dir/dataset.json``::

        {"reference": {"image": "ref.nii.gz", "mask": "ref_mask.nii.gz", "landmarks": "ref.mrk.json"},
         "validation": {"image": "val.nii.gz", "mask": "val_mask.nii.gz"},
         "test": [{"image": "a.nii.gz", "landmarks": "a.mrk.json"}, {"image": "dicom_folder/"}]}

    Images are NIfTI files or DICOM series folders; landmark files 3D Slicer markups (``.mrk.json`` or ``.fcsv``).
    The reference needs a mask and landmarks, the validation volume a mask; test landmarks are optional (needed
    only for scoring). When ``dataset_dir`` is missing or empty (and ``generate``) the synthetic temporal-bone
    CT set (``synth_test`` targets, seed ``synth_seed``) is written there first.
    """
    root = ensure_dataset(dataset_dir, lambda p: synthesize_temporal_bone_dataset(
        p, test=int(synth_test), seed=int(synth_seed), progress=True), "synthetic temporal-bone CT volumes", generate)
    listing = root / "dataset.json"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing}: not found; the one-shot landmark bundle reads its reference, validation "
                                "and test volumes from a dataset.json (see the bundle's docs/README.md).")
    try:
        doc = json.loads(listing.read_text())
    except ValueError as e:
        raise ValueError(f"{listing}: not valid JSON ({e}).") from e
    for key in ("reference", "validation"):
        if key not in doc:
            raise ValueError(f"{listing}: no '{key}' entry; expected 'reference', 'validation' and 'test'.")
    return {
        "reference": _resolve(root, doc["reference"], "reference", True, True),
        "validation": _resolve(root, doc["validation"], "validation", True, False),
        "test": [_resolve(root, e, "test", False, False) for e in doc.get("test", [])],
    }


def target_items(input_path: PathLike) -> list[dict[str, str]]:
    """The volumes to place landmarks in: ``input_path`` is a NIfTI file, a DICOM series folder, or a folder of
    NIfTI files and / or DICOM series folders (``monai_ext.io.find_images``); ``[{"image", "name"}]``."""
    images = find_images(input_path)
    return [{"image": img, "name": case_name(img)} for img in images]


class CheckResampledSized(MapTransform):
    """Refuse a volume (C, X, Y, Z) MetaTensor that would exceed ``max_voxels`` once resampled to ``pixdim`` (mm):
    the method works at the reference's fine voxel size (0.3 mm for temporal bones), at which a whole-body CT would
    need gigabytes. ``ValueError`` naming the file, its size in mm and what to do (crop to the region first)."""

    def __init__(self, keys: KeysCollection, pixdim: Any, max_voxels: float = 1e8, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.pixdim = np.asarray(pixdim, dtype=np.float64).reshape(-1)
        self.max_voxels = float(max_voxels)

    def __call__(self, data: dict) -> dict:
        """``data`` unchanged when every ``keys`` volume fits."""
        for key in self.key_iterator(data):
            img = data[key]
            spacing = np.asarray(spacing_from_affine(img.affine))
            extent = np.asarray(img.shape[1:], dtype=np.float64) * spacing
            voxels = float(np.prod(np.ceil(extent / self.pixdim)))
            if voxels > self.max_voxels:
                name = img.meta.get("filename_or_obj", key)
                raise ValueError(
                    f"{name}: {extent.round(1).tolist()} mm would be {voxels / 1e6:.0f} M voxels at "
                    f"{self.pixdim.tolist()} mm (at most {self.max_voxels / 1e6:.0f} M): crop the volume to the region "
                    "of the structure (e.g. one temporal bone, ~40-60 mm) first.")
        return data
