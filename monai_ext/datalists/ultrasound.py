"""Data lists for ultrasound images: a user's folder of PNG/JPEG/DICOM images with optional masks, and the
synthetic multi-style data set (generated on first use).

- :func:`ultrasound_datalist`: every image of a folder (PNG, JPEG, BMP, TIFF, GIF, DICOM with or without
  suffix), each matched to the mask of the same stem in a mask folder (or, as in BUSI and the Kaggle
  nerve set, in the same folder with a suffix such as ``_mask``); multi-frame DICOM can be expanded to
  one entry per frame.
- :func:`ultrasound_style_datalist`: the training / validation / test lists of a folder written by
  :func:`~monai_ext.phantoms.synthesize_us_dataset` (which it runs when the folder is
  missing or empty) or of any folder with such a ``dataset.json``.

Entries are dicts with absolute paths, ``{"image": ..., "label": ...}`` (plus ``"frame"``, ``"style"``,
``"subject"`` where known), ready for ``monai.data.Dataset`` with
:class:`~monai_ext.transforms.LoadUltrasoundd`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from ..io import ensure_dataset, folder_listing, is_dicom_file
from ..phantoms.ultrasound import synthesize_us_dataset

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["ultrasound_datalist", "ultrasound_style_datalist", "ultrasound_image_size"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".dcm", ".dicom")
# preferred order when several files share a stem
_MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".gif", ".dcm", ".jpg", ".jpeg")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a visible image file: a known image suffix, or no suffix and DICOM content."""
    if path.name.startswith(".") or not path.is_file():
        return False
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return True
    return path.suffix == "" and is_dicom_file(path)


def _stem(path: Path) -> str:
    return path.stem if path.suffix.lower() in _IMAGE_SUFFIXES else path.name


def ultrasound_image_size(path: PathLike) -> tuple[int, int, int]:
    """(rows, columns, frames) of an image file, read from its header (DICOM) or without decoding (PIL).

    Raises ``ValueError`` naming the file when it cannot be read as an image.
    """
    p = Path(path)
    if is_dicom_file(p) or p.suffix.lower() in (".dcm", ".dicom"):
        import pydicom

        try:
            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
            return int(ds.Rows), int(ds.Columns), int(ds.get("NumberOfFrames", 1) or 1)
        except Exception as e:
            raise ValueError(f"{p}: cannot read the DICOM header ({type(e).__name__}: {e}).") from e
    from PIL import Image

    try:
        with Image.open(p) as img:
            return int(img.size[1]), int(img.size[0]), int(getattr(img, "n_frames", 1))
    except Exception as e:
        raise ValueError(f"{p}: not a readable image ({type(e).__name__}: {e}); expected PNG, JPEG, BMP, TIFF, GIF or DICOM.") from e


def _find_mask(folder: Path, stem: str, suffix: str, prefer: str) -> Path | None:
    candidates = []
    for ext in (prefer,) + _MASK_SUFFIXES:
        for e in {ext, ext.upper()}:
            p = folder / f"{stem}{suffix}{e}"
            if p.is_file() and p not in candidates:
                candidates.append(p)
    if not candidates:
        bare = folder / f"{stem}{suffix}"
        if bare.is_file() and is_dicom_file(bare):
            return bare
        return None
    return candidates[0]


