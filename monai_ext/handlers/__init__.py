"""Ignite handlers that MONAI lacks.
"""

from __future__ import annotations

from .time_limit import TimeLimitHandler

__all__ = [
    "TimeLimitHandler",
]
