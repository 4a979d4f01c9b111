"""Ignite handlers that MONAI lacks (time limit, metric history, mean-teacher EMA, log-barrier temperature).
"""

from __future__ import annotations

from .barrier_temperature import BarrierTemperatureHandler
from .detections_writer import DetectionsWriter, detection_case_name
from .mean_teacher import MeanTeacherEMA, ema_teacher
from .landmark_writer import LANDMARK_UNITS, LandmarkWriter
from .points_writer import PointsWriter
from .run_collector import RunCollector
from .metric_history import MetricHistorySaver, read_metric_history
from .time_limit import TimeLimitHandler

__all__ = [
    "DetectionsWriter",
    "detection_case_name",
    "LANDMARK_UNITS",
    "LandmarkWriter",
    "PointsWriter",
    "RunCollector",
    "BarrierTemperatureHandler",
    "MeanTeacherEMA",
    "ema_teacher",
    "MetricHistorySaver",
    "TimeLimitHandler",
    "read_metric_history",
]
