"""Dataset list of any folder of labelled scans, to score a model on a user's own data: image/label pair folders
(nnU-Net / MSD style ``imagesTr`` + ``labelsTr``, or ``images`` + ``labels``) and TotalSegmentator subject folders
(``sXXXX/ct.nii.gz`` + ``sXXXX/segmentations/<structure>.nii.gz``), with a label mapping to the model's classes.

A bundle config uses it directly, e.g.
``"labelled": "$monai_ext.datalists.labelled_pairs_datalist(@dataset_dir, label_mapping=@label_mapping)"``, then
``"$@labelled['testing']"`` as the data and ``"$@labelled['label_mapping']"`` as the mapping of
:py:class:`monai_ext.transforms.MapLabelsd` (others -> 0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import (
    PathLike,
    find_images,
    folder_has_dicom,
    folder_listing,
    number_from_json_key,
    strip_nifti_suffix,
)

__all__ = [
    "LABEL_MAPPING_PRESETS",
    "PAIR_FOLDERS",
    "TOTALSEGMENTATOR_LUNG_LOBES",
    "TOTALSEGMENTATOR_V2_LUNG_LOBE_VALUES",
    "labelled_pairs_datalist",
    "resolve_label_mapping",
]

#: (image folder, label folder) pairs recognised, in this order; every pair present is used
PAIR_FOLDERS: tuple[tuple[str, str], ...] = (
    ("imagesTr", "labelsTr"),
    ("imagesTs", "labelsTs"),
    ("images", "labels"),
)

#: TotalSegmentator structure masks (``segmentations/<name>.nii.gz``) -> 1 left lung, 2 right lung
TOTALSEGMENTATOR_LUNG_LOBES: dict[str, int] = {
    "lung_upper_lobe_left": 1,
    "lung_lower_lobe_left": 1,
    "lung_upper_lobe_right": 2,
    "lung_middle_lobe_right": 2,
    "lung_lower_lobe_right": 2,
}

#: TotalSegmentator's combined multilabel map (v2 "total" task classes 10-14 are the lung lobes)
#: -> 1 left lung, 2 right lung; every other structure -> 0
TOTALSEGMENTATOR_V2_LUNG_LOBE_VALUES: dict[int, int] = {10: 1, 11: 1, 12: 2, 13: 2, 14: 2}

#: named label mappings, usable as ``label_mapping="<name>"``
LABEL_MAPPING_PRESETS: dict[str, dict] = {
    "totalsegmentator_lobes": TOTALSEGMENTATOR_LUNG_LOBES,
    "totalsegmentator_v2_multilabel_lobes": TOTALSEGMENTATOR_V2_LUNG_LOBE_VALUES,
}

_TS_IMAGE = "ct.nii.gz"
_TS_MASKS = "segmentations"
_NNUNET_CHANNEL = "_0000"


def resolve_label_mapping(label_mapping: str | Mapping | None) -> dict | None:
    """A label mapping as a dict: a preset name (:py:data:`LABEL_MAPPING_PRESETS`) is looked up, a dict copied,
    ``None`` and ``""`` give ``None``; keys that are strings of numbers (JSON) become numbers.

    Raises:
        ValueError: an unknown preset name or another type (the message lists the presets).
    """
    if label_mapping is None or (isinstance(label_mapping, str) and label_mapping.strip().lower() in ("", "none", "null")):
        return None
    if isinstance(label_mapping, str):
        name = label_mapping.strip()
        if name not in LABEL_MAPPING_PRESETS:
            raise ValueError(
                f"label_mapping {name!r}: no such preset; presets: {', '.join(sorted(LABEL_MAPPING_PRESETS))}; "
                "or give a dict {source value: label} (label maps) or {structure: label} (TotalSegmentator)."
            )
        return dict(LABEL_MAPPING_PRESETS[name])
    if isinstance(label_mapping, Mapping):
        return {number_from_json_key(k): v for k, v in label_mapping.items()}
    raise ValueError(
        f"label_mapping must be a preset name ({', '.join(sorted(LABEL_MAPPING_PRESETS))}), a dict or None, "
        f"got {label_mapping!r}."
    )


def _pairs(image_dir: Path, label_dir: Path) -> list[dict[str, str]]:
    """Items of one image/label folder pair, matched by name (``case_0000.nii.gz`` matches ``case.nii.gz``)."""
    labels: dict[str, Path] = {}
    for p in sorted(label_dir.iterdir()):
        stem = strip_nifti_suffix(p.name) if p.is_file() else None
        if stem is not None and not p.name.startswith("."):
            labels[stem] = p
    images: dict[str, str] = {}
    try:
        found = find_images(image_dir)
    except FileNotFoundError:
        found = []
    for f in found:
        p = Path(f)
        if p.is_file():
            stem = strip_nifti_suffix(p.name)
            if stem is None:
                continue
            if stem not in labels and stem.endswith(_NNUNET_CHANNEL) and stem[: -len(_NNUNET_CHANNEL)] in labels:
                stem = stem[: -len(_NNUNET_CHANNEL)]  # nnU-Net: <case>_0000.nii.gz, label <case>.nii.gz
            elif stem not in labels and re.fullmatch(r".+_\d{4}", stem) and stem[:-5] in labels:
                continue  # another channel (_0001, ...) of an nnU-Net multi-channel case: the CT is _0000
        else:  # a DICOM series folder: its path below image_dir names it (a/b -> "a_b")
            stem = "_".join(p.relative_to(image_dir.resolve()).parts) or p.name
        images[stem] = f
    if not images:
        raise FileNotFoundError(
            f"{image_dir}: no images found (expected NIfTI files or DICOM series folders, each with a label "
            f"of the same name in {label_dir}). Found: {folder_listing(image_dir)}"
        )
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise FileNotFoundError(
            f"{image_dir}: {len(unlabelled)} image(s) without a label in {label_dir}: {', '.join(unlabelled[:10])}"
            + (", ..." if len(unlabelled) > 10 else "")
            + f" (expected {label_dir}/<name>.nii.gz for each image <name>.nii.gz or <name>_0000.nii.gz). "
            f"Labels found: {folder_listing(label_dir)}"
        )
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise FileNotFoundError(
            f"{label_dir}: {len(orphans)} label(s) without an image in {image_dir}: {', '.join(orphans[:10])}"
            + (", ..." if len(orphans) > 10 else "")
            + f". Images found: {folder_listing(image_dir)}"
        )
    return [{"image": images[s], "label": str(labels[s].resolve())} for s in sorted(images)]


def _totalsegmentator_subjects(root: Path) -> list[Path]:
    """``root`` itself when it is one subject folder, else its sub-folders holding ``ct.nii.gz``, sorted."""
    if (root / _TS_IMAGE).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / _TS_IMAGE).is_file())


def _totalsegmentator_items(subjects: list[Path], structures: list[str]) -> list[dict[str, Any]]:
    items, problems = [], []
    for s in subjects:
        masks = s / _TS_MASKS
        if not masks.is_dir():
            problems.append(f"{s}: no {_TS_MASKS}/ folder (found: {folder_listing(s)})")
            continue
        missing = [n for n in structures if not (masks / f"{n}.nii.gz").is_file()]
        if missing:
            problems.append(f"{masks}: missing {', '.join(n + '.nii.gz' for n in missing)}")
            continue
        files = [str((masks / f"{n}.nii.gz").resolve()) for n in structures]
        items.append({"image": str((s / _TS_IMAGE).resolve()), "label": files if len(files) > 1 else files[0]})
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise FileNotFoundError(
            "TotalSegmentator subject folder(s) without the structure masks of label_mapping "
            f"({', '.join(structures)}): " + "; ".join(problems[:5]) + more
        )
    return items


def _check_shapes(items: list[dict[str, Any]]) -> None:
    """NIfTI images and their labels have the same voxel grid shape (headers only, nothing loaded)."""
    import nibabel as nib

    for item in items:
        image = Path(item["image"])
        if not image.is_file() or strip_nifti_suffix(image.name) is None:
            continue  # DICOM series: checked when loaded
        try:
            shape = tuple(nib.load(str(image)).shape[:3])
        except Exception:
            continue  # unreadable: LoadScan names it when the run reaches it
        for label in [item["label"]] if isinstance(item["label"], str) else item["label"]:
            try:
                lshape = tuple(nib.load(label).shape[:3])
            except Exception:
                continue
            if lshape != shape:
                raise ValueError(
                    f"label {label} and image {image} differ in shape: {lshape} vs {shape}; expected the label on "
                    "the image's voxel grid."
                )


def labelled_pairs_datalist(
    root: PathLike, label_mapping: str | Mapping | None = None, check_shapes: bool = True
) -> dict[str, Any]:
    """Images and labels of a folder of labelled scans, for scoring a model (absolute paths).

    Layouts recognised (the first that matches)::

        root/imagesTr/<case>.nii.gz | <case>_0000.nii.gz   root/labelsTr/<case>.nii.gz   (nnU-Net, MSD; also
        root/imagesTs/...  root/labelsTs/...   root/images/...  root/labels/...          every pair present is used)
        root/<subject>/ct.nii.gz + root/<subject>/segmentations/<structure>.nii.gz     (TotalSegmentator; root may
                                                                                      also be one subject folder)

    In pair folders an image may also be a sub-folder holding a DICOM series (its label: ``<folder name>.nii.gz``);
    other nnU-Net channels (``_0001``, ...) are left out.

    Args:
        root: the folder.
        label_mapping: how label values become the model's classes, all values not listed -> 0: a preset name
            (:py:data:`LABEL_MAPPING_PRESETS`) or a dict. Pair folders: ``{source value: class}``, ``None`` keeps
            the values. TotalSegmentator: ``{structure name: class}`` (the masks loaded), ``None`` is the preset
            ``"totalsegmentator_lobes"`` (lobes -> 1 left lung, 2 right lung).
        check_shapes: compare each NIfTI image's shape with its label's (headers only).

    Returns:
        ``{"testing": items, "layout": "pairs" | "totalsegmentator", "label_mapping": dict | None,
        "structures": [names] (TotalSegmentator) | None}``. Items are ``{"image": str, "label": str}``; for
        TotalSegmentator ``label`` is the list of structure mask files (one channel each when loaded together)
        and ``label_mapping`` maps their channel numbers 1..N to classes, as
        :py:class:`monai_ext.transforms.MapLabels` reads a mask stack.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no recognised layout (the message lists what it holds),
            an image has no label (or a label no image), a subject lacks a structure mask.
        ValueError: an unknown preset, a mapping of the wrong kind for the layout, or an image and its label
            differ in shape.
    """
    root_ = Path(root).expanduser().resolve()
    if not root_.is_dir():
        raise FileNotFoundError(f"{root_}: no such folder (expected a folder of labelled scans).")
    mapping = resolve_label_mapping(label_mapping)
    pair_dirs = [(root_ / i, root_ / lb) for i, lb in PAIR_FOLDERS if (root_ / i).is_dir() and (root_ / lb).is_dir()]
    lonely = [root_ / i for i, lb in PAIR_FOLDERS if (root_ / i).is_dir() and not (root_ / lb).is_dir()]
    if pair_dirs:
        if mapping is not None and any(not isinstance(k, (int, float)) for k in mapping):
            raise ValueError(
                f"{root_}: label maps need label_mapping {{source value: class}} with numbers as keys, got "
                f"{mapping} (structure names are for TotalSegmentator subject folders)."
            )
        items = [item for image_dir, label_dir in pair_dirs for item in _pairs(image_dir, label_dir)]
        if check_shapes:
            _check_shapes(items)
        return {"testing": items, "layout": "pairs", "label_mapping": mapping, "structures": None}
    subjects = _totalsegmentator_subjects(root_)
    if subjects:
        mapping = mapping if mapping is not None else dict(TOTALSEGMENTATOR_LUNG_LOBES)
        if not mapping or any(not isinstance(k, str) for k in mapping):
            raise ValueError(
                f"{root_}: TotalSegmentator folders need label_mapping {{structure name: class}} (e.g. the preset "
                f"'totalsegmentator_lobes'), got {mapping}."
            )
        structures = list(mapping)
        items = _totalsegmentator_items(subjects, structures)
        if check_shapes:
            _check_shapes(items)
        channel_mapping = {i + 1: mapping[name] for i, name in enumerate(structures)}
        return {"testing": items, "layout": "totalsegmentator", "label_mapping": channel_mapping, "structures": structures}
    hint = ""
    if lonely:
        hint = f" {', '.join(str(p) for p in lonely)} has no label folder beside it."
    elif folder_has_dicom(root_) or any(strip_nifti_suffix(p.name) for p in root_.iterdir() if p.is_file()):
        hint = " It holds scans but no labels: for segmentation without scoring use configs/inference.yaml."
    raise FileNotFoundError(
        f"{root_}: no labelled scans found. Expected imagesTr/ + labelsTr/ (or images/ + labels/) with matching "
        f"file names, or TotalSegmentator subject folders <subject>/{_TS_IMAGE} + <subject>/{_TS_MASKS}/"
        f"<structure>.nii.gz.{hint} Found: {folder_listing(root_)}"
    )

