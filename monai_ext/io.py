"""File handling shared by every layer: scan discovery (NIfTI files, DICOM series folders), atomic writes, the
"generate the embedded default data into an empty ``dataset_dir``" guard, and landmark files in world coordinates
(3D Slicer markups: ``.mrk.json`` and ``.fcsv``).

This module imports nothing from the rest of ``monai_ext`` (it is the bottom layer, see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

__all__ = [
    "labelme_point_file",
    "LANDMARK_SUFFIXES",
    "read_landmarks",
    "voxel_to_world",
    "world_to_voxel",
    "write_landmarks",
    "save_weights",
    "weights_info_path",
    "NIFTI_SUFFIXES",
    "CONNECTOME_SUFFIXES",
    "PathLike",
    "atomic_directory",
    "case_name",
    "atomic_write",
    "ensure_dataset",
    "find_images",
    "folder_has_dicom",
    "folder_listing",
    "is_dicom_file",
    "number_from_json_key",
    "read_metrics_rows",
    "require_empty_folder",
    "require_file",
    "strip_nifti_suffix",
]

PathLike = Union[str, "os.PathLike[str]"]
#: landmark files: 3D Slicer markups JSON and the older markups CSV
LANDMARK_SUFFIXES = (".json", ".fcsv")
_MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
                   "markups-schema-v1.0.3.json#")
_FCSV_COLUMNS = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"
NIFTI_SUFFIXES = (".nii.gz", ".nii")
# connectivity matrices: NumPy arrays or text (comma-, tab- or space-separated) N x N tables
CONNECTOME_SUFFIXES = (".npy", ".csv", ".txt", ".tsv")

logger = logging.getLogger(__name__)


def number_from_json_key(value: Any) -> Any:
    """A number as is; a string holding a number (a JSON object key, e.g. of a label mapping given on the command
    line) as that number, int when it is whole; anything else unchanged."""
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return int(f) if f.is_integer() else f
    return value


def read_metrics_rows(path: PathLike) -> dict[str, str]:
    """``name -> value`` (text) of a metrics file as MONAI's ``MetricsSaver`` writes it: one ``name,value`` row per
    metric (tab-separated rows, as older MONAI versions wrote, are read too). The file must exist."""
    rows: dict[str, str] = {}
    with open(path, newline="") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t" if "\t" in line and "," not in line else ",")
            if len(parts) >= 2:
                rows[parts[0].strip()] = parts[1].strip()
    return rows


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it is an existing file, else raise ``FileNotFoundError`` saying what it should hold."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not found; expected {what}.")
    return p


def _temporary_sibling(path: Path, suffix: str, make: Callable[[Path], None]) -> Path:
    """A new, unique hidden sibling of ``path`` created by ``make`` (which must fail if it exists). ``make`` gets
    the default mode (0o666 / 0o777), so the umask applies as for any new file; ``mkstemp`` / ``mkdtemp`` would
    give 0600 / 0700, which another user, e.g. a MONAI Label server, could not read."""
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            make(candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path`` (same extension, ``.nii.gz`` included, so writers
    that go by it work), then rename it to ``path``: no reader sees a half-written file, and a failure leaves
    nothing behind. The file gets the permissions of a normally created one. Returns ``path``."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    tmp = _temporary_sibling(path, suffix, lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path



def weights_info_path(path: str | Path) -> Path:
    """The JSON file beside a weight file that holds its architecture and provenance (``model.pt`` -> ``model.json``)."""
    return Path(path).with_suffix(".json")


def save_weights(module: Any, path: str | Path, **info: Any) -> str:
    """Write the module's state dict to ``path`` (what MONAI's ``ckpt_export``, the Model Zoo CI and
    ``monai.bundle.load`` read as the weights of ``network_def``) and ``{"config": module.config, **info}`` to the
    JSON beside it (:func:`weights_info_path`), both atomically. ``info`` values should be plain Python types
    (others are written as text). Returns the weight file's path."""
    import json

    import torch

    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    text = json.dumps({"config": dict(getattr(module, "config", {}) or {}), **info}, indent=1, default=str)
    atomic_write(weights_info_path(path), lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return str(atomic_write(path, lambda tmp: torch.save(state, tmp)))

def _is_filled(folder: Path) -> bool:
    """``folder`` exists and is not an empty folder (a file, or a folder with something in it)."""
    return folder.exists() and (not folder.is_dir() or any(folder.iterdir()))


def require_empty_folder(folder: PathLike, what: str = "out_dir") -> Path:
    """``folder`` as a ``Path`` (``~`` expanded) when it is missing or an empty folder, for a writer that fills it
    once; ``FileExistsError`` naming it (as ``what``) otherwise."""
    out = Path(folder).expanduser()
    if _is_filled(out):
        raise FileExistsError(f"{what} {out} exists and is not an empty folder; refusing to overwrite it.")
    return out


def atomic_directory(folder: str | Path, fill: Callable[[Path], object]) -> bool:
    """Call ``fill(tmp)`` on a temporary sibling folder, then rename it to ``folder``, which may be missing or an
    empty folder (e.g. the empty ``dataset_dir`` a user made). If ``folder`` got content in the meantime (a
    concurrent writer finished first), its content is kept and ours dropped; returns whether ours was installed.
    The folder gets the permissions of a normally created one."""
    folder = Path(folder).expanduser()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(folder, "", lambda p: p.mkdir())
    try:
        fill(tmp)
        if _is_filled(folder):
            return False
        try:
            os.replace(tmp, folder)  # onto a missing or empty folder
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):  # filled by another writer since the check
                return False
            raise
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def folder_listing(folder: Path, limit: int = 20) -> str:
    """Short, sorted listing of ``folder`` for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "(cannot list it)"
    if not names:
        return "(it is empty)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def strip_nifti_suffix(name: str) -> str | None:
    """``name`` without its ``.nii.gz`` / ``.nii`` suffix, or ``None`` when it is not a NIfTI file name."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def case_name(path: PathLike) -> str:
    """The case name of a scan: a NIfTI file's name without ``.nii`` / ``.nii.gz``, a DICOM series folder's name,
    another file's name without its extension."""
    p = Path(str(path))
    nifti = strip_nifti_suffix(p.name)
    if nifti is not None:
        return nifti
    return p.name if p.is_dir() else p.stem


