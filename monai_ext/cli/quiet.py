"""Keeping the command line's output for the user: a bundle run's prints and warnings go into a buffer (shown with
``--debug`` or written to a file) instead of the terminal, and its log records are not emitted."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

__all__ = ["captured_run_output"]


@contextlib.contextmanager
def captured_run_output() -> Iterator[io.StringIO]:
    """A bundle run's prints and warnings go into the yielded buffer instead of the terminal, and logging is
    disabled meanwhile (MONAI's runner adds console handlers from the bundle's logging.conf, some made at import
    time on the real stdout, so redirecting is not enough), so that a command shows only its own progress lines."""
    buffer = io.StringIO()
    previous_disable = logging.root.manager.disable
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        warnings.simplefilter("always")
        logging.disable(logging.CRITICAL)  # MONAI's runner re-configures logging from the bundle's logging.conf
        try:
            yield buffer
        finally:
            logging.disable(previous_disable)
            for w in caught:
                buffer.write(f"{w.category.__name__}: {w.message}\n")
