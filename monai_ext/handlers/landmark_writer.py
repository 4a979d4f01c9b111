"""Write the fixed set of landmarks an evaluator found per image, in world coordinates: a 3D Slicer markups file per
image (``.mrk.json``, mm; 2D images get z = 0) or, for pictures without a physical grid (PNG, JPEG, BMP), a JSON of
pixel coordinates, and one CSV of every landmark of every image."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine
from monai.data.utils import to_affine_nd

from ..datalists import LANDMARK_IMAGE_SUFFIXES
from ..io import PathLike, atomic_write, case_name, write_landmarks
from .run_collector import RunCollector

__all__ = ["LANDMARK_UNITS", "LandmarkWriter"]

LANDMARK_UNITS = ("pixel", "mm")


class LandmarkWriter(RunCollector):
    """Collect each image's ``points_key`` landmarks (``(N, D)`` or ``(1, N, D)``, in world coordinates of the
    image as loaded, e.g. through MONAI's ``ApplyTransformToPointsd``: RAS mm for NIfTI / DICOM, pixels for a PNG,
    whose affine is the identity) and at the end of the run write, each file atomically:

    - ``units="mm"``: ``output_dir/<image>.mrk.json`` (3D Slicer markups, RAS points stored as LPS); an image
      without a physical grid (no ``original_affine``: a PNG / JPEG / BMP; or a DICOM file without Pixel Spacing
      or Imager Pixel Spacing) is an error naming it, raised when it is seen, before any file is written;
    - ``units="pixel"``: the points mapped back to the file's pixel grid (the inverse of ``original_affine``
      when there is one; (x, y) = (column, row) of the picture), ``output_dir/<image>.json``
      ``{"image", "units", "landmarks": {name: [x, y]}}``;
    - ``output_dir/landmarks.csv``: ``image,landmark,x,y[,z],units``.

    Args:
        output_dir: where the files go.
        landmark_names: the N names, in the network's order.
        units: ``"mm"`` or ``"pixel"``.
        points_key, image_key: keys of the decollated engine output; the image's ``filename_or_obj`` names it.
    """

    def __init__(self, output_dir: PathLike, landmark_names: Sequence[str], units: str = "pixel",
                 points_key: str = "pred", image_key: str = "image") -> None:
        if units not in LANDMARK_UNITS:
            raise ValueError(f"units must be one of {LANDMARK_UNITS}, got {units!r}.")
        self.output_dir = Path(output_dir).expanduser()
        self.names = [str(n) for n in landmark_names]
        self.units, self.points_key, self.image_key = units, points_key, image_key
        self.rows: list[tuple[str, np.ndarray]] = []

    def _collect(self, engine: Engine) -> None:
        for item in engine.state.output:
            image = item[self.image_key]
            meta = getattr(image, "meta", {})
            source = str(meta.get("filename_or_obj", "")) or f"image_{len(self.rows):05d}"
            if self.units == "mm" and not _has_physical_grid(meta):
                raise ValueError(f"{source}: landmarks in mm need an image with a physical grid (NIfTI, DICOM with "
                                 "a pixel spacing); this one has none (a PNG / JPEG / BMP picture, or a DICOM file "
                                 "without Pixel Spacing). Ask for units 'pixel'.")
            pts = torch.as_tensor(item[self.points_key]).detach().cpu().double().numpy()
            pts = pts.reshape(-1, pts.shape[-1])
            if self.units == "pixel" and "original_affine" in meta:
                # the inverse of the map ApplyTransformToPointsd applied: the affine cut to the points' dimensions
                affine = to_affine_nd(pts.shape[1], np.asarray(torch.as_tensor(meta["original_affine"]).cpu(),
                                                               dtype=np.float64))
                pts = (np.linalg.inv(affine) @ np.c_[pts, np.ones(len(pts))].T).T[:, :-1]
            if pts.shape[0] != len(self.names):
                raise ValueError(f"{source}: {pts.shape[0]} landmarks predicted, {len(self.names)} names given.")
            self.rows.append((source, pts))

    def _write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        table = []
        dims = max((p.shape[1] for _, p in self.rows), default=2)
        for source, pts in self.rows:
            # a DICOM file is often named by its UID (dots, no extension): only a known suffix is cut off
            name = case_name(source) if source.lower().endswith(LANDMARK_IMAGE_SUFFIXES) else Path(source).name
            if self.units == "mm":
                xyz = np.pad(pts, ((0, 0), (0, 3 - pts.shape[1])))
                write_landmarks(self.output_dir / f"{name}.mrk.json", dict(zip(self.names, xyz.tolist())))
            else:
                doc = {"image": source, "units": "pixel", "landmarks": dict(zip(self.names, pts.tolist()))}
                atomic_write(self.output_dir / f"{name}.json", lambda tmp, d=doc: tmp.write_text(json.dumps(d) + "\n"))
            table += [[source, n, *[float(v) for v in p], self.units] for n, p in zip(self.names, pts)]
        header = ["image", "landmark", "x", "y", "z"][: 2 + dims] + ["units"]

        def write_csv(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(table)

        atomic_write(self.output_dir / "landmarks.csv", write_csv)


def _has_physical_grid(meta: dict) -> bool:
    """NIfTI and DICOM with a spacing: an ``original_affine``; a DICOM file (its tags in the metadata) must also
    carry a positive Pixel Spacing (0028,0030) or Imager Pixel Spacing (0018,1164), else MONAI's readers assume
    1 mm."""
    if "original_affine" not in meta:
        return False
    if not any(isinstance(k, str) and len(k) == 9 and k[4] == "|" for k in meta):
        return True
    for tag in ("0028|0030", "0018|1164"):
        try:
            spacing = [float(v) for v in str(meta.get(tag, "")).replace("\\", " ").split()]
        except ValueError:
            continue
        if len(spacing) == 2 and min(spacing) > 0:  # some writers store 0\0 for "unknown"
            return True
    return False
