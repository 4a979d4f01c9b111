"""Ignite handlers that MONAI lacks."""

from .time_limit import TimeLimitHandler
