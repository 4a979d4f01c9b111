"""Ignite handlers that MONAI lacks.
"""

from __future__ import annotations

from .metric_history import MetricHistorySaver, read_metric_history
from .time_limit import TimeLimitHandler

__all__ = [
    "MetricHistorySaver",
    "TimeLimitHandler",
    "read_metric_history",
]
