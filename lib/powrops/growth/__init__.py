"""Growth: the rate and forecast (:mod:`.forecast`), what the growth report and the two
response runbooks read (:mod:`.gather`) and show (:mod:`.view`).

The package hands on :mod:`.forecast`'s names: ``growth.analyze(...)``."""

from __future__ import annotations

from powrops.growth.forecast import (
    HISTORY_DAYS,
    MAX_DAYS,
    MIN_SNAPSHOTS,
    MIN_SPAN_DAYS,
    SAMPLE_ROWS,
    TIME_COLUMNS,
    TIME_TABLES_SQL,
    Z95,
    Fit,
    Growth,
    analyze,
    bytes_per_row,
    days_until,
    from_snapshots,
    linear_fit,
    monthly_rows,
    timestamp_points,
)

__all__ = [
    "HISTORY_DAYS",
    "MAX_DAYS",
    "MIN_SNAPSHOTS",
    "MIN_SPAN_DAYS",
    "SAMPLE_ROWS",
    "TIME_COLUMNS",
    "TIME_TABLES_SQL",
    "Z95",
    "Fit",
    "Growth",
    "analyze",
    "bytes_per_row",
    "days_until",
    "from_snapshots",
    "linear_fit",
    "monthly_rows",
    "timestamp_points",
]
