"""Gathering the quarterly review's evidence: the archive, the backup catalog, ``ops`` history.

Reads only what is kept; it never re-runs a check. Database reads happen in one read-only
REPEATABLE READ snapshot with the configured statement timeout, bounded to the quarter (plus
the last metric snapshot before it, the baseline for growth). The retention audit is a handful
of ``count(*)`` queries with the retention periods as parameters: set-based, nothing fetched
but counts. Evidence that cannot be read (an unreachable repository or database) is recorded as
a problem, and the items that needed it turn red, instead of failing the whole review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from powrops.backup.catalog import Catalog
from powrops.backup.repos import primary
from powrops.config import DEFAULT_SERVER
from powrops.db import connect, snapshot
from powrops.durations import Duration
from powrops.errors import PowropsError
from powrops.quarterly.model import (
    DEFAULT_INTERVALS,
    BackupRun,
    CheckRun,
    Evidence,
    OpsEvent,
    Quarter,
    Repair,
    ReportRun,
    RetentionCount,
    Snapshot,
)
from powrops.reports.catalog import list_runs

if TYPE_CHECKING:
    import psycopg

    from powrops.config import Settings


@dataclass(frozen=True)
class RetentionRule:
    """One retention policy as a count of rows past it."""

    policy: str
    table: str
    where: str  # SQL condition; %(age)s is replaced by the retention as an interval
    rule: str
    retention: Duration


def retention_rules(settings: Settings) -> list[RetentionRule]:
    """The strategy's retention policies and cleanup targets that have a length."""
    r, c = settings.retention, settings.cleanup.targets
    rules = [
        (
            "user_account.inactive",
            "users",
            "deleted_at IS NULL AND coalesce(last_active_at, created_at) < now() - {age}",
            "inactive (no activity) longer than",
            r.user_account.inactive,
        ),
        (
            "user_account.deleted",
            "users",
            "deleted_at < now() - {age}",
            "deleted longer ago than",
            r.user_account.deleted,
        ),
        (
            "workout_data.archived",
            "workouts",
            "archived_at < now() - {age}",
            "archived longer ago than",
            r.workout_data.archived,
        ),
        (
            "workout_data.deleted",
            "workouts",
            "deleted_at < now() - {age}",
            "deleted longer ago than",
            r.workout_data.deleted,
        ),
        (
            "system_logs.security",
            "system_logs",
            "category = 'security' AND logged_at < now() - {age}",
            "logged longer ago than",
            r.system_logs.security,
        ),
        (
            "system_logs.performance",
            "system_logs",
            "category = 'performance' AND logged_at < now() - {age}",
            "logged longer ago than",
            r.system_logs.performance,
        ),
        (
            "system_logs.debug",
            "system_logs",
            "category = 'debug' AND logged_at < now() - {age}",
            "logged longer ago than",
            r.system_logs.debug,
        ),
        (
            "cleanup.temp_data",
            "temp_data",
            "created_at < now() - {age}",
            "created longer ago than",
            c.temp_data,
        ),
        (
            "cleanup.cache_ttl",
            "cache_entries",
            "created_at < now() - {age}",
            "created longer ago than",
            c.cache_ttl,
        ),
        (
            "cleanup.sessions",
            "sessions",
            "created_at < now() - {age}",
            "created longer ago than",
            c.sessions,
        ),
    ]
    return [
        RetentionRule(policy, table, where, f"{text} {duration}", duration)
        for policy, table, where, text, duration in rules
        if not duration.indefinite
    ]


def retention_sql(rules: list[RetentionRule]) -> tuple[str, list[float]]:
    """One statement counting the rows past each rule (one scalar subquery per rule)."""
    parts, params = [], []
    for index, rule in enumerate(rules):
        where = rule.where.format(age="make_interval(secs => %s)")
        parts.append(f"(SELECT count(*) FROM public.{rule.table} WHERE {where}) AS c{index}")
        params.append(rule.retention.timedelta.total_seconds())
    return "SELECT " + ",\n       ".join(parts), params


def intervals(settings: Settings) -> dict[str, timedelta]:
    """Each checklist item's schedule interval, from the configuration where it says."""
    found = dict(DEFAULT_INTERVALS)
    configured: dict[str, Duration] = {
        "backup_full": settings.backup.schedule.full,
        "verification": settings.backup.schedule.full,
        "integrity": settings.consistency.schedule,
        "analyze": settings.maintenance.analyze,
        "vacuum": settings.maintenance.vacuum,
        "cleanup": settings.cleanup.schedule,
    }
    schedule = getattr(settings, "schedule", None)  # the report cadences of `powrops schedule`
    for key, name in (("verification", "verification"), ("growth", "growth"), ("drill", "drill")):
        cadence = getattr(schedule, name, None)
        if isinstance(cadence, Duration):
            configured[key] = cadence
    for key, duration in configured.items():
        if not duration.indefinite:
            found[key] = duration.timedelta
    return found


def gather(settings: Settings, quarter: Quarter, now: datetime | None = None) -> Evidence:
    """Every piece of evidence the review of ``quarter`` reads."""
    objectives = settings.recovery.objectives
    capacity = settings.alerts.disk_capacity
    ev = Evidence(
        quarter=quarter,
        now=now or datetime.now(UTC),
        objectives={
            "rto_s": objectives.rto.timedelta.total_seconds(),
            "rpo_s": objectives.rpo.timedelta.total_seconds(),
        },
        intervals=intervals(settings),
        failed_backups={
            "warning": settings.alerts.failed_backups.warning,
            "critical": settings.alerts.failed_backups.critical,
        },
        disk_capacity=capacity.bytes if capacity else None,
    )
    ev.runs = report_runs(settings)
    try:
        ev.backups = backup_runs(settings)
    except PowropsError as exc:
        ev.problems.append(f"backup catalog unreadable: {exc}")
    try:
        _read_database(settings, ev)
    except PowropsError as exc:
        ev.problems.append(f"ops history unreadable: {exc}")
    return ev


