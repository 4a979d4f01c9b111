"""Label-free consistency checks of the lung/infection model on a real CT.

Without a reference segmentation, a model can still be tested on a real scan: what it labels must not
depend on how the scan was acquired or cut. :func:`consistency_check` segments a scan and transformed
copies of it (fields of view that cut the body at the sides, front/back or top/bottom, other slice
spacings, low-dose noise, a sharp reconstruction kernel) with the bundle's own ``inference.yaml``, and
reports, per copy, the Dice between the two predictions on their common region (for a resampled copy: on the
coarser of the two grids).

All arrays here are RAS-oriented HU volumes, shape (X, Y, Z); spacings and volumes in mm and ml.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.transforms import Orientation
from scipy import ndimage

from ...bundle_helpers import run_bundle
from ...metrics.mask_overlap import mask_dice
from ...phantoms.chest_ct_acquisition import apply_kernel, crop_affine
from ...transforms.body_mask import body_outline
from ...transforms.input_checks import LoadScan

__all__ = [
    "DEFAULT_VARIANTS",
    "MIN_JUDGED_ML",
    "ScanVariant",
    "consistency_check",
    "load_ras_hu",
    "scan_variants",
]

#: Label values of the bundle's output, checked one by one; "lungs" is labels 1-3 together.
CLASSES: dict[str, tuple[int, ...]] = {"left_lung": (1,), "right_lung": (2,), "lungs": (1, 2, 3), "infection": (3,)}

#: A class is judged by Dice only where the original prediction holds at least this much of it (ml); with less
#: lung than this (a scan without lungs in view), a copy passes when it holds less than this too.
MIN_JUDGED_ML = 5.0

#: The copies made of every scan, in the order they are reported.
DEFAULT_VARIANTS: tuple[str, ...] = (
    "crop_lateral", "crop_anterior_posterior", "crop_cranio_caudal", "slices_1.5mm", "slices_3mm",
    "slices_5mm", "low_dose_noise", "sharp_kernel",
)


@dataclass
class ScanVariant:
    """A transformed copy of a scan.

    Attributes:
        name: the variant's name (one of :data:`DEFAULT_VARIANTS`).
        image: HU volume (X, Y, Z), float32, RAS.
        affine: its voxel -> RAS world affine (4x4, mm).
        crop: for variants on the original grid, the index box of the original that the copy holds
            (one slice per axis); ``None`` when the copy is on another grid (resampled).
        description: what was done, in words, for the report.
    """

    name: str
    image: np.ndarray
    affine: np.ndarray
    crop: tuple[slice, slice, slice] | None
    description: str


def load_ras_hu(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A CT (NIfTI file or DICOM series folder) as a RAS-oriented float32 HU array (X, Y, Z) and its affine."""
    img = LoadScan(image_only=True, ensure_channel_first=True)(str(path))
    img = Orientation(axcodes="RAS")(img)
    return np.asarray(img[0], dtype=np.float32), np.asarray(img.affine, dtype=np.float64)


def _body_box(hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index (inclusive) of the body (> -500 HU, :func:`body_outline`) along each axis."""
    body = body_outline(hu[None], -500.0)
    lo, hi = [], []
    for axis in range(3):
        present = np.flatnonzero(body.any(axis=tuple(a for a in range(3) if a != axis)))
        if present.size == 0:
            raise ValueError("no voxel above -500 HU: no body in this scan.")
        lo.append(present[0])
        hi.append(present[-1])
    return np.array(lo), np.array(hi)


def _central_crop(shape: Sequence[int], body_box: tuple[np.ndarray, np.ndarray], axis: int,
                  keep: float) -> tuple[slice, slice, slice]:
    """Index box that keeps the central ``keep`` fraction of the body's extent (``body_box``, from
    :func:`_body_box`) along ``axis``, so that the new field of view cuts the body on both sides (as a small
    reconstruction field of view does)."""
    lo, hi = body_box
    extent = hi[axis] - lo[axis] + 1
    n_keep = max(8, int(round(keep * extent)))
    start = max(0, int(lo[axis] + (extent - n_keep) // 2))
    box = [slice(None)] * 3
    box[axis] = slice(start, min(shape[axis], start + n_keep))
    return tuple(box)  # type: ignore[return-value]


def _resample_z(hu: np.ndarray, affine: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The scan at another slice spacing (and slice thickness): Gaussian slice profile of FWHM
    ``spacing_mm`` when slices get thicker, linear interpolation along z."""
    sz = float(np.linalg.norm(affine[:3, 2]))
    if spacing_mm > sz:
        fwhm_vox = math.sqrt(spacing_mm**2 - sz**2) / sz
        hu = ndimage.gaussian_filter1d(hu, fwhm_vox / 2.3548, axis=2, mode="nearest")
    n_new = max(1, int(math.floor((hu.shape[2] - 1) * sz / spacing_mm)) + 1)
    z_new = np.arange(n_new) * spacing_mm / sz  # in old voxel units, starting at slice 0
    out = ndimage.map_coordinates(
        hu, np.meshgrid(np.arange(hu.shape[0]), np.arange(hu.shape[1]), z_new, indexing="ij"),
        order=1, mode="nearest",
    ).astype(np.float32)
    aff = affine.copy()
    aff[:3, 2] = affine[:3, 2] * spacing_mm / sz
    return out, aff


