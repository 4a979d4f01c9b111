"""Load scans and check input, turning bad data into errors that name the file and what was expected.

Transforms (array version + dictionary ``...d`` version, MONAI style):

- :py:class:`LoadScan` / :py:class:`LoadScand`: MONAI's ``LoadImage`` / ``LoadImaged`` (subclasses, so
  tools that look for ``LoadImaged`` still recognise them) for a NIfTI file or a folder holding one DICOM
  series (read with MONAI's ``ITKReader``), with clear errors for missing paths, folders without DICOM
  files and corrupt or truncated files.
- :py:class:`CheckVolume` / :py:class:`CheckVolumed`: a loaded, channel-first image is a 3D volume with
  the expected number of channels (optionally: minimum size per axis, intensities in CT Hounsfield units).
- :py:class:`CheckLabel` / :py:class:`CheckLabeld`: a label is single-channel, on the image's voxel grid,
  and holds integer class indices in ``0..num_classes-1``.

Errors raised
-------------
- ``FileNotFoundError``: the path given to :py:class:`LoadScan` does not exist (the message names it).
- :py:class:`ScanInputError` (a ``ValueError``): everything else: the message starts with the file (or
  folder) name, then says what was found and what was expected; ``err.filename`` holds the file. Errors
  from the image readers (nibabel, ITK) are chained as ``__cause__``.

Inside a MONAI ``Compose`` (or a ``Dataset`` with a transform) MONAI re-raises every exception of a
transform as ``RuntimeError("applying transform <transform>")`` chained ``from`` the original error. The
traceback Python prints then holds the original error first (with the file name), followed by
``The above exception was the direct cause of the following exception:`` and the ``RuntimeError``
lines, e.g. (monai 1.6)::

    monai_ext.transforms.input_checks.ScanInputError: /data/case_03.nii.gz: cannot read this image file
    (EOFError: Compressed file ended before the end-of-stream marker was reached). Expected ...

    The above exception was the direct cause of the following exception:
    ...
    RuntimeError: applying transform LoadScand(keys=('image', 'label'))

    The above exception was the direct cause of the following exception:
    ...
    RuntimeError: applying transform <monai.transforms.compose.Compose object at 0x...>

A ``DataLoader`` worker re-raises it with that whole traceback text in its message. Code that catches the
error (a command-line entry point, say) gets the original back with :py:func:`unwrap_transform_error`;
setting the environment variable ``MONAI_DEBUG=1`` makes MONAI raise the original error unwrapped.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.data import ITKReader, MetaTensor
from monai.data.image_reader import ImageReader
from monai.data.utils import affine_to_spacing
from monai.transforms import LoadImage, LoadImaged, MapTransform, Transform
from monai.utils import (
    TransformBackends,
    convert_to_tensor,
    ensure_tuple,
    ensure_tuple_rep,
    optional_import,
)

from ..io import folder_has_dicom, folder_listing, is_dicom_file

__all__ = [
    "ScanInputError",
    "filename_of",
    "unwrap_transform_error",
    "LoadScan",
    "LoadScand",
    "LoadScanD",
    "LoadScanDict",
    "CheckVolume",
    "CheckVolumed",
    "CheckVolumeD",
    "CheckVolumeDict",
    "CheckLabel",
    "CheckLabeld",
    "CheckLabelD",
    "CheckLabelDict",
]

DEFAULT_POST_FIX = "meta_dict"  # MONAI's monai.utils.PostFix default ("<key>_meta_dict")
_EXPECTED_SCAN = "a NIfTI file (.nii/.nii.gz) or a folder holding one DICOM series"


class ScanInputError(ValueError):
    """An input scan or label is unusable. The message names the file and says what was expected.

    Args:
        message: the full message (starts with the file name).
        filename: the file or folder at fault (``None`` if the input had no file name).
    """

    def __init__(self, message: str, filename: str | None = None) -> None:
        super().__init__(message)
        self.filename = filename

    def __reduce__(self):  # keep ``filename`` when pickled (e.g. sent back from a worker process)
        return (type(self), (str(self), self.filename))


def unwrap_transform_error(exc: BaseException) -> BaseException:
    """The original error inside MONAI's ``RuntimeError("applying transform ...")`` wrappers.

    MONAI's ``apply_transform`` (used by ``Compose`` and ``Dataset``) re-raises a transform's exception as
    ``RuntimeError("applying transform <transform>")`` ``from`` it, once per nesting level. This follows
    ``__cause__`` through those wrappers and returns the innermost exception (``exc`` itself if it is
    not such a wrapper), e.g. to print a one-line message in a command-line tool::

        try:
            batch = dataset[0]
        except RuntimeError as e:
            raise SystemExit(f"error: {unwrap_transform_error(e)}") from e
    """
    seen: set[int] = set()
    while (
        isinstance(exc, RuntimeError)
        and str(exc).startswith("applying transform")
        and exc.__cause__ is not None
        and id(exc) not in seen
    ):
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


# ------------------------------------------------------------------------------------------- helpers


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def filename_of(img: Any, meta: Mapping | None = None) -> str | None:
    """``filename_or_obj`` of a MetaTensor's metadata, else of ``meta``; ``None`` if there is none."""
    for m in (getattr(img, "meta", None) if isinstance(img, MetaTensor) else None, meta):
        if isinstance(m, Mapping):
            name = m.get("filename_or_obj")
            if name is not None and f"{name}" != "":
                return f"{name}"
    return None


