"""The strategy's alert thresholds as OK / WARNING / CRITICAL findings.

* ``disk_usage`` — % used of the filesystem holding the data directory
  (``alerts.disk_usage``: 80 / 90 %);
* ``dead_tuples`` — dead / (live + dead) per table (``alerts.dead_tuples``: 10 / 20 %);
* ``query_time`` — mean execution time per statement from ``pg_stat_statements``
  (``alerts.query_time``: 1 s / 3 s);
* ``running_query`` — how long each statement running now has run (``pg_stat_activity``,
  same thresholds);
* ``failed_backups`` — consecutive failed runs at the head of the backup catalog
  (``alerts.failed_backups``: 1 / 2);
* ``table_size`` / ``index_size`` — heap + TOAST bytes per table / bytes per index
  (``maintenance.alerts``: 10GB / 2GB, WARNING only: the strategy names no critical level);
* ``backup_freshness`` — the newest ok full and newest ok backup against ``backup.schedule``
  (verify/freshness.py's judgement, on every run); no backup at all is CRITICAL;
* the server checks of ``server_checks.py`` (wraparound, connections, blocked, transactions,
  slots, replication lag, pg_wal, checkpoints, archiver).

Decisions:

* Disk usage comes from the filesystem of the data directory when it is on this machine: the
  embedded cluster's, or ``data_directory`` of a server on localhost whose directory exists
  here. Otherwise the summed size of the server's databases against ``alerts.disk_capacity``.
  Otherwise the check is UNKNOWN.
* Query time: from the difference between this run's ``pg_stat_statements`` reading and the
  previous recorded run's (``intervals.py``), without powrops' own roles; a statement's
  *mean* time in the interval decides its severity (typical executions are slow); a statement
  whose mean is fine but whose *maximum* grew past the critical threshold is a WARNING.
  Statements running now are judged by how long they have run, so a query stuck at this moment
  pages even before it finishes. Without ``pg_stat_statements`` the statement check is a
  WARNING saying so (the running-statement check still works).
  ``maintenance.alerts.query_time`` is the limit the performance runbook lists statements by.
* Dead tuples are judged only for tables of at least ``alerts.dead_tuples_min_size`` (1 MB)
  with at least ``MIN_DEAD_TUPLES`` dead rows (the autovacuum base threshold), so a tiny
  table with two dead rows does not page anyone.

``evaluate`` records every evaluation in ``ops.check_runs`` (kind ``alerts``: status, counts per
severity plus ``alerts`` = findings that are not OK, and the findings), so that the quarterly
review can count the alerts raised.
"""

from __future__ import annotations

import getpass
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from powrops import journal, notify
from powrops.alerts import (
    intervals,
    notifications,
    openmetrics_view,
    peer_checks,
    reads,
    recoverability,
    server_checks,
)
from powrops.alerts import state as alert_state
from powrops.backup import repos
from powrops.backup.catalog import Catalog, consecutive_failures
from powrops.backup.model import BackupRecord
from powrops.config import DEFAULT_SERVER, PercentThreshold, Settings
from powrops.db import connect
from powrops.errors import ParameterError, PowropsError
from powrops.findings import Finding, Graded, Severity, counts, grade
from powrops.format import human_bytes
from powrops.metrics.disk import Disk
from powrops.metrics.snapshot import database_errors, statements_status
from powrops.pg import catalog
from powrops.pg.embedded import archive_spec_findings, embedded_cluster
from powrops.pg.privileges import Denied, guarded, lacking, readable
from powrops.verify import freshness
from powrops.verify.report import VerificationReport

MIN_DEAD_TUPLES = 50
STATE_NAME = alert_state.BASELINE
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


# --- pure judgements -------------------------------------------------------------------------


