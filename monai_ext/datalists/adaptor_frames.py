"""Endoscopic frames with point labels in the AdaptOR 2021 layout (mitral-valve suture points, sim and intraop
domains; Zenodo record 4646979 once converted to one folder per surgery).

Layout of a root folder::

    root/<domain>/<surgery>/images/<frame>.png          RGB frames (PNG / JPEG)
    root/<domain>/<surgery>/point_labels/<frame>.json   labelme JSON: one ``point`` shape per landmark, (x, y) px

``<domain>`` is ``sim`` or ``intraop``; ``<surgery>`` a simulation or patient. A frame without a label file is
unlabelled (``points`` is ``None``). Points are (x, y) pixels of the picture, which is the index order of the array
MONAI's ``PILReader`` loads (it transposes to (W, H)), so they go into ``PointListd`` as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import PathLike, folder_listing
from .json_lists import read_json_file

__all__ = ["ADAPTOR_DOMAINS", "ADAPTOR_FRAME_SUFFIXES", "adaptor_frame_datalist", "read_labelme_points"]

ADAPTOR_DOMAINS = ("sim", "intraop")
ADAPTOR_FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_labelme_points(path: PathLike, labels: tuple[str, ...] | None = None) -> list[list[float]]:
    """The (x, y) points of the ``point`` shapes of a labelme JSON file (those whose label is in ``labels``, when
    given). Raises ``ValueError`` naming the file when it is not a labelme document or a point is malformed."""
    path = Path(path)
    doc = read_json_file(path, "point label file")
    shapes = doc.get("shapes") if isinstance(doc, dict) else None
    if not isinstance(shapes, list):
        raise ValueError(f"{path}: expected a labelme JSON document with a 'shapes' list.")
    points = []
    for i, shape in enumerate(shapes):
        if not isinstance(shape, dict) or shape.get("shape_type", "point") != "point":
            continue
        if labels is not None and shape.get("label") not in labels:
            continue
        pts = shape.get("points")
        try:
            (x, y), = pts
            points.append([float(x), float(y)])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: shape {i} is a point shape without one [x, y] point: {pts!r}.") from err
    return points


def adaptor_frame_datalist(root: PathLike, domains: tuple[str, ...] = ADAPTOR_DOMAINS,
                           labels: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """``[{"image", "points", "domain", "surgery", "frame"}]`` of every frame under ``root`` (see the module
    docstring), sorted by domain, surgery and frame. Raises ``FileNotFoundError`` naming what is there when no frame
    is found, and ``ValueError`` for an unknown domain folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset_dir {root} does not exist.")
    unknown = [d for d in domains if d not in ADAPTOR_DOMAINS]
    if unknown:
        raise ValueError(f"unknown domain(s) {unknown}; expected {ADAPTOR_DOMAINS}.")
    items = []
    for domain in domains:
        for surgery in sorted(p for p in (root / domain).glob("*") if p.is_dir()):
            frames = sorted(p for p in (surgery / "images").glob("*") if p.suffix.lower() in ADAPTOR_FRAME_SUFFIXES)
            for frame in frames:
                label = surgery / "point_labels" / f"{frame.stem}.json"
                items.append({
                    "image": str(frame),
                    "points": read_labelme_points(label, labels) if label.is_file() else None,
                    "domain": domain, "surgery": surgery.name, "frame": frame.stem,
                })
    if not items:
        raise FileNotFoundError(f"no frames under {root}/<{'|'.join(domains)}>/<surgery>/images/; found in {root}: "
                                f"{folder_listing(root)}")
    return items