def _where(filename: str | None, key: Hashable | None = None) -> str:
    name = filename if filename is not None else "input array (no filename_or_obj in its metadata)"
    return f"{name} (key {key!r})" if key is not None else name


def _fmt_values(values: torch.Tensor, limit: int = 10) -> str:
    vals = values.flatten().tolist()[:limit]
    shown = ", ".join(f"{int(v)}" if float(v).is_integer() else f"{v:.6g}" for v in vals)
    return "[" + shown + (", ...]" if values.numel() > limit else "]")


# ------------------------------------------------------------------------------------------- loading


def _warn_if_slices_dropped(folder: Path, result: Any) -> None:
    """Warn when ITK read fewer slices than the folder holds DICOM files: GDCM silently skips files it
    cannot parse (e.g. truncated ones), and reads only the first series of a folder holding several."""
    meta = result.meta if isinstance(result, MetaTensor) else (result[1] if isinstance(result, tuple) else None)
    shape = meta.get("spatial_shape") if isinstance(meta, Mapping) else None
    if shape is None or len(shape) != 3:
        return
    num_slices = int(shape[-1])
    num_files = sum(1 for e in os.scandir(folder) if e.is_file() and is_dicom_file(e.path))
    if num_slices < num_files:
        warnings.warn(
            f"{folder}: read {num_slices} slice(s) but the folder holds {num_files} DICOM files: other series "
            "in the folder, or files ITK/GDCM could not parse (truncated or corrupt) were left out.",
            stacklevel=3,
        )



