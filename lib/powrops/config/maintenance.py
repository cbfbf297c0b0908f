"""The maintenance schedule and its alerts."""

from __future__ import annotations

from powrops.config.base import (
    Section,
)
from powrops.durations import Duration, Size


class MaintenanceAlerts(Section):
    table_size: Size = Size.parse("10GB")
    index_size: Size = Size.parse("2GB")
    query_time: Duration = Duration.parse("1s")


class MaintenanceSettings(Section):
    vacuum: Duration = Duration.parse("weekly")
    analyze: Duration = Duration.parse("daily")
    reindex: Duration = Duration.parse("monthly")
    alerts: MaintenanceAlerts = MaintenanceAlerts()
