"""Keeping the command line's output for the user: the bundle runner's log, prints and warnings of a run go into a
buffer (shown with ``--debug`` or written to a log file) instead of the terminal."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

__all__ = ["captured_run_output"]


@contextlib.contextmanager
def captured_run_output() -> Iterator[io.StringIO]:
    """The bundle runner's log, prints and warnings go into the yielded buffer instead of the terminal, so that
    a command shows only its own progress lines (the buffer is there for ``--debug`` or a log file)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    root = logging.getLogger()
    previous_disable = logging.root.manager.disable
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        warnings.simplefilter("always")
        logging.disable(logging.CRITICAL)  # MONAI's runner re-configures logging from the bundle's logging.conf
        root.addHandler(handler)
        try:
            yield buffer
        finally:
            root.removeHandler(handler)
            logging.disable(previous_disable)
            for w in caught:
                buffer.write(f"{w.category.__name__}: {w.message}\n")
