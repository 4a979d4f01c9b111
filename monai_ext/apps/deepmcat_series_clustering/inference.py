"""Sorting a folder of series (the DeepMCAT use case: an uncurated archive whose DICOM tags are unreliable or, as
NIfTI, absent): every frame of a series goes through the network; the series gets the cluster and the category that
most of its frames get, and the share of its frames that agree."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ...io import PathLike, atomic_write, find_images
from ...phantoms.cardiac_mr import CMR_CATEGORIES
from ...transforms.input_checks import LoadScan
from .data import series_frames, series_name
from .network import DeepMCATNet

__all__ = ["SORTED_SERIES_COLUMNS", "sort_series"]

#: the columns of the CSV that :func:`sort_series` writes
SORTED_SERIES_COLUMNS = ("series", "image", "frames", "cluster", "category", "agreement")


@torch.no_grad()
def sort_series(dataset_dir: PathLike, network: DeepMCATNet, output_csv: PathLike,
                categories: tuple[str, ...] | list[str] = CMR_CATEGORIES, size: int = 64,
                device: torch.device | str = "cpu", progress: bool = True) -> list[dict[str, Any]]:
    """Write ``output_csv`` with one row per series in ``dataset_dir`` (a folder of NIfTI files and DICOM series
    folders, or one of them; :func:`monai_ext.io.find_images`): :data:`SORTED_SERIES_COLUMNS`. ``category`` is the
    name from ``categories`` of the network's ``cluster_category`` map, ``cluster_<id>`` where the cluster has none.
    Every series is read before anything is written: an unreadable one raises (naming it) and leaves no CSV.

    Raises:
        FileNotFoundError: ``dataset_dir`` missing or without any series.
        ValueError: a series that cannot be read as 2D frames (named); a map naming a category outside ``categories``.
    """
    mapping = network.cluster_category.cpu().numpy()
    if mapping.max() >= len(categories):
        raise ValueError(f"the model maps clusters to {mapping.max() + 1} categories but {len(categories)} names were "
                         f"given ({list(categories)}).")
    paths = find_images(dataset_dir)
    root = Path(dataset_dir).expanduser().resolve()
    network = network.to(device).eval()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    loader = LoadScan(image_only=True, ensure_channel_first=True)
    for n, path in enumerate(paths):
        frames = torch.as_tensor(series_frames(path, size, loader)).to(device)
        clusters = network.assign(frames).cpu().numpy()
        cluster, votes = Counter(clusters.tolist()).most_common(1)[0]
        cat = int(mapping[cluster])
        rows.append({"series": series_name(path, root), "image": path, "frames": len(clusters), "cluster": cluster,
                     "category": categories[cat] if cat >= 0 else f"cluster_{cluster}",
                     "agreement": round(votes / len(clusters), 4)})
        if progress and ((n + 1) % 50 == 0 or n + 1 == len(paths)):
            print(f"sorted {n + 1}/{len(paths)} series ... {time.perf_counter() - t0:.1f} s", flush=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(SORTED_SERIES_COLUMNS))
    w.writeheader()
    w.writerows(rows)
    out = Path(output_csv).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: p.write_text(buf.getvalue()))
    counts = Counter(r["category"] for r in rows)
    print(f"{len(rows)} series -> {out}: " + ", ".join(f"{c} {k}" for c, k in sorted(counts.items())), flush=True)
    return rows

