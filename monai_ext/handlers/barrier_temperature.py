"""Grow the temperature of a log barrier during training (Kervadec et al., MIDL 2020: t *= 1.1 every epoch)."""

from __future__ import annotations

import logging

from ignite.engine import Engine, Events

__all__ = ["BarrierTemperatureHandler"]


class BarrierTemperatureHandler:
    """Multiply ``barrier.t`` by ``factor`` at the end of every epoch (capped at ``max_t``).

    Args:
        barrier: an object with a float attribute ``t``, e.g. :class:`monai_ext.losses.LogBarrierExtension` or the
            ``barrier`` of :class:`monai_ext.losses.BoxSupervisedLoss`.
        factor: growth per epoch (>= 1; Kervadec et al.: 1.1).
        max_t: upper bound of ``t`` (``None``: unbounded).

    The temperature reached is stored as ``engine.state.barrier_t`` and logged. Resuming a run from a checkpoint
    restarts at the barrier's current ``t``; set ``barrier.t`` from ``t0 * factor ** epoch`` to continue exactly.
    """

    def __init__(self, barrier, factor: float = 1.1, max_t: float | None = None, name: str | None = None) -> None:
        if not hasattr(barrier, "t"):
            raise TypeError(f"barrier must have a temperature attribute t, got {type(barrier).__name__}.")
        if not float(factor) >= 1.0:
            raise ValueError(f"factor must be >= 1 (the barrier only tightens), got {factor!r}.")
        self.barrier, self.factor = barrier, float(factor)
        self.max_t = None if max_t is None else float(max_t)
        self.logger = logging.getLogger(name or __name__)

    def attach(self, engine: Engine) -> None:
        """Register the update at every ``EPOCH_COMPLETED``."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Grow ``t`` once."""
        t = float(self.barrier.t) * self.factor
        self.barrier.t = t if self.max_t is None else min(t, self.max_t)
        engine.state.barrier_t = self.barrier.t
        self.logger.info(f"epoch {engine.state.epoch}: barrier temperature t = {self.barrier.t:.3f}")
