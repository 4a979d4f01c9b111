"""Write a HU volume with a NIfTI (RAS) affine as a CT DICOM series (one file per axial slice).

Works with pydicom 2.4 and 3.x: the dataset is written with its file meta information and the
Explicit VR Little Endian transfer syntax; the version-specific switches (``is_little_endian`` /
``is_implicit_VR`` in 2.x, ``enforce_file_format`` vs ``write_like_original``) are chosen at run time.
"""

from __future__ import annotations

import datetime
import inspect
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

__all__ = ["write_dicom_series", "CT_IMAGE_STORAGE"]

#: SOP Class UID of CT Image Storage.
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_RESCALE_INTERCEPT = -1024

_PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])
_SAVE_PARAMS = inspect.signature(FileDataset.save_as).parameters


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    for digits in range(10, 2, -1):
        s = f"{value:.{digits}g}"
        if len(s) <= 16:
            return s
    return f"{value:.3g}"


def _uid(seed_uid: str | None, *parts: str) -> str:
    if seed_uid is None:
        return generate_uid()
    return generate_uid(entropy_srcs=[str(seed_uid), *parts])


def _save(ds: FileDataset, path: Path) -> None:
    if "enforce_file_format" in _SAVE_PARAMS:  # pydicom >= 3
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x
        ds.save_as(str(path), write_like_original=False)


def write_dicom_series(
    image_hu: np.ndarray,
    affine: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    patient_id: str = "PHANTOM",
    series_description: str = "monai_ext chest CT phantom",
    seed_uid: str | None = None,
) -> list[Path]:
    """Write ``image_hu`` as a CT series, one DICOM file per slice along the third array axis.

    Args:
        image_hu: array (i, j, k) of Hounsfield units; stored as int16 ``HU + 1024`` with
            RescaleSlope 1 and RescaleIntercept -1024 (values rounded and clipped to
            [-1024, 31743] HU).
        affine: 4x4 NIfTI voxel-to-world affine (RAS, mm) of ``image_hu``.  It is converted to DICOM
            patient coordinates (LPS): ImageOrientationPatient is the direction of i (along a row)
            and of j (down a column), ImagePositionPatient the centre of voxel (0, 0, k).
        out_dir: folder to create/fill; files are named ``IM_0001.dcm``, ``IM_0002.dcm``, ...
        patient_id: PatientID and PatientName.
        series_description: SeriesDescription.
        seed_uid: when given, every UID (study, series, frame of reference, instances) is derived
            deterministically from it, so rewriting the same case gives identical files.

    Returns:
        The paths written, in slice order (k = 0 first).
    """
    img = np.asarray(image_hu)
    if img.ndim != 3:
        raise ValueError(f"image_hu must be 3D (i, j, k), got shape {img.shape}")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {aff.shape}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir exists and is not a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)

    lps = np.diag([-1.0, -1.0, 1.0])
    cols = lps @ aff[:3, :3]  # voxel steps along i, j, k in LPS mm
    origin = lps @ aff[:3, 3]
    step = np.linalg.norm(cols, axis=0)
    if np.any(step <= 0):
        raise ValueError("affine has a zero-length axis")
    row_dir, col_dir = cols[:, 0] / step[0], cols[:, 1] / step[1]
    normal = np.cross(row_dir, col_dir)
    slice_gap = float(abs(cols[:, 2] @ normal))

    stored = np.clip(np.rint(img.astype(np.float64)) - _RESCALE_INTERCEPT, -32768, 32767).astype("<i2")
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    study_uid = _uid(seed_uid, "study")
    series_uid = _uid(seed_uid, "series")
    frame_uid = _uid(seed_uid, "frame-of-reference")
    nx, ny, nz = img.shape
    paths: list[Path] = []
    for k in range(nz):
        sop_uid = _uid(seed_uid, "instance", str(k))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        path = out / f"IM_{k + 1:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        if _PYDICOM_MAJOR < 3:  # 2.x reads the encoding from these attributes (deprecated in 3.x)
            ds.is_little_endian = True
            ds.is_implicit_VR = False
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
        ds.Modality = "CT"
        ds.Manufacturer = "monai_ext"
        ds.PatientName = patient_id
        ds.PatientID = patient_id
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = series_description
        pos = origin + cols[:, 2] * k
        ds.ImagePositionPatient = [_ds(v) for v in pos]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        ds.SliceLocation = _ds(float(pos @ normal))
        ds.SliceThickness = _ds(slice_gap)
        ds.SpacingBetweenSlices = _ds(slice_gap)
        # PixelSpacing is (between rows, between columns) = (step along j, step along i)
        ds.PixelSpacing = [_ds(step[1]), _ds(step[0])]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ny
        ds.Columns = nx
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = _ds(_RESCALE_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "-600"
        ds.WindowWidth = "1500"
        # DICOM pixel (row r, column c) is voxel (i=c, j=r)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds["PixelData"].VR = "OW"
        _save(ds, path)
        paths.append(path)
    return paths
