"""Training / validation / testing lists of the liver-tumour bundle.

Recognised in ``dataset_dir`` (:func:`monai_ext.datalists.lits_datalist`): LiTS (``volume-N.nii`` +
``segmentation-N.nii`` at any depth) or MSD Task03_Liver (``dataset.json``); else image / label folders
(:func:`monai_ext.datalists.labelled_pairs_datalist`: ``imagesTr``/``labelsTr``, ``images``/``labels``, ...). When
``dataset_dir`` is missing or empty, the embedded default is generated there first: synthetic abdominal CT with liver
and tumour labels (:func:`monai_ext.phantoms.synthesize_liver_tumor_dataset`).
"""

from __future__ import annotations

import numpy as np

from ...datalists.lits import liver_ct_cases
from ...io import PathLike, ensure_dataset
from ...phantoms.liver_tumor_ct import synthesize_liver_tumor_dataset
from ...phantoms.seeds import check_seed

__all__ = ["LIVER_SPLIT_SEED", "liver_tumor_datalist"]

#: seed of the shuffle before the split (fixed: the same folder always gives the same split)
LIVER_SPLIT_SEED = 0


def liver_tumor_datalist(
    dataset_dir: PathLike,
    num_val: int = 4,
    num_test: int = 8,
    num_train: int | None = None,
    synth_cases: int = 40,
    synth_seed: int = 0,
    synth_contrast: str = "mixed",
    synthesize_if_missing: bool = True,
) -> dict[str, list[dict]]:
    """``{"training": [...], "validation": [...], "testing": [...]}`` of ``dataset_dir`` (items ``{"image", "label"}``,
    absolute paths).

    Split: the labelled cases, sorted by image path, are shuffled with the fixed seed :data:`LIVER_SPLIT_SEED`; the
    first ``num_test`` are the testing list, the next ``num_val`` the validation list, the rest (or the next
    ``num_train``) the training list. When ``dataset_dir`` is missing or empty (and ``synthesize_if_missing``),
    ``synth_cases`` phantoms (data seed ``synth_seed``, contrast phase ``synth_contrast``) are generated there first.

    Raises:
        ValueError: bad counts, too few cases for the split, or unpaired LiTS files (the message names the folder or
            the files).
        FileNotFoundError / NotADirectoryError: ``dataset_dir`` is missing (and not generated), a file, or holds no
            recognised data set (the message lists its content).
    """
    n_val, n_test = check_seed(num_val, "num_val"), check_seed(num_test, "num_test")
    n_train = None if num_train is None else check_seed(num_train, "num_train")
    if n_val < 1 or n_train == 0:
        raise ValueError(f"num_val and num_train must be at least 1, got {num_val!r} and {num_train!r}.")
    root = ensure_dataset(
        dataset_dir,
        lambda d: synthesize_liver_tumor_dataset(d, cases=synth_cases, seed=synth_seed, contrast=synth_contrast),
        f"{synth_cases} synthetic liver-tumour CT phantoms (seed {synth_seed}, contrast {synth_contrast})",
        enabled=synthesize_if_missing,
    ).resolve()
    cases, source = liver_ct_cases(root)
    pairs = sorted((str(c["image"]), str(c["label"])) for c in cases)
    held_out = n_test + n_val
    if len(pairs) < held_out + (n_train or 1):
        raise ValueError(
            f"{source}: too few labelled cases ({len(pairs)}) for the split: {n_test} test, {n_val} validation and "
            f"{n_train or 'at least one'} training case(s). Lower num_test / num_val or add cases."
        )
    rng = np.random.default_rng(LIVER_SPLIT_SEED)
    shuffled = [{"image": pairs[k][0], "label": pairs[k][1]} for k in rng.permutation(len(pairs))]
    training = shuffled[held_out:] if n_train is None else shuffled[held_out: held_out + n_train]
    return {"training": training, "validation": shuffled[n_test:held_out], "testing": shuffled[:n_test]}
