"""The one NIfTI writer of the phantom data sets: qform and sform set to the phantom's affine (code 1, scanner
coordinates), units mm, the array's dtype kept, written atomically (no half-written file on error)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ..io import atomic_write

__all__ = ["save_phantom_nifti"]


def save_phantom_nifti(data: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Write ``data`` (X, Y, Z), voxel -> world ``affine`` (4x4, mm), to ``path`` (``.nii.gz``); returns the path."""
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_data_dtype(data.dtype)
    return atomic_write(path, lambda tmp: nib.save(img, str(tmp)))
