"""Data of the MetaHistoSeg bundle: the embedded H&E task families, the leave-one-task-out dataset list (source
tasks for meta-training or transfer, a few tiles of the held-out task for fine-tuning, its test tiles) and the
batch preparation that hands each tile's task index to the network."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.utils import CommonKeys

from ...datalists.histo_tasks import histo_task_datalist
from ...datalists.labelled_patches import patch_images
from ...io import PathLike, ensure_dataset, require_file
from ...phantoms.histology_tasks import synthesize_histo_tasks

__all__ = ["METHODS", "PrepareTaskBatch", "check_finetune_setup", "check_method", "task_test_items", "metahistoseg_datalist",
           "task_tiles"]

#: how the network learns from the source tasks: MAML episodes, instance-level transfer, or not at all (fine-tuning
#: from random weights, the reference without any source task)
METHODS = ("maml", "transfer", "scratch")


def check_method(method: str, first_order: Any = True) -> None:
    """Raise ``ValueError`` naming the key when ``method`` is not one of :data:`METHODS` or ``first_order`` is not a
    boolean."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if not isinstance(first_order, bool):
        raise ValueError(f"first_order must be true or false, got {first_order!r}.")


def check_finetune_setup(test_task: str | None, pretrained_path: PathLike) -> None:
    """Raise ``ValueError`` when there is no held-out task to fine-tune on, ``FileNotFoundError`` naming
    ``pretrained_path`` when the source-trained weights are missing."""
    if not test_task:
        raise ValueError("fine-tuning needs a held-out task: set test_task (e.g. --test_task glands) as in the "
                         "train.yaml run that wrote the pretrained weights.")
    require_file(pretrained_path, "source-trained weights; run configs/train.yaml with the same test_task first")


def task_test_items(datalist: Mapping[str, Any], task: str | None) -> list[dict[str, Any]]:
    """The test tiles of ``task`` (a name of ``datalist["tasks"]``, from :func:`metahistoseg_datalist`). Raises
    ``ValueError`` when no task is given or it is unknown (the tasks listed)."""
    if not task or task not in datalist["task_testing"]:
        raise ValueError(f"eval_task must name one of the tasks {list(datalist['tasks'])}, got {task!r} (default: "
                         "test_task).")
    return datalist["task_testing"][task]


def metahistoseg_datalist(dataset_dir: PathLike, test_task: str | None = None,
                          source_tasks: Sequence[str] | None = None, finetune_images: int = 8, num_test: int = 12,
                          split_seed: int = 0, synth_images: Mapping[str, int] | int | None = None,
                          synth_seed: int = 0) -> dict[str, Any]:
    """The leave-one-task-out lists of the task folders under ``dataset_dir``
    (:func:`monai_ext.datalists.histo_task_datalist`); an empty or missing folder first gets the embedded default
    (:func:`monai_ext.phantoms.synthesize_histo_tasks` with ``synth_images`` and ``synth_seed``).

    Returns the datalist's ``tasks``, ``labels`` and ``class_counts`` (every task keeps its head, so task indices
    are the same in every run) plus:

    - ``source``: the training tiles of the source tasks (``source_tasks``; default every task but ``test_task``);
    - ``finetune``: ``finetune_images`` training tiles of ``test_task`` drawn with ``split_seed`` (empty without a
      test task);
    - ``testing``: the ``num_test`` test tiles of ``test_task`` (of every task without one);
    - ``test_task_index``: its index (``None`` without one);
    - ``task_testing``: ``{task name: its test tiles}`` for every task.

    Raises:
        ValueError: an unknown test or source task (the known ones listed), the test task among the sources, no
            source task, or ``finetune_images`` outside 1..(the test task's training tiles); plus the datalist's
            errors.
    """
    root = ensure_dataset(dataset_dir, lambda d: synthesize_histo_tasks(d, synth_images, seed=synth_seed),
                          "synthetic H&E tiles of five histopathology task families")
    data = histo_task_datalist(root, num_test=num_test, split_seed=split_seed)
    names = data["tasks"]
    unknown = [t for t in ([test_task] if test_task else []) + list(source_tasks or []) if t not in names]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; the task folders under {root} are {names}.")
    sources = list(source_tasks) if source_tasks else [t for t in names if t != test_task]
    if test_task in sources:
        raise ValueError(f"test_task {test_task!r} is also a source task ({sources}); leave it out of source_tasks.")
    if not sources:
        raise ValueError(f"no source task: tasks {names}, test_task {test_task!r}.")
    src_ix = {names.index(t) for t in sources}
    out = {k: data[k] for k in ("tasks", "labels", "class_counts")}
    out["source_tasks"] = sources
    out["source"] = [it for it in data["training"] if it["task"] in src_ix]
    out["test_task_index"] = None if not test_task else names.index(test_task)
    out["task_testing"] = {t: [it for it in data["testing"] if it["task_name"] == t] for t in names}
    if test_task:
        pool = [it for it in data["training"] if it["task_name"] == test_task]
        if not 1 <= int(finetune_images) <= len(pool):
            raise ValueError(f"finetune_images must be in 1..{len(pool)} (training tiles of {test_task!r}), got "
                             f"{finetune_images}.")
        out["finetune"] = sorted(random.Random(int(split_seed)).sample(pool, int(finetune_images)),
                                 key=lambda it: it["image"])
        out["testing"] = out["task_testing"][test_task]
    else:
        out["finetune"], out["testing"] = [], data["testing"]
    return out


def task_tiles(dataset_dir: PathLike, task: str, tasks: Sequence[str]) -> list[dict[str, Any]]:
    """``[{"image", "task"}]`` of the RGB tiles in a folder (or the one tile ``dataset_dir`` names) to segment with
    ``task``'s head (its index in ``tasks``). Raises ``ValueError`` for an unknown task or tiles that are not 8-bit
    RGB, ``FileNotFoundError`` when there is no tile (:func:`monai_ext.datalists.patch_images`)."""
    if task not in tasks:
        raise ValueError(f"unknown task {task!r}; the network has heads for {list(tasks)}.")
    return [{**it, "task": list(tasks).index(task)} for it in patch_images(dataset_dir)]


class PrepareTaskBatch(PrepareBatch):
    """Batch preparation for ``SupervisedTrainer`` / ``SupervisedEvaluator`` of a network with one head per task:
    returns ``(image, label, (), {"task_index": tasks})`` so the network is called as
    ``network(image, task_index=tasks)`` (:class:`monai_ext.networks.MultiHeadSegNet`).

    Args:
        task_key: batch key of the per-item task indices.
    """

    def __init__(self, task_key: str = "task") -> None:
        self.task_key = task_key

    def __call__(self, batchdata: dict[str, torch.Tensor], device: str | torch.device | None = None,
                 non_blocking: bool = False, **kwargs: Any) -> Any:
        if self.task_key not in batchdata:
            raise KeyError(f"PrepareTaskBatch: the batch has no '{self.task_key}' (task index) entry; keys: "
                           f"{sorted(batchdata)}.")
        image = batchdata[CommonKeys.IMAGE].to(device=device, non_blocking=non_blocking, **kwargs)
        label = batchdata.get(CommonKeys.LABEL)
        if label is not None:
            label = label.to(device=device, non_blocking=non_blocking, **kwargs)
        tasks = torch.as_tensor(batchdata[self.task_key]).reshape(-1).long().to(device=device)
        return image, label, (), {"task_index": tasks}
