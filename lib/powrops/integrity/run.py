"""One integrity run: every check in one read-only snapshot, stored in ``ops.check_runs``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from powrops import audit, journal
from powrops.config import Settings
from powrops.db import connect, snapshot
from powrops.errors import DatabaseError, database_message
from powrops.findings import Severity
from powrops.integrity import changes, incremental
from powrops.integrity.changes import Counters, Here, Watermark
from powrops.integrity.consistency import run_consistency
from powrops.integrity.incremental import FULL, Scope
from powrops.integrity.model import CHEAP, CheckResult, IntegrityReport
from powrops.integrity.physical import guarded, run_physical
from powrops.integrity.rules import run_rules

KIND = "integrity"


@contextlib.contextmanager
def connection(source: Settings | psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection from settings (closed after), or the given connection."""
    if isinstance(source, psycopg.Connection):
        yield source
        return

    with connect(source, autocommit=True) as conn:
        yield conn


def check_audit_trail(conn: psycopg.Connection[Any], settings: Settings) -> CheckResult:
    """The audit triggers the configuration wants are installed and enabled."""
    trail = audit.status(conn)
    events = settings.audit.events
    problems = trail.missing()
    wanted = {"enabled" if events.data_modification else "disabled"}
    problems += [
        f"{audit.ROW_TRIGGER} on {t} is {s}"
        for t, s in trail.row_triggers.items()
        if s is not None and s not in wanted
    ]
    wanted = {"enabled" if events.system_changes else "disabled"}
    problems += [
        f"{n} is {s}" for n, s in trail.event_triggers.items() if s is not None and s not in wanted
    ]
    if problems:
        message = "audit trail differs from audit.events: " + "; ".join(problems)
    else:
        message = "row triggers and DDL event triggers match audit.events"
    return CheckResult(
        name="audit_trail",
        category="audit",
        table=None,
        count=len(problems),
        severity=Severity.WARNING if problems else Severity.OK,
        message=message,
        sample_ids=tuple(problems[:5]),
        advice="`powrops audit apply` sets the triggers from the configuration; the DDL event "
        "triggers need a superuser: run `powrops migrate latest` as one",
        details=trail.to_dict(),
    )


def _require_schema(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT to_regclass('public.workout_sets') IS NOT NULL "
        "AND to_regclass('ops.check_runs') IS NOT NULL"
    ).fetchone()
    if not (row and row[0]):
        raise DatabaseError("the POWR schema is missing: run `powrops migrate latest` first")


def collect(
    conn: psycopg.Connection[Any], settings: Settings, today: date | None = None
) -> list[CheckResult]:
    """Every configured check inside one read-only REPEATABLE READ snapshot."""
    with snapshot(conn, settings.consistency.statement_timeout.postgres()):
        return _every_check(conn, settings, today)


def _every_check(
    conn: psycopg.Connection[Any], settings: Settings, today: date | None
) -> list[CheckResult]:
    """Every configured check, in full, inside the caller's snapshot."""
    results = guarded(conn, "validation", lambda: run_rules(conn, settings.validation, today))
    results += guarded(
        conn, "consistency", lambda: run_consistency(conn, settings.consistency.checks)
    )
    results += run_physical(conn, settings.consistency.heapallindexed)
    results.append(check_audit_trail(conn, settings))
    return results


def run(
    source: Settings | psycopg.Connection[Any],
    settings: Settings | None = None,
    *,
    store: bool = True,
    today: date | None = None,
    full: bool = False,
) -> IntegrityReport:
    """Run every check and (with ``store``) record the run in ``ops.check_runs``.

    ``source`` is the settings (a connection is opened and closed) or an autocommit psycopg
    connection, with ``settings`` then giving the rules (default: the strategy's). The run is
    incremental where it can be (``powrops.integrity.changes``), as the command line's and the
    report's: each check over what changed since the server's last stored run; it is full on
    a first run, when ``consistency.full_every`` has passed since the last full one, and
    where what changed cannot be told. ``full`` makes every check read everything. Errors
    reaching the database or a cancelled statement raise DatabaseError.
    """
    settings = settings or (source if isinstance(source, Settings) else Settings())
    try:
        with connection(source) as conn:
            _require_schema(conn)
            report = checked(conn, settings, today, full)
            if store:
                store_run(conn, report, settings.server)
    except psycopg.errors.QueryCanceled as exc:
        raise DatabaseError(
            "an integrity check exceeded consistency.statement_timeout "
            f"({settings.consistency.statement_timeout}): {str(exc).strip()}"
        ) from exc
    except psycopg.Error as exc:
        raise DatabaseError(f"integrity check failed: {database_message(exc)}") from exc
    return report


