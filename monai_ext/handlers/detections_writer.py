"""Write the detections an evaluator found per volume (:class:`~monai_ext.transforms.ComponentDetectionsd` rows
``x, y, z, radius_mm, score`` in world mm): one JSON file per volume and one CSV of all, at the end of the run."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine

from ..io import PathLike, atomic_write, case_name
from ..transforms import DETECTION_COLUMNS
from .run_collector import RunCollector

__all__ = ["DetectionsWriter", "detection_case_name"]

logger = logging.getLogger(__name__)


def detection_case_name(source: str) -> str:
    """The output name of an input volume: its file name without extension, or the case folder's name for a file in
    an ``orig/`` or ``pre/`` folder (the ADAM layout, where every case's image is ``<case>/orig/TOF.nii.gz``)."""
    p = Path(source)
    return p.parent.parent.name if p.parent.name in ("orig", "pre") else case_name(p)


class DetectionsWriter(RunCollector):
    """On every iteration, collect each volume's ``detections_key`` rows (K, 5); at the end of the run write
    ``output_dir/<case>.json`` (``{"image", "frame", "units", "detections": [{"centre", "radius_mm", "score"}]}``,
    highest score first) and ``output_dir/detections.csv`` (``case,image,index,x_mm,y_mm,z_mm,radius_mm,score``),
    each file atomically. ``frame`` names the world frame of the coordinates (MONAI's: RAS for NIfTI and DICOM).
    With ``label_key``, the fraction of the volume that the binary output covers goes into the JSON
    (``label_fraction``), and a warning names the volume when it exceeds ``warn_fraction``: small targets
    (aneurysms: far under 1 % of a TOF-MRA) covering more usually mean an input unlike the training data (another
    contrast or modality).

    Args:
        output_dir: where the files go.
        detections_key: key of the decollated engine output.
        image_key: whose ``filename_or_obj`` names the volume.
        frame: the world frame written into the files.
        label_key: key of the binary output map (``None``: not checked).
        warn_fraction: the covered fraction above which a warning is logged.
    """

    def __init__(self, output_dir: PathLike, detections_key: str = "detections", image_key: str = "image",
                 frame: str = "RAS", label_key: str | None = None, warn_fraction: float = 0.02) -> None:
        self.output_dir = Path(output_dir).expanduser()
        self.detections_key, self.image_key, self.frame = detections_key, image_key, frame
        self.label_key, self.warn_fraction = label_key, float(warn_fraction)
        self.rows: list[dict[str, Any]] = []

    def _collect(self, engine: Engine) -> None:
        for item in engine.state.output:
            image = item[self.image_key]
            source = str(image.meta.get("filename_or_obj", "")) if hasattr(image, "meta") else ""
            det = torch.as_tensor(item[self.detections_key]).detach().cpu().double().reshape(-1, 5).numpy()
            row: dict[str, Any] = {"source": source, "detections": det}
            if self.label_key is not None and self.label_key in item:
                row["label_fraction"] = float((torch.as_tensor(item[self.label_key]) > 0).float().mean())
                if row["label_fraction"] > self.warn_fraction:
                    logger.warning(f"{source}: the output covers {100 * row['label_fraction']:.1f} % of the volume "
                                   f"(more than {100 * self.warn_fraction:.1f} %); is the input like the training "
                                   "data (modality, contrast)?")
            self.rows.append(row)

    def _write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        table = []
        for n, row in enumerate(self.rows):
            name = detection_case_name(row["source"]) if row["source"] else f"volume_{n:05d}"
            dets = [{"centre": np.round(d[:3], 3).tolist(), "radius_mm": round(float(d[3]), 3),
                     "score": round(float(d[4]), 5)} for d in row["detections"]]
            doc = {"image": row["source"], "frame": self.frame, "units": "mm", "detections": dets}
            if "label_fraction" in row:
                doc["label_fraction"] = round(row["label_fraction"], 6)
            atomic_write(self.output_dir / f"{name}.json", lambda tmp, d=doc: tmp.write_text(json.dumps(d, indent=1) + "\n"))
            table += [{"case": name, "image": row["source"], "index": i,
                       **{c: float(v) for c, v in zip(DETECTION_COLUMNS, d)}} for i, d in enumerate(row["detections"])]

        def write_csv(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["case", "image", "index", *DETECTION_COLUMNS])
                w.writeheader()
                w.writerows(table)

        atomic_write(self.output_dir / "detections.csv", write_csv)