def is_dicom_file(path: PathLike) -> bool:
    """Whether ``path`` is a DICOM Part-10 file: a 128-byte preamble followed by the magic ``b"DICM"``.

    The extension is not looked at (DICOM files often have none). Unreadable files count as not DICOM.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def folder_has_dicom(folder: Path) -> bool:
    """Whether ``folder`` directly holds at least one DICOM file (stops at the first one found)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return False
    for entry in entries:
        try:
            if entry.is_file() and is_dicom_file(entry.path):
                return True
        except OSError:
            continue
    return False


def find_images(dataset_dir: PathLike) -> list[str]:
    """Every scan an inference run should segment in ``dataset_dir`` (absolute paths).

    - NIfTI files (``*.nii``, ``*.nii.gz``) directly in the folder, sorted by name; then
    - every folder (the folder itself and its sub-folders, recursively, hidden ones skipped) that
      directly holds DICOM files, sorted; each such folder is one scan (one DICOM series, read by
      :py:class:`monai_ext.transforms.LoadScan`). DICOM files are recognised by their 128-byte preamble
      and ``DICM`` magic, with or without a ``.dcm`` extension.

    A path to a single file (NIfTI, or anything else MONAI's ``LoadImage`` reads) is returned as
    ``[path]``, so inference can take one file or one DICOM folder as well as a folder of scans.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist, or holds neither NIfTI files nor DICOM series
            (the message names the folder and lists what is there).
    """
    root = Path(dataset_dir).expanduser().resolve()
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} does not exist (expected a NIfTI file, a DICOM series folder, or a folder of scans)."
        )
    nifti = sorted(str(p) for p in root.iterdir() if p.is_file() and strip_nifti_suffix(p.name) is not None)
    dicom_dirs: list[str] = []
    for current, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if folder_has_dicom(Path(current)):
            dicom_dirs.append(str(Path(current)))
    found = nifti + sorted(dicom_dirs)
    if not found:
        raise FileNotFoundError(
            f"{root}: no images found (expected *.nii / *.nii.gz files in it, or sub-folders holding a DICOM "
            f"series). Found: {folder_listing(root)}"
        )
    return found


