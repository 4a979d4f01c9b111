"""OASIS-1 (cross-sectional) AD-vs-CN dataset list, for users who have the data.

OASIS-1 (Marcus et al., J. Cogn. Neurosci. 2007) is the real benchmark of the RHVAE data-augmentation paper
(Chadebec & Allassonniere, DGM4MICCAI 2021): masked, atlas-registered T1 images ("masked T88 images"),
one 2D slice of 208 x 176 per subject, CN vs AD. It needs a data use agreement and cannot be downloaded
here; :mod:`monai_ext.phantoms.brain_mri` is the embedded stand-in.

Layout assumed (the OASIS-1 release discs, ``disc1`` ... ``disc12``, extracted anywhere under ``root``)::

    <root>/[discN/]OAS1_0001_MR1/PROCESSED/MPRAGE/T88_111/OAS1_0001_MR1_mpr_n4_anon_111_t88_masked_gfc.img (+ .hdr)
    <root>/oasis_cross-sectional.csv   (or passed as clinical_csv)

The image is an Analyze 7.5 pair (.hdr / .img), 176 x 208 x 176 voxels of 1 mm (``n3`` or ``n4`` = number of
averaged scans, both accepted). The clinical CSV has the columns ``ID, M/F, Hand, Age, Educ, SES, MMSE,
CDR, eTIV, nWBV, ASF, Delay``; ``ID`` is the session (``OAS1_0001_MR1``; ``..._MR2`` are the 20 reliability
re-scans, left out unless ``sessions`` asks for them).

Labels: CN (0) when CDR == 0, AD (1) when CDR >= ``cdr_ad_threshold``. In the CSV most subjects under 60
have no CDR; they are skipped by default (``missing_cdr="skip"``), which leaves 135 CN and 100 AD of the
416 subjects. The paper counts them as CN (316 CN / 100 AD, its Table 1): ``missing_cdr="cn"``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["oasis1_datalist", "read_oasis1_clinical", "write_oasis1_slice_dataset", "OASIS1_CSV_NAME"]

OASIS1_CSV_NAME = "oasis_cross-sectional.csv"
_IMAGE_RE = re.compile(r"^(OAS1_\d{4}_MR\d)_mpr_n\d+_anon_111_t88_masked_gfc\.img$")
_REQUIRED_COLUMNS = ("ID", "CDR")


def _float_or_none(value: str | None) -> float | None:
    if value is None or str(value).strip() in ("", "N/A", "NA", "nan"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def read_oasis1_clinical(clinical_csv: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Rows of ``oasis_cross-sectional.csv`` keyed by session ID (``OAS1_0001_MR1``).

    Each value: ``age``, ``sex`` (``M`` / ``F``), ``mmse``, ``cdr``, ``etiv``, ``nwbv``, ``asf``, ``educ``,
    ``ses`` (floats or None where the CSV cell is empty)."""
    path = Path(clinical_csv).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"clinical_csv {path}: not found; expected OASIS-1's {OASIS1_CSV_NAME}.")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
                f"clinical_csv {path}: columns {missing} missing; expected the OASIS-1 columns "
                f"ID, M/F, Hand, Age, Educ, SES, MMSE, CDR, eTIV, nWBV, ASF, Delay (found {columns})."
            )
        rows = {}
        for raw in reader:
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not row.get("ID"):
                continue
            rows[row["ID"]] = {
                "age": _float_or_none(row.get("Age")),
                "sex": row.get("M/F") or None,
                "mmse": _float_or_none(row.get("MMSE")),
                "cdr": _float_or_none(row.get("CDR")),
                "etiv": _float_or_none(row.get("eTIV")),
                "nwbv": _float_or_none(row.get("nWBV")),
                "asf": _float_or_none(row.get("ASF")),
                "educ": _float_or_none(row.get("Educ")),
                "ses": _float_or_none(row.get("SES")),
            }
    if not rows:
        raise ValueError(f"clinical_csv {path}: no data rows.")
    return rows


def _find_images(root: Path) -> dict[str, Path]:
    """Session ID -> masked T88 ``.img`` (the first one when a session holds several)."""
    found: dict[str, Path] = {}
    for pattern in ("OAS1_*_MR*", "*/OAS1_*_MR*"):
        for session_dir in sorted(root.glob(pattern)):
            t88 = session_dir / "PROCESSED" / "MPRAGE" / "T88_111"
            if not t88.is_dir():
                continue
            for img in sorted(t88.glob("*_t88_masked_gfc.img")):
                m = _IMAGE_RE.match(img.name)
                if m and m.group(1) == session_dir.name and m.group(1) not in found:
                    if not img.with_suffix(".hdr").is_file():
                        logger.warning(f"{img}: no .hdr beside it (Analyze needs both); skipped.")
                        continue
                    found[m.group(1)] = img
    return found


