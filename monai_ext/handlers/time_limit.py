"""Stop training after a wall-clock budget."""

from __future__ import annotations

import logging
import time

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

__all__ = ["TimeLimitHandler"]


class TimeLimitHandler:
    """Terminate an ignite engine once ``limit_sec`` seconds of wall-clock time have passed.

    The check runs at the end of each epoch (``epoch_level=True``, after the epoch's validation
    and checkpoint handlers have run) or each iteration, so a bounded demo or a CI run ends with
    a complete, validated checkpoint rather than an arbitrary cut. ``limit_sec <= 0`` disables it.
    The clock starts when the engine starts. In distributed training every rank follows rank 0's
    clock, so all ranks stop at the same epoch (a rank that stopped alone would hang the others).
    """

    def __init__(self, limit_sec: float, epoch_level: bool = True, name: str | None = None) -> None:
        self.limit_sec = float(limit_sec)
        self.epoch_level = epoch_level
        self.logger = logging.getLogger(name or __name__)
        self._start = 0.0

    def attach(self, engine: Engine) -> None:
        if self.limit_sec <= 0:
            return
        engine.add_event_handler(Events.STARTED, self._started)
        event = Events.EPOCH_COMPLETED if self.epoch_level else Events.ITERATION_COMPLETED
        engine.add_event_handler(event, self._check)

    def _started(self, engine: Engine) -> None:
        self._start = time.perf_counter()

    def _check(self, engine: Engine) -> None:
        elapsed = time.perf_counter() - self._start
        if idist.get_world_size() > 1:
            elapsed = float(idist.broadcast(torch.tensor(elapsed, dtype=torch.float64), src=0))
        if elapsed >= self.limit_sec:
            self.logger.info(
                f"time limit of {self.limit_sec:.0f} s reached after {elapsed:.0f} s "
                f"(epoch {engine.state.epoch}, iteration {engine.state.iteration}): stopping."
            )
            engine.state.time_limit_reached = True  # read by callers that must tell a cut-short run from a full one
            engine.terminate()
