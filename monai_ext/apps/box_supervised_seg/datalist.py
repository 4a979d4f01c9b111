"""The cases of the box-supervised bundle: split, labelled subset and one 3D box per case.

Recognised in ``dataset_dir`` (:func:`monai_ext.datalists.liver_ct_cases`): MSD Task03_Liver (``dataset.json``) or
LiTS (``volume-N.nii`` + ``segmentation-N.nii``), else image / label folders. When ``dataset_dir`` is missing or
empty, the embedded default is generated there first: synthetic abdominal CT with liver labels
(:func:`monai_ext.phantoms.synthesize_liver_tumor_dataset`; the liver is the non-convex organ to segment) and
``boxes_3d.csv``, the tight 3D box of each liver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...datalists.case_split import split_cases
from ...datalists.lits import liver_ct_cases
from ...io import PathLike, ensure_dataset
from ...phantoms.liver_tumor_ct import synthesize_liver_tumor_dataset
from ...phantoms.seeds import check_seed
from .boxes import case_name, label_box_mm, read_box_file, write_box_file

__all__ = ["DEFAULT_BOX_FILE", "box_seg_datalist", "synthesize_box_dataset"]

#: the box file written next to the synthetic data
DEFAULT_BOX_FILE = "boxes_3d.csv"


def synthesize_box_dataset(out_dir: PathLike, cases: int = 42, seed: int = 0, shape=(96, 96, 52),
                           spacing=(4.0, 4.0, 5.0), contrast: str = "mixed") -> Path:
    """Write ``cases`` abdominal CT phantoms in the MSD Task03 layout and their 3D liver boxes (``boxes_3d.csv``)."""
    out = Path(out_dir).expanduser()
    synthesize_liver_tumor_dataset(out, cases=cases, seed=seed, shape=shape, spacing=spacing, contrast=contrast)
    labels = sorted((out / "labelsTr").glob("*.nii.gz"))
    write_box_file(out / DEFAULT_BOX_FILE, {case_name(p): label_box_mm(p) for p in labels})
    return out


def box_seg_datalist(
    dataset_dir: PathLike,
    box_file: PathLike | None = None,
    num_val: int = 4,
    num_test: int = 8,
    num_labelled: int = 10,
    split_seed: int = 0,
    synth_cases: int = 42,
    synth_seed: int = 0,
) -> dict[str, Any]:
    """``{"training", "validation", "testing"}`` lists of ``{"case", "image", "label", "box_mm", "labelled"}``.

    The cases (sorted by name, shuffled with ``split_seed``) are split by :func:`monai_ext.datalists.split_cases`.
    The first ``num_labelled`` training cases are the fully labelled ones (``labelled: True``): their masks train
    the box corrector. The labels of the other training cases stay in the list for the oracle arms of the study
    (tight boxes, full supervision) and to score the boxes, never for box-supervised training. Validation and
    testing cases are scored on their labels.

    ``box_file``: a CSV / JSON box file (:func:`read_box_file`) with a box for every training case; ``None``: the
    tight 3D box of each label (the paper's simulation), or ``dataset_dir/boxes_3d.csv`` when it exists.

    Raises:
        ValueError: bad counts, too few cases, a box file that names a case not in the data set or misses a
            training case (the message names them).
    """
    n_lab = check_seed(num_labelled, "num_labelled")
    root = ensure_dataset(
        dataset_dir, lambda d: synthesize_box_dataset(d, cases=synth_cases, seed=synth_seed),
        f"{synth_cases} synthetic abdominal CT phantoms with 3D liver boxes (seed {synth_seed})",
    ).resolve()
    pairs, _ = liver_ct_cases(root)
    cases = [{"case": case_name(c["image"]), "image": str(c["image"]), "label": str(c["label"])} for c in pairs]
    split = split_cases(cases, num_val, num_test, split_seed, root)
    training = split["training"]
    if n_lab > len(training):
        raise ValueError(f"{root}: num_labelled={n_lab} but only {len(training)} training case(s).")
    if box_file is None and (root / DEFAULT_BOX_FILE).is_file():
        box_file = root / DEFAULT_BOX_FILE
    if box_file is not None:
        boxes = read_box_file(box_file)
        known = {c["case"] for c in cases}
        unknown = sorted(set(boxes) - known)
        if unknown:
            raise ValueError(f"{box_file}: box(es) for case(s) not in {root}: {unknown[:8]}"
                             f"{' ...' if len(unknown) > 8 else ''}; the case name is the image file name without "
                             ".nii/.nii.gz.")
        missing = sorted(c["case"] for c in training if c["case"] not in boxes)
        if missing:
            raise ValueError(f"{box_file}: no box for training case(s) {missing[:8]}{' ...' if len(missing) > 8 else ''}.")
    for k, c in enumerate(training):
        c["labelled"] = k < n_lab
        c["box_mm"] = boxes.get(c["case"]) if box_file is not None else label_box_mm(c["label"])
    for c in split["validation"] + split["testing"]:
        c["labelled"] = True
    return {"training": training, "validation": split["validation"], "testing": split["testing"],
            "box_file": None if box_file is None else str(box_file)}