def oasis1_datalist(
    root: str | os.PathLike,
    clinical_csv: str | os.PathLike | None = None,
    cdr_ad_threshold: float = 0.5,
    dim: int = 3,
    slice_index: int = 88,
    missing_cdr: str = "skip",
    sessions: Sequence[str] = ("MR1",),
) -> list[dict[str, Any]]:
    """AD-vs-CN list of OASIS-1 masked T88 images.

    Args:
        root: folder holding the ``OAS1_XXXX_MR1`` session folders, directly or in ``discN`` folders.
        clinical_csv: ``oasis_cross-sectional.csv``; default: that name in ``root`` or its parent.
        cdr_ad_threshold: CDR at or above which a subject is AD (CDR 0 is CN; in between: skipped).
        dim: 3 (whole volume) or 2 (entries also carry ``slice_index``, the axial slice to take).
        slice_index: axial slice (third array axis of the 176 x 208 x 176 volume) for ``dim=2``; 88, the
            middle, is an assumption (the paper does not say which slice it used).
        missing_cdr: ``"skip"`` subjects without CDR (most subjects under 60), or ``"cn"`` count them as
            CN as the paper's Table 1 does.
        sessions: session suffixes kept (``"MR2"`` are the reliability re-scans of 20 subjects).

    Returns:
        ``[{"image": .img path, "label": 0|1, "subject": ID, "age", "sex", "mmse", "cdr", "etiv",
        "nwbv", "asf"[, "slice_index"]}, ...]`` sorted by ID. Counts are logged (how many skipped and why).

    Raises:
        FileNotFoundError: ``root`` or the CSV missing, or no masked T88 image under ``root``.
        ValueError: bad arguments, or no subject with both an image and a usable CDR.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"OASIS-1 root {base}: not a folder; expected the extracted OASIS-1 discs.")
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}.")
    if missing_cdr not in ("skip", "cn"):
        raise ValueError(f"missing_cdr must be 'skip' or 'cn', got {missing_cdr!r}.")
    thr = float(cdr_ad_threshold)
    if not thr > 0:
        raise ValueError(f"cdr_ad_threshold must be > 0 (CDR 0 is CN), got {cdr_ad_threshold!r}.")
    if dim == 2 and (isinstance(slice_index, bool) or int(slice_index) != slice_index or slice_index < 0):
        raise ValueError(f"slice_index must be a non-negative integer, got {slice_index!r}.")
    if clinical_csv is None:
        candidates = [base / OASIS1_CSV_NAME, base.parent / OASIS1_CSV_NAME]
        clinical_csv = next((c for c in candidates if c.is_file()), None)
        if clinical_csv is None:
            raise FileNotFoundError(
                f"no {OASIS1_CSV_NAME} in {base} or {base.parent}; pass clinical_csv= (the OASIS-1 clinical CSV)."
            )
    clinical = read_oasis1_clinical(clinical_csv)
    images = _find_images(base)
    if not images:
        raise FileNotFoundError(
            f"no OASIS-1 masked T88 image under {base}; expected "
            "[discN/]OAS1_XXXX_MR1/PROCESSED/MPRAGE/T88_111/OAS1_XXXX_MR1_mpr_n*_anon_111_t88_masked_gfc.img"
        )
    keep = tuple(str(s) for s in sessions)
    items, skipped = [], {"session": 0, "not_in_csv": 0, "no_cdr": 0, "cdr_between": 0}
    for sid in sorted(images):
        if not sid.endswith(keep):
            skipped["session"] += 1
            continue
        row = clinical.get(sid)
        if row is None:
            skipped["not_in_csv"] += 1
            continue
        cdr = row["cdr"]
        if cdr is None:
            if missing_cdr == "skip":
                skipped["no_cdr"] += 1
                continue
            cdr = 0.0
        if cdr == 0:
            label = 0
        elif cdr >= thr:
            label = 1
        else:
            skipped["cdr_between"] += 1
            continue
        entry = {"image": str(images[sid]), "label": label, "subject": sid}
        entry.update({k: row[k] for k in ("age", "sex", "mmse", "cdr", "etiv", "nwbv", "asf")})
        if dim == 2:
            entry["slice_index"] = int(slice_index)
        items.append(entry)
    n_cn = sum(e["label"] == 0 for e in items)
    logger.info(
        f"OASIS-1 under {base}: {len(images)} sessions with an image; {n_cn} CN, {len(items) - n_cn} AD; "
        f"skipped {skipped['no_cdr']} without CDR, {skipped['cdr_between']} with 0 < CDR < {thr}, "
        f"{skipped['not_in_csv']} not in the CSV, {skipped['session']} other sessions."
    )
    if not items:
        raise ValueError(
            f"OASIS-1 under {base}: none of {len(images)} sessions has both an image and a usable CDR in "
            f"{clinical_csv} (skipped: {skipped}); check the CSV's IDs, or pass missing_cdr='cn'."
        )
    return items


def _stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    split = [""] * len(labels)
    for lab in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == lab))
        n_tr = int(round(fractions[0] * len(idx)))
        n_va = int(round(fractions[1] * len(idx)))
        for rank, i in enumerate(idx):
            split[i] = "training" if rank < n_tr else ("validation" if rank < n_tr + n_va else "test")
    return split


def write_oasis1_slice_dataset(
    items: Sequence[dict],
    out_dir: str | os.PathLike,
    shape: Sequence[int] = (64, 64),
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> dict[str, list[dict]]:
    """Cut the axial slice of each entry of :func:`oasis1_datalist` (``dim=2``), resize it to ``shape``, scale
    it to [0, 1] (by its 99.5th percentile) and write the folder layout of
    :func:`monai_ext.phantoms.synthesize_brain_ad_dataset` (``images/*.nii.gz`` and
    ``dataset.json`` with ``training`` / ``validation`` / ``test``), split per class by ``fractions``
    (the paper's 70 / 10 / 20 %). Files are written atomically, ``dataset.json`` last.

    Returns:
        ``{"training", "validation", "test"}`` lists of ``{"image": absolute path, "label": int}``.
    """
    import nibabel as nib
    from monai.transforms import Resize


    if not items:
        raise ValueError("items is empty; expected the list of oasis1_datalist(..., dim=2).")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}.")
    shp = tuple(int(s) for s in shape)
    if len(shp) != 2 or min(shp) < 8:
        raise ValueError(f"shape must be two sizes >= 8, got {shape!r}.")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} is a file; expected a folder.")
    (out / "images").mkdir(parents=True, exist_ok=True)
    split = _stratified_split(np.array([int(e["label"]) for e in items]), fractions, seed)
    resize = Resize(shp, mode="area")
    lists: dict[str, list[dict]] = {"training": [], "validation": [], "test": []}
    for entry, part in zip(items, split):
        path = Path(entry["image"])
        vol = np.asarray(nib.load(str(path)).get_fdata(), dtype=np.float32)
        vol = vol.reshape(vol.shape[:3]) if vol.ndim == 4 and vol.shape[3] == 1 else vol
        if vol.ndim != 3:
            raise ValueError(f"{path}: expected a 3D volume, got shape {vol.shape}.")
        k = int(entry.get("slice_index", vol.shape[2] // 2))
        if not 0 <= k < vol.shape[2]:
            raise ValueError(f"{path}: slice_index {k} outside the volume's {vol.shape[2]} axial slices.")
        sl = np.asarray(resize(vol[None, :, :, k]))[0]
        ref = float(np.percentile(sl[sl > 0], 99.5)) if np.any(sl > 0) else 1.0
        sl = np.clip(sl / max(ref, 1e-6), 0.0, 1.0).astype(np.float32)
        aff = np.diag([vol.shape[0] / shp[0], vol.shape[1] / shp[1], 1.0, 1.0])
        rel = f"images/{entry.get('subject', path.stem)}.nii.gz"
        img = nib.Nifti1Image(sl, aff)
        atomic_write(out / rel, lambda tmp, img=img: nib.save(img, str(tmp)))
        lists[part].append({"image": rel, "label": int(entry["label"])})
    description = {
        "name": "OASIS-1 AD vs CN axial slices",
        "description": "Slices of OASIS-1 masked T88 images (Marcus et al. 2007), labels 0 = CN, 1 = AD.",
        "labels": {"0": "CN", "1": "AD"},
        "generator": {"shape": list(shp), "fractions": list(fractions), "seed": int(seed)},
        **lists,
    }
    atomic_write(out / "dataset.json", lambda tmp: tmp.write_text(json.dumps(description, indent=1) + "\n"))
    return {k: [{"image": str(out / e["image"]), "label": e["label"]} for e in v] for k, v in lists.items()}
