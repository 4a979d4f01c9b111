"""Dataset list of LIDC-IDRI chest CT (DICOM series with their LIDC XML annotations, or a LUNA16 CSV).

The paper trains on 1200 chest CTs: 600 NLST scans without nodules and 600 LIDC-IDRI scans whose
nodules (centre and radius from the LIDC annotations) are erased first, so the GAN generates nodule-free
scans; the nodule injector needs the same centres and radii. Entries are MONAI datalist items::

    {"image": <NIfTI file or DICOM series folder>, "seriesuid": "...", "source": "LIDC-IDRI" | "NLST" | ...,
     "nodules": [{"centre_lps_mm": [x, y, z], "centre_ras_mm": [x, y, z], "diameter_mm": d,
                  "num_readers": r}, ...]}

Coordinates are world millimetres: ``centre_lps_mm`` in DICOM patient coordinates (the frame of
LIDC/LUNA16 annotations), ``centre_ras_mm`` the same point in the NIfTI/MONAI RAS frame ``(-x, -y, z)``.

- :func:`lidc_idri_datalist`: DICOM series folders with their LIDC XML annotation files
  (``LidcReadMessage``: per reader ``readingSession/unblindedReadNodule/roi`` with an ``imageZposition``,
  ``imageSOP_UID`` and an ``edgeMap`` of pixel ``xCoord``/``yCoord`` outline points), or a CSV with columns
  ``seriesuid, coordX, coordY, coordZ, diameter_mm`` (LUNA16 ``annotations.csv``, LPS mm).

CT-SGAN (Pesaranghader et al., DGM4MICCAI 2021) trains on LIDC-IDRI and NLST scans; its bundle combines this list
with :func:`monai_ext.datalists.nlst_datalist` in :func:`monai_ext.apps.ctsgan_chest_ct_synthesis.ctsgan_datalist`.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ..io import (
    PathLike,
    folder_has_dicom,
    is_dicom_file,
    strip_nifti_suffix,
)

logger = logging.getLogger(__name__)

__all__ = ["read_lidc_nodules", "lidc_idri_datalist", "lidc_xml_files"]

_LUNA_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: ET.Element | None, name: str) -> str | None:
    c = _child(el, name) if el is not None else None
    return c.text.strip() if c is not None and c.text is not None else None


def _series_geometry(series_dir: Path) -> tuple[str | None, dict[str, dict]]:
    """SeriesInstanceUID and, per SOPInstanceUID, the slice geometry (LPS mm) of a DICOM series folder."""
    import pydicom

    slices: dict[str, dict] = {}
    uid = None
    for p in sorted(series_dir.iterdir()):
        if not p.is_file() or not is_dicom_file(p):
            continue
        ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        uid = uid or str(getattr(ds, "SeriesInstanceUID", "")) or None
        try:
            ipp = np.array([float(v) for v in ds.ImagePositionPatient])
            iop = np.array([float(v) for v in ds.ImageOrientationPatient])
            spacing = np.array([float(v) for v in ds.PixelSpacing])  # (row spacing, column spacing)
        except AttributeError as e:
            raise ValueError(f"{p}: DICOM slice lacks {e.args[0]!r}; cannot place LIDC outlines in mm.") from e
        slices[str(ds.SOPInstanceUID)] = {"ipp": ipp, "row_dir": iop[:3], "col_dir": iop[3:], "spacing": spacing}
    return uid, slices


def _pixel_to_lps(points: np.ndarray, geo: dict, z: float | None) -> np.ndarray:
    """Pixel (x = column, y = row) outline points -> LPS mm on the slice described by ``geo``."""
    col, row = points[:, :1], points[:, 1:2]
    out = geo["ipp"] + col * geo["spacing"][1] * geo["row_dir"] + row * geo["spacing"][0] * geo["col_dir"]
    if z is not None and abs(geo["row_dir"][2]) < 1e-6 and abs(geo["col_dir"][2]) < 1e-6:
        out[:, 2] = z  # axial slices: LIDC's imageZposition is the slice's z
    return out


def _nearest_slice(slices: dict[str, dict], z: float) -> dict | None:
    if not slices:
        return None
    return min(slices.values(), key=lambda g: abs(float(g["ipp"][2]) - z))


def read_lidc_nodules(
    xml_path: PathLike, series_dir: PathLike | None = None, min_diameter_mm: float = 3.0,
    merge_distance_mm: float | None = None,
) -> dict[str, Any]:
    """Nodules of one LIDC-IDRI XML annotation file, merged over readers, in world millimetres.

    Each reader's ``unblindedReadNodule`` gives an outline per slice (``roi`` with ``inclusion`` TRUE); its
    centre is the mean of the per-slice outline centroids and its diameter the longest in-plane distance
    between outline points (the LIDC "longest diameter"). Nodules under 3 mm are marked by one point and get
    diameter 0 (dropped by ``min_diameter_mm``). Readings of different readers whose centres are closer than
    ``merge_distance_mm`` (default: half the larger diameter, at least 3 mm) are one nodule: mean centre and
    diameter, ``num_readers`` = how many readers marked it.

    Args:
        xml_path: the ``LidcReadMessage`` XML file.
        series_dir: the DICOM series folder (default: the XML file's folder); needed to turn pixel outlines
            into mm (``ImagePositionPatient``, ``ImageOrientationPatient``, ``PixelSpacing``).
        min_diameter_mm: readings with a smaller diameter are ignored.
        merge_distance_mm: see above.

    Returns:
        ``{"seriesuid": ..., "xml": ..., "nodules": [...]}`` (see the module docstring).

    Raises:
        FileNotFoundError: the XML file or series folder does not exist.
        ValueError: the file is not LIDC XML, or no DICOM slice matches its outlines.
    """
    xml_path = Path(xml_path).expanduser()
    if not xml_path.is_file():
        raise FileNotFoundError(f"{xml_path}: LIDC XML annotation file not found.")
    try:
        root = ET.parse(str(xml_path)).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{xml_path}: not valid XML ({e}); expected an LIDC-IDRI LidcReadMessage file.") from e
    if _local(root.tag) != "LidcReadMessage":
        raise ValueError(f"{xml_path}: root element is <{_local(root.tag)}>, expected <LidcReadMessage> (LIDC-IDRI XML).")
    seriesuid = _text(_child(root, "ResponseHeader"), "SeriesInstanceUid")
    series = Path(series_dir).expanduser() if series_dir is not None else xml_path.parent
    if not series.is_dir():
        raise FileNotFoundError(f"{series}: DICOM series folder of {xml_path.name} not found.")
    dicom_uid, slices = _series_geometry(series)
    if not slices:
        raise ValueError(f"{series}: no DICOM slices; the outlines of {xml_path.name} are in pixels of that series.")
    if seriesuid and dicom_uid and seriesuid != dicom_uid:
        raise ValueError(
            f"{xml_path.name} annotates series {seriesuid}, but {series} holds series {dicom_uid}."
        )

    readings: list[dict] = []
    for r, session in enumerate(_children(root, "readingSession")):
        for nod in _children(session, "unblindedReadNodule"):
            centroids, points_mm = [], []
            for roi in _children(nod, "roi"):
                if (_text(roi, "inclusion") or "TRUE").upper() != "TRUE":
                    continue
                pts = [(float(_text(e, "xCoord")), float(_text(e, "yCoord"))) for e in _children(roi, "edgeMap")
                       if _text(e, "xCoord") is not None and _text(e, "yCoord") is not None]
                if not pts:
                    continue
                z_txt = _text(roi, "imageZposition")
                z = float(z_txt) if z_txt is not None else None
                geo = slices.get(_text(roi, "imageSOP_UID") or "")
                if geo is None and z is not None:
                    geo = _nearest_slice(slices, z)
                if geo is None:
                    raise ValueError(f"{xml_path}: an outline of {_text(nod, 'noduleID')} matches no slice of {series}.")
                mm = _pixel_to_lps(np.asarray(pts, dtype=np.float64), geo, z)
                centroids.append(mm.mean(0))
                points_mm.append(mm)
            if not centroids:
                continue
            diam = 0.0
            for mm in points_mm:
                if len(mm) > 1:
                    d = np.sqrt(((mm[:, None, :2] - mm[None, :, :2]) ** 2).sum(-1))
                    diam = max(diam, float(d.max()))
            if diam < float(min_diameter_mm):
                continue
            readings.append({"reader": r, "centre": np.mean(centroids, 0), "diameter": diam,
                             "nodule_id": _text(nod, "noduleID")})

    # single-linkage merge of readings of the same nodule
    parent = list(range(len(readings)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(readings)):
        for j in range(i + 1, len(readings)):
            a, b = readings[i], readings[j]
            limit = merge_distance_mm if merge_distance_mm is not None else max(3.0, max(a["diameter"], b["diameter"]) / 2)
            if float(np.linalg.norm(a["centre"] - b["centre"])) <= limit:
                parent[find(j)] = find(i)
    groups: dict[int, list[dict]] = {}
    for i, rd in enumerate(readings):
        groups.setdefault(find(i), []).append(rd)
    nodules = []
    for members in groups.values():
        c = np.mean([m["centre"] for m in members], 0)
        nodules.append({
            "centre_lps_mm": [round(float(v), 3) for v in c],
            "centre_ras_mm": [round(float(-c[0]), 3), round(float(-c[1]), 3), round(float(c[2]), 3)],
            "diameter_mm": round(float(np.mean([m["diameter"] for m in members])), 3),
            "num_readers": len({m["reader"] for m in members}),
        })
    nodules.sort(key=lambda n: (n["centre_lps_mm"][2], n["centre_lps_mm"][0]))
    return {"seriesuid": seriesuid or dicom_uid, "xml": str(xml_path.resolve()), "image": str(series.resolve()),
            "nodules": nodules}


def _is_lidc_xml(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
    except OSError:
        return False
    return b"LidcReadMessage" in head


def lidc_xml_files(root: Path) -> list[Path]:
    """Every LIDC annotation XML file below ``root`` (sorted; hidden folders skipped)."""
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.lower().endswith(".xml") and _is_lidc_xml(Path(current) / f):
                found.append(Path(current) / f)
    return found


def _scans_by_seriesuid(root: Path) -> dict[str, str]:
    """seriesuid -> scan path: DICOM series folders (by their SeriesInstanceUID) and files named after the uid."""
    import pydicom

    out: dict[str, str] = {}
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        folder = Path(current)
        for f in files:
            stem = strip_nifti_suffix(f) or (f[:-4] if f.endswith(".mhd") else None)
            if stem:
                out.setdefault(stem, str((folder / f).resolve()))
        if folder_has_dicom(folder):
            first = next(p for p in sorted(folder.iterdir()) if p.is_file() and is_dicom_file(p))
            uid = str(getattr(pydicom.dcmread(str(first), stop_before_pixels=True), "SeriesInstanceUID", ""))
            if uid:
                out.setdefault(uid, str(folder.resolve()))
    return out


def _read_luna_csv(path: Path) -> dict[str, list[dict]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nodule CSV not found (expected columns {', '.join(_LUNA_COLUMNS)}).")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _LUNA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {', '.join(_LUNA_COLUMNS)} "
                             f"(LUNA16 annotations.csv), found {reader.fieldnames}.")
        out: dict[str, list[dict]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                x, y, z, d = (float(row[c]) for c in _LUNA_COLUMNS[1:])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {line}: coordinates and diameter must be numbers, got {row}.") from e
            if not all(math.isfinite(v) for v in (x, y, z, d)) or d <= 0:
                raise ValueError(f"{path}, line {line}: need finite coordinates and a diameter > 0 mm, got {row}.")
            out.setdefault(row["seriesuid"].strip(), []).append({
                "centre_lps_mm": [x, y, z], "centre_ras_mm": [-x, -y, z], "diameter_mm": d, "num_readers": None,
            })
    return out


def lidc_idri_datalist(
    root: PathLike, annotations_csv: PathLike | None = None, min_diameter_mm: float = 3.0
) -> list[dict]:
    """One datalist item per LIDC-IDRI CT series under ``root``, with its nodules.

    Without ``annotations_csv``: every LIDC XML file (recognised by its ``LidcReadMessage`` root; X-ray
    readings without CT outlines are skipped) is read with :func:`read_lidc_nodules` against the DICOM series
    in its folder (the TCIA download layout). With ``annotations_csv`` (columns ``seriesuid, coordX, coordY,
    coordZ, diameter_mm``, LPS mm, as LUNA16's ``annotations.csv``): every scan under ``root`` whose series UID
    (DICOM header, or a ``<seriesuid>.nii[.gz]``/``.mhd`` file name) appears in the CSV or not, with the CSV's
    nodules (none when absent).

    Raises:
        FileNotFoundError: ``root`` or the CSV does not exist, or ``root`` holds no LIDC scan.
        ValueError: malformed XML/CSV (the message names the file and line).
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: LIDC-IDRI folder not found (expected DICOM series folders with XML files).")
    items: list[dict] = []
    if annotations_csv is not None:
        nodules = _read_luna_csv(Path(annotations_csv).expanduser())
        scans = _scans_by_seriesuid(base)
        if not scans:
            raise FileNotFoundError(f"{base}: no DICOM series or NIfTI/MHD scans to match with {annotations_csv}.")
        unmatched = sorted(set(nodules) - set(scans))
        if unmatched:
            logger.warning(f"{len(unmatched)} series of {annotations_csv} not found under {base}: {unmatched[:3]}...")
        for uid, path in sorted(scans.items()):
            items.append({"image": path, "seriesuid": uid, "source": "LIDC-IDRI", "nodules": nodules.get(uid, [])})
        return items
    xmls = lidc_xml_files(base)
    if not xmls:
        raise FileNotFoundError(f"{base}: no LIDC XML annotation file (<LidcReadMessage>) found; pass annotations_csv "
                                f"or point root at the LIDC-IDRI download.")
    for x in xmls:
        if not folder_has_dicom(x.parent):
            logger.warning(f"{x}: no DICOM series beside it; skipped.")
            continue
        rec = read_lidc_nodules(x, min_diameter_mm=min_diameter_mm)
        items.append({"image": rec["image"], "seriesuid": rec["seriesuid"], "source": "LIDC-IDRI",
                      "nodules": rec["nodules"], "annotation": rec["xml"]})
    if not items:
        raise FileNotFoundError(f"{base}: LIDC XML files found, but none beside a DICOM series.")
    return items
