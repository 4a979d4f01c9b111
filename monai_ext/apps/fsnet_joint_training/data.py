"""Data of the FS-Net bundle: the embedded heart MR data sets, the joint dataset list, per-strategy sampling
weights and the batch preparation that hands each sample's data set index to the network and the loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.utils import CommonKeys

from ...bundle_helpers import config_flag
from ...datalists.joint_msd import joint_msd_datalist
from ...io import PathLike, ensure_dataset
from ...phantoms.heart_segmentation_mr import synthesize_heart_mr_dataset

__all__ = [
    "SAMPLING_MODES",
    "TRAINING_MODES",
    "PrepareJointBatch",
    "check_training_switches",
    "dataset_sampling_weights",
    "fsnet_datalist",
]

#: how a training run uses the data sets (the paper's baselines and FS-Net)
TRAINING_MODES = ("target_only", "pretrain_finetune", "joint")
#: which data sets a sampler draws from: the target only, the auxiliary sets only, or all with equal share
SAMPLING_MODES = ("target", "auxiliary", "joint")


def check_training_switches(training: str, channel_coding: Any, fs_module: Any, target_weight: Any) -> None:
    """Raise ``ValueError`` naming the switch when the training settings do not fit together."""
    if training not in TRAINING_MODES:
        raise ValueError(f"training must be one of {TRAINING_MODES}, got {training!r}.")
    config_flag(channel_coding, "channel_coding")
    config_flag(fs_module, "fs_module")
    if not 0.0 < float(target_weight) < 1.0:
        raise ValueError(f"target_weight (delta of the target's loss; the auxiliary sets share 1 - delta) must be in "
                         f"(0, 1), got {target_weight!r}.")


def fsnet_datalist(
    dataset_dirs: Sequence[PathLike],
    num_val: int = 2,
    num_test: int = 12,
    split_seed: int = 0,
    synth_cases: Sequence[int] = (20, 30),
    synth_seed: int = 0,
) -> dict[str, Any]:
    """:func:`monai_ext.datalists.joint_msd_datalist` of ``dataset_dirs`` (target first). A missing or empty folder
    first gets the embedded default: the first a target-like whole-heart 3D set of ``synth_cases[0]`` cases (blood
    pool, myocardium), the others auxiliary-like short-axis cine sets (left ventricle, myocardium, right ventricle);
    see :mod:`monai_ext.phantoms.heart_segmentation_mr`."""
    dirs = [Path(d).expanduser() for d in dataset_dirs]
    counts = list(synth_cases)
    if len(counts) != len(dirs):
        raise ValueError(f"synth_cases needs one case count per data set: {len(dirs)} data set(s), got {counts}.")
    for m, (folder, cases) in enumerate(zip(dirs, counts)):
        protocol = "whole_heart_3d" if m == 0 else "short_axis_cine"
        ensure_dataset(folder, lambda d, p=protocol, n=cases, s=synth_seed + m: synthesize_heart_mr_dataset(d, p, n, s),
                       f"{cases} synthetic {protocol} heart MR cases")
    return joint_msd_datalist(dirs, num_val=num_val, num_test=num_test, split_seed=split_seed)


def dataset_sampling_weights(items: Sequence[Mapping[str, Any]], mode: str, dataset_key: str = "dataset") -> list[float]:
    """Per-item weights for a ``WeightedRandomSampler``: ``target`` draws data set 0 only, ``auxiliary`` the others
    only, ``joint`` all with the same expected share per data set (``1 / n_m`` per item).

    Raises ``ValueError`` for an unknown mode or when the mode's data sets have no items."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, got {mode!r}.")
    ids = [int(it[dataset_key]) for it in items]
    counts = {m: ids.count(m) for m in set(ids)}
    if mode == "target":
        weights = [1.0 if m == 0 else 0.0 for m in ids]
    elif mode == "auxiliary":
        weights = [1.0 if m > 0 else 0.0 for m in ids]
    else:
        weights = [1.0 / counts[m] for m in ids]
    if not any(weights):
        raise ValueError(f"sampling mode {mode!r}: no training items of those data sets (data set counts {counts}).")
    return weights


class PrepareJointBatch(PrepareBatch):
    """Batch preparation for ``SupervisedTrainer`` / ``SupervisedEvaluator`` of a jointly trained network: returns
    ``(image, (label, dataset_index), (), {"dataset_index": dataset_index})``, so the network is called as
    ``network(image, dataset_index=...)`` and the loss gets ``(label, dataset_index)`` as its target
    (:class:`DatasetWeightedSegLoss`).

    Args:
        dataset_key: batch key of the per-sample data set indices.
    """

    def __init__(self, dataset_key: str = "dataset") -> None:
        self.dataset_key = dataset_key

    def __call__(self, batchdata: dict[str, torch.Tensor], device: str | torch.device | None = None,
                 non_blocking: bool = False, **kwargs: Any) -> Any:
        if self.dataset_key not in batchdata:
            raise KeyError(f"PrepareJointBatch: the batch has no '{self.dataset_key}' (data set index) entry; keys: "
                           f"{sorted(batchdata)}.")
        image = batchdata[CommonKeys.IMAGE].to(device=device, non_blocking=non_blocking, **kwargs)
        label = batchdata[CommonKeys.LABEL].to(device=device, non_blocking=non_blocking, **kwargs)
        index = torch.as_tensor(batchdata[self.dataset_key]).reshape(-1).long().to(device=device)
        return image, (label, index), (), {"dataset_index": index}
