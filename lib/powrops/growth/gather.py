"""What the growth report and the disk-space and performance runbooks read from the database.

Reads only, but for :func:`snapshot_and_report`, which first stores a metric snapshot (its name
says so). What they show of it is :mod:`powrops.growth.view`."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from powrops.alerts import intervals
from powrops.alerts.run import AlertReport, disk_usage, evaluate, local_data_dir
from powrops.backup.repos import primary_url
from powrops.config import Settings
from powrops.db import connect
from powrops.findings import Finding
from powrops.format import human_bytes
from powrops.growth import forecast
from powrops.growth.forecast import Growth
from powrops.maintenance import actions, indexes
from powrops.metrics import snapshot
from powrops.metrics.snapshot import (
    Snapshot,
    database_errors,
    explain,
    statement_text,
    statements_status,
)
from powrops.pg import catalog
from powrops.pg.privileges import readable


def growth_for(settings: Settings) -> Growth:
    """The growth of the configured database, with the disk it lives on."""

    thr = settings.alerts.disk_usage
    with database_errors("growth analysis failed"), connect(settings, autocommit=True) as conn:
        disk = readable(disk_usage(settings, conn))
        return forecast.analyze(
            conn,
            server=settings.server,
            disk=disk,
            warning_pct=thr.warning,
            critical_pct=thr.critical,
        )


@dataclass
class GrowthReport:
    """Everything the weekly report shows, gathered by :func:`build`."""

    snapshot: Snapshot
    alerts: AlertReport
    growth: Growth
    index_findings: list[Finding]
    history: list[dict[str, Any]]
    vacuum_plan: list[dict[str, Any]]
    analyze_plan: list[dict[str, Any]]

    @property
    def findings(self) -> list[Finding]:
        return [*self.alerts.findings, *self.index_findings]


def snapshot_history(settings: Settings, days: float = 365) -> list[dict[str, Any]]:
    """Size and cache hit rate of each stored snapshot (oldest first)."""

    with connect(settings, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT taken_at, (metrics -> 'database' ->> 'total_bytes')::bigint, "
            "(metrics -> 'cache' ->> 'hit_rate')::float8 FROM ops.metric_snapshots "
            "WHERE server = %s AND taken_at > now() - make_interval(secs => %s) "
            "ORDER BY taken_at",
            (settings.server, days * 86400),
        ).fetchall()
    return [{"taken_at": r[0], "total_bytes": r[1], "hit_rate": r[2]} for r in rows]


def snapshot_and_report(settings: Settings, *, take_snapshot: bool = True) -> GrowthReport:
    """Take a snapshot, evaluate the alerts, compute growth, check the indexes.

    The alerts are evaluated without recording: the baseline (statement counters,
    checkpoints, archiver failures) stays the one ``powrops alerts`` left, so that what this
    report saw since then still pages at the next alerts run, and the quarterly review counts
    only the alerts runs as alert evaluations."""

    snap = snapshot.take_snapshot(settings, save=take_snapshot)
    rate = forecast.growth_rate(settings.server)
    alerts = evaluate(settings, record=False, data=snap.metrics, growth=rate)
    with connect(settings, autocommit=True) as conn:
        stats = actions.table_stats(conn)
    vacuum = actions.plan_vacuum(stats, settings)
    analyze = actions.plan_analyze(stats, settings)
    return GrowthReport(
        snapshot=snap,
        alerts=alerts,
        growth=growth_for(settings),
        index_findings=indexes.index_checks(settings),
        history=snapshot_history(settings),
        vacuum_plan=[{"table": t.qualified, "reason": t.reason} for t in vacuum],
        analyze_plan=[{"table": t.qualified, "reason": t.reason} for t in analyze],
    )


def table_growth_rows(settings: Settings, recent_months: int = 3) -> list[dict[str, Any]]:
    """Which tables grow, how fast: rows and bytes per day from the rows' creation times
    (mean of the last ``recent_months`` full months), and from the snapshot history."""

    with connect(settings, autocommit=True) as conn:
        monthly = forecast.monthly_rows(conn)
        per_row = forecast.bytes_per_row(conn)
        by_snapshots = _snapshot_table_rates(conn, settings.server)
    rows = []
    for table, counts in monthly.items():
        months = sorted(counts)[-recent_months - 1 : -1] or sorted(counts)[-1:]
        rows_per_day = sum(counts[m] for m in months) / (30.0 * len(months))
        rows.append({
            "table": f"public.{table}",
            "rows per day (creation times)": round(rows_per_day, 1),
            "bytes per day (creation times)": round(rows_per_day * per_row.get(table, 0.0)),
            "bytes per day (snapshots)": by_snapshots.get(f"public.{table}"),
            "bytes per row": round(per_row.get(table, 0.0)),
        })  # fmt: skip
    return sorted(rows, key=lambda r: -float(r["bytes per day (creation times)"]))


def _snapshot_table_rates(conn: Any, server: str, days: float = 90) -> dict[str, float]:
    """Bytes per day per table between ``server``'s oldest and newest snapshot of the last
    ``days``."""
    rows = conn.execute(
        "(SELECT taken_at, metrics -> 'volume' -> 'table_distribution' FROM ops.metric_snapshots "
        " WHERE server = %s AND taken_at > now() - make_interval(days => %s) "
        " AND metrics ? 'volume' ORDER BY taken_at LIMIT 1) UNION ALL "
        "(SELECT taken_at, metrics -> 'volume' -> 'table_distribution' FROM ops.metric_snapshots "
        " WHERE server = %s AND metrics ? 'volume' ORDER BY taken_at DESC LIMIT 1)",
        (server, int(days), server),
    ).fetchall()
    if len(rows) < 2:
        return {}
    (t0, first), (t1, last) = rows[0], rows[-1]
    span = (t1 - t0).total_seconds() / 86400
    if span < 1:
        return {}
    return {name: round((size - first.get(name, 0)) / span) for name, size in last.items()}


SLOW_STATEMENTS_SQL = """
SELECT s.queryid::text AS queryid, s.query, r.rolname AS role, s.calls,
       s.mean_exec_time AS mean_ms, s.max_exec_time AS max_ms, s.total_exec_time AS total_ms