class LoadScan(LoadImage):
    """MONAI's :py:class:`monai.transforms.LoadImage` for a NIfTI file or a DICOM series folder, with clear errors.

    Same arguments and output as ``LoadImage`` (``image_only``, ``ensure_channel_first``, ``dtype``, ...).
    A path to a folder is read as one DICOM series with MONAI's ``ITKReader`` (unless readers were given
    explicitly); files are read by whatever ``LoadImage`` picks (``NibabelReader`` for NIfTI).
    With ``ensure_channel_first=True`` the output is a ``MetaTensor`` of shape (1, H, W, D), intensities as
    stored (Hounsfield units for CT), ``meta["filename_or_obj"]`` the path.

    Raises (the message names the path):
        FileNotFoundError: the path does not exist.
        ScanInputError: (a ``ValueError``) a folder holding no DICOM file (recognised by the 128-byte
            preamble + ``DICM``), DICOM files ITK cannot read, or a file the reader cannot read (corrupt,
            truncated, unknown format); the reader's message is included and its exception chained.

    Checks added to MONAI 1.6's ``LoadImage``, which raises for the same inputs: a missing folder ->
    ``RuntimeError`` from ITK; a truncated ``.nii.gz`` -> ``EOFError`` without file name (or nibabel's
    ``ImageFileError``); an empty folder -> ``FileNotFoundError("no DICOMs in: ...")``; a missing file
    with explicit readers -> ``RuntimeError("cannot find a suitable reader ...")``.
    """

    backend: list[TransformBackends] = []  # the input is a file name, not array data (as MONAI's LoadImage)

    def __call__(self, filename: Sequence[str | os.PathLike] | str | os.PathLike, reader: ImageReader | None = None):
        """
        Args:
            filename: a NIfTI (or other ``LoadImage``-readable) file, a DICOM series folder, or a list of
                them (stacked as channels, see ``LoadImage``).
            reader: runtime reader, as in ``LoadImage``.
        """
        names = ensure_tuple(filename)
        if not names or not all(isinstance(n, (str, os.PathLike)) for n in names):
            return super().__call__(filename, reader)  # not paths (file objects, ...): MONAI's behaviour
        paths = []
        for n in names:
            if f"{os.fspath(n)}".strip() == "":
                raise ScanInputError(f"empty file name given to {type(self).__name__} (expected {_EXPECTED_SCAN}).")
            p = Path(os.fspath(n))
            paths.append(p.expanduser() if self.expanduser else p)
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"{p}: no such file or folder (expected {_EXPECTED_SCAN}).")
        folders = [p for p in paths if p.is_dir()]
        for folder in folders:
            if not folder_has_dicom(folder):
                raise ScanInputError(
                    f"{folder}: no DICOM series found (expected a folder of DICOM files, with or without "
                    f".dcm extension, each starting with a 128-byte preamble and 'DICM'). "
                    f"Found in it: {folder_listing(folder)}",
                    filename=str(folder),
                )
        if folders and reader is None and self.auto_select:
            reader = self._series_reader()
        name = str(paths[0]) if len(paths) == 1 else str([str(p) for p in paths])
        try:
            result = super().__call__(filename, reader)
        except (ScanInputError, MemoryError):
            raise
        except Exception as e:
            if folders and isinstance(e, FileNotFoundError) and "no DICOMs" in str(e):
                raise ScanInputError(
                    f"{name}: no readable DICOM series found: the files start with the DICOM magic but "
                    f"ITK/GDCM could not parse them ({_short(e)}). Expected a folder holding one complete "
                    "DICOM series; the files may be truncated or corrupt.",
                    filename=name,
                ) from e
            kind = "DICOM series folder" if folders else "image file"
            raise ScanInputError(
                f"{name}: cannot read this {kind} ({type(e).__name__}: {_short(e)}). Expected {_EXPECTED_SCAN}; "
                "the file may be truncated, corrupt or in another format.",
                filename=name,
            ) from e
        if len(paths) == 1 and folders:
            _warn_if_slices_dropped(folders[0], result)
        return result

    def _series_reader(self) -> ImageReader:
        """The ``ITKReader`` that reads DICOM series folders (the registered one, else a new one)."""
        for r in reversed(self.readers):
            if isinstance(r, ITKReader):
                return r
        _, has_itk = optional_import("itk", allow_namespace_pkg=True)
        if not has_itk:
            raise ScanInputError("reading a DICOM series folder needs the 'itk' package (pip install itk).")
        reader = ITKReader()
        self.readers.insert(0, reader)  # kept, but never auto-selected before MONAI's own readers
        return reader

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_only={self.image_only}, ensure_channel_first={self.ensure_channel_first})"


