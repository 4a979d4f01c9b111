"""The cases of the multi-planar sparse-annotation bundle and their split.

Recognised in ``dataset_dir``: an MSD-style ``dataset.json`` (e.g. MSD Task02_Heart, or the embedded data), else
image / label folders (:func:`monai_ext.datalists.labelled_pairs_datalist`: ``imagesTr``/``labelsTr``,
``images``/``labels``, ...). When ``dataset_dir`` is missing or empty, the embedded default is generated there:
synthetic isotropic EM blocks with mitochondria (:func:`monai_ext.phantoms.synthesize_em_mitochondria_dataset`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...datalists.case_split import split_cases
from ...datalists.labelled_pairs import labelled_pairs_datalist
from ...datalists.msd import msd_datalist
from ...io import PathLike, ensure_dataset, strip_nifti_suffix
from ...phantoms.em_mitochondria import synthesize_em_mitochondria_dataset

__all__ = ["multiplanar_datalist"]


def multiplanar_datalist(dataset_dir: PathLike, num_val: int = 1, num_test: int = 2, split_seed: int = 0,
                         synth_cases: int = 7, synth_seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``{"training", "validation", "testing"}`` lists of ``{"case", "image", "label"}`` (absolute paths), split by
    :func:`monai_ext.datalists.split_cases` (the same test cases for every ``split_seed``-fixed run).

    Raises:
        FileNotFoundError / ValueError: no recognised layout, a listed file missing, too few cases (the message
            names the folder).
    """
    root = ensure_dataset(
        dataset_dir, lambda d: synthesize_em_mitochondria_dataset(d, cases=synth_cases, seed=synth_seed),
        f"{synth_cases} synthetic EM blocks with mitochondria labels (seed {synth_seed})",
    ).resolve()
    if (root / "dataset.json").is_file():
        items = msd_datalist(root)["training"]
    else:
        items = labelled_pairs_datalist(root)["testing"]
    cases = []
    for item in items:
        name = Path(str(item["image"])).name
        cases.append({"case": strip_nifti_suffix(name) or name, "image": str(item["image"]), "label": str(item["label"])})
    return split_cases(cases, num_val, num_test, split_seed, root)