def ultrasound_datalist(
    root: PathLike,
    masks: PathLike | None = None,
    mask_suffix: str = "",
    require_masks: bool = True,
    check_sizes: bool = True,
    expand_frames: bool = False,
    recursive: bool = False,
) -> list[dict[str, Any]]:
    """List the ultrasound images of a folder, each with its mask when a mask folder is given.

    Args:
        root: folder of images: PNG, JPEG, BMP, TIFF, GIF, DICOM (``.dcm`` or no suffix). Hidden files
            are skipped; so are mask files when masks live in the same folder (see ``mask_suffix``).
        masks: folder of masks (a relative path is looked up in ``root`` first, then the working
            directory). ``None``: images only. May be ``root`` itself, with a non-empty ``mask_suffix``.
        mask_suffix: the mask of ``<stem>.<ext>`` is ``<stem><mask_suffix>.<any image ext>``, e.g.
            ``"_mask"`` for BUSI (``benign (1).png`` / ``benign (1)_mask.png``).
        require_masks: with ``masks`` given, raise when an image has no mask (else list it without
            ``"label"``).
        check_sizes: compare image and mask sizes (rows x columns, read from the file headers).
        expand_frames: one entry per frame of multi-frame files (``"frame": i``; read by
            :class:`~monai_ext.transforms.LoadUltrasoundd`).
        recursive: also look in sub-folders (the mask folder then mirrors the sub-folder layout).

    Returns:
        ``[{"image": abs path, "label": abs path (if any)[, "frame": i]}, ...]`` sorted by path.

    Raises:
        FileNotFoundError: ``root`` or ``masks`` missing, no images in ``root``, or (with
            ``require_masks``) images without a mask: the message lists them and the expected names.
        ValueError: a mask whose size differs from its image's, unreadable files, bad arguments.
    """
    base = Path(root).expanduser()
    if not base.exists():
        raise FileNotFoundError(f"ultrasound image folder {base} does not exist.")
    if not base.is_dir():
        raise NotADirectoryError(f"{base} is a file; expected a folder of ultrasound images (PNG/JPEG/DICOM).")
    base = base.resolve()
    mask_dir: Path | None = None
    if masks is not None:
        m = Path(masks).expanduser()
        if not m.is_absolute() and (base / m).is_dir():
            m = base / m
        if not m.exists():
            raise FileNotFoundError(f"mask folder {m} does not exist (masks for the images in {base}).")
        if not m.is_dir():
            raise NotADirectoryError(f"mask folder {m} is a file; expected a folder of masks.")
        mask_dir = m.resolve()
        if mask_dir == base and not mask_suffix:
            raise ValueError(
                f"masks is the image folder {base} itself: give mask_suffix (e.g. '_mask') to tell masks from images."
            )

    pattern = base.rglob("*") if recursive else base.iterdir()
    images = []
    for p in sorted(pattern):
        if not is_image_file(p):
            continue
        rel_parts = p.relative_to(base).parts
        if any(part.startswith(".") for part in rel_parts):
            continue
        if mask_dir is not None and mask_suffix and re.search(re.escape(mask_suffix) + r"(_\d+)?$", _stem(p)) and (
            mask_dir == base or mask_dir in p.parents or p.parent == mask_dir
        ):
            continue  # a mask beside its image (BUSI also has '<stem>_mask_1')
        if mask_dir is not None and mask_dir != base and (p.parent == mask_dir or mask_dir in p.parents):
            continue  # mask folder inside root (recursive listing)
        images.append(p)
    if not images:
        raise FileNotFoundError(
            f"no ultrasound images found in {base} (expected files ending in {', '.join(_IMAGE_SUFFIXES)} or DICOM "
            f"files without suffix). Found: {folder_listing(base)}"
        )

    entries: list[dict[str, Any]] = []
    missing: list[tuple[Path, Path]] = []
    for img in images:
        entry: dict[str, Any] = {"image": str(img)}
        if mask_dir is not None:
            sub = img.parent.relative_to(base)
            folder = mask_dir / sub
            mask = _find_mask(folder, _stem(img), mask_suffix, img.suffix.lower() or ".dcm")
            if mask is None:
                missing.append((img, folder / f"{_stem(img)}{mask_suffix}.png"))
                if require_masks:
                    continue
            else:
                entry["label"] = str(mask)
                if check_sizes:
                    ih, iw, _ = ultrasound_image_size(img)
                    mh, mw, _ = ultrasound_image_size(mask)
                    if (ih, iw) != (mh, mw):
                        raise ValueError(
                            f"mask {mask} is {mh} x {mw} (rows x columns) but its image {img} is {ih} x {iw}; "
                            "expected the mask on the image's pixel grid."
                        )
        if expand_frames:
            frames = ultrasound_image_size(img)[2]
            if frames > 1:
                entries.extend({**entry, "frame": i} for i in range(frames))
                continue
        entries.append(entry)
    if missing and require_masks:
        shown = "; ".join(f"{i.name} -> expected {m}" for i, m in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{len(missing)} of {len(images)} images in {base} have no mask in {mask_dir} (same stem"
            f"{' + ' + repr(mask_suffix) if mask_suffix else ''}, any image suffix): {shown}{more}. "
            f"Mask folder holds: {folder_listing(mask_dir)}. Use require_masks=False to list them without masks."
        )
    return entries


def ultrasound_style_datalist(
    dataset_dir: PathLike,
    synthesize_if_missing: bool = True,
    subjects: int = 40,
    styles: Sequence[str] | None = None,
    seed: int = 0,
    shape: Sequence[int] = (128, 128),
    check_files: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Training / validation / test lists of a multi-style ultrasound data set (absolute paths).

    ``dataset_dir`` holds a ``dataset.json`` as written by
    :func:`~monai_ext.phantoms.synthesize_us_dataset` (``"training"``, ``"validation"``,
    ``"test"`` lists of ``{"image", "label", "style", "subject"}``, paths relative to the folder). When the
    folder is missing or empty and ``synthesize_if_missing``, the synthetic data set (``subjects``,
    ``styles``, ``seed``, ``shape``) is generated there first.
    """
    root = Path(dataset_dir).expanduser()
    if synthesize_if_missing:
        root = ensure_dataset(
            root,
            lambda d: synthesize_us_dataset(d, subjects=subjects, styles=styles, seed=seed, shape=shape, progress=False),
            f"{subjects} synthetic ultrasound subjects",
        )
    elif root.exists() and not root.is_dir():
        raise NotADirectoryError(f"dataset_dir {root} is a file; expected a folder with a dataset.json.")
    json_path = root / "dataset.json"
    if not json_path.is_file():
        found = folder_listing(root) if root.is_dir() else "(the folder does not exist)"
        raise FileNotFoundError(
            f"{json_path} not found. Expected a folder written by monai_ext.phantoms.synthesize_us_dataset (or empty, to "
            f"generate one); for a plain folder of images use monai_ext.datalists.ultrasound_datalist. Found: {found}"
        )
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path}: malformed JSON ({e.msg} at line {e.lineno}).") from e
    out: dict[str, list[dict[str, Any]]] = {}
    for split in ("training", "validation", "test"):
        items = content.get(split)
        if not isinstance(items, list):
            raise ValueError(f"{json_path}: expected a list under {split!r}, got {type(items).__name__}.")
        resolved = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "image" not in item:
                raise ValueError(f"{json_path}: {split}[{i}] must be a dict with an 'image' path, got {item!r}.")
            entry = dict(item)
            for key in ("image", "label"):
                if key in entry:
                    p = Path(entry[key])
                    entry[key] = str(p if p.is_absolute() else (root / p).resolve())
                    if check_files and not Path(entry[key]).is_file():
                        raise FileNotFoundError(f"{json_path}: {split}[{i}] {key} {entry[key]} does not exist.")
            resolved.append(entry)
        out[split] = resolved
    return out
