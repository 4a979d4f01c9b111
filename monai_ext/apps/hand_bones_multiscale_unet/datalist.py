"""Training / validation / testing lists of the hand bone segmentation bundle.

The paper (Kayalibay et al. 2017) splits its 30 hand MR volumes into 20 training, 5 validation and 5 test
volumes. :func:`hand_bones_datalist` makes that split, deterministically, of whatever ``dataset_dir`` holds: an
MSD-style ``dataset.json`` (what :func:`monai_ext.phantoms.synthesize_hand_dataset` writes), or a folder of image /
label pairs (``imagesTr`` + ``labelsTr``, ``images`` + ``labels``, ...). When ``dataset_dir`` is missing or empty,
the embedded default, synthetic hand MR phantoms, is generated there first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...datalists.labelled_pairs import labelled_pairs_datalist
from ...datalists.msd import msd_datalist
from ...io import PathLike, ensure_dataset
from ...phantoms.hand_mri import synthesize_hand_dataset

__all__ = ["HAND_SPLIT_SEED", "hand_bones_datalist"]

#: seed of the shuffle before the split (fixed: the same folder always gives the same split)
HAND_SPLIT_SEED = 0


def _count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def hand_bones_datalist(
    dataset_dir: PathLike,
    num_val: int = 5,
    num_test: int = 5,
    synth_cases: int = 30,
    synth_seed: int = 0,
    num_train: int | None = None,
    synthesize_if_missing: bool = True,
) -> dict[str, list[dict]]:
    """``{"training": [...], "validation": [...], "testing": [...]}`` of ``dataset_dir`` (absolute paths).

    Recognised layouts, in this order: ``dataset_dir/dataset.json`` (Medical Segmentation Decathlon style; its
    ``training`` list), else image / label pair folders (:func:`monai_ext.datalists.labelled_pairs_datalist`:
    ``imagesTr``/``labelsTr``, ``images``/``labels``, NIfTI files or DICOM series folders). When ``dataset_dir`` is
    missing or empty (and ``synthesize_if_missing``), ``synth_cases`` synthetic hand MR phantoms (data seed
    ``synth_seed``) are generated there first.

    Split: the labelled cases, sorted by image path, are shuffled with the fixed seed :data:`HAND_SPLIT_SEED`; the
    first ``num_test`` are the testing list, the next ``num_val`` the validation list, the rest (or the next
    ``num_train``, when given) the training list. The paper's split of 30 volumes is 20 / 5 / 5 (the defaults).

    Raises:
        ValueError: ``num_val`` < 1, ``num_test`` < 0, ``num_train`` < 1, or too few cases for the split (the
            message names the folder and the counts).
        FileNotFoundError / NotADirectoryError: ``dataset_dir`` is missing (and not generated), a file, or holds
            no recognised data set (the message names the folder and what is in it).
    """
    n_val = _count(num_val, "num_val", 1)
    n_test = _count(num_test, "num_test", 0)
    n_train = None if num_train is None else _count(num_train, "num_train", 1)
    root = ensure_dataset(
        dataset_dir,
        lambda d: synthesize_hand_dataset(d, cases=synth_cases, seed=synth_seed),
        f"{synth_cases} synthetic hand MR phantoms (seed {synth_seed})",
        enabled=synthesize_if_missing,
    )
    if (root / "dataset.json").is_file():
        cases = msd_datalist(root / "dataset.json")["training"]
        source = f"{root / 'dataset.json'}"
    else:
        cases = labelled_pairs_datalist(root)["testing"]
        source = f"{root} (image/label folders)"
    cases = sorted(({"image": c["image"], "label": c["label"]} for c in cases), key=lambda c: str(c["image"]))
    need = n_val + n_test + (n_train or 1)
    if len(cases) < need:
        raise ValueError(
            f"{source}: {len(cases)} labelled case(s), too few for {n_test} test + {n_val} validation + "
            f"{n_train or 'at least 1'} training case(s) (lower num_val / num_test, or add cases to "
            f"{Path(root)})."
        )
    order = np.random.default_rng(HAND_SPLIT_SEED).permutation(len(cases))
    shuffled = [cases[i] for i in order]
    testing = shuffled[:n_test]
    validation = shuffled[n_test : n_test + n_val]
    rest = shuffled[n_test + n_val :]
    training = rest if n_train is None else rest[:n_train]
    return {"training": training, "validation": validation, "testing": testing}
