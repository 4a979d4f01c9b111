"""Load a 2D ultrasound image (DICOM, PNG, JPEG, BMP, TIFF) as a channel-first grey image in [0, 1].

Ultrasound comes as DICOM from scanners (often RGB or palette colour, JPEG / JPEG 2000 compressed,
sometimes multi-frame cine loops) and as PNG/JPEG in public data sets (e.g. BUSI, the Kaggle nerve set,
the sources pooled by Hung & Galeotti, DGM4MICCAI 2021). :class:`LoadUltrasound` turns any of them into
the same thing: a ``MetaTensor`` of shape (1, H, W), float32 in [0, 1], rows = depth (row 0 at the probe,
the order of the stored pixel rows; note that MONAI's ``LoadImage`` returns 2D PNGs transposed, as
(W, H)). The synthetic data of :mod:`monai_ext.phantoms.ultrasound` loads the same way.

- Colour (RGB, YBR, palette colour, RGBA, palette PNG) is converted to grey with the ITU-R BT.601 luma
  weights (0.299 R + 0.587 G + 0.114 B); colour overlays (Doppler, annotations) become grey too.
- Grey values are divided by the largest value the stored bit depth allows (``BitsStored`` for DICOM,
  the mode's depth for PNG), so the machine's display grey levels are kept (``scale="minmax"`` instead
  stretches every image to [0, 1]). ``MONOCHROME1`` DICOM is inverted.
- Multi-frame files (DICOM cine loops, multi-page TIFF/GIF): one frame (``frame``, default 0), or all
  frames as channels (``frame=None``, shape (F, H, W)).
- ``crop_to_region=True`` crops a DICOM to its first tissue region (Sequence of Ultrasound Regions),
  dropping the text and scale bars around it; the region's pixel spacing (mm) goes into the metadata and
  the affine either way.
- ``label=True`` reads a mask: values unchanged (class indices), no colour conversion (an RGB mask whose
  channels differ, or a grey mask with fractional values, is an error).

Example (a real ultrasound DICOM from the ``pydicom-data`` package)::

    from pydicom.data import get_testdata_file
    img = LoadUltrasound()(get_testdata_file("US1_UNCR.dcm"))   # (1, 480, 640), RGB -> grey, [0, 1]
    loader = LoadUltrasoundd(keys=["image", "label"], label=(False, True))
    item = loader({"image": "case.png", "label": "case_mask.png"})

Errors name the file and say what was expected: ``FileNotFoundError`` for a missing path,
:class:`~monai_ext.transforms.ScanInputError` (a ``ValueError``) for unreadable files, unsupported
formats, a frame index out of range, DICOM without pixel data or whose codec is missing.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, ensure_tuple_rep

from ..io import is_dicom_file
from .input_checks import ScanInputError

__all__ = [
    "LoadUltrasound",
    "LoadUltrasoundd",
    "LoadUltrasoundD",
    "LoadUltrasoundDict",
    "read_ultrasound_image",
    "ULTRASOUND_IMAGE_SUFFIXES",
]

#: File suffixes read by :class:`LoadUltrasound` (DICOM files are also recognised without suffix).
ULTRASOUND_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".dcm", ".dicom")

_LUMA = np.array([0.299, 0.587, 0.114])
_EXPECTED = "a 2D ultrasound image: DICOM, PNG, JPEG, BMP, TIFF or GIF"


def _to_grey(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., :3].astype(np.float64) @ _LUMA).astype(np.float64)


def _read_dicom(path: str, frame: int | None, label: bool, crop_to_region: bool) -> tuple[np.ndarray, float, dict]:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as e:
        raise ScanInputError(f"{path}: cannot read this DICOM file ({type(e).__name__}: {e}).", filename=path) from e
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ScanInputError(f"{path}: DICOM file without pixel data (expected an image).", filename=path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frame is not None and not -n_frames <= int(frame) < n_frames:
        raise ScanInputError(
            f"{path}: frame {frame} requested, but the file holds {n_frames} frame(s) (expected 0..{n_frames - 1}).",
            filename=path,
        )
    try:
        if n_frames > 1 and frame is not None:  # decode only the frame asked for
            from pydicom.pixels import pixel_array

            chosen = [int(frame) % n_frames]
            frames = pixel_array(ds, index=chosen[0])[None]
        else:
            chosen = list(range(n_frames))
            frames = ds.pixel_array  # pydicom >= 3 converts YBR to RGB
            frames = frames if n_frames > 1 else frames[None]
    except Exception as e:
        raise ScanInputError(
            f"{path}: cannot decode the pixel data ({type(e).__name__}: {str(e).splitlines()[0]}). For compressed "
            "DICOM install a decoder plugin (e.g. pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg).",
            filename=path,
        ) from e
    if frames.ndim != (4 if samples > 1 else 3):
        raise ScanInputError(
            f"{path}: unexpected pixel array shape {frames.shape[1:]} for {samples} sample(s) per pixel "
            "(expected 2D frames).",
            filename=path,
        )
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    max_value = float(2**bits - 1)
    if photometric == "PALETTE COLOR" and not label:
        from pydicom.pixels import apply_color_lut

        frames = apply_color_lut(frames, ds)
        max_value = 65535.0 if frames.dtype == np.uint16 else 255.0
    if frames.ndim == 4:
        if label:
            if not np.array_equal(frames[..., 0], frames[..., 1]) or not np.array_equal(frames[..., 0], frames[..., 2]):
                raise ScanInputError(f"{path}: a colour DICOM cannot be read as a label (expected grey class indices).", filename=path)
            frames = frames[..., 0]
        else:
            frames = _to_grey(frames)
    data = frames.astype(np.float64)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1 and not label:
        data = data + 2 ** (bits - 1)
    if photometric == "MONOCHROME1" and not label:
        data = max_value - data

    meta: dict[str, Any] = {
        "modality": str(ds.get("Modality", "")),
        "color_mode": photometric,
        "num_frames": n_frames,
        "frame": chosen[0] if len(chosen) == 1 and frame is not None else -1,
    }
    spacing = None
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        tissue = [r for r in regions if int(r.get("RegionSpatialFormat", 0) or 0) == 1] or list(regions)
        region = tissue[0]
        dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
        units_cm = int(region.get("PhysicalUnitsXDirection", 0) or 0) == 3
        if dx and dy and units_cm:
            spacing = (abs(float(dy)) * 10.0, abs(float(dx)) * 10.0)  # cm -> mm, (rows, cols)
        box = [int(region.get(k, -1)) for k in ("RegionLocationMinY0", "RegionLocationMaxY1", "RegionLocationMinX0", "RegionLocationMaxX1")]
        meta["ultrasound_region"] = box
        if crop_to_region:
            y0, y1, x0, x1 = box
            if min(box) < 0 or y1 < y0 or x1 < x0:
                raise ScanInputError(f"{path}: invalid ultrasound region {box}; cannot crop to it.", filename=path)
            data = data[:, y0 : y1 + 1, x0 : x1 + 1]
    elif crop_to_region:
        raise ScanInputError(
            f"{path}: crop_to_region=True but the file has no Sequence of Ultrasound Regions (0018,6011).", filename=path
        )
    if spacing is None and "PixelSpacing" in ds:
        spacing = tuple(float(v) for v in ds.PixelSpacing[:2])
    if spacing is not None:
        meta["pixel_spacing_mm"] = spacing
    return data, max_value, meta


def _read_pil(path: str, frame: int | None, label: bool) -> tuple[np.ndarray, float, dict]:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
    except UnidentifiedImageError as e:
        raise ScanInputError(f"{path}: not a readable image file (expected {_EXPECTED}).", filename=path) from e
    except OSError as e:
        raise ScanInputError(f"{path}: cannot open this image ({e}).", filename=path) from e
    with img:
        n_frames = int(getattr(img, "n_frames", 1))
        indices = list(range(n_frames)) if frame is None else None
        if indices is None:
            if not -n_frames <= int(frame) < n_frames:
                raise ScanInputError(
                    f"{path}: frame {frame} requested, but the file holds {n_frames} frame(s) (expected 0..{n_frames - 1}).",
                    filename=path,
                )
            indices = [int(frame) % n_frames]
        mode = img.mode
        planes = []
        try:
            for i in indices:
                img.seek(i)
                planes.append(_pil_plane(img, path, label))
        except ScanInputError:
            raise
        except Exception as e:
            raise ScanInputError(f"{path}: cannot decode this image ({type(e).__name__}: {e}); the file may be truncated.", filename=path) from e
    max_value = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "1": 1.0}.get(mode, 255.0)
    data = np.stack(planes)
    if mode in ("I", "F") and not label:
        top = float(data.max()) if data.size else 1.0
        max_value = 1.0 if (mode == "F" and top <= 1.0) else (65535.0 if top <= 65535 else top)
    meta = {"modality": "", "color_mode": mode, "num_frames": n_frames, "frame": indices[0] if frame is not None else -1}
    return data.astype(np.float64), max_value, meta


def _pil_plane(img, path: str, label: bool) -> np.ndarray:
    mode = img.mode
    if label:
        arr = np.asarray(img)  # palette images: the indices are the classes
        if arr.ndim == 3:
            ch = arr[..., :3]
            if not (np.array_equal(ch[..., 0], ch[..., 1]) and np.array_equal(ch[..., 0], ch[..., 2])):
                raise ScanInputError(
                    f"{path}: a colour image ({mode}) cannot be read as a label (expected grey class indices, or a "
                    "palette PNG whose indices are the classes).",
                    filename=path,
                )
            arr = ch[..., 0]
        return arr.astype(np.float64)
    if mode in ("L", "I", "F", "1") or mode.startswith("I;16"):
        return np.asarray(img).astype(np.float64)
    if mode == "LA":
        return np.asarray(img)[..., 0].astype(np.float64)
    return _to_grey(np.asarray(img.convert("RGB")))


def read_ultrasound_image(
    path: str | os.PathLike,
    frame: int | None = 0,
    label: bool = False,
    crop_to_region: bool = False,
    scale: str = "bit_depth",
) -> tuple[np.ndarray, dict]:
    """Read an ultrasound image file: (array (F, H, W) float32, metadata dict).

    Args:
        path: DICOM (recognised by its ``DICM`` magic, any suffix) or PNG/JPEG/BMP/TIFF/GIF file.
        frame: frame of a multi-frame file (negative counts from the end); ``None``: all frames (F, H, W).
        label: read a mask: values unchanged, no colour conversion, no scaling.
        crop_to_region: DICOM only: crop to the first tissue region of the Sequence of Ultrasound Regions.
        scale: ``"bit_depth"``: divide by the largest storable value (keeps absolute grey levels),
            ``"minmax"``: stretch to [0, 1], ``"none"``: raw values.

    Returns:
        the pixel array (F, H, W) (F = 1 unless ``frame=None``), rows = depth, and metadata (the same keys
        for every file): ``filename_or_obj``, ``spatial_shape`` (H, W), ``num_frames``, ``frame`` (-1: all),
        ``pixel_spacing_mm`` (rows, cols; (1, 1) when unknown) and ``has_pixel_spacing``, ``modality``,
        ``color_mode`` (DICOM photometric interpretation or PIL mode), ``ultrasound_region`` (DICOM tissue
        region [y0, y1, x0, x1] in the stored pixels, else [-1, -1, -1, -1]).
    """
    if scale not in ("bit_depth", "minmax", "none"):
        raise ValueError(f"scale must be 'bit_depth', 'minmax' or 'none', got {scale!r}.")
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if name is None or not str(name).strip():
        raise ScanInputError(f"expected a file name of {_EXPECTED}, got {path!r}.")
    p = Path(name).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file (expected {_EXPECTED}).")
    if p.is_dir():
        raise ScanInputError(f"{p}: is a folder; expected one image file ({_EXPECTED}).", filename=str(p))
    path_s = str(p)
    if is_dicom_file(p) or p.suffix.lower() in (".dcm", ".dicom"):
        data, max_value, meta = _read_dicom(path_s, frame, label, crop_to_region)
    else:
        if crop_to_region:
            raise ScanInputError(f"{path_s}: crop_to_region needs a DICOM file (ultrasound regions).", filename=path_s)
        data, max_value, meta = _read_pil(path_s, frame, label)
    if data.ndim != 3 or min(data.shape[1:]) < 1:
        raise ScanInputError(f"{path_s}: expected 2D frames, got pixel array of shape {data.shape}.", filename=path_s)
    if label:
        if not np.array_equal(data, np.round(data)) or data.min() < 0:
            raise ScanInputError(
                f"{path_s}: label values must be non-negative integers (class indices), found values in "
                f"[{data.min():.4g}, {data.max():.4g}] with fractions.",
                filename=path_s,
            )
    elif scale == "bit_depth":
        data = np.clip(data / max_value, 0.0, 1.0)
    elif scale == "minmax":
        lo, hi = float(data.min()), float(data.max())
        data = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    meta.update({"filename_or_obj": path_s, "spatial_shape": tuple(int(s) for s in data.shape[1:])})
    # the same keys for every file, so that MONAI can collate the metadata of mixed batches
    meta["has_pixel_spacing"] = "pixel_spacing_mm" in meta
    meta.setdefault("pixel_spacing_mm", (1.0, 1.0))
    meta.setdefault("ultrasound_region", [-1, -1, -1, -1])
    return data.astype(np.float32), meta


class LoadUltrasound(Transform):
    """Load an ultrasound image file as a ``MetaTensor`` (1, H, W) float32 in [0, 1] (rows = depth).

    See :mod:`monai_ext.transforms.load_ultrasound` for the conversions (colour -> grey, bit depth,
    multi-frame, DICOM ultrasound regions).

    Args:
        frame: frame of a multi-frame file; ``None``: all frames as channels, (F, H, W).
        label: read a mask (class indices kept, no scaling); see :func:`read_ultrasound_image`.
        crop_to_region: crop DICOM to its tissue region.
        scale: ``"bit_depth"`` (default), ``"minmax"`` or ``"none"``.
        dtype: output dtype.

    The affine is diagonal with the pixel spacing in mm when the file gives one (DICOM ultrasound
    regions or PixelSpacing), else the identity; ``meta`` holds ``filename_or_obj``, ``spatial_shape``,
    ``num_frames``, ``frames`` and ``pixel_spacing_mm`` when known.
    """

    backend: list[TransformBackends] = []  # the input is a file name, not array data (as MONAI's LoadImage)

    def __init__(
        self,
        frame: int | None = 0,
        label: bool = False,
        crop_to_region: bool = False,
        scale: str = "bit_depth",
        dtype: DtypeLike = np.float32,
    ) -> None:
        if scale not in ("bit_depth", "minmax", "none"):
            raise ValueError(f"scale must be 'bit_depth', 'minmax' or 'none', got {scale!r}.")
        self.frame = frame
        self.label = bool(label)
        self.crop_to_region = bool(crop_to_region)
        self.scale = scale
        self.dtype = dtype

    def __call__(self, filename: str | os.PathLike, frame: int | None | str = "default") -> MetaTensor:
        """
        Args:
            filename: the image file.
            frame: overrides the frame given at construction (e.g. from a data list entry).
        """
        chosen = self.frame if isinstance(frame, str) and frame == "default" else frame
        data, meta = read_ultrasound_image(filename, chosen, self.label, self.crop_to_region, self.scale)
        affine = torch.eye(3, dtype=torch.float64)
        if meta["has_pixel_spacing"]:
            affine[0, 0], affine[1, 1] = meta["pixel_spacing_mm"]
        meta["original_channel_dim"] = "no_channel"
        meta["space"] = "ultrasound_image"
        return MetaTensor(torch.as_tensor(data.astype(self.dtype, copy=False)), affine=affine, meta=meta)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(frame={self.frame}, label={self.label})"


class LoadUltrasoundd(MapTransform):
    """Dictionary-based :class:`LoadUltrasound`: replaces the file name in ``data[key]`` by the image.

    Args:
        keys: keys of the file names.
        frame: default frame of multi-frame files; an entry's ``data[frame_key]`` (e.g. written by
            :func:`monai_ext.datalists.ultrasound_datalist` with ``expand_frames=True``) overrides it.
        label: per key (a bool or a sequence of bools): read as a mask.
        crop_to_region: crop DICOM to its tissue region (all keys).
        scale: grey-value scaling of non-label keys.
        frame_key: key holding the frame index of an entry (``None``: ignore).
        dtype: output dtype.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = LoadUltrasound.backend

    def __init__(
        self,
        keys: KeysCollection,
        frame: int | None = 0,
        label: bool | Sequence[bool] = False,
        crop_to_region: bool = False,
        scale: str = "bit_depth",
        frame_key: str | None = "frame",
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        labels = ensure_tuple_rep(label, len(self.keys))
        self.loaders = {
            key: LoadUltrasound(frame=frame, label=lab, crop_to_region=crop_to_region, scale=scale, dtype=dtype)
            for key, lab in zip(self.keys, labels)
        }
        self.frame_key = frame_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Load every ``keys`` file of ``data``; returns a new dict."""
        d = dict(data)
        frame: Any = "default"
        if self.frame_key is not None and self.frame_key in d and d[self.frame_key] is not None:
            frame = int(d[self.frame_key])
        for key in self.key_iterator(d):
            d[key] = self.loaders[key](d[key], frame=frame if not self.loaders[key].label else "default")
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={tuple(self.keys)})"


LoadUltrasoundD = LoadUltrasoundDict = LoadUltrasoundd