def disk_findings(disk: Disk | Denied | None, threshold: PercentThreshold) -> list[Finding]:
    expected = f"< {threshold.warning:g} % (critical at {threshold.critical:g} %)"
    if isinstance(disk, Denied):
        return [disk.finding("disk_usage")]
    if disk is None:
        return [
            Finding(
                "disk_usage",
                Severity.UNKNOWN,
                "disk usage unknown: the data directory is not on this machine and "
                "alerts.disk_capacity is not set",
                expected=expected,
                advice='set alerts.disk_capacity (e.g. "500GB") for a remote server',
            )
        ]
    pct = round(disk.percent, 1)
    severity = grade(pct, threshold.warning, threshold.critical)
    return [
        Finding(
            "disk_usage",
            severity,
            f"{pct:g} % used ({human_bytes(disk.used_bytes)} of "
            f"{human_bytes(disk.capacity_bytes)})",
            object=disk.source,
            value=pct,
            expected=expected,
            advice=None
            if severity == Severity.OK
            else "follow runbooks/disk_space_response: clean up, analyze growth, plan capacity",
        )
    ]


def dead_tuple_findings(
    tables: Iterable[dict[str, Any]], threshold: PercentThreshold, min_bytes: int = 0
) -> list[Finding]:
    """Dead tuple % per table of at least ``min_bytes`` with ``MIN_DEAD_TUPLES`` dead rows."""
    found = []
    judged = 0
    expected = f"< {threshold.warning:g} % (critical at {threshold.critical:g} %)"
    for table in tables:
        dead = int(table.get("dead_tuples") or 0)
        if int(table.get("table_bytes") or 0) < min_bytes:
            continue
        judged += 1
        if dead < MIN_DEAD_TUPLES:
            continue
        pct = round(100.0 * float(table["dead_ratio"]), 1)
        severity = grade(pct, threshold.warning, threshold.critical)
        if severity != Severity.OK:
            name = f"{table['schema']}.{table['table']}"
            found.append(
                Finding(
                    "dead_tuples",
                    severity,
                    f"{pct:g} % dead tuples ({dead} dead, {table.get('live_tuples')} live)",
                    object=name,
                    value=pct,
                    expected=expected,
                    advice=f"powrops maintenance vacuum (VACUUM {name})",
                )
            )
    if not found:
        found.append(
            Finding(
                "dead_tuples",
                Severity.OK,
                f"all {judged} tables judged under {threshold.warning:g} % dead tuples"
                + (f" (tables from {human_bytes(min_bytes)})" if min_bytes else ""),
                expected=expected,
            )
        )
    return found


def size_findings(
    tables: Iterable[dict[str, Any]], indexes: Iterable[dict[str, Any]], settings: Settings
) -> list[Finding]:
    limits = settings.maintenance.alerts
    found = []
    checks = (
        ("table_size", tables, "table", limits.table_size, "table"),
        ("index_size", indexes, "index", limits.index_size, "index"),
    )
    for check, rows, key, limit, what in checks:
        over = []
        for row in rows:
            size = int(row.get("table_bytes", row.get("bytes")) or 0)
            size += int(row.get("toast_bytes") or 0) if what == "table" else 0
            if size > limit.bytes:
                over.append(
                    Finding(
                        check,
                        Severity.WARNING,
                        f"{what} is {human_bytes(size)}, over {limit}",
                        object=f"{row['schema']}.{row[key]}",
                        value=size,
                        expected=f"<= {limit}",
                        advice="consider partitioning or archiving (retention)"
                        if what == "table"
                        else "check bloat (powrops maintenance reindex --dry-run)",
                    )
                )
        found += over or [Finding(check, Severity.OK, f"every {what} under {limit}")]
    return found