def report_runs(settings: Settings) -> list[ReportRun]:
    """Every archived run with a start time (from the local archive's result.json files)."""

    entries = list_runs(settings.reports_dir, settings.server)
    runs = (ReportRun.from_catalog(entry) for entry in entries)
    return [run for run in runs if run is not None]


def backup_runs(settings: Settings) -> list[BackupRun]:
    """Registered backups (ok and failed) and incomplete runs from the primary repository."""

    catalog = Catalog(primary(settings))
    found = [
        BackupRun(r.label, r.kind, r.status, r.start_time, r.stop_time, r.error)
        for r in catalog.records()
    ]
    for item in catalog.incomplete():
        kind = "incremental" if item.label.endswith("I") else "full"
        found.append(
            BackupRun(
                item.label,
                kind,
                "incomplete",
                item.first_seen,
                None,
                "no backup.json: the run was killed or is still running",
            )
        )
    return sorted(found, key=lambda b: b.started_at)


def _read_database(settings: Settings, ev: Evidence) -> None:

    start, end = ev.quarter.start, ev.as_of
    timeout = settings.database.statement_timeout.postgres()
    with connect(settings) as conn, snapshot(conn, timeout):
        server = settings.server
        ev.events = _events(conn, server, start, end)
        ev.check_runs = _check_runs(conn, server, start, end)
        ev.repairs = _repairs(conn, server, start, end)
        ev.snapshots = _snapshots(conn, server, start, end)
        ev.analyzed_at = _analyzed_at(conn)
        rules = retention_rules(settings)
        sql, params = retention_sql(rules)
        counts = conn.execute(sql, params).fetchone() if rules else ()
        ev.retention = [
            RetentionCount(r.policy, r.table, r.rule, str(r.retention), int(n))
            for r, n in zip(rules, counts or (), strict=True)
        ]
        ev.retention_audited_at = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def _events(
    conn: psycopg.Connection[Any], server: str, start: datetime, end: datetime
) -> list[OpsEvent]:
    rows = conn.execute(
        "SELECT kind, at, details FROM ops.events WHERE server = %s AND at >= %s AND at <= %s "
        "AND kind <> 'drill_marker' ORDER BY at",
        (server, start, end),
    ).fetchall()
    return [
        OpsEvent(kind, at, details if isinstance(details, dict) else {})
        for kind, at, details in rows
    ]


def _check_runs(
    conn: psycopg.Connection[Any], server: str, start: datetime, end: datetime
) -> list[CheckRun]:
    rows = conn.execute(
        "SELECT id, kind, status, started_at, counts, findings FROM ops.check_runs "
        "WHERE server = %s AND started_at >= %s AND started_at <= %s "
        # a repair without a preceding check anchors itself on an empty UNKNOWN run: not a check
        "AND NOT (status = 'UNKNOWN' AND counts = '{}'::jsonb) ORDER BY started_at",
        (server, start, end),
    ).fetchall()
    return [
        CheckRun(
            i,
            kind,
            str(status).upper(),
            at,
            c if isinstance(c, dict) else {},
            tuple(f for f in (fs if isinstance(fs, list) else []) if isinstance(f, dict)),
        )
        for i, kind, status, at, c, fs in rows
    ]


def _repairs(
    conn: psycopg.Connection[Any], server: str, start: datetime, end: datetime
) -> list[Repair]:
    # a repair belongs to the server of its check run (the default server without one)
    rows = conn.execute(
        "SELECT r.kind, r.table_name, r.rows, r.at FROM ops.repairs r "
        "LEFT JOIN ops.check_runs c ON c.id = r.run_id "
        "WHERE coalesce(c.server, %s) = %s AND r.at >= %s AND r.at <= %s ORDER BY r.at",
        (DEFAULT_SERVER, server, start, end),
    ).fetchall()
    return [Repair(kind, table, int(n), at) for kind, table, n, at in rows]


def _snapshots(
    conn: psycopg.Connection[Any], server: str, start: datetime, end: datetime
) -> list[Snapshot]:
    rows = conn.execute(
        "(SELECT taken_at, metrics FROM ops.metric_snapshots WHERE server = %s "
        " AND taken_at < %s ORDER BY taken_at DESC LIMIT 1) "
        "UNION ALL (SELECT taken_at, metrics FROM ops.metric_snapshots "
        " WHERE server = %s AND taken_at >= %s AND taken_at <= %s) ORDER BY 1",
        (server, start, server, start, end),
    ).fetchall()
    return [Snapshot(at, m if isinstance(m, dict) else {}) for at, m in rows]


def _analyzed_at(conn: psycopg.Connection[Any]) -> datetime | None:
    """The oldest statistics among POWR tables holding rows (ANALYZE or autoanalyze)."""
    row = conn.execute(
        "SELECT min(greatest(last_analyze, last_autoanalyze)) FROM pg_stat_user_tables "
        "WHERE schemaname = 'public' AND n_live_tup > 0"
    ).fetchone()
    return row[0] if row else None
