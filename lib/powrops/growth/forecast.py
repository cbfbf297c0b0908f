"""Growth rate and size forecast: from the snapshot history and from the data's own timestamps.

Two sources of a trend, chosen automatically:

* **snapshots** — the total database size of every ``ops.metric_snapshots`` row of the last
  ``HISTORY_DAYS``; used when there are at least ``MIN_SNAPSHOTS`` spanning ``MIN_SPAN_DAYS``.
* **timestamps** — the data's own creation times, so that a new installation already has a
  trend: rows per month of every table with a ``created_at`` / ``occurred_at`` / ``logged_at``
  column, counted on a ``TABLESAMPLE SYSTEM`` sample of at most ``SAMPLE_ROWS`` rows (so the
  cost does not grow with the table) and scaled to the table's row estimate, times the table's
  bytes per row, summed into an estimated database size at the end of each month. Rows deleted
  since are not seen, so this source tends to underestimate.

The forecast is an ordinary least-squares line through (time, bytes) with a 95 % prediction
band (``z = 1.96``; residual standard error, widening away from the data), and the days until
the disk usage thresholds are crossed at that rate, and at the band's upper rate (earliest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from powrops.metrics.disk import Disk
from powrops.metrics.snapshot import history

Z95 = 1.96
HISTORY_DAYS = 365
MIN_SNAPSHOTS = 3
MIN_SPAN_DAYS = 7.0
SAMPLE_ROWS = 50_000
TIME_COLUMNS = ("created_at", "occurred_at", "logged_at")
MAX_DAYS = 36_500.0  # a crossing further away than a century has no date


@dataclass(frozen=True)
class Fit:
    """A straight line ``bytes = intercept + slope * days`` since ``origin``."""

    origin: datetime
    slope: float  # bytes per day
    intercept: float
    slope_stderr: float
    residual_std: float
    n: int
    mean_x: float
    sxx: float

    def days(self, when: datetime) -> float:
        return (when - self.origin).total_seconds() / 86400

    def predict(self, when: datetime) -> tuple[float, float, float]:
        """(expected, low, high) bytes at ``when``: the line and its 95 % prediction band."""
        x = self.days(when)
        mean = self.intercept + self.slope * x
        spread = 0.0
        if self.n > 2 and self.sxx > 0:
            spread = (
                Z95
                * self.residual_std
                * math.sqrt(1 + 1 / self.n + (x - self.mean_x) ** 2 / self.sxx)
            )
        return mean, mean - spread, mean + spread


def linear_fit(times: Sequence[datetime], values: Sequence[float]) -> Fit | None:
    """Least-squares line through the points; None with fewer than two distinct times."""
    if len(times) != len(values):
        raise ValueError("times and values differ in length")
    if len(times) < 2:
        return None
    origin = min(times)
    x = [(t - origin).total_seconds() / 86400 for t in times]
    y = [float(v) for v in values]
    n = len(x)
    mean_x, mean_y = math.fsum(x) / n, math.fsum(y) / n
    sxx = math.fsum((a - mean_x) ** 2 for a in x)
    if sxx <= 0:
        return None
    slope = math.fsum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    squares = math.fsum((b - (intercept + slope * a)) ** 2 for a, b in zip(x, y, strict=True))
    residual_std = math.sqrt(squares / (n - 2)) if n > 2 else 0.0
    return Fit(
        origin=origin,
        slope=slope,
        intercept=intercept,
        slope_stderr=residual_std / math.sqrt(sxx) if n > 2 else 0.0,
        residual_std=residual_std,
        n=n,
        mean_x=mean_x,
        sxx=sxx,
    )


def days_until(current: float, limit: float, rate_per_day: float) -> float | None:
    """Days until ``current`` grows to ``limit`` at ``rate_per_day``; 0 when already there,
    None when it never will (no growth)."""
    if current >= limit:
        return 0.0
    if rate_per_day <= 0:
        return None
    return (limit - current) / rate_per_day


@dataclass
class Growth:
    """The growth rate, its source, the forecast and when the thresholds are crossed."""

    source: str  # "snapshots" | "timestamps" | "none"
    points: list[tuple[datetime, float]]
    fit: Fit | None
    current_bytes: int
    now: datetime
    disk: Disk | None = None
    warning_pct: float = 80.0
    critical_pct: float = 90.0
    horizon_days: int = 365
    notes: list[str] = field(default_factory=list)
    rates: dict[str, float | None] = field(default_factory=dict)  # bytes/day by source

    @property
    def rate_per_day(self) -> float | None:
        return self.fit.slope if self.fit else None

    @property
    def rate_band(self) -> tuple[float, float] | None:
        if not self.fit:
            return None
        spread = Z95 * self.fit.slope_stderr
        return self.fit.slope - spread, self.fit.slope + spread

    def forecast(self, steps: int = 24) -> list[tuple[datetime, float, float, float]]:
        """(time, expected, low, high) from now to the horizon, anchored at the current size."""
        if self.fit is None:
            return []
        base, _, _ = self.fit.predict(self.now)
        shift = self.current_bytes - base
        result = []
        for i in range(steps + 1):
            when = self.now + timedelta(days=self.horizon_days * i / steps)
            mean, low, high = self.fit.predict(when)
            result.append((when, mean + shift, max(low + shift, 0.0), high + shift))
        return result

    def _limit_days(self, pct: float, rate: float | None) -> float | None:
        if self.disk is None or rate is None:
            return None
        limit = self.disk.capacity_bytes * pct / 100
        return days_until(self.disk.used_bytes, limit, rate)

    def thresholds(self) -> dict[str, float | None]:
        """Days until warning and critical disk usage, at the rate and at the upper band."""
        band = self.rate_band
        high = band[1] if band else None
        return {
            "days_to_warning": self._limit_days(self.warning_pct, self.rate_per_day),
            "days_to_critical": self._limit_days(self.critical_pct, self.rate_per_day),
            "days_to_warning_earliest": self._limit_days(self.warning_pct, high),
            "days_to_critical_earliest": self._limit_days(self.critical_pct, high),
        }

    def size_in(self, days: float) -> float | None:
        """Expected database size ``days`` from now (upper band if wider)."""
        if self.fit is None:
            return None
        mean, _, high = self.fit.predict(self.now + timedelta(days=days))
        base, _, _ = self.fit.predict(self.now)
        return self.current_bytes + max(mean, high) - base

    def to_dict(self) -> dict[str, Any]:
        crossing: dict[str, Any] = {}
        for key, days in self.thresholds().items():
            crossing[key] = days
            crossing[key.replace("days_to", "date")] = (
                (self.now + timedelta(days=days)).date().isoformat()
                if days is not None and days < MAX_DAYS
                else None
            )
        year = self.size_in(365)
        return {
            "source": self.source,
            "points": len(self.points),
            "current_bytes": self.current_bytes,
            "rate_bytes_per_day": self.rate_per_day,
            "rate_band": list(self.rate_band) if self.rate_band else None,
            "disk": None
            if self.disk is None
            else {
                "used_bytes": self.disk.used_bytes,
                "capacity_bytes": self.disk.capacity_bytes,
                "percent": round(self.disk.percent, 2),
                "source": self.disk.source,
            },
            "size_in_a_year_bytes": year,
            "needed_in_a_year_bytes": None
            if year is None or self.disk is None
            else self.disk.used_bytes + (year - self.current_bytes),
            **crossing,
            "rates_by_source": self.rates,
            "notes": self.notes,
        }


# --- trend from the data's own timestamps ----------------------------------------------------

TIME_TABLES_SQL = """
SELECT DISTINCT ON (c.oid) n.nspname, c.relname, a.attname,
       GREATEST(c.reltuples, 0)::float8 AS reltuples, pg_total_relation_size(c.oid) AS bytes,
       COALESCE(s.n_live_tup, 0) AS live
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind = 'r' AND n.nspname = 'public' AND a.attname = ANY(%s)
  AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
