"""The event wiring of handlers that gather per-image results over one evaluator run and write files at its end
(``PointsWriter``, ``LandmarkWriter``): nothing is written until the run completes, so a run that fails on an image
leaves no half-written output."""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine, Events

__all__ = ["RunCollector"]


class RunCollector:
    """Base class: ``rows`` is emptied on STARTED, ``_collect(engine)`` runs on ITERATION_COMPLETED and
    ``_write(engine)`` on COMPLETED; subclasses implement those two."""

    rows: list[Any]

    def attach(self, engine: Engine) -> None:
        """Collect on ITERATION_COMPLETED, write on COMPLETED."""
        engine.add_event_handler(Events.STARTED, lambda _: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _collect(self, engine: Engine) -> None:
        raise NotImplementedError

    def _write(self, engine: Engine) -> None:
        raise NotImplementedError