def ensure_dataset(dataset_dir: PathLike, generate: Callable[[Path], object], what: str, enabled: bool = True) -> Path:
    """``dataset_dir`` as a ``Path``, after filling it with ``generate(dataset_dir)`` when it is missing or empty.

    This is the one place where a bundle's embedded default (synthetic data) is written into an empty
    ``dataset_dir``; ``what`` describes what ``generate`` writes, for the progress line. With ``enabled=False``
    nothing is generated. Raises ``NotADirectoryError`` when ``dataset_dir`` is a file and ``FileNotFoundError``
    when it does not exist (and was not generated).
    """
    root = Path(dataset_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"dataset_dir {root} is a file; expected a folder.")
    if enabled and (not root.exists() or not any(root.iterdir())):
        logger.info(f"{root} holds no data: generating {what} there.")
        print(f"monai_ext: {root} holds no data; generating {what} there.")
        generate(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset_dir {root} does not exist.")
    return root


def voxel_to_world(points: Any, affine: Any) -> np.ndarray:
    """World coordinates (N, 3), mm, of voxel coordinates ``points`` (N, 3) under the 4 x 4 voxel -> world
    ``affine`` (a NIfTI / MONAI affine: RAS)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError(f"affine must be a finite 4 x 4 matrix (voxel -> world, mm), got {affine!r}.")
    return pts @ aff[:3, :3].T + aff[:3, 3]


def world_to_voxel(points: Any, affine: Any) -> np.ndarray:
    """Voxel coordinates (N, 3) of world points (N, 3, mm) under the voxel -> world ``affine``."""
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ValueError(f"affine must be an invertible 4 x 4 matrix (voxel -> world, mm), got {affine!r}.")
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.linalg.solve(aff[:3, :3], (pts - aff[:3, 3]).T).T


def _flip_ras_lps(points: dict[str, Any]) -> dict[str, list[float]]:
    """RAS <-> LPS (the same flip both ways: x and y negated), the systems of NIfTI / MONAI and of 3D Slicer files."""
    return {name: [-float(v[0]), -float(v[1]), float(v[2])] for name, v in points.items()}


def _as_ras(points: dict[str, list[float]], system: str, p: Path, key: str) -> dict[str, list[float]]:
    if system not in ("LPS", "RAS"):
        raise ValueError(f"{p}: {key} must be LPS or RAS, got {system!r}.")
    return points if system == "RAS" else _flip_ras_lps(points)


def _check_landmarks(landmarks: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(landmarks, dict) or not landmarks:
        raise ValueError(f"{where}: landmarks must be a non-empty mapping name -> (x, y, z) in mm, got {landmarks!r}.")
    out = {}
    for name, pos in landmarks.items():
        arr = np.asarray(pos, dtype=np.float64).reshape(-1)
        if arr.shape != (3,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: landmark {name!r} must be 3 finite coordinates in mm, got {pos!r}.")
        if not isinstance(name, str) or not name or "," in name:
            raise ValueError(f"{where}: landmark names must be non-empty text without commas, got {name!r}.")
        out[name] = arr
    return out


def write_landmarks(path: PathLike, landmarks: dict[str, Any]) -> Path:
    """Write named points, world coordinates in mm (RAS, as NIfTI and MONAI affines give them), as a 3D Slicer
    markups file: ``.json`` (``.mrk.json``: markups JSON, points stored as LPS as Slicer writes them) or ``.fcsv``
    (markups CSV, LPS). Written atomically; returns the path."""
    p = Path(path).expanduser()
    pts = _check_landmarks(landmarks, str(p))
    lps = _flip_ras_lps(pts)
    if p.suffix == ".json":
        doc = {"@schema": _MARKUPS_SCHEMA, "markups": [{
            "type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm",
            "controlPoints": [{"id": str(i + 1), "label": name, "position": pos, "positionStatus": "defined"}
                              for i, (name, pos) in enumerate(lps.items())]}]}
        return atomic_write(p, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n"))
    if p.suffix == ".fcsv":
        lines = ["# Markups fiducial file version = 4.11", "# CoordinateSystem = LPS", f"# columns = {_FCSV_COLUMNS}"]
        lines += [f"{i + 1},{x!r},{y!r},{z!r},0,0,0,1,1,1,0,{name},," for i, (name, (x, y, z)) in enumerate(lps.items())]
        return atomic_write(p, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    raise ValueError(f"{p}: landmark files are {LANDMARK_SUFFIXES} (3D Slicer markups), got {p.suffix!r}.")


def _markups_json_points(p: Path) -> dict[str, list[float]]:
    try:
        doc = json.loads(p.read_text())
        markup = doc["markups"][0]
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        points = {str(c["label"]): [float(v) for v in c["position"]] for c in markup["controlPoints"]}
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{p}: not a 3D Slicer markups JSON file with control points ({type(e).__name__}: {e}).") from e
    return _as_ras(points, system, p, "coordinateSystem")


def _fcsv_points(p: Path) -> dict[str, list[float]]:
    system, points = "LPS", {}
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        if line.startswith("#"):
            if "CoordinateSystem" in line:
                value = line.split("=", 1)[-1].strip().upper()
                system = {"0": "RAS", "1": "LPS"}.get(value, value)
            continue
        if not line.strip():
            continue
        cols = line.split(",")
        try:
            xyz = [float(v) for v in cols[1:4]]
            label = cols[11] if len(cols) > 11 and cols[11] else cols[0]
        except (ValueError, IndexError) as e:
            raise ValueError(f"{p}, line {n}: expected 'id,x,y,z,...,label,...' (markups CSV), got {line!r}.") from e
        points[label] = xyz
    return _as_ras(points, system, p, "CoordinateSystem")


def read_landmarks(path: PathLike) -> dict[str, np.ndarray]:
    """Named points (RAS world coordinates, mm) of a 3D Slicer markups file (``.json`` or ``.fcsv``, LPS or RAS),
    in file order. ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or malformed."""
    p = require_file(path, f"a landmark file ({' or '.join(LANDMARK_SUFFIXES)}, 3D Slicer markups)")
    if p.suffix == ".json":
        points = _markups_json_points(p)
    elif p.suffix == ".fcsv":
        points = _fcsv_points(p)
    else:
        raise ValueError(f"{p}: landmark files are {LANDMARK_SUFFIXES} (3D Slicer markups), got {p.suffix!r}.")
    return _check_landmarks(points, str(p))


def labelme_point_file(points: Any, image_name: str, width: int, height: int, label: str = "suture") -> dict[str, Any]:
    """A labelme JSON document (the AdaptOR label format) with one ``point`` shape per (x, y) row of ``points``
    (pixels); ``width`` x ``height`` is the image's size."""
    return {
        "version": "5.0.1", "flags": {}, "imagePath": image_name, "imageData": None,
        "imageHeight": int(height), "imageWidth": int(width),
        "shapes": [{"label": label, "points": [[float(x), float(y)]], "group_id": None, "shape_type": "point",
                    "flags": {}} for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2)],
    }