class LoadScand(LoadImaged):
    """Dictionary-based :py:class:`LoadScan`: MONAI's :py:class:`monai.transforms.LoadImaged` (same
    arguments) whose loader is a :py:class:`LoadScan`, so ``data[key]`` may be a NIfTI file or a DICOM
    series folder, and bad input raises ``FileNotFoundError`` / :py:class:`ScanInputError` naming the file.
    A missing key raises MONAI's ``KeyError`` unless ``allow_missing_keys``.
    """

    backend = LoadScan.backend

    def __init__(
        self,
        keys: KeysCollection,
        reader: type[ImageReader] | str | None = None,
        dtype: DtypeLike = np.float32,
        meta_keys: KeysCollection | None = None,
        meta_key_postfix: str = DEFAULT_POST_FIX,
        overwriting: bool = False,
        image_only: bool = True,
        ensure_channel_first: bool = False,
        simple_keys: bool = False,
        prune_meta_pattern: str | None = None,
        prune_meta_sep: str = ".",
        allow_missing_keys: bool = False,
        expanduser: bool = True,
        *args,
        **kwargs,
    ) -> None:
        super().__init__(
            keys,
            reader,
            dtype,
            meta_keys,
            meta_key_postfix,
            overwriting,
            image_only,
            ensure_channel_first,
            simple_keys,
            prune_meta_pattern,
            prune_meta_sep,
            allow_missing_keys,
            expanduser,
            *args,
            **kwargs,
        )
        self._loader = LoadScan(
            reader,
            image_only,
            dtype,
            ensure_channel_first,
            simple_keys,
            prune_meta_pattern,
            prune_meta_sep,
            expanduser,
            *args,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={tuple(self.keys)})"


# ------------------------------------------------------------------------------------------- checks