def statement_findings(
    statements: Sequence[dict[str, Any]] | None,
    note: str | None,
    settings: Settings,
    since: str = "since the statistics were reset",
) -> list[Finding]:
    """Severity per statement from its mean time in the interval (``since``); a maximum over
    critical alone is a WARNING."""
    thr = settings.alerts.query_time
    warn_ms = thr.warning.timedelta.total_seconds() * 1000
    crit_ms = thr.critical.timedelta.total_seconds() * 1000
    expected = f"mean < {thr.warning} (critical at {thr.critical})"
    if statements is None:
        return [
            Finding(
                "query_time",
                Severity.WARNING,
                note or "pg_stat_statements unavailable",
                expected=expected,
                advice="add pg_stat_statements to shared_preload_libraries and "
                "CREATE EXTENSION pg_stat_statements (see the readiness report)",
            )
        ]
    found = []
    for st in statements:
        mean, peak = float(st["mean_ms"]), float(st["max_ms"])
        severity = grade(mean, warn_ms, crit_ms)
        message = (
            f"mean {mean / 1000:.2f} s over {st['calls']} calls {since} (max {peak / 1000:.2f} s)"
        )
        if severity == Severity.OK and peak >= crit_ms:
            severity = Severity.WARNING
            message = f"occasionally slow: max {peak / 1000:.2f} s, mean {mean / 1000:.2f} s"
        if severity != Severity.OK:
            found.append(
                Finding(
                    "query_time",
                    severity,
                    message,
                    object=f"queryid {st['queryid']}",
                    value=round(mean / 1000, 3),
                    expected=expected,
                    advice="follow runbooks/performance_response (EXPLAIN, statistics, indexes)",
                    details={"query": st["query"], "max_s": round(peak / 1000, 3)},
                )
            )
    return found or [
        Finding("query_time", Severity.OK, f"no statement slower than the threshold {since}")
    ]


def activity_findings(
    running: Iterable[dict[str, Any]] | Denied, settings: Settings
) -> list[Finding]:
    if isinstance(running, Denied):
        return [running.finding("running_query")]
    thr = settings.alerts.query_time
    warn_s, crit_s = thr.seconds
    found = []
    for row in running:
        seconds = float(row["seconds"])
        severity = grade(seconds, warn_s, crit_s)
        if severity != Severity.OK:
            found.append(
                Finding(
                    "running_query",
                    severity,
                    f"{row['command']} running for {seconds:.1f} s",
                    object=f"pid {row['pid']}",
                    value=round(seconds, 2),
                    expected=f"< {thr.warning} (critical at {thr.critical})",
                    advice="inspect with pg_stat_activity; pg_cancel_backend(pid) if it must stop",
                    details={"query_id": row.get("query_id")},
                )
            )
    return found or [Finding("running_query", Severity.OK, "no statement running too long")]


def read_only_findings(state: dict[str, Any] | Denied) -> list[Finding]:
    """A database left read-only for new sessions is an outage for the application."""
    if isinstance(state, Denied):
        return [state.finding("read_only")]
    database = state["database"]
    if state["in_recovery"]:
        return [Finding("read_only", Severity.OK, "standby server: read-only by design",
                        object=database)]  # fmt: skip
    if state["read_only"]:
        ident = sql.Identifier(database).as_string(None)
        undo = (
            f"BEGIN READ WRITE; ALTER DATABASE {ident} "
            "SET default_transaction_read_only = off; COMMIT;"
        )
        return [
            Finding(
                "read_only",
                Severity.CRITICAL,
                f"database {database} is read-only for new sessions "
                "(default_transaction_read_only = on): the application cannot write",
                object=database,
                value="on",
                expected="off",
                advice=f"if the corruption response is over, undo it: {undo} "
                "(runbooks/data_corruption_response.ipynb shows the same command)",
            )
        ]
    return [Finding("read_only", Severity.OK, f"database {database} accepts writes",
                    object=database)]  # fmt: skip


def backup_findings(
    statuses: Sequence[str] | None, error: str | None, settings: Settings
) -> list[Finding]:
    thr = settings.alerts.failed_backups
    expected = f"< {thr.warning} (critical at {thr.critical} consecutive)"
    if statuses is None:
        return [
            Finding(
                "failed_backups",
                Severity.UNKNOWN,
                f"backup catalog unreadable: {error}",
                expected=expected,
            )
        ]
    failed = consecutive_failures(statuses)
    severity = grade(failed, thr.warning, thr.critical)
    message = (
        f"{failed} consecutive failed backup(s) at the head of the catalog"
        if failed
        else f"newest backup succeeded ({len(statuses)} in the catalog)"
        if statuses
        else "no backup in the catalog yet"
    )
    return [
        Finding(
            "failed_backups",
            severity,
            message,
            object="primary repository",
            value=failed,
            expected=expected,
            advice=None if not failed else "powrops backup list; fix the cause, then backup full",
        )
    ]


# --- reading the live system -----------------------------------------------------------------


