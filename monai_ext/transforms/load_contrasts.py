"""Load the MR contrasts of one case (one file or DICOM series per contrast, or one multi-channel file) into one
channel-first image, after checking that they share one voxel grid.

MONAI's ``LoadImage`` given a list of files stacks them as channels without comparing their geometry: contrasts of
different spacings are stacked voxel by voxel and contrasts of different shapes fail deep inside numpy. Here every
contrast is read by :py:class:`monai_ext.transforms.LoadScan` (NIfTI, ITK formats such as BraTS 2015's ``.mha``,
DICOM series folders) and a mismatch is an error naming both files.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from .input_checks import LoadScan, ScanInputError

__all__ = ["LoadContrasts", "LoadContrastsd", "LoadContrastsD", "LoadContrastsDict"]

PathOrPaths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def _case_name(paths: list[Path]) -> str:
    """A name for the case: ``<folder>/<common file-name prefix>`` (``BraTS_001/BraTS_001`` for
    ``BraTS_001_flair.nii.gz``, ...), or the common folder when the names share no prefix (DICOM series
    folders ``flair/``, ``t1/``, ...)."""
    parents = {p.parent for p in paths}
    prefix = os.path.commonprefix([p.name for p in paths]).rstrip("_-. ")
    if len(parents) == 1:
        (parent,) = parents
        return str(parent / prefix) if prefix else str(parent)
    return str(paths[0].parent / prefix) if prefix else str(paths[0])


class LoadContrasts(Transform):
    """Read the contrasts of one case into a ``MetaTensor`` of shape (C, H, W, D), C = number of contrasts.

    Input: a list of paths, one per contrast in channel order (NIfTI files, other ITK-readable files, DICOM
    series folders), or one path to a file that already holds all contrasts as channels (e.g. a 4D NIfTI of the
    Medical Segmentation Decathlon's brain-tumour task, FLAIR, T1, T1-Gd, T2).

    Checks (a :py:class:`ScanInputError` naming the files otherwise):

    - a list has one path per name of ``contrasts`` (when given), and every file holds a single channel;
    - all contrasts have the same spatial shape, and affines equal within ``affine_atol`` mm (same spacing,
      orientation and origin): contrasts on different grids must be registered and resampled first;
    - one multi-channel file holds ``len(contrasts)`` channels, or ``len(stacked_contrasts)`` channels of which
      the ``contrasts`` are selected.

    The output's metadata is the first contrast's, with ``filename_or_obj`` set to a name for the case (the
    common folder and file-name prefix, so that ``SaveImage`` names outputs after the case) and
    ``contrast_files`` listing the files read. Intensities as stored, ``float32``.

    Args:
        contrasts: names of the contrasts, in channel order (used in messages and to pick channels);
            ``None``: any number of contrasts, not named.
        stacked_contrasts: the channel names of a single multi-channel file, when it may hold more contrasts
            than ``contrasts`` (e.g. all four BraTS contrasts, of which a model uses two).
        affine_atol: largest allowed difference between two contrasts' affine entries (mm).
    """

    backend: list[TransformBackends] = []  # the input is file names, not array data (as MONAI's LoadImage)

    def __init__(
        self,
        contrasts: Sequence[str] | None = None,
        stacked_contrasts: Sequence[str] | None = None,
        affine_atol: float = 0.05,
    ) -> None:
        self.contrasts = None if contrasts is None else [str(c) for c in contrasts]
        self.stacked_contrasts = None if stacked_contrasts is None else [str(c) for c in stacked_contrasts]
        if self.contrasts is not None and self.stacked_contrasts is not None:
            unknown = [c for c in self.contrasts if c not in self.stacked_contrasts]
            if unknown:
                raise ValueError(f"contrasts {unknown} are not in stacked_contrasts {self.stacked_contrasts}.")
        self.affine_atol = float(affine_atol)
        self.loader = LoadScan(image_only=True, ensure_channel_first=True, dtype=np.float32)

    def __call__(self, paths: PathOrPaths) -> MetaTensor:
        """
        Args:
            paths: one path per contrast, or one multi-channel file.

        Returns:
            ``MetaTensor`` (C, H, W, D), float32.
        """
        if isinstance(paths, (str, os.PathLike)):
            return self._stacked(Path(paths))
        plist = [Path(p) for p in paths]
        if len(plist) == 1:
            return self._stacked(plist[0])
        expected = self.contrasts
        if expected is not None and len(plist) != len(expected):
            raise ScanInputError(
                f"{[str(p) for p in plist]}: {len(plist)} files for the contrasts {expected}; expected one file "
                "(or DICOM series folder) per contrast, in that order.",
                filename=str(plist[0]),
            )
        names = expected or [f"contrast {i}" for i in range(len(plist))]
        images = []
        for name, p in zip(names, plist):
            img = self.loader(p)
            if img.shape[0] != 1:
                raise ScanInputError(
                    f"{p} ({name}): holds {img.shape[0]} channels (shape {tuple(img.shape)}); expected one contrast "
                    "per file when a case is given as one file per contrast.",
                    filename=str(p),
                )
            images.append(img)
        self._check_same_grid(names, plist, images)
        out = MetaTensor(torch.cat([torch.as_tensor(i) for i in images], dim=0), meta=dict(images[0].meta))
        out.meta["filename_or_obj"] = _case_name(plist)
        out.meta["contrast_files"] = [str(p) for p in plist]
        return out

    def _stacked(self, path: Path) -> MetaTensor:
        img = self.loader(path)
        c = int(img.shape[0])
        wanted = self.contrasts
        if wanted is None or c == len(wanted):
            out = img
        elif self.stacked_contrasts is not None and c == len(self.stacked_contrasts):
            idx = [self.stacked_contrasts.index(w) for w in wanted]
            out = MetaTensor(torch.as_tensor(img)[idx], meta=dict(img.meta))
        else:
            also = (
                f" or {len(self.stacked_contrasts)} ({self.stacked_contrasts}, of which {wanted} are used)"
                if self.stacked_contrasts is not None
                else ""
            )
            raise ScanInputError(
                f"{path}: holds {c} channel(s) (shape {tuple(img.shape)}); expected {len(wanted)} ({wanted}){also}, "
                "or one file / DICOM series per contrast.",
                filename=str(path),
            )
        out.meta["contrast_files"] = [str(path)]
        return out

    def _check_same_grid(self, names: list[str], paths: list[Path], images: list[MetaTensor]) -> None:
        ref_shape, ref_affine = tuple(images[0].shape[1:]), images[0].affine.double()
        for name, p, img in zip(names[1:], paths[1:], images[1:]):
            shape = tuple(img.shape[1:])
            if shape != ref_shape:
                raise ScanInputError(
                    f"{p} ({name}) has shape {shape}, {paths[0]} ({names[0]}) has {ref_shape}; expected every "
                    "contrast of a case on one voxel grid (register and resample them to one grid first).",
                    filename=str(p),
                )
            affine = img.affine.double()
            diff = float((affine - ref_affine).abs().max())
            if diff > self.affine_atol:
                sp, ref_sp = affine[:3, :3].norm(dim=0).tolist(), ref_affine[:3, :3].norm(dim=0).tolist()
                raise ScanInputError(
                    f"{p} ({name}) and {paths[0]} ({names[0]}) have the same shape {shape} but different voxel grids: "
                    f"spacing {[round(v, 4) for v in sp]} vs {[round(v, 4) for v in ref_sp]} mm, origin "
                    f"{[round(v, 2) for v in affine[:3, 3].tolist()]} vs {[round(v, 2) for v in ref_affine[:3, 3].tolist()]}"
                    f" mm (affines differ by up to {diff:.3g} mm); expected every contrast of a case on one grid "
                    "(register and resample them first).",
                    filename=str(p),
                )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(contrasts={self.contrasts})"


class LoadContrastsd(MapTransform):
    """Dictionary-based :py:class:`LoadContrasts`: ``data[key]`` (a list of paths, one per contrast, or one
    multi-channel file) becomes the (C, H, W, D) ``MetaTensor``.

    Args:
        keys: keys holding the paths.
        contrasts, stacked_contrasts, affine_atol: see :py:class:`LoadContrasts`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = LoadContrasts.backend

    def __init__(
        self,
        keys: KeysCollection,
        contrasts: Sequence[str] | None = None,
        stacked_contrasts: Sequence[str] | None = None,
        affine_atol: float = 0.05,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadContrasts(contrasts, stacked_contrasts, affine_atol)

    def __call__(self, data: Mapping[Hashable, PathOrPaths]) -> dict[Hashable, MetaTensor]:
        """Load every ``keys`` entry of ``data``; returns a new dict (other entries unchanged)."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={tuple(self.keys)}, contrasts={self.loader.contrasts})"


LoadContrastsD = LoadContrastsDict = LoadContrastsd
