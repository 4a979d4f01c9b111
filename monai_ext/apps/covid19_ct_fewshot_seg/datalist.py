"""One entry point for the few-shot segmentation bundles: training / validation / testing lists.

It recognises what a user has in ``dataset_dir`` (the COVID-19-CT-Seg release, a folder written by
``python -m monai_ext synth``, or any MSD-style ``dataset.json``) and, when the folder does not
exist or is empty, generates the embedded default: synthetic chest-CT phantoms.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ...datalists.covid19_ct_seg import covid19_ct_seg_datalist
from ...datalists.fewshot import fewshot_datalist
from ...datalists.msd import msd_datalist
from ...io import ensure_dataset
from ...phantoms.chest_ct_dataset import synthesize_dataset

__all__ = ["SPLITS", "fewshot_segmentation_datalist"]

logger = logging.getLogger(__name__)

SYNTH_DEFAULTS = {"cases": 12, "seed": 0, "variety": True}
#: ``split`` values: the benchmark's few-shot folds (4 training cases) or a 5-fold split of every case.
SPLITS = ("fewshot", "all")


def _msd_fold(dataset_json: Path, fold: int) -> dict:
    """Fold ``fold`` of a 5-fold split of a ``dataset.json``: its held-out cases become the testing list."""
    datalist = msd_datalist(dataset_json, fold=fold)
    return {"training": datalist["training"], "testing": datalist["validation"]}


def _split_validation(datalist: dict, num_val: int) -> dict:
    """Take ``num_val`` validation cases off the front of the testing list (model selection never
    sees the cases that are reported)."""
    testing = list(datalist.get("testing") or datalist.get("validation") or [])
    if num_val < 0:
        raise ValueError(f"num_val must be >= 0, got {num_val}.")
    if num_val and len(testing) <= num_val:
        raise ValueError(
            f"num_val={num_val} validation cases requested, but only {len(testing)} held-out cases exist."
        )
    return {
        "training": list(datalist["training"]),
        "validation": testing[:num_val],
        "testing": testing[num_val:],
    }


def fewshot_segmentation_datalist(
    dataset_dir: str | Path,
    fold: int = 0,
    num_val: int = 2,
    synthesize_if_missing: bool = True,
    synth_cases: int = SYNTH_DEFAULTS["cases"],
    synth_seed: int = SYNTH_DEFAULTS["seed"],
    synth_variety: bool = SYNTH_DEFAULTS["variety"],
    split: str = "fewshot",
) -> dict[str, list[dict]]:
    """Training, validation and testing lists (absolute paths) of a few-shot fold.

    Recognised layouts of ``dataset_dir``, in this order:

    - the COVID-19-CT-Seg release (``COVID-19-CT-Seg_20cases/`` + mask folders): the benchmark's fixed
      5-fold protocol, 4 training cases per fold;
    - ``datalist_fewshot_5fold.json`` (written by ``python -m monai_ext synth``);
    - ``dataset.json`` (Medical Segmentation Decathlon style): a 5-fold split of its training list.

    ``num_val`` cases of the held-out cases are used for validation (checkpoint selection and early
    stopping), the rest are the test set. When ``dataset_dir`` is missing or empty and
    ``synthesize_if_missing``, ``synth_cases`` phantoms are generated there first (``synth_variety``: with
    random fields of view, contrast phases, kernels, noise, slice thickness, patient size, inspiration depth
    and non-COVID findings, see :func:`monai_ext.phantoms.generate_chest_ct`).

    ``split="all"`` trains on more than 4 cases: on a folder with a ``dataset.json`` (the phantoms have one),
    fold ``fold`` of a 5-fold split of all its cases (80 % training). The benchmark's protocol is ``"fewshot"``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")

    root = ensure_dataset(
        dataset_dir,
        lambda d: synthesize_dataset(d, cases=synth_cases, seed=synth_seed, variety=synth_variety),
        f"{synth_cases} synthetic chest-CT phantoms" + (" (acquisition variety)" if synth_variety else ""),
        enabled=synthesize_if_missing,
    )
    msd_json = root / "dataset.json"
    if split == "all" and msd_json.is_file():
        datalist = _msd_fold(msd_json, fold)
    elif (root / "COVID-19-CT-Seg_20cases").is_dir():
        datalist = covid19_ct_seg_datalist(root, fold=fold)
    elif (root / "datalist_fewshot_5fold.json").is_file():
        datalist = fewshot_datalist(root, fold)
    elif msd_json.is_file():
        datalist = _msd_fold(msd_json, fold)
    else:
        found = sorted(p.name for p in root.iterdir())[:10]
        raise FileNotFoundError(
            f"{root}: no recognised data set. Expected one of: COVID-19-CT-Seg_20cases/ (with Lung_Mask/, "
            f"Infection_Mask/, Lung_and_Infection_Mask/), datalist_fewshot_5fold.json, dataset.json. Found: {found}"
        )
    return _split_validation(datalist, num_val)