ORDER BY c.oid, array_position(%s, a.attname::text)
"""


def monthly_rows(conn: psycopg.Connection[Any]) -> dict[str, dict[datetime, float]]:
    """Estimated rows created per month for each table with a creation-time column."""
    result: dict[str, dict[datetime, float]] = {}
    found = conn.execute(TIME_TABLES_SQL, (list(TIME_COLUMNS), list(TIME_COLUMNS))).fetchall()
    for schema, table, column, reltuples, _bytes, live in found:
        estimate = max(float(reltuples), float(live))
        if estimate <= 0:
            continue
        percent = min(100.0, 100.0 * SAMPLE_ROWS / estimate)
        sample = percent < 100
        query = sql.SQL(
            "SELECT date_trunc('month', {col}) AS m, count(*) FROM {tbl}{sample} "
            "WHERE {col} IS NOT NULL GROUP BY 1"
        ).format(
            col=sql.Identifier(column),
            tbl=sql.Identifier(schema, table),
            sample=sql.SQL(" TABLESAMPLE SYSTEM ({}) REPEATABLE (42)").format(
                sql.Literal(round(percent, 6))
            )
            if sample
            else sql.SQL(""),
        )
        rows = conn.execute(query).fetchall()
        seen = sum(int(r[1]) for r in rows)
        if not seen:
            continue
        scale = estimate / seen if sample else 1.0
        result[table] = {_utc(r[0]): int(r[1]) * scale for r in rows}
    return result


def bytes_per_row(conn: psycopg.Connection[Any]) -> dict[str, float]:
    found = conn.execute(TIME_TABLES_SQL, (list(TIME_COLUMNS), list(TIME_COLUMNS))).fetchall()
    return {
        table: float(size) / max(float(reltuples), float(live), 1.0)
        for _s, table, _c, reltuples, size, live in found
    }


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _month_end(start: datetime) -> datetime:
    return (start.replace(day=1) + timedelta(days=32)).replace(day=1)


def timestamp_points(
    monthly: dict[str, dict[datetime, float]],
    per_row: dict[str, float],
    base_bytes: float,
    now: datetime,
    months: int = 12,
) -> list[tuple[datetime, float]]:
    """Estimated database size at the end of each month (the current month: now).

    ``base_bytes`` is what does not come from timestamped rows (catalog, ops, other tables): the
    current size minus the estimated size of the timestamped rows, so the last point is the
    current size.
    """
    added: dict[datetime, float] = {}
    for table, counts in monthly.items():
        for month, rows in counts.items():
            added[month] = added.get(month, 0.0) + rows * per_row.get(table, 0.0)
    points = []
    total = base_bytes
    for month in sorted(added):
        total += added[month]
        points.append((min(_month_end(month), now), total))
    return points[-(months + 1) :]


def from_snapshots(history: Sequence[tuple[datetime, int]]) -> Fit | None:
    """The fit through the snapshot history, when it is long enough to mean something."""
    if len(history) < MIN_SNAPSHOTS:
        return None
    span = (history[-1][0] - history[0][0]).total_seconds() / 86400
    if span < MIN_SPAN_DAYS:
        return None
    return linear_fit([t for t, _ in history], [float(v) for _, v in history])


def analyze(
    conn: psycopg.Connection[Any],
    *,
    server: str,
    disk: Disk | None,
    warning_pct: float = 80.0,
    critical_pct: float = 90.0,
    horizon_days: int = 365,
) -> Growth:
    """The growth of the connected database as ``server`` (whose snapshots it fits): both
    sources, the better one chosen."""

    row = conn.execute("SELECT now(), pg_database_size(current_database())").fetchone()
    assert row is not None
    now, current = _utc(row[0]), int(row[1])
    snaps = history(conn, server, HISTORY_DAYS)
    snap_fit = from_snapshots(snaps)
    monthly = monthly_rows(conn)
    per_row = bytes_per_row(conn)
    stamped = sum(sum(c.values()) * per_row.get(t, 0.0) for t, c in monthly.items())
    stamp_points = timestamp_points(monthly, per_row, current - stamped, now)
    stamp_fit = linear_fit([t for t, _ in stamp_points], [v for _, v in stamp_points])
    notes = []
    if snap_fit is not None:
        source, points, fit = "snapshots", [(t, float(v)) for t, v in snaps], snap_fit
    elif stamp_fit is not None:
        source, points, fit = "timestamps", stamp_points, stamp_fit
        notes.append(
            f"{len(snaps)} snapshot(s) in the history; at least {MIN_SNAPSHOTS} over "
            f"{MIN_SPAN_DAYS:g} days are needed, so the trend comes from the rows' creation times"
        )
    else:
        source, points, fit = "none", [], None
        notes.append("no trend yet: too few snapshots and no rows with creation times")
    return Growth(
        source=source,
        points=points,
        fit=fit,
        current_bytes=current,
        now=now,
        disk=disk,
        warning_pct=warning_pct,
        critical_pct=critical_pct,
        horizon_days=horizon_days,
        notes=notes,
        rates={
            "snapshots": snap_fit.slope if snap_fit else None,
            "timestamps": stamp_fit.slope if stamp_fit else None,
        },
    )


def growth_rate(server: str) -> Callable[[psycopg.Connection[Any], Disk | None], float | None]:
    """The growth rate in bytes per day of ``server``'s data as :func:`analyze` finds it, as
    the function ``alerts.evaluate(growth=...)`` takes for its disk forecast."""

    def rate(conn: psycopg.Connection[Any], disk: Disk | None) -> float | None:
        return analyze(conn, server=server, disk=disk).rate_per_day

    return rate