FROM pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.mean_exec_time DESC
LIMIT 500
"""
"""This database's statements by mean time, with the role that ran each: the 500 slowest,
among which the runbook finds ``limit`` of the application's."""

#: Statements powrops runs that an application does not: utility commands (COPY of the demo
#: data, ANALYZE, VACUUM, REINDEX, EXPLAIN of the performance runbook, the migrations' DDL)...
OWN_COMMANDS = frozenset({"copy", "analyze", "vacuum", "reindex", "explain", "checkpoint",
                          "cluster", "set", "show", "reset", "alter", "create", "drop",
                          "grant", "revoke", "comment"})  # fmt: skip
#: ... and reads of powrops' own schema, of the statistics and catalogs, of amcheck, and the
#: integrity checks' counting shapes (``consistency.COUNT_AND_SAMPLES``, ``rules``).
OWN_MARKERS = re.compile(
    r"\bops\.|\bpg_stat|\bpg_class\b|\bpg_namespace\b|\bpg_database\b|\bpg_roles\b|"
    r"\bpg_index\b|\bpg_locks\b|\bpg_settings\b|\bpg_extension\b|\bpg_ls_|"
    r"\bpg_control_|\bpg_current_wal|\bpg_is_in_recovery|\bcurrent_setting\b|"
    r"\bset_config\b|\bbt_index|\bverify_heapam|\balembic_version\b|"
    r"\bAS MATERIALIZED \(SELECT\b|\bcount\(\*\) FILTER \(WHERE\b|\bpg_size_|"
    r"\bpg_column_size\b|\bpg_total_relation_size\b|\bpg_relation_size\b",
    re.IGNORECASE,
)


def statement_origin(query: str, role: str | None, own_roles: list[str]) -> str | None:
    """Who ran a statement when it is not the application: "psql" (its describe queries
    name every catalog ``pg_catalog.``), "powrops (role R)" for powrops' roles
    (``alerts.own_roles``, ``database.role``), "powrops" for what only powrops runs
    (:data:`OWN_COMMANDS`, :data:`OWN_MARKERS`); None for the application's.
    ``pg_stat_statements`` keeps no ``application_name``, so the text and the role decide."""
    if role is not None and role in own_roles:
        return f"powrops (role {role})"
    if "pg_catalog." in query:
        return "psql"
    words = query.lstrip("( \n").split(None, 1)
    if (words[0].lower() if words else "") in OWN_COMMANDS or OWN_MARKERS.search(query):
        return "powrops"
    return None