def checked(
    conn: psycopg.Connection[Any], settings: Settings, today: date | None, full: bool
) -> IntegrityReport:
    """One run, full or incremental, with the watermark for the next as a note."""
    started = datetime.now(UTC)
    stored = changes.FORCED if full else changes.latest(conn, settings.server, KIND)
    previous = stored if isinstance(stored, Watermark) else None
    counters = changes.read_counters(conn)
    with snapshot(conn, settings.consistency.statement_timeout.postgres()):
        now = changes.here(conn)
        why = changes.full_reason(stored, now, settings)
        found = None
        if why is None and previous is not None:
            found = changes.find(conn, previous, counters)
            why = found.too_many
        if why is None and found is not None and previous is not None:
            results, scopes = incremental.collect(conn, settings, found, previous, today)
            results.append(check_audit_trail(conn, settings))
            scopes["audit_trail"] = Scope(FULL, CHEAP)
        else:
            results = _every_check(conn, settings, today)
            scopes = {r.name: Scope(FULL, why or "") for r in results}
    version = conn.info.parameter_status("server_version")
    report = IntegrityReport(results, started, datetime.now(UTC), None, version)
    report.scopes = {n: s.to_dict() for n, s in scopes.items()}
    if why is None and previous is not None:
        report.mode, report.since = "incremental", previous.taken_at
    else:
        report.why = why or ""
    report.notes.append(watermark(settings, now, counters, report, previous).note())
    return report


def watermark(
    settings: Settings,
    now: Here,
    counters: Counters,
    report: IntegrityReport,
    previous: Watermark | None,
) -> Watermark:
    """Where the next incremental run starts: this run's snapshot and counters."""
    full_at = previous.full_at if report.mode == "incremental" and previous else now.taken_at
    kept = changes.kept_violations(report.results)
    if report.scopes.get("amcheck", {}).get("scope") == "skipped":
        kept["amcheck"] = []  # as the last full check found it
    return Watermark(
        cluster=now.cluster,
        database=now.database,
        xmin=now.xmin,
        taken_at=now.taken_at,
        full_at=full_at,
        rules=changes.rules_digest(settings),
        stats_reset=counters.stats_reset,
        oldest_xact=counters.oldest_xact,
        counting=counters.counting,
        tables=counters.tables,
        violations=kept,
    )


def store_run(conn: psycopg.Connection[Any], report: IntegrityReport, server: str) -> None:
    """Record the run in ops.check_runs, or add a finding saying why it could not be."""
    report.run_id, unrecorded = journal.try_record_check_run(
        conn,
        KIND,
        report.status.name,
        report.started_at,
        report.finished_at,
        report.counts(),
        report.findings(),
        server=server,
    )
    if unrecorded is not None:
        report.notes.append(unrecorded)


def history(
    settings: Settings, since: datetime | None = None, limit: int = 400
) -> list[dict[str, Any]]:
    """``settings.server``'s past integrity runs, oldest first: id, times, status, counts and
    failed checks."""
    with connection(settings) as conn:
        rows = conn.execute(
            "SELECT id, started_at, finished_at, status, counts FROM ("
            "SELECT * FROM ops.check_runs WHERE server = %s AND kind = %s "
            "AND (%s::timestamptz IS NULL OR started_at >= %s) "
            "ORDER BY started_at DESC, id DESC LIMIT %s) r ORDER BY started_at, id",
            (settings.server, KIND, since, since, limit),
        ).fetchall()
    return [
        {
            "run_id": r[0],
            "started_at": r[1],
            "finished_at": r[2],
            "status": r[3],
            "counts": dict(r[4]),
            "failed_checks": sum(1 for v in r[4].values() if v),
            "failed_rows": sum(v for v in r[4].values() if v),
        }
        for r in rows
    ]