class CheckVolume(Transform):
    """Check that a loaded, channel-first image is a volume of the expected shape (and optionally CT in HU).

    The image passes through unchanged. Checks, in order:

    - ``ndim == 1 + spatial_dims``: shape (C, H, W, D) for 3D; a 2D image or a single slice, (1, H, W),
      fails (as does a volume loaded without ``ensure_channel_first=True``, (H, W, D));
    - ``C == num_channels`` (skipped when ``num_channels`` is ``None``);
    - every spatial size >= ``min_size`` (voxels; an int for all axes or one per axis): e.g. ``min_size=2``
      rejects a 3D array with a singleton axis such as (1, 512, 512, 1);
    - with ``hu_range_check=True``: intensities look like CT in Hounsfield units: finite, minimum at most
      ``hu_max_minimum`` (-500 HU: every CT has air, -1000 HU, or padding below it) and max - min at least
      ``hu_min_span`` (100 HU). An image already scaled to [0, 1] fails both. Note: COVID-19-CT-Seg's
      10 radiopaedia cases are stored window-levelled to [0, 255], not in HU, and fail this check.
      The message says what the values look like and suggests a rescale ``HU = stored * slope + intercept``:
      raw stored values without the DICOM rescale intercept (minimum >= 0, maximum > 1000) -> slope 1,
      intercept -1024; a window-levelled 8-bit image ([0, 255]) or an image scaled to [0, 1] -> the rescale
      that undoes the lung window W1500 L-600 (if that was the export window);
    - with ``max_anisotropy``: the voxel sizes (from a MetaTensor's affine) differ by at most this factor
      (largest / smallest), for methods that need (nearly) isotropic voxels.

    Args:
        num_channels: expected number of channels, ``None`` for any.
        spatial_dims: expected number of spatial dims.
        min_size: minimum size (voxels) per spatial axis, ``None`` for no check.
        hu_range_check: check the intensities are CT Hounsfield units.
        hu_max_minimum: the image minimum must be <= this (HU).
        hu_min_span: the image max - min must be >= this (HU).
        hu_rescale_keys: names of the two settings (slope, intercept) with which the user of a pipeline
            rescales stored values to HU before this check (e.g. ``("hu_slope", "hu_intercept")``, bundle
            config keys and so command-line options ``--hu_slope`` / ``--hu_intercept``); the HU error
            message then tells the user to set them, with suggested values. ``None``: the message says to
            give the CT in HU or to turn the check off.
        max_anisotropy: largest / smallest voxel size allowed (e.g. 1.1), ``None`` for no check; needs a
            MetaTensor (plain arrays carry no spacing and are not checked).

    Raises:
        ScanInputError: (a ``ValueError``) naming the file (``meta["filename_or_obj"]``), the shape or
            intensity range found and what was expected.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        num_channels: int | None = 1,
        spatial_dims: int = 3,
        min_size: int | Sequence[int] | None = None,
        hu_range_check: bool = False,
        hu_max_minimum: float = -500.0,
        hu_min_span: float = 100.0,
        hu_rescale_keys: Sequence[str] | None = None,
        max_anisotropy: float | None = None,
    ) -> None:
        if spatial_dims < 1:
            raise ValueError(f"spatial_dims must be >= 1, got {spatial_dims}.")
        self.num_channels = num_channels
        self.spatial_dims = spatial_dims
        self.min_size = None if min_size is None else tuple(int(s) for s in ensure_tuple_rep(min_size, spatial_dims))
        self.hu_range_check = hu_range_check
        self.hu_max_minimum = float(hu_max_minimum)
        self.hu_min_span = float(hu_min_span)
        if hu_rescale_keys is not None:
            hu_rescale_keys = tuple(str(k) for k in ensure_tuple(hu_rescale_keys))
            if len(hu_rescale_keys) != 2:
                raise ValueError(f"hu_rescale_keys must name two settings (slope, intercept), got {hu_rescale_keys}.")
        self.hu_rescale_keys = hu_rescale_keys
        if max_anisotropy is not None and not float(max_anisotropy) >= 1.0:
            raise ValueError(f"max_anisotropy must be >= 1 (largest / smallest voxel size), got {max_anisotropy!r}.")
        self.max_anisotropy = None if max_anisotropy is None else float(max_anisotropy)

    def __call__(self, img: NdarrayOrTensor, meta: Mapping | None = None) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image, shape (C, H, W, D) for 3D; a ``MetaTensor`` names its file in
                ``meta["filename_or_obj"]``.
            meta: metadata to take the file name from when ``img`` is not a ``MetaTensor``.

        Returns:
            ``img``, unchanged.
        """
        self.check(img, filename_of(img, meta))
        return img

    def check(self, img: NdarrayOrTensor, filename: str | None, key: Hashable | None = None) -> None:
        """Run the checks; ``filename`` (and ``key``) start every error message."""
        where = _where(filename, key)
        shape = tuple(int(s) for s in img.shape)
        nd, sd = len(shape), self.spatial_dims
        c = "C" if self.num_channels is None else f"C={self.num_channels}"
        expected = f"({c}, H, W, D)" if sd == 3 else f"({c}, <{sd} spatial dims>)"
        if nd != 1 + sd:
            if nd == sd:
                hint = (
                    f"{nd - 1} spatial dims: a {nd - 1}D image or a single slice (e.g. one DICOM file instead of "
                    f"the series folder), or a volume without its channel dimension"
                )
            elif nd < sd:
                hint = f"only {nd} dim(s): not a {sd}D volume"
            else:
                hint = (
                    f"{nd - 1} spatial dims: a {nd - 1}D image (e.g. a time series or several volumes in one "
                    "file), or an extra batch/channel dim"
                )
            raise ScanInputError(
                f"{where}: expected a {sd}D volume, channel first {expected}, found shape {shape} ({hint}).",
                filename=filename,
            )
        if self.num_channels is not None and shape[0] != self.num_channels:
            hint = ""
            if shape[0] > 4 and shape[-1] <= 4:
                hint = " (channels last?)"
            raise ScanInputError(
                f"{where}: expected {self.num_channels} channel(s), channel first {expected}, found {shape[0]} "
                f"in shape {shape}{hint}.",
                filename=filename,
            )
        spatial = shape[1:]
        if 0 in spatial:
            raise ScanInputError(f"{where}: empty image, shape {shape}.", filename=filename)
        if self.min_size is not None:
            small = [(ax, s, m) for ax, (s, m) in enumerate(zip(spatial, self.min_size)) if s < m]
            if small:
                desc = "; ".join(f"axis {ax} has {s} voxel(s), expected at least {m}" for ax, s, m in small)
                single = " - a single slice or 2D image, not a 3D volume" if any(s == 1 for _, s, _ in small) else ""
                raise ScanInputError(
                    f"{where}: spatial shape {spatial} too small: {desc}{single}.",
                    filename=filename,
                )
        if self.max_anisotropy is not None and isinstance(img, MetaTensor):
            sizes = np.asarray(affine_to_spacing(img.affine, r=sd), dtype=np.float64)
            if sizes.min() <= 0 or sizes.max() / sizes.min() > self.max_anisotropy:
                raise ScanInputError(
                    f"{where}: voxel sizes {', '.join(f'{v:.4g}' for v in sizes)} differ by more than a factor "
                    f"{self.max_anisotropy:g}; expected (nearly) isotropic voxels: resample the image first (e.g. "
                    "set pixdim to one isotropic voxel size).",
                    filename=filename,
                )
        if self.hu_range_check:
            t = convert_to_tensor(img, track_meta=False)
            lo, hi = float(t.min()), float(t.max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ScanInputError(
                    f"{where}: intensities contain NaN or infinite values (range [{lo}, {hi}]); expected CT in HU.",
                    filename=filename,
                )
            if hi - lo < self.hu_min_span or lo > self.hu_max_minimum:
                raise ScanInputError(
                    f"{where}: intensities in [{lo:.6g}, {hi:.6g}] do not look like CT in Hounsfield units "
                    f"(expected a minimum <= {self.hu_max_minimum:g} HU, air is about -1000 HU, and a range of at "
                    f"least {self.hu_min_span:g} HU). {self._hu_advice(lo, hi)}",
                    filename=filename,
                )

    def _hu_advice(self, lo: float, hi: float) -> str:
        """What the values look like and how to rescale them to HU (for the HU error message)."""
        w, level = 1500.0, -600.0  # the lung window: [-1350, 150] HU
        window_note = f" for an image exported with the lung window W{w:g} L{level:g} (use the window it was exported with)"
        slope: float | None = None
        intercept: float | None = None
        note = ""
        if lo >= 0.0 and hi > 1000.0:
            seen = (
                "Minimum >= 0 and maximum > 1000: these look like raw stored values without the rescale intercept "
                "(DICOM RescaleIntercept, usually -1024)."
            )
            slope, intercept = 1.0, -1024.0
        elif lo >= 0.0 and 1.0 < hi <= 255.0:
            seen = (
                "Values within [0, 255]: this looks like a window-levelled 8-bit image (as the Radiopaedia cases of "
                "COVID-19-CT-Seg), not HU."
            )
            slope, intercept, note = w / 255.0, level - w / 2.0, window_note
        elif lo >= 0.0 and hi <= 1.0:
            seen = "Values within [0, 1]: the image looks already scaled, not HU."
            slope, intercept, note = w, level - w / 2.0, window_note
        else:
            seen = "The image may be scaled or not be a CT."
        if self.hu_rescale_keys is None:
            example = f", e.g. slope {slope:.6g} and intercept {intercept:.6g}{note}" if slope is not None else ""
            return f"{seen} Give the CT in HU, or set hu_range_check=False; HU = stored * slope + intercept{example}."
        ks, ki = self.hu_rescale_keys
        example = f", e.g. --{ks} {slope:.6g} --{ki} {intercept:.6g}{note}" if slope is not None else ""
        return f"{seen} Set {ks} and {ki} to convert the stored values (HU = stored * {ks} + {ki}){example}."

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_channels={self.num_channels}, spatial_dims={self.spatial_dims})"


