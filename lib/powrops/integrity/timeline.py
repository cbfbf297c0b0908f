"""What the integrity report and the corruption runbook read of the history: the trend of check
runs, recent repairs and the audit trail's changes. Reads only; :mod:`powrops.integrity.view`
shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from powrops import audit
from powrops.config import Settings
from powrops.errors import ParameterError
from powrops.integrity import history
from powrops.integrity.run import connection


def days_back(days: int | float | str, name: str = "days") -> datetime:
    """The start of a look-back window of ``days`` days, or ParameterError naming the parameter."""
    try:
        value = float(days)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number of days (got {days!r})") from None
    if not 0 < value <= 3660:
        raise ParameterError(f"{name} must be between 0 and 3660 days (got {days!r})")
    return datetime.now(UTC) - timedelta(days=value)


def check_parameters(**windows: int | float | str) -> None:
    """Validate look-back parameters (in days) of a notebook; ParameterError names the bad one."""
    for name, value in windows.items():
        days_back(value, name)


def trend(settings: Settings, days: int = 90) -> list[dict[str, Any]]:
    """Earlier runs: time, status, failed checks and rows (oldest first)."""
    runs = history(settings, days_back(days))
    return [
        {
            "run": r["run_id"],
            "time": f"{r['started_at']:%Y-%m-%d %H:%M}",
            "status": r["status"],
            "failed checks": r["failed_checks"],
            "failed rows": r["failed_rows"],
        }
        for r in runs
    ]


def recent_repairs(settings: Settings, days: int = 30) -> list[dict[str, Any]]:
    since = days_back(days)
    with connection(settings) as conn:
        rows = conn.execute(
            "SELECT at, run_id, kind, table_name, rows, details -> 'sample_ids' FROM ops.repairs "
            "WHERE at >= %s ORDER BY at DESC, id DESC LIMIT 50",
            (since,),
        ).fetchall()
    return [
        {
            "time": f"{r[0]:%Y-%m-%d %H:%M:%S}",
            "run": r[1],
            "repair": r[2],
            "table": r[3],
            "rows": r[4],
            "sample ids": ", ".join(r[5] or []),
        }
        for r in rows
    ]


def system_changes(settings: Settings, days: int = 7) -> list[dict[str, Any]]:
    with connection(settings) as conn:
        rows = audit.system_changes(conn, days_back(days))
    return [{**r, "time": f"{r['time']:%Y-%m-%d %H:%M:%S}"} for r in rows]


def changes(settings: Settings, days: int = 7) -> list[dict[str, Any]]:
    with connection(settings) as conn:
        rows = audit.changes_by_table(conn, days_back(days))
    return [
        {**r, "first": f"{r['first']:%Y-%m-%d %H:%M}", "last": f"{r['last']:%Y-%m-%d %H:%M}"}
        for r in rows
    ]