def slow_statements(
    settings: Settings, limit: int = 10
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The slowest statements by mean time: the application's, and apart from them powrops'
    own and psql's (:func:`statement_origin`), ``limit`` of each; those at or over
    ``maintenance.alerts.query_time`` marked. One row with a note when the statistics cannot
    be read."""

    with connect(settings, autocommit=True) as conn:
        note = statements_status(conn)
        if note:
            return [{"note": note}], []
        found = catalog.dict_rows(conn, SLOW_STATEMENTS_SQL)
    limit_ms = settings.maintenance.alerts.query_time.timedelta.total_seconds() * 1000
    own_roles = intervals.own_roles(settings)
    application: list[dict[str, Any]] = []
    own: list[dict[str, Any]] = []
    for row in found:
        row["source"] = statement_origin(str(row["query"]), row["role"], own_roles)
        row["query"] = snapshot.redact_query(str(row["query"]))
        for key in ("mean_ms", "max_ms", "total_ms"):
            row[key] = round(float(row[key]), 3)
        row["over maintenance.alerts.query_time"] = row["mean_ms"] >= limit_ms
        group = application if row["source"] is None else own
        if len(group) < limit:
            group.append(row)
    return application, own


def plans(settings: Settings, found: list[dict[str, Any]], analyze: bool = False) -> str:
    """EXPLAIN of each statement (generic plans for parameterised ones), as text."""

    parts = []
    with connect(settings, autocommit=True) as conn:
        for row in found:
            if "queryid" not in row:
                continue
            text = statement_text(conn, str(row["queryid"]))
            plan = explain(conn, text, analyze=analyze) if text else "(statement text hidden)"
            parts.append(f"-- queryid {row['queryid']}: mean {row['mean_ms']} ms\n{plan}")
    return "\n\n".join(parts) or "no statements to explain"


SPACE_SQL = """
SELECT pg_database_size(current_database())::bigint AS database,
       (SELECT sum(pg_database_size(oid)) FROM pg_database)::bigint AS all_databases,
       pg_size_bytes(current_setting('wal_segment_size')) AS segment
"""


def _sum(conn: Any, query: str) -> int | None:
    """One figure a role without pg_monitor may not read (None then)."""
    try:
        with conn.transaction():
            row = conn.execute(query).fetchone()
    except psycopg.Error:
        return None
    return int(row[0] or 0) if row else 0


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def space_breakdown(settings: Settings) -> list[dict[str, Any]]:
    """Where the disk space is, each with what frees it: the database, every database, pg_wal,
    the archive backlog, WAL held by replication slots, temporary files, the backup repository
    when it shares the data directory's filesystem, and the filesystem itself."""
    with database_errors("space breakdown failed"), connect(settings, autocommit=True) as conn:
        row = conn.execute(SPACE_SQL).fetchone()
        assert row is not None
        database, every, segment = int(row[0]), int(row[1]), int(row[2])
        wal = _sum(conn, "SELECT sum(size) FROM pg_ls_waldir()")
        ready = _sum(conn, "SELECT count(*) FROM pg_ls_archive_statusdir() "
                           "WHERE name LIKE '%.ready'")  # fmt: skip
        slots = _sum(conn, "SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) "
                           "FROM pg_replication_slots")  # fmt: skip
        temp = _sum(conn, "SELECT sum(size) FROM pg_ls_tmpdir()")
        data_dir = readable(local_data_dir(settings, conn))
        disk = readable(disk_usage(settings, conn))
    rows: list[dict[str, Any]] = [
        {"where": "this database", "bytes": database,
         "what frees it": "cleanup and retention (dry runs below), then VACUUM FULL of the most "
                          "bloated tables (plain VACUUM only makes space reusable)"},
        {"where": "all databases", "bytes": every, "what frees it": "drop what is not needed"},
        {"where": "pg_wal", "bytes": wal,
         "what frees it": "fix what holds WAL: the archiver (backlog), slots; then CHECKPOINT"},
        {"where": "archive backlog (.ready segments)",
         "bytes": None if ready is None else ready * segment,
         "what frees it": "make archive_command succeed (server log; powrops verify)"},
        {"where": "WAL held by replication slots", "bytes": slots,
         "what frees it": "reconnect the consumer or pg_drop_replication_slot(name)"},
        {"where": "temporary files", "bytes": temp,
         "what frees it": "end the statement that writes them (performance runbook)"},
    ]  # fmt: skip
    repo_url = primary_url(settings)
    if data_dir is not None and repo_url.startswith("file://"):
        repo = Path(urlsplit(repo_url).path)
        if repo.exists() and os.stat(repo).st_dev == os.stat(data_dir).st_dev:
            rows.append({"where": f"backup repository {repo} (same filesystem)",
                         "bytes": _tree_bytes(repo),
                         "what frees it": "powrops backup expire --dry-run, then expire; a "
                                          "repository on its own disk"})  # fmt: skip
    if disk is not None:
        rows.append({"where": disk.source, "bytes": disk.used_bytes,
                     "what frees it": f"used of {human_bytes(disk.capacity_bytes)} "
                                      f"({disk.percent:.1f} %)"})  # fmt: skip
    for r in rows:
        r["size"] = (
            "unreadable (needs pg_monitor)" if r["bytes"] is None else human_bytes(r["bytes"])
        )
    return rows


def space_freed(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Before and after, per place, with the bytes freed (a place that grew meanwhile, by
    other writers on a shared file system, freed none)."""
    later = {r["where"]: r["bytes"] for r in after}
    out = []
    for r in before:
        now = later.get(r["where"])
        freed = None if r["bytes"] is None or now is None else r["bytes"] - now
        out.append({"where": r["where"], "before": r["size"],
                    "after": "-" if now is None else human_bytes(now),
                    "freed": _freed(freed)})  # fmt: skip
    return out


def _freed(freed: int | None) -> str:
    if freed is None:
        return "-"
    return human_bytes(freed) if freed >= 0 else f"none (grew by {human_bytes(-freed)} meanwhile)"


BLOCKING_SQL = """
SELECT w.pid AS waiting_pid, w.usename AS waiting_user, w.application_name AS waiting_app,
       round(EXTRACT(epoch FROM clock_timestamp() - coalesce(
           (SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted),
           w.query_start))::numeric, 1) AS waiting_s,
       b.pid AS blocking_pid, b.usename AS blocking_user, b.application_name AS blocking_app,
       b.state AS blocking_state,
       round(EXTRACT(epoch FROM clock_timestamp() - b.xact_start)::numeric, 1) AS blocking_xact_s,
       cardinality(pg_blocking_pids(b.pid)) > 0 AS blocker_waits_too
FROM pg_stat_activity w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
JOIN pg_stat_activity b ON b.pid = bp.pid
ORDER BY waiting_s DESC
"""

STATISTICS_AGE_SQL = """
SELECT schemaname || '.' || relname AS "table", n_live_tup AS rows,
       n_mod_since_analyze AS "modified since analyze",
       greatest(last_analyze, last_autoanalyze) AS "last analyze",
       round(EXTRACT(epoch FROM now() - greatest(last_analyze, last_autoanalyze))::numeric
             / 3600, 1) AS "hours since"
FROM pg_stat_user_tables
ORDER BY greatest(last_analyze, last_autoanalyze) NULLS FIRST, n_live_tup DESC
LIMIT 20
"""

RULE_STATEMENTS_SQL = """
SELECT s.queryid::text AS queryid, s.query, s.calls, s.rows
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.query ~* '\\m(offset|limit)\\M' AND s.calls > 0
ORDER BY s.total_exec_time DESC
LIMIT 200
"""


def blocking_chains(settings: Settings) -> list[dict[str, Any]]:
    """Every session waiting on another's lock, with the blocker (and whether it waits too:
    a chain), longest wait first."""
    with database_errors("blocking chains failed"), connect(settings, autocommit=True) as conn:
        return catalog.dict_rows(conn, BLOCKING_SQL)


def statistics_age(settings: Settings) -> list[dict[str, Any]]:
    """Tables by the age of their statistics, never analyzed first."""
    with database_errors("statistics age failed"), connect(settings, autocommit=True) as conn:
        return catalog.dict_rows(conn, STATISTICS_AGE_SQL)


def query_rule_rows(settings: Settings) -> list[dict[str, Any]]:
    """Statements that break the strategy's query rules (``query.pagination``): OFFSET
    pagination where keyset pagination is the rule, and LIMITed statements returning more
    rows per call than ``max_limit``. ``pg_stat_statements`` replaces the constants, so the
    LIMIT is judged by the rows the statement returned per call."""
    pagination = settings.query.pagination
    with database_errors("query rules failed"), connect(settings, autocommit=True) as conn:
        if statements_status(conn):
            return []
        found = catalog.dict_rows(conn, RULE_STATEMENTS_SQL)
    out = []
    for row in found:
        text = str(row["query"])
        words = text.lower().split()
        per_call = int(row["rows"]) / max(int(row["calls"]), 1)
        broken = []
        if pagination.use_keyset and "offset" in words:
            broken.append("OFFSET pagination (query.pagination.use_keyset: use keyset pagination)")
        if "limit" in words and per_call > pagination.max_limit:
            broken.append(
                f"returns {per_call:.0f} rows a call, over query.pagination.max_limit "
                f"{pagination.max_limit}"
            )
        if broken:
            out.append({"queryid": row["queryid"], "calls": row["calls"],
                        "rows per call": round(per_call, 1), "rule broken": "; ".join(broken),
                        "query": snapshot.redact_query(text)})  # fmt: skip
    return out