class CheckVolumed(MapTransform):
    """Dictionary-based :py:class:`CheckVolume`: checks ``data[key]`` for each key, data unchanged.

    The file name comes from ``data[key].meta`` (``MetaTensor``) or ``data[f"{key}_{meta_key_postfix}"]``;
    messages name the file and the key.

    Args:
        keys: keys of the images to check.
        num_channels, spatial_dims, min_size, hu_range_check, hu_max_minimum, hu_min_span, hu_rescale_keys,
            max_anisotropy: see :py:class:`CheckVolume`.
        meta_key_postfix: postfix of the metadata dict key (for non-``MetaTensor`` data).
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = CheckVolume.backend

    def __init__(
        self,
        keys: KeysCollection,
        num_channels: int | None = 1,
        spatial_dims: int = 3,
        min_size: int | Sequence[int] | None = None,
        hu_range_check: bool = False,
        hu_max_minimum: float = -500.0,
        hu_min_span: float = 100.0,
        hu_rescale_keys: Sequence[str] | None = None,
        meta_key_postfix: str = DEFAULT_POST_FIX,
        allow_missing_keys: bool = False,
        max_anisotropy: float | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.checker = CheckVolume(
            num_channels, spatial_dims, min_size, hu_range_check, hu_max_minimum, hu_min_span, hu_rescale_keys,
            max_anisotropy,
        )
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Check every ``keys`` entry of ``data``; returns a new dict holding the same objects."""
        d = dict(data)
        for key in self.key_iterator(d):
            meta = d.get(f"{key}_{self.meta_key_postfix}")
            self.checker.check(d[key], filename_of(d[key], meta), key)
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={tuple(self.keys)})"