def disk_usage(
    settings: Settings, conn: psycopg.Connection[Any], read: dict[str, Any] | None = None
) -> Disk | Denied | None:
    """The data directory's filesystem when local, else databases vs disk_capacity, else
    None; Denied when the data directory may not be read and no capacity is configured.
    ``read``: what ``reads.read_all`` read (``data_directory``, ``databases_size``)."""
    read = read or {}
    path = local_data_dir(settings, conn, read)
    if isinstance(path, Path):
        usage = shutil.disk_usage(path)
        return Disk(usage.total - usage.free, usage.total, f"filesystem of {path}")
    capacity = settings.alerts.disk_capacity
    if capacity is None:
        return path
    rows = read.get("databases_size")
    used = rows if rows is not None else guarded(conn, lambda: _databases_size(conn))
    if isinstance(used, Denied):
        return used
    size = int(used[0]["bytes"] or 0) if used else 0
    return Disk(size, capacity.bytes, f"databases against alerts.disk_capacity {capacity}")


def _databases_size(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return catalog.dict_rows(conn, reads.DATABASES_SIZE_SQL)


def local_data_dir(
    settings: Settings, conn: psycopg.Connection[Any], read: dict[str, Any] | None = None
) -> Path | Denied | None:
    """The data directory when it is on this machine; Denied when this role may not read
    ``data_directory`` (pg_read_all_settings), or this OS user may not reach it."""
    if settings.database.url is None:
        return _reachable(embedded_cluster(settings).data_dir)
    host = urlsplit(settings.database.url.get_secret_value()).hostname or ""
    if host not in LOCAL_HOSTS:
        return None
    rows = (read or {}).get("data_directory")
    found = rows if rows is not None else guarded(conn, lambda: _data_directory(conn))
    if isinstance(found, Denied):
        return found
    return _reachable(Path(str(found[0]["data_directory"]))) if found else None


def _reachable(path: Path) -> Path | Denied | None:
    """``path`` when it exists; Denied when this OS user may not reach it (a monitor run by
    another account than the server's): the disk checks say so, the others still run."""
    try:
        return path if path.exists() else None
    except PermissionError as exc:
        user = getpass.getuser()
        return Denied(
            f"{path}: {exc.strerror} for OS user {user}",
            f"search permission on the folders above {path} (OS user {user})",
            "run it as an OS user that may reach it, or set alerts.disk_capacity",
        )


def _data_directory(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return catalog.dict_rows(conn, reads.DATA_DIRECTORY_SQL)


RUNNING_SQL = server_checks.RUNNING_SQL


def running_statements(
    conn: psycopg.Connection[Any], min_seconds: float, settings: Settings
) -> list[dict[str, Any]] | Denied:
    """Statements running for more than ``min_seconds`` (no text: it may hold literals),
    but not powrops' own (``database.application_name``); Denied when other roles'
    sessions are hidden from this role."""
    hidden = lacking(conn, "pg_read_all_stats", server_checks.HIDDEN_SESSIONS)
    if hidden is not None:
        return hidden
    query = server_checks.running_query(min_seconds, settings.database.application_name)
    return guarded(conn, lambda: catalog.dict_rows(conn, query))


def backup_records(settings: Settings) -> tuple[list[BackupRecord] | None, str | None]:
    """The primary repository's backups, oldest first, or (None, why)."""

    try:
        records = Catalog(repos.primary(settings)).records()
    except (PowropsError, OSError) as exc:
        return None, str(exc)
    return sorted(records, key=lambda r: (r.start_time, r.label)), None


def freshness_findings(
    records: Sequence[BackupRecord] | None, settings: Settings, now: datetime, major: int
) -> list[Finding]:
    """backup_freshness: the newest ok full and the newest ok backup of any kind against
    ``backup.schedule`` (the verification's judgement, made on every alerts run)."""
    if records is None:
        return []  # failed_backups already says the catalog is unreadable
    ok = [r for r in records if r.status == "ok"]
    if not ok:
        return [
            Finding(
                "backup_freshness",
                Severity.CRITICAL,
                "no successful backup in the catalog: nothing to restore",
                object="full",
                expected=f"a full within {settings.backup.schedule.full}",
                advice="powrops backup full (and check the schedule: powrops schedule show)",
            )
        ]
    report = VerificationReport(repository="primary", secondary=None, label=None, now=now)
    freshness.backups(report, ok, settings, now, major)
    advice = "powrops backup full (or incremental); check the schedule and the job's log"
    return [
        Finding(
            "backup_freshness",
            f.severity,
            f.message,
            object=f.check.split(".", 1)[1],
            value=f.details.get("age_s"),
            expected=f"within backup.schedule.{f.check.split('.', 1)[1]}",
            advice=None if f.severity == Severity.OK else advice,
            details={"label": f.details.get("label")},
        )
        for f in report.findings
    ]


@dataclass
class AlertReport(Graded):
    findings: list[Finding]
    evaluated_at: datetime
    run_id: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    notified: int | None = None  # messages sent by --notify
    server: str = DEFAULT_SERVER  # the configured server judged (Settings.server)

    def graded(self) -> list[Finding]:
        return self.findings

    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != Severity.OK]

    def counts(self) -> dict[str, int]:
        return {**counts(self.findings), "alerts": len(self.problems())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.name,
            "exit_code": self.exit_code,
            "evaluated_at": self.evaluated_at.isoformat(),
            "server": self.server,
            "run_id": self.run_id,
            "notified": self.notified,
            "counts": self.counts(),
            "figures": self.figures,
            "findings": [f.to_dict() for f in self.findings],
        }


def judge(
    settings: Settings,
    conn: psycopg.Connection[Any],
    data: dict[str, Any],
    before: dict[str, Any] | None = None,
    growth: peer_checks.GrowthRate | None = None,
    read: dict[str, list[Any]] | None = None,
) -> tuple[AlertReport, dict[str, Any]]:
    """Every threshold against the metrics ``data`` (``reads.alert_data`` or
    metrics.collect), the live server and the figures the previous run stored (``before``);
    the report and the figures to store. ``read`` holds what ``reads.read_all`` read of the
    server; what it does not hold is read now. ``growth`` (the growth forecast's rate) adds
    the ``disk_forecast`` check."""

    before = before or {}
    read = read or {}
    now = datetime.now(UTC)
    after: dict[str, Any] = {}
    disk = disk_usage(settings, conn, read)
    warn_s = settings.alerts.query_time.warning.timedelta.total_seconds()
    records, error = backup_records(settings)
    statuses = None if records is None else [r.status for r in records]
    server = server_checks.read_server(conn, settings, read)
    archiver = readable(server["archiver"])
    after["checkpoints"] = readable(server["checkpoints"])
    after["archiver"] = {"failed_count": archiver.failed_count} if archiver else None
    major = conn.info.server_version // 10000
    peers = peer_checks.read_peers(conn, disk if isinstance(disk, Disk) else None, growth, read)
    peer_found, after["peers"] = peer_checks.judge_peers(peers, before.get("peers"), settings, now)
    findings = [
        *disk_findings(disk, settings.alerts.disk_usage),
        *dead_tuple_findings(
            data["tables"], settings.alerts.dead_tuples, settings.alerts.dead_tuples_min_size.bytes
        ),
        *interval_findings(conn, settings, before, after, read),
        *activity_findings(_running(conn, warn_s, settings, read), settings),
        *backup_findings(statuses, error, settings),
        *freshness_findings(records, settings, now, major),
        *read_only_findings(_read_only(conn, read)),
        *size_findings(data["tables"], data["indexes"], settings),
        *server_checks.wraparound_findings(server["databases"], server["oldest_table"], settings),
        *server_checks.connection_findings(server["connections"], settings),
        *server_checks.blocked_findings(server["blocked"], settings),
        *server_checks.transaction_findings(server["transactions"], settings),
        *server_checks.slot_findings(server["slots"], settings),
        *server_checks.replication_findings(server["replication"], settings),
        *server_checks.wal_size_findings(server["wal"], settings),
        *server_checks.bloat_findings(server["bloat"], settings),
        *server_checks.index_bloat_findings(server["index_bloat"], settings),
        *server_checks.checkpoint_findings(server["checkpoints"], before.get("checkpoints"),
                                           settings),
        *server_checks.archive_findings(server["archive_ready"], archiver,
                                        before.get("archiver"), settings, now),
        *archive_spec_findings(settings),
        *peer_found,
    ]  # fmt: skip
    findings = [f for f in findings if f.check not in settings.alerts.skip]
    figures = {
        **_figures(data, disk, server),
        "recoverability": recoverability.gather(settings, conn, read.get("drills")).to_dict(),
    }
    report = AlertReport(findings, now, figures=figures, server=settings.server)
    return report, after


def _running(
    conn: psycopg.Connection[Any], warn_s: float, settings: Settings, read: dict[str, Any]
) -> list[dict[str, Any]] | Denied:
    return read["running"] if "running" in read else running_statements(conn, warn_s, settings)


def _read_only(conn: psycopg.Connection[Any], read: dict[str, Any]) -> dict[str, Any] | Denied:
    if "read_only" in read:
        return catalog.read_only_from_row(read["read_only"][0])
    return guarded(conn, lambda: catalog.read_only_state(conn))


def interval_findings(
    conn: psycopg.Connection[Any],
    settings: Settings,
    before: dict[str, Any],
    after: dict[str, Any],
    read: dict[str, Any] | None = None,
) -> list[Finding]:
    """query_time over the interval since the previous run (``before``); this run's
    statement counters go into ``after`` for the next. ``read``: the statements, when
    ``reads.read_all`` read them."""
    current = _statements(conn, settings, read or {})
    if isinstance(current, str):
        return statement_findings(None, current, settings)
    if isinstance(current, Denied):
        return [current.finding("query_time")]
    thr = settings.alerts.query_time
    floor_ms = min(thr.warning.timedelta, thr.critical.timedelta).total_seconds() * 1000
    slow, since = intervals.interval(current, before.get("statements"), floor_ms)
    after["statements"] = intervals.baseline(current)
    return statement_findings(slow, None, settings, since)


def _statements(
    conn: psycopg.Connection[Any], settings: Settings, read: dict[str, Any]
) -> dict[str, Any] | Denied | str:
    """This run's statement counters, Denied, or why pg_stat_statements cannot be read."""
    if "statements" in read:
        reset = read["statements_reset"]
        return intervals.statements_of(read["statements"],
                                       reset[0]["stats_reset"] if reset else None)  # fmt: skip
    note = statements_status(conn)
    if note is not None:
        return note
    return guarded(conn, lambda: intervals.read_statements(conn, settings))


def _figures(
    data: dict[str, Any], disk: Disk | Denied | None, server: dict[str, Any]
) -> dict[str, Any]:
    """The headline figures of a run (None for what could not be read)."""
    wal, databases, slots = (readable(server[key]) for key in ("wal", "databases", "slots"))
    return {
        "disk_percent": round(disk.percent, 2) if isinstance(disk, Disk) else None,
        "dead_tuple_ratio": data["dead_tuples"]["ratio"],
        "total_bytes": data["database"]["total_bytes"],
        "connections": readable(server["connections"]),
        "wal_bytes": wal["wal_bytes"] if wal else None,
        "archive_ready": readable(server["archive_ready"]),
        "xid_age": max((int(d["xid_age"]) for d in databases or []), default=None),
        "slots": len(slots) if slots is not None else None,
    }


def record_run(conn: psycopg.Connection[Any], report: AlertReport, server: str) -> None:
    """Store the evaluation in ops.check_runs (kind 'alerts'), or say why it could not be."""
    report.run_id, unrecorded = journal.try_record_check_run(
        conn,
        "alerts",
        report.status.name,
        report.evaluated_at,
        None,
        report.counts(),
        report.findings,
        server=server,
    )
    if unrecorded is not None:
        report.findings.append(unrecorded)


def send_notifications(
    conn: psycopg.Connection[Any], settings: Settings, report: AlertReport
) -> None:
    """Send what changed since the previous notifying run (notifications) and keep the state;
    a channel that fails adds a WARNING finding ``notify``."""
    previous = alert_state.load(conn, settings, notifications.STATE_NAME)
    todo = notifications.changes(
        report.findings,
        previous,
        report.evaluated_at,
        settings.alerts.notify.remind_every,
        ignore=("notify",),
    )
    channels = settings.notify.channels
    delivered, problems = [], []
    for change in todo:
        issues = notify.notify(channels, change.event)
        if len(issues) < len(channels):
            delivered.append(change)
        problems += issues
    report.notified = len(delivered)
    alert_state.save(
        conn, settings, notifications.STATE_NAME, notifications.apply(previous, delivered)
    )
    if problems:
        report.findings.append(
            Finding(
                "notify",
                Severity.WARNING,
                f"{len(problems)} notification(s) not delivered: {problems[0]}",
                value=len(problems),
                advice="check notify.channels; undelivered changes are sent again next run",
            )
        )


def evaluate(
    settings: Settings,
    *,
    record: bool = True,
    data: dict[str, Any] | None = None,
    send: bool = False,
    growth: peer_checks.GrowthRate | None = None,
) -> AlertReport:
    """Evaluate every alert and record the run. What the checks judge is read in two
    statements (``reads.read_all``); ``data``, the metrics of ``metrics.collect`` when a
    caller has them, replaces the tables, indexes and sizes it would read.

    A recorded run also stores the figures the next run compares against (statement
    counters, checkpoints, archiver failures) in ``alert_state``; ``record=False`` (a
    runbook looking) neither stores nor moves that baseline. ``send`` notifies the changes
    since the previous notifying run (``powrops alerts --notify``). ``growth`` is the growth
    forecast's rate (``growth.forecast``, handed in by the caller) for ``disk_forecast``."""

    with database_errors("alert evaluation failed"), connect(settings, autocommit=True) as conn:
        read = reads.read_all(conn, settings, data=data is None)
        metrics_data = data if data is not None else reads.alert_data(conn, settings, read)
        before = alert_state.load(conn, settings, STATE_NAME, read.get("state"))
        report, after = judge(settings, conn, metrics_data, before, growth, read)
        if send:
            send_notifications(conn, settings, report)
        if record:
            alert_state.save(conn, settings, STATE_NAME, after)
            record_run(conn, report, settings.server)
    return report


def unreachable(settings: Settings, error: PowropsError) -> AlertReport:
    """The evaluation of a database that could not be reached (stopped, refusing, unknown): one
    UNKNOWN ``database`` finding, so that what Prometheus reads says so at once (as
    postgres_exporter's ``pg_up 0`` does) instead of keeping the last run's all-clear; of
    recoverability, the objectives and that its evidence went unread (no figure made up)."""
    advice = "start the server, or correct database.url, then run alerts again"
    finding = Finding("database", Severity.UNKNOWN, f"not evaluated: {error}", advice=advice)
    evidence = recoverability.unread(settings, "drills and test restores unread: no database")
    figures = {"recoverability": evidence.to_dict()}
    return AlertReport([finding], datetime.now(UTC), figures=figures, server=settings.server)


TEXTFILE_NAME = "powrops.prom"


def textfile_name(server: str) -> str:
    """``powrops.prom`` for the ``default`` server, ``powrops_<server>.prom`` for a named one
    (as the fleet's other per-server names), so servers watched from one host never share
    a file."""
    if server == DEFAULT_SERVER:
        return TEXTFILE_NAME
    return f"powrops_{server}.prom"


def openmetrics(report: AlertReport, *, openmetrics: bool = True) -> str:
    """The evaluation as OpenMetrics (or, ``openmetrics=False``, Prometheus text format)."""
    return openmetrics_view.render(
        report.findings,
        report.status,
        report.evaluated_at.timestamp(),
        report.figures,
        server=report.server,
        openmetrics=openmetrics,
    )


def write_textfile(report: AlertReport, directory: Path) -> Path:
    """``directory/powrops.prom`` (``powrops_<server>.prom`` for a named server) for
    node_exporter's textfile collector, written to a temporary file in the same directory and
    renamed over the old one (a scrape never sees half a file)."""
    if not directory.is_dir():
        raise ParameterError(f"--textfile {directory}: not a directory")
    name = textfile_name(report.server)
    path = directory / name
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(openmetrics(report, openmetrics=False))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
