"""Dataset list of the Liver Tumor Segmentation benchmark (LiTS, Bilic et al. 2023) and of the Medical Segmentation
Decathlon's liver task (MSD Task03_Liver), which holds the same scans.

- LiTS: ``volume-<N>.nii`` (or ``.nii.gz``) CT volumes in HU and ``segmentation-<N>.nii`` labels, anywhere below the
  folder: the challenge's ``Training Batch 1/`` and ``Training Batch 2/`` folders, or Kaggle's ``volume_pt1/`` ...
  ``volume_pt5/`` beside ``segmentations/``; cases are paired by ``N``. Test volumes (``test-volume-<N>.nii``) are
  not listed.
- MSD Task03_Liver: ``dataset.json`` with ``imagesTr/liver_<N>.nii.gz`` and ``labelsTr/liver_<N>.nii.gz``
  (:func:`monai_ext.datalists.msd_datalist`).

Labels of both: 0 background, 1 liver, 2 tumour (:data:`LITS_LABELS`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..io import PathLike, folder_listing
from .labelled_pairs import labelled_pairs_datalist
from .msd import msd_datalist

__all__ = ["LITS_LABELS", "liver_ct_cases", "lits_datalist"]

#: label values of LiTS and MSD Task03
LITS_LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "tumour"}

_LITS_NAME = re.compile(r"^(volume|segmentation)-(\d+)\.nii(\.gz)?$")


def _scan_lits(root: Path) -> tuple[dict[int, list[Path]], dict[int, list[Path]]]:
    files: dict[str, dict[int, list[Path]]] = {"volume": {}, "segmentation": {}}
    for p in sorted(root.rglob("*.nii*")):
        m = _LITS_NAME.match(p.name)
        if m and p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            files[m.group(1)].setdefault(int(m.group(2)), []).append(p)
    return files["volume"], files["segmentation"]


def _names(paths: list[Path], root: Path, limit: int = 8) -> str:
    shown = [str(p.relative_to(root)) for p in paths[:limit]]
    return ", ".join(shown) + (f", ... ({len(paths) - limit} more)" if len(paths) > limit else "")


def lits_datalist(dataset_dir: PathLike, require_label: bool = True) -> dict[str, Any]:
    """The labelled cases of a LiTS or MSD Task03 folder, with absolute paths.

    Args:
        dataset_dir: a folder holding ``dataset.json`` (MSD Task03), or LiTS ``volume-N`` / ``segmentation-N``
            NIfTI files at any depth.
        require_label: LiTS layout: every volume needs its segmentation (``False``: volumes without one are listed
            with ``"label": None``; a segmentation without its volume is an error either way).

    Returns:
        ``{"cases": [{"image", "label", "case"}], "layout": "lits" | "msd", "labels": LITS_LABELS}``; LiTS cases
        sorted by N (``case`` ``"volume-N"``), MSD cases in the order of ``dataset.json``.

    Raises:
        FileNotFoundError: ``dataset_dir`` is missing, or holds neither layout (the message lists its content).
        ValueError: a volume without its segmentation (or the reverse), or one N with two files (``.nii`` and
            ``.nii.gz``); the message names the files.
    """
    root = Path(dataset_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset_dir {root} does not exist or is not a folder (expected LiTS volume-N.nii / "
                                "segmentation-N.nii files, or an MSD Task03 folder with dataset.json).")
    if (root / "dataset.json").is_file():
        items = msd_datalist(root)["training"]
        cases = [{"image": i["image"], "label": i["label"], "case": Path(i["image"]).name.split(".")[0]} for i in items]
        return {"cases": cases, "layout": "msd", "labels": dict(LITS_LABELS)}
    volumes, segmentations = _scan_lits(root)
    if not volumes and not segmentations:
        raise FileNotFoundError(
            f"{root}: no LiTS files (volume-N.nii[.gz] with segmentation-N.nii[.gz]) and no dataset.json (MSD "
            f"Task03). Found: {folder_listing(root)}"
        )
    repeated = [p for group in (volumes, segmentations) for paths in group.values() if len(paths) > 1 for p in paths]
    if repeated:
        raise ValueError(f"{root}: several files for one case number: {_names(repeated, root)}; keep one of each.")
    orphans = [segmentations[n][0] for n in sorted(set(segmentations) - set(volumes))]
    if orphans:
        raise ValueError(f"{root}: segmentation(s) without their volume-N file: {_names(orphans, root)}.")
    unlabelled = [volumes[n][0] for n in sorted(set(volumes) - set(segmentations))]
    if unlabelled and require_label:
        raise ValueError(
            f"{root}: volume(s) without their segmentation-N file: {_names(unlabelled, root)} "
            f"({len(volumes) - len(unlabelled)} of {len(volumes)} volumes are paired)."
        )
    cases = [{"image": str(volumes[n][0]), "label": str(segmentations[n][0]) if n in segmentations else None,
              "case": f"volume-{n}"} for n in sorted(volumes)]
    return {"cases": cases, "layout": "lits", "labels": dict(LITS_LABELS)}


def liver_ct_cases(root: PathLike) -> tuple[list[dict[str, Any]], str]:
    """The labelled liver CT cases of a folder, ``({"image", "label", ...} items, a description of the source)``:
    LiTS or MSD Task03 (:func:`lits_datalist`), else image / label folders
    (:func:`monai_ext.datalists.labelled_pairs_datalist`). When neither is there, the LiTS error (which lists the
    folder's content) is raised."""
    root = Path(root)
    try:
        return lits_datalist(root)["cases"], str(root)
    except FileNotFoundError as lits_error:
        try:
            return labelled_pairs_datalist(root)["testing"], f"{root} (image/label folders)"
        except FileNotFoundError:
            raise lits_error from None