def _noise(hu: np.ndarray, std_hu: float, seed: int) -> np.ndarray:
    """Low-dose CT noise: Gaussian, slightly correlated in-plane, ``std_hu`` HU after correlation."""
    rng = np.random.default_rng(seed)
    n = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), (0.6, 0.6, 0.0))
    n *= std_hu / max(float(n.std()), 1e-6)
    body = hu > -1000.0  # keep the outside padding (e.g. -1024 or -2048) as stored
    return np.where(body, hu + n, hu).astype(np.float32)


def scan_variants(
    hu: np.ndarray, affine: np.ndarray, names: Sequence[str] = DEFAULT_VARIANTS, seed: int = 0
) -> list[ScanVariant]:
    """The transformed copies named in ``names`` of a RAS HU volume (X, Y, Z) with its affine.

    - ``crop_lateral`` / ``crop_anterior_posterior``: the central 70 % of the body's width / depth;
    - ``crop_cranio_caudal``: the lowest 25 % and the highest 10 % of the slices removed (at least 8 kept);
    - ``slices_<s>mm``: slice spacing and thickness ``s`` mm (in-plane unchanged);
    - ``low_dose_noise``: + 40 HU Gaussian noise inside the scan;
    - ``sharp_kernel``: the phantoms' sharp kernel (:func:`~monai_ext.phantoms.chest_ct_acquisition.apply_kernel`,
      in-plane unsharp mask, gain 1, sigma 1 voxel).
    """

    def cropped(name: str, box: tuple[slice, slice, slice], text: str) -> ScanVariant:
        aff = crop_affine(affine, [b.start or 0 for b in box])
        return ScanVariant(name, np.ascontiguousarray(hu[box]), aff, box, text)

    body_box = _body_box(hu) if {"crop_lateral", "crop_anterior_posterior"} & set(names) else None

    makers: dict[str, Callable[[], ScanVariant]] = {
        "crop_lateral": lambda: cropped("crop_lateral", _central_crop(hu.shape, body_box, 0, 0.7),
                                        "field of view cut at both sides (70 % of the body width kept)"),
        "crop_anterior_posterior": lambda: cropped("crop_anterior_posterior",
                                                   _central_crop(hu.shape, body_box, 1, 0.7),
                                                   "field of view cut at front and back (70 % of the body depth)"),
        "low_dose_noise": lambda: ScanVariant("low_dose_noise", _noise(hu, 40.0, seed), affine,
                                              (slice(None),) * 3, "+40 HU noise (low-dose scan)"),
        "sharp_kernel": lambda: ScanVariant("sharp_kernel", apply_kernel(hu, "sharp", 1.0), affine, (slice(None),) * 3,
                                            "sharp reconstruction kernel (unsharp mask)"),
    }
    nz = hu.shape[2]
    z0, z1 = int(round(0.25 * nz)), nz - max(1, int(round(0.1 * nz)))
    if z1 - z0 < 8:
        z0, z1 = max(0, (nz - 8) // 2), min(nz, max(0, (nz - 8) // 2) + 8)
    makers["crop_cranio_caudal"] = lambda: cropped(
        "crop_cranio_caudal", (slice(None), slice(None), slice(z0, z1)),
        f"bottom and top cut (slices {z0}-{z1 - 1} of {nz} kept)")
    out = []
    for name in names:
        if name in makers:
            out.append(makers[name]())
        elif name.startswith("slices_") and name.endswith("mm"):
            s = float(name[len("slices_"):-2])
            img, aff = _resample_z(hu, affine, s)
            out.append(ScanVariant(name, img, aff, None, f"{s:g} mm slices"))
        else:
            raise ValueError(f"unknown variant {name!r}; known: {', '.join(DEFAULT_VARIANTS)} or slices_<mm>mm")
    return out


def _onehot_on_grid(label: np.ndarray, affine: np.ndarray, shape: Sequence[int], target_affine: np.ndarray,
                    n_labels: int) -> np.ndarray:
    """``label`` (X, Y, Z) carried onto another grid: linear interpolation of its one-hot, then argmax."""
    vox = np.linalg.inv(affine) @ target_affine  # target voxel -> source voxel
    probs = []
    for v in range(n_labels):
        probs.append(ndimage.affine_transform((label == v).astype(np.float32), vox[:3, :3], vox[:3, 3],
                                              output_shape=tuple(shape), order=1, mode="nearest"))
    return np.argmax(np.stack(probs), axis=0).astype(np.uint8)


def _on_coarser_grid(ref: np.ndarray, ref_affine: np.ndarray, pred: np.ndarray, pred_affine: np.ndarray,
                     n_labels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The original's prediction ``ref`` and a resampled copy's prediction ``pred`` on one grid: the coarser of the
    two (larger voxel), where the finer map is carried by linear interpolation of its one-hot. Carrying a label map
    onto a finer grid would invent sub-voxel boundaries in one map only, and their disagreement would be counted
    against the model although both predictions agree at the working resolution.

    Returns ``(ref_on_grid, pred_on_grid, affine)``, restricted to the voxels whose centres the other scan covers."""
    ref_vox = abs(float(np.linalg.det(ref_affine[:3, :3])))
    pred_vox = abs(float(np.linalg.det(pred_affine[:3, :3])))
    if pred_vox >= ref_vox:
        return _onehot_on_grid(ref, ref_affine, pred.shape, pred_affine, n_labels), pred, pred_affine
    # the copy is finer: carry it onto the original grid, on the original's voxels inside the copy's extent
    on_ref = _onehot_on_grid(pred, pred_affine, ref.shape, ref_affine, n_labels)
    vox = np.linalg.inv(pred_affine) @ ref_affine  # original voxel -> copy voxel (axis-aligned grids)
    box = []
    for k in range(3):
        j = vox[k, k] * np.arange(ref.shape[k]) + vox[k, 3]
        inside = np.flatnonzero((j > -0.5) & (j < pred.shape[k] - 0.5))
        box.append(slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0))
    box_t = tuple(box)
    return ref[box_t], on_ref[box_t], crop_affine(ref_affine, [b.start for b in box])



def _compare(ref: np.ndarray, pred: np.ndarray, voxel_ml: float) -> dict:
    row: dict = {}
    for cls, values in CLASSES.items():
        a, b = np.isin(ref, values), np.isin(pred, values)
        row[f"dice_{cls}"] = mask_dice(a, b)
        row[f"ml_{cls}_original"] = float(a.sum()) * voxel_ml
        row[f"ml_{cls}_variant"] = float(b.sum()) * voxel_ml
    return row


def consistency_check(
    scan: str | Path,
    bundle_dir: str | Path,
    out_dir: str | Path | None = None,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    device: str | None = None,
    min_dice: float = 0.97,
    seed: int = 0,
    progress: bool = True,
    ckpt: str | Path | None = None,
    overrides: dict | None = None,
) -> dict:
    """Segment ``scan`` and its transformed copies with the bundle's ``inference.yaml`` and compare.

    Args:
        scan: a CT in HU: NIfTI file or DICOM series folder.
        bundle_dir: the bundle folder (``bundles/covid19_ct_fewshot_seg``); its ``models/model.pt`` is used.
        out_dir: where the copies (``inputs/``), the predictions (``predictions/``) and ``consistency.json``
            are written; a temporary folder (deleted) when ``None``.
        variants: names from :data:`DEFAULT_VARIANTS` (or ``slices_<mm>mm``).
        device: torch device for inference; ``None``: the bundle's default (the first GPU when there is one).
        min_dice: a variant passes when the Dice of the lungs (labels 1-3) and of each lung that holds
            at least ``MIN_JUDGED_ML`` (5 ml) is at least this, on the common region; on a scan whose
            prediction holds less than 5 ml of lung, when the copy's prediction holds less than 5 ml too.
        seed: seed of the added noise.
        progress: print one line per variant.
        ckpt: weights to use instead of the bundle's ``models/model.pt``.
        overrides: further ``inference.yaml`` keys (e.g. ``{"inferer#overlap": 0.5}``).

    Returns:
        ``{"scan", "variants": [per-variant dict: name, description, shape, dice_* and ml_* per class,
        passed], "passed", "seconds"}``; Dice is NaN where a class is absent from both predictions.
    """
    t0 = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    hu, affine = load_ras_hu(scan)
    copies = scan_variants(hu, affine, variants, seed=seed)
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="monai_ext_consistency_")
        out_dir = tmp.name
    out = Path(out_dir)
    inputs, preds = out / "inputs", out / "predictions"
    inputs.mkdir(parents=True, exist_ok=True)
    preds.mkdir(parents=True, exist_ok=True)
    try:
        nib.save(nib.Nifti1Image(hu, affine), inputs / "original.nii.gz")
        for v in copies:
            nib.save(nib.Nifti1Image(v.image, v.affine), inputs / f"{v.name}.nii.gz")
        with torch.inference_mode(False):
            extra = dict(overrides or {})
            if ckpt is not None:
                extra["ckpt_path"] = str(Path(ckpt).resolve())
            if device is not None:
                extra["device"] = f"$torch.device('{device}')"
            run_bundle(bundle_dir, "inference.yaml", dataset_dir=str(inputs), output_dir=str(preds), **extra)

        def pred_of(name: str) -> np.ndarray:
            return np.asarray(nib.load(preds / f"{name}_seg.nii.gz").dataobj, dtype=np.uint8)

        ref = pred_of("original")
        n_labels = int(max(4, ref.max() + 1))
        rows = []
        for v in copies:
            pred = pred_of(v.name)
            if v.crop is not None:
                ref_v, grid_affine = ref[v.crop], v.affine
            else:
                ref_v, pred, grid_affine = _on_coarser_grid(ref, affine, pred, v.affine, n_labels)
            voxel_ml = abs(float(np.linalg.det(grid_affine[:3, :3]))) / 1000.0
            row = {"name": v.name, "description": v.description, "shape": list(pred.shape)}
            row.update(_compare(ref_v, pred, voxel_ml))
            if row["ml_lungs_original"] < MIN_JUDGED_ML:  # no lungs in view: none may appear on the copy
                row["passed"] = row["ml_lungs_variant"] < MIN_JUDGED_ML
            else:
                checked = [row["dice_lungs"]] + [
                    row[f"dice_{side}"] for side in ("left_lung", "right_lung")
                    if row[f"ml_{side}_original"] >= MIN_JUDGED_ML
                ]
                row["passed"] = all(d >= min_dice for d in checked)
            rows.append(row)
            if progress:
                print(f"{v.name:26s} Dice lungs {row['dice_lungs']:.3f} left {row['dice_left_lung']:.3f} "
                      f"right {row['dice_right_lung']:.3f}  lungs {row['ml_lungs_original']:.1f} -> "
                      f"{row['ml_lungs_variant']:.1f} ml, infection {row['ml_infection_original']:.1f} -> "
                      f"{row['ml_infection_variant']:.1f} ml  {'ok' if row['passed'] else 'FAILED'}", flush=True)
        voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
        report = {
            "scan": str(scan),
            "original_ml": {cls: float(np.isin(ref, vals).sum()) * voxel_ml for cls, vals in CLASSES.items()},
            "min_dice": min_dice,
            "variants": rows,
            "passed": all(r["passed"] for r in rows),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        (out / "consistency.json").write_text(json.dumps(report, indent=1, default=float))
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()
