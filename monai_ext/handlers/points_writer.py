"""Write the points an evaluator found per image (2D landmark detection): one labelme JSON file per image, the
format the AdaptOR annotations come in (it opens in labelme next to the image), and one CSV of every point."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine

from ..io import PathLike, atomic_write, case_name, labelme_point_file
from .run_collector import RunCollector

__all__ = ["PointsWriter"]


class PointsWriter(RunCollector):
    """On every iteration, collect each image's ``points_key`` points (``(1, K, 2)``, NaN rows skipped, index
    coordinates of the array MONAI loaded: (x, y) for a PNG read by ``PILReader``) and ``scores_key`` scores when
    present; at the end of the run write ``output_dir/<image name>.json`` (``<surgery>_<frame>.json`` for an image
    in a ``<surgery>/images/`` folder, where frame names repeat across surgeries) (labelme, one ``point`` shape per point,
    label ``label``) and ``output_dir/points.csv`` (``image,index,x,y,score``), each file atomically.

    Args:
        output_dir: where the files go.
        points_key, scores_key: keys of the decollated engine output.
        image_key: whose ``filename_or_obj`` names the image.
        label: the labelme label of every point.
    """

    def __init__(self, output_dir: PathLike, points_key: str = "pred_points", scores_key: str = "pred_scores",
                 image_key: str = "image", label: str = "suture") -> None:
        self.output_dir = Path(output_dir).expanduser()
        self.points_key, self.scores_key, self.image_key, self.label = points_key, scores_key, image_key, label
        self.rows: list[dict[str, Any]] = []

    def _collect(self, engine: Engine) -> None:
        for item in engine.state.output:
            image = item[self.image_key]
            source = image.meta.get("filename_or_obj", "") if hasattr(image, "meta") else ""
            pts = torch.as_tensor(item[self.points_key]).detach().cpu().reshape(-1, 2).numpy()
            keep = ~np.isnan(pts).any(axis=1)
            scores = item.get(self.scores_key)
            scores = (torch.as_tensor(scores).detach().cpu().reshape(-1).numpy()[keep] if scores is not None
                      else np.full(int(keep.sum()), np.nan))
            size = tuple(int(s) for s in image.shape[1:3])
            self.rows.append({"source": str(source), "points": pts[keep], "scores": scores, "size": size})

    def _write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        table = []
        for row in self.rows:
            name = _output_name(row["source"]) if row["source"] else f"image_{len(table):05d}"
            doc = labelme_point_file(row["points"], Path(row["source"]).name, *row["size"], label=self.label)
            atomic_write(self.output_dir / f"{name}.json", lambda tmp, d=doc: tmp.write_text(json.dumps(d) + "\n"))
            table += [{"image": row["source"], "index": i, "x": float(x), "y": float(y), "score": float(s)}
                      for i, ((x, y), s) in enumerate(zip(row["points"], row["scores"]))]

        def write_csv(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["image", "index", "x", "y", "score"])
                w.writeheader()
                w.writerows(table)

        atomic_write(self.output_dir / "points.csv", write_csv)


def _output_name(source: str) -> str:
    p = Path(source)
    return f"{p.parent.parent.name}_{case_name(p)}" if p.parent.name == "images" else case_name(p)
