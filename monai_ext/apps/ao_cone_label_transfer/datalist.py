"""The data of the AO label-transfer bundle, one folder (``dataset_dir``):

- ``labelled/images/<name>.nii.gz`` + ``labelled/labels/<name>.nii.gz``: single visits with instance labels (0
  background, one integer per cell): the manually marked training set, split into training and validation;
- ``pairs/<pair>_v1.nii.gz`` + ``pairs/<pair>_v2.nii.gz``: two visits of one retina, unlabelled: what the label
  transfer labels;
- ``test/images`` + ``test/labels`` (optional): held-out single visits with instance labels;
- ``dataset.json`` (optional): the synthetic set's record (the noisy test images, the pairs' true affines).

When ``dataset_dir`` is missing or empty, the embedded default is generated there first
(:func:`monai_ext.phantoms.synthesize_cone_dataset`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ...datalists.case_split import split_cases
from ...io import PathLike, ensure_dataset, folder_listing, strip_nifti_suffix
from ...phantoms.ao_cone_mosaic import synthesize_cone_dataset

__all__ = ["cone_datalist", "cone_pairs", "pseudo_label_items"]

_PAIR = re.compile(r"^(?P<pair>.+)_v(?P<visit>[12])$")


def _nifti_by_name(folder: Path) -> dict[str, str]:
    return {strip_nifti_suffix(p.name): str(p) for p in sorted(folder.iterdir()) if strip_nifti_suffix(p.name)} \
        if folder.is_dir() else {}


def _labelled_visits(images: Path, labels: Path) -> list[dict[str, Any]]:
    imgs, labs = _nifti_by_name(images), _nifti_by_name(labels)
    if not imgs:
        raise FileNotFoundError(f"{images}: no NIfTI images (*.nii.gz) found; found: {folder_listing(images)}")
    missing = sorted(set(imgs) - set(labs))
    if missing:
        raise FileNotFoundError(f"{labels}: no label file for image(s) {missing[:5]} of {images} (expected the same "
                                "file names).")
    return [{"case": k, "image": imgs[k], "label": labs[k]} for k in sorted(imgs)]


def cone_pairs(pairs_dir: PathLike) -> list[dict[str, str]]:
    """``[{"pair", "image1", "image2"}]`` of a folder of ``<pair>_v1`` / ``<pair>_v2`` NIfTI files; a pair missing
    one visit, or a file named otherwise, raises ``ValueError`` naming it."""
    folder = Path(pairs_dir)
    found: dict[str, dict[str, str]] = {}
    for name, path in _nifti_by_name(folder).items():
        m = _PAIR.match(name)
        if not m:
            raise ValueError(f"{path}: a visit file must be named <pair>_v1 or <pair>_v2 (.nii.gz).")
        found.setdefault(m["pair"], {})[f"image{m['visit']}"] = path
    for pair, visits in found.items():
        if len(visits) != 2:
            have = next(iter(visits.values()))
            raise ValueError(f"pair {pair!r} in {folder}: only {have} found; both visits (_v1 and _v2) are needed.")
    return [{"pair": p, **found[p]} for p in sorted(found)]


def pseudo_label_items(pseudo_label_dir: PathLike, pairs_dir: PathLike) -> list[dict[str, str]]:
    """Training items ``{"image": the visit, "label": its transferred labels}`` of a label-transfer round's folder
    (``<pseudo_label_dir>/labels/<pair>_v<k>.nii.gz``, :class:`ConeLabelTransferRound`)."""
    labels = _nifti_by_name(Path(pseudo_label_dir) / "labels")
    if not labels:
        raise FileNotFoundError(f"{pseudo_label_dir}/labels: no transferred labels found (run configs/transfer.yaml).")
    images = _nifti_by_name(Path(pairs_dir))
    missing = sorted(set(labels) - set(images))
    if missing:
        raise FileNotFoundError(f"{pairs_dir}: no visit image for the transferred labels {missing[:5]}.")
    return [{"case": k, "image": images[k], "label": labels[k]} for k in sorted(labels)]


def cone_datalist(dataset_dir: PathLike, pseudo_label_dir: str = "", num_val: int = 8, split_seed: int = 0,
                  synth_labelled: int = 48, synth_pairs: int = 20, synth_test: int = 30, synth_seed: int = 0
                  ) -> dict[str, Any]:
    """``{"training", "validation", "testing", "pairs"}``: the labelled visits split into training and validation
    (``num_val``, seeded), plus the visits of a transfer round's folder (``pseudo_label_dir``, "" for none) in
    training; the test visits (``noisy``: True / False from ``dataset.json``, else None); the visit pairs."""
    root = ensure_dataset(
        dataset_dir, lambda d: synthesize_cone_dataset(d, labelled=synth_labelled, pairs=synth_pairs, test=synth_test,
                                                       seed=synth_seed),
        f"a synthetic AO cone-mosaic set ({synth_labelled} labelled visits, {synth_pairs} pairs, {synth_test} test; "
        f"seed {synth_seed})",
    ).resolve()
    split = split_cases(_labelled_visits(root / "labelled" / "images", root / "labelled" / "labels"), int(num_val), 0,
                        int(split_seed), root)
    record = json.loads((root / "dataset.json").read_text()) if (root / "dataset.json").is_file() else {}
    testing = []
    if (root / "test" / "images").is_dir():
        n_noisy = record.get("test_noisy")
        for k, item in enumerate(_labelled_visits(root / "test" / "images", root / "test" / "labels")):
            testing.append({**item, "noisy": None if n_noisy is None else k < int(n_noisy)})
    training = list(split["training"])
    if pseudo_label_dir:
        training += pseudo_label_items(pseudo_label_dir, root / "pairs")
    return {"training": training, "validation": split["validation"], "testing": testing,
            "pairs": cone_pairs(root / "pairs") if (root / "pairs").is_dir() else [], "root": str(root),
            "record": record}
