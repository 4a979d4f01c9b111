"""A CSV of an evaluator's metrics after every validation round, for plotting a metric against the epoch: the
handler that writes it (:class:`MetricHistorySaver`) and the reader (:func:`read_metric_history`)."""

from __future__ import annotations

import csv
import logging
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from ..io import atomic_write

__all__ = ["MetricHistorySaver", "read_metric_history"]


def _scalar(value: Any) -> float | None:
    """``value`` as a float when it is one number (Python / NumPy number, one-element tensor or array), else None."""
    if isinstance(value, numbers.Number):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.item())
    return None


class MetricHistorySaver:
    """Append one row per validation round to a CSV file: the trainer's epoch and every metric of the evaluator.

    Attach it to an evaluator (e.g. in ``val_handlers``) that MONAI's ``ValidationHandler`` runs during training.
    ``ValidationHandler`` calls ``evaluator.run(trainer.state.epoch)``, which starts the evaluator at
    ``state.epoch = trainer epoch - 1``; this handler reads the epoch when the evaluator starts (that value + 1),
    so a row carries the number of the trainer epoch just completed (``0`` for a validation before training,
    ``ValidationHandler(exec_at_start=True)``; ``1`` for an evaluator run on its own). After the evaluator has
    completed (its metrics computed), the row ``epoch, <metric>, ...`` is added and the whole file is rewritten
    atomically (:func:`monai_ext.io.atomic_write`), so a reader (a plot, a study) always sees a complete file, even
    while training goes on.

    Columns: ``epoch``, then the metrics in the order they first appeared (a metric missing in a round is left
    empty). Metrics that are not one number (per-class tensors, dicts) are left out. The file holds the rounds of
    this handler's engine since the handler was created: an existing file of an earlier run is replaced at the
    first round.

    Args:
        save_dir: folder of the CSV file (created when missing).
        filename: name of the CSV file.
        metric_names: the metrics to record (``engine.state.metrics`` keys), in this order; ``None``: all.
        delimiter: CSV delimiter.
        epoch_column: name of the epoch column.
        name: logger name.
    """

    def __init__(
        self,
        save_dir: str | Path,
        filename: str = "metric_history.csv",
        metric_names: list[str] | tuple[str, ...] | None = None,
        delimiter: str = ",",
        epoch_column: str = "epoch",
        name: str | None = None,
    ) -> None:
        if not filename or Path(filename).name != filename:
            raise ValueError(f"filename must be a file name without folders, got {filename!r}.")
        self.path = Path(save_dir).expanduser() / filename
        self.metric_names = None if metric_names is None else [str(m) for m in metric_names]
        self.delimiter = delimiter
        self.epoch_column = epoch_column
        self.logger = logging.getLogger(name or __name__)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = [] if self.metric_names is None else list(self.metric_names)
        self._epoch = 0

    def attach(self, engine: Engine) -> None:
        """Register the handler on ``engine`` (the evaluator)."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.COMPLETED, self)

    def _started(self, engine: Engine) -> None:
        self._epoch = int(engine.state.epoch) + 1

    def __call__(self, engine: Engine) -> None:
        """Add the row of the round ``engine`` has just completed and rewrite the CSV file."""
        metrics = dict(engine.state.metrics or {})
        names = self.metric_names if self.metric_names is not None else list(metrics)
        row: dict[str, Any] = {self.epoch_column: self._epoch}
        for key in names:
            if key not in metrics:
                continue
            value = _scalar(metrics[key])
            if value is None:
                continue
            row[key] = value
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append(row)
        header = [self.epoch_column] + self.columns
        rows = [dict(r) for r in self.rows]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header, delimiter=self.delimiter, restval="")
                writer.writeheader()
                for r in rows:
                    writer.writerow(r)

        atomic_write(self.path, write)
        self.logger.debug(f"metric history: epoch {self._epoch} -> {self.path}")


def read_metric_history(
    path: str | Path, metric: str = "val_mean_dice", epoch_column: str = "epoch"
) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of one metric column of a CSV written by :class:`MetricHistorySaver`, sorted by epoch;
    rows without a value are skipped.

    Raises:
        FileNotFoundError: no such file. ValueError: the file has no ``epoch_column`` or ``metric`` column, or no row.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no metric history (written by MetricHistorySaver during training).")
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if epoch_column not in columns or metric not in columns:
            raise ValueError(f"{p}: expected columns {epoch_column!r} and {metric!r}, found {columns}.")
        rows = [(int(r[epoch_column]), float(r[metric])) for r in reader if r.get(metric) not in (None, "")]
    if not rows:
        raise ValueError(f"{p}: no validation round with {metric!r}.")
    rows.sort()
    return np.array([e for e, _ in rows]), np.array([v for _, v in rows], dtype=float)
