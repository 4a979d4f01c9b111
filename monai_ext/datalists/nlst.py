"""Dataset list of nodule-free chest CT scans laid out as NLST is shared: NIfTI files and/or DICOM series folders."""

from __future__ import annotations

from pathlib import Path

from ..io import PathLike, find_images

__all__ = ["nlst_datalist"]


def nlst_datalist(root: PathLike) -> list[dict]:
    """One item per nodule-free scan under ``root`` (NIfTI files and DICOM series folders, as
    :func:`monai_ext.io.find_images` finds them), source ``"NLST"`` and no nodules.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no scan.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: NLST folder not found (expected NIfTI files and/or DICOM series folders).")
    return [{"image": p, "seriesuid": Path(p).name.split(".")[0], "source": "NLST", "nodules": []}
            for p in find_images(base)]