class CheckLabel(Transform):
    """Check a segmentation label: single channel, same voxel grid as its image, integer class indices.

    The label passes through unchanged. Checks, in order:

    - shape (1, H, W, D): one channel of class indices (one-hot labels fail);
    - when an image is given: ``label.shape[1:] == image.shape[1:]`` (same spatial shape, voxels);
    - with ``check_integer``: all values are integers (a label resampled with linear interpolation fails);
    - with ``num_classes``: all values are in ``0..num_classes-1`` (e.g. ``num_classes=4``: {0, 1, 2, 3}).

    Args:
        num_classes: number of classes including background, ``None`` to skip the range check.
        check_integer: check the values are integers.
        hint: text appended to the value-range error, e.g. how a user maps other label values to these
            classes (``None``: nothing appended).

    Raises:
        ScanInputError: (a ``ValueError``) naming the label file (and the image file for a shape
            mismatch), the shapes or the offending values.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_classes: int | None = None, check_integer: bool = True, hint: str | None = None) -> None:
        if num_classes is not None and int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.check_integer = check_integer
        self.hint = hint

    def __call__(
        self,
        label: NdarrayOrTensor,
        image: NdarrayOrTensor | None = None,
        label_meta: Mapping | None = None,
        image_meta: Mapping | None = None,
    ) -> NdarrayOrTensor:
        """
        Args:
            label: channel-first label, shape (1, H, W, D).
            image: its channel-first image, shape (C, H, W, D), or ``None`` to skip the shape check.
            label_meta, image_meta: metadata to take the file names from for non-``MetaTensor`` inputs.

        Returns:
            ``label``, unchanged.
        """
        image_where = None if image is None else _where(filename_of(image, image_meta))
        self.check(label, filename_of(label, label_meta), image=image, image_where=image_where)
        return label

    def check(
        self,
        label: NdarrayOrTensor,
        filename: str | None,
        key: Hashable | None = None,
        image: NdarrayOrTensor | None = None,
        image_where: str | None = None,
    ) -> None:
        """Run the checks; ``filename`` (and ``key``) of the label and ``image_where`` (the image's file
        name) are used in the error messages."""
        where = _where(filename, key)
        shape = tuple(int(s) for s in label.shape)
        if len(shape) < 2 or shape[0] != 1:
            n = shape[0] if shape else 0
            raise ScanInputError(
                f"{where}: expected a single-channel label of class indices, channel first (1, H, W, D), found "
                f"shape {shape} ({n} channels; one-hot or multi-channel labels are not accepted, and a label "
                "without its channel dimension).",
                filename=filename,
            )
        if image is not None:
            image_spatial = tuple(int(s) for s in image.shape[1:])
            if image_spatial != shape[1:]:
                raise ScanInputError(
                    f"label {where} and image {image_where} differ in spatial shape: label {shape[1:]} vs image "
                    f"{image_spatial} (label shape {shape}, image shape {tuple(int(s) for s in image.shape)}); "
                    "expected the label on the image's voxel grid (was it made for another scan, or resampled "
                    "differently?).",
                    filename=filename,
                )
        if 0 in shape:
            return
        t = convert_to_tensor(label, track_meta=False)
        if t.dtype == torch.bool:
            t = t.to(torch.uint8)
        if self.check_integer and t.is_floating_point():
            non_int = t != torch.round(t)  # NaN counts as non-integer
            if bool(non_int.any()):
                values = torch.unique(t[non_int])
                raise ScanInputError(
                    f"{where}: label values must be integer class indices, found {int(non_int.sum())} voxel(s) with "
                    f"non-integer values, e.g. {_fmt_values(values)} (labels must be resampled with "
                    "mode='nearest').",
                    filename=filename,
                )
        if self.num_classes is not None:
            lo, hi = float(t.min()), float(t.max())
            if lo < 0 or hi > self.num_classes - 1:
                bad = (t < 0) | (t > self.num_classes - 1)
                values = torch.unique(t[bad])
                present = torch.unique(t)
                raise ScanInputError(
                    f"{where}: label values must be in {{0, ..., {self.num_classes - 1}}} (num_classes="
                    f"{self.num_classes}), found out-of-range values {_fmt_values(values)} in {int(bad.sum())} "
                    f"voxel(s); values present: {_fmt_values(present, 20)}." + (f" {self.hint}" if self.hint else ""),
                    filename=filename,
                )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"


class CheckLabeld(MapTransform):
    """Dictionary-based :py:class:`CheckLabel`: checks ``data[key]`` for each (label) key against
    ``data[image_key]``; data unchanged.

    Args:
        keys: keys of the labels to check.
        image_key: key of the image the labels belong to (spatial shape check), ``None`` to skip that check.
            A missing image key raises ``KeyError`` unless ``allow_missing_keys``.
        num_classes: number of classes including background, ``None`` to skip the value range check.
        check_integer: check the label values are integers.
        hint: text appended to the value-range error, see :py:class:`CheckLabel`.
        meta_key_postfix: postfix of the metadata dict key (for non-``MetaTensor`` data).
        allow_missing_keys: don't raise if a key (or ``image_key``) is missing.
    """

    backend = CheckLabel.backend

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str | None = "image",
        num_classes: int | None = None,
        check_integer: bool = True,
        hint: str | None = None,
        meta_key_postfix: str = DEFAULT_POST_FIX,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.checker = CheckLabel(num_classes=num_classes, check_integer=check_integer, hint=hint)
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Check every ``keys`` label of ``data``; returns a new dict holding the same objects."""
        d = dict(data)
        image, image_where = None, None
        if self.image_key is not None:
            if self.image_key in d:
                image = d[self.image_key]
                meta = d.get(f"{self.image_key}_{self.meta_key_postfix}")
                image_where = _where(filename_of(image, meta), self.image_key)
            elif not self.allow_missing_keys:
                raise KeyError(
                    f"{type(self).__name__}: image key {self.image_key!r} not in the data (keys: {list(d)}); "
                    "set image_key=None to skip the shape check."
                )
        for key in self.key_iterator(d):
            meta = d.get(f"{key}_{self.meta_key_postfix}")
            self.checker.check(d[key], filename_of(d[key], meta), key, image=image, image_where=image_where)
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={tuple(self.keys)}, image_key={self.image_key!r})"


LoadScanD = LoadScanDict = LoadScand
CheckVolumeD = CheckVolumeDict = CheckVolumed
CheckLabelD = CheckLabelDict = CheckLabeld
