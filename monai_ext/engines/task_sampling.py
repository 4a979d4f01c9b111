"""Samplers over a data set that pools several tasks (MetaHistoSeg, Yuan et al., DGM4MICCAI/DALI 2021, section 2.2).

- :class:`EpisodeBatchSampler` (task level, for meta-learning): a batch is ``episodes_per_batch`` episodes; an
  episode is one task, drawn with the given task probabilities, and ``support + query`` distinct items of it (the
  support items first). Use it as a ``DataLoader``'s ``batch_sampler``.
- :class:`EqualizedTaskSampler` (instance level, for transfer learning): every epoch each task is truncated at
  random to the size of the smallest, the kept items are pooled and shuffled; a fresh truncation every epoch.

Both draw from their own ``numpy`` generator seeded with ``(seed, epoch)``; the epoch counts the passes over the
sampler (each ``iter()``) unless ``set_epoch`` sets it, so a run is reproducible and every epoch differs. Under
``torch.distributed`` give each rank its own ``seed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["EpisodeBatchSampler", "EqualizedTaskSampler", "task_groups"]


def task_groups(task_of_item: Sequence[int]) -> dict[int, np.ndarray]:
    """``{task: indices of its items}`` (ascending tasks) of a per-item task list."""
    tasks = np.asarray([int(t) for t in task_of_item])
    if tasks.size == 0:
        raise ValueError("the data set is empty: no items to sample tasks from.")
    return {int(t): np.flatnonzero(tasks == t) for t in np.unique(tasks)}


class _PassSeeded:
    """The ``(seed, epoch)`` generator of both samplers: ``set_epoch`` sets the epoch, else every pass counts one."""

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _next_generator(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        return rng


class EpisodeBatchSampler(_PassSeeded, Sampler[list[int]]):
    """Batches of episodes: each episode is ``support + query`` distinct items of one task.

    Args:
        task_of_item: the task index of every item of the data set (e.g. ``[d["task"] for d in datalist]``).
        support: support items per episode (the paper: 8).
        query: query items per episode (the paper: 8).
        episodes_per_batch: episodes per batch (the paper: 4).
        num_batches: batches per epoch (``len(sampler)``).
        task_weights: sampling probability of each task present (a dict task -> weight, or a sequence indexed by
            task); default uniform over the tasks. The paper's "probability distribution function".
        task_names: names for error messages (indexed by task).
        seed: generator seed; the epoch (``set_epoch``) is added.

    Raises:
        ValueError: ``support`` < 1, ``query`` < 0, counts < 1, a task with fewer items than one episode needs (named,
            with its count), or weights that are negative, all zero or for tasks that have no items.
    """

    def __init__(self, task_of_item: Sequence[int], support: int = 8, query: int = 8, episodes_per_batch: int = 4,
                 num_batches: int = 100, task_weights: dict[int, float] | Sequence[float] | None = None,
                 task_names: Sequence[str] | None = None, seed: int = 0) -> None:
        if int(support) < 1 or int(query) < 0 or int(episodes_per_batch) < 1 or int(num_batches) < 1:
            raise ValueError(f"support ({support}) and episodes_per_batch ({episodes_per_batch}) and num_batches "
                             f"({num_batches}) must be >= 1 and query ({query}) >= 0.")
        self.groups = task_groups(task_of_item)
        self.support, self.query = int(support), int(query)
        self.episode_size = self.support + self.query
        names = list(task_names) if task_names is not None else []
        small = [f"{names[t] if t < len(names) else f'task {t}'} ({len(ix)} items)" for t, ix in self.groups.items()
                 if len(ix) < self.episode_size]
        if small:
            raise ValueError(f"too few items for one episode of {self.episode_size} (support {self.support} + query "
                             f"{self.query}): {', '.join(small)}. Lower support/query or leave the task out.")
        self.tasks = np.array(sorted(self.groups))
        if task_weights is None:
            w = np.ones(len(self.tasks))
        elif isinstance(task_weights, dict):
            unknown = sorted(set(int(k) for k in task_weights) - set(self.groups))
            if unknown:
                raise ValueError(f"task_weights name task(s) {unknown} that have no items; tasks: {sorted(self.groups)}.")
            w = np.array([float(task_weights.get(int(t), 0.0)) for t in self.tasks])
        else:
            w = np.array([float(task_weights[int(t)]) for t in self.tasks])
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"task_weights must be >= 0 with a positive sum, got {w.tolist()}.")
        self.probabilities = w / w.sum()
        self.episodes_per_batch, self.num_batches = int(episodes_per_batch), int(num_batches)
        self.seed, self.epoch = int(seed), 0

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = self._next_generator()
        for _ in range(self.num_batches):
            batch: list[int] = []
            for task in rng.choice(self.tasks, size=self.episodes_per_batch, p=self.probabilities):
                batch += rng.choice(self.groups[int(task)], size=self.episode_size, replace=False).tolist()
            yield batch


class EqualizedTaskSampler(_PassSeeded, Sampler[int]):
    """Item indices of an epoch: every task truncated at random to ``per_task`` items (default: the smallest task's
    size), pooled and shuffled; a fresh truncation every epoch (``set_epoch``).

    Args:
        task_of_item: the task index of every item.
        per_task: items kept per task and epoch (at most the smallest task's size; ``None``: that size).
        seed: generator seed; the epoch is added.
    """

    def __init__(self, task_of_item: Sequence[int], per_task: int | None = None, seed: int = 0) -> None:
        self.groups = task_groups(task_of_item)
        smallest = min(len(ix) for ix in self.groups.values())
        if per_task is not None and not 1 <= int(per_task) <= smallest:
            raise ValueError(f"per_task must be in 1..{smallest} (the smallest task's size), got {per_task}.")
        self.per_task = smallest if per_task is None else int(per_task)
        self.seed, self.epoch = int(seed), 0

    def __len__(self) -> int:
        return self.per_task * len(self.groups)

    def __iter__(self) -> Iterator[int]:
        rng = self._next_generator()
        kept = np.concatenate([rng.choice(ix, size=self.per_task, replace=False) for ix in self.groups.values()])
        return iter(rng.permutation(kept).tolist())
