"""The safeguards of ``migrate production``, each appending findings to a list.

- :func:`backup`: the newest verified backup of this cluster is recent enough (or take one);
- :func:`transactions`: no long-running transaction in the database;
- :func:`locks`: nobody holds or waits for a lock on a table the pending revisions touch.

Sessions are shown by pid, state, age and application name only: never query text, which can
hold personal data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.run import take_backup
from powrops.config import Settings
from powrops.db import connect
from powrops.durations import Duration
from powrops.errors import PowropsError
from powrops.findings import Finding, Severity
from powrops.format import Echo, human_duration
from powrops.migrate.model import tables_in
from powrops.pg import control
from powrops.verify import verify

if TYPE_CHECKING:
    import psycopg

    from powrops.backup.model import BackupRecord
    from powrops.migrate.model import Options, ProductionPlan


@contextlib.contextmanager
def connection(settings: Settings) -> Iterator[psycopg.Connection[Any]]:

    with connect(settings, autocommit=True) as conn:
        yield conn


# --- backup --------------------------------------------------------------------------------


def backup(
    findings: list[Finding], settings: Settings, options: Options, echo: Echo | None
) -> str | None:
    """The label of the verified backup the migration relies on, or None (a CRITICAL finding)."""

    limit = options.max_backup_age or settings.backup.schedule.full
    try:
        if options.take_backup:
            _take_and_verify(findings, settings, echo)
        catalog = Catalog(repos.primary(settings))
        records = [r for r in catalog.records() if r.ok and r.stop_time is not None]
    except PowropsError as exc:
        findings.append(Finding("backup", Severity.CRITICAL, f"cannot read the backups: {exc}"))
        return None
    ident = _system_identifier(settings)
    mine = [r for r in records if ident is None or r.system_identifier in (None, ident)]
    verified = [r for r in mine if r.verified_at is not None]
    newest = max(verified, key=_stopped, default=None)
    now = datetime.now(UTC)
    advice = "take and verify one: `powrops migrate production --take-backup`"
    if newest is None:
        unverified = f" ({len(mine)} unverified)" if mine else ""
        findings.append(Finding("backup", Severity.CRITICAL,
                                f"no verified backup of this cluster{unverified}",
                                advice=advice))  # fmt: skip
        return None
    age = (now - _stopped(newest)).total_seconds()
    within = age <= limit.timedelta.total_seconds()
    message = (
        f"newest verified backup {newest.label} ({newest.kind}) finished "
        f"{human_duration(age)} ago, limit {limit}"
    )
    findings.append(Finding("backup", Severity.OK if within else Severity.CRITICAL, message,
                            newest.label, value=round(age), expected=str(limit),
                            advice=None if within else advice))  # fmt: skip
    return newest.label if within else None


def _stopped(record: BackupRecord) -> datetime:
    assert record.stop_time is not None
    return record.stop_time


def _take_and_verify(findings: list[Finding], settings: Settings, echo: Echo | None) -> None:

    outcome = take_backup(settings, "full", echo=echo)
    report = verify(settings, outcome.record.label, echo=echo)
    severity = Severity.OK if report.status in (Severity.OK, Severity.WARNING) else report.status
    findings.append(Finding("take_backup", severity,
                            f"took full backup {outcome.record.label}; verification "
                            f"{report.status.name}: {report.summary()}",
                            outcome.record.label))  # fmt: skip


def _system_identifier(settings: Settings) -> str | None:
    """This cluster's identifier, or None when the role may not execute pg_control_system() or
    the server does not answer."""
    import psycopg

    try:
        with connection(settings) as conn:
            return control.system_identifier(conn)
    except psycopg.Error:
        return None


# --- sessions ------------------------------------------------------------------------------

LONG_TRANSACTIONS = """
SELECT pid, coalesce(state, ''), extract(epoch FROM now() - xact_start)::float8,
       coalesce(application_name, '')
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND xact_start < now() - make_interval(secs => %s)
ORDER BY xact_start
"""

LOCKS = """
SELECT l.pid, l.mode, l.granted, l.relation::regclass::text, coalesce(a.state, ''),
       coalesce(extract(epoch FROM now() - a.xact_start)::float8, 0),
       coalesce(a.application_name, '')
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation = ANY(%s::oid[])
ORDER BY l.granted DESC, l.pid
"""

RELATIONS = """
SELECT coalesce(i.indrelid, c.oid)
FROM unnest(%s::text[]) AS n(name)
JOIN pg_class c ON c.oid = to_regclass(n.name)
LEFT JOIN pg_index i ON i.indexrelid = c.oid
"""


def transactions(findings: list[Finding], conn: psycopg.Connection[Any], limit: Duration) -> None:
    rows = conn.execute(LONG_TRANSACTIONS, (limit.timedelta.total_seconds(),)).fetchall()
    if not rows:
        findings.append(Finding("transactions", Severity.OK,
                                f"no transaction open longer than {limit}"))  # fmt: skip
        return
    shown = "; ".join(
        f"pid {pid} {state or '?'} for {human_duration(age)} ({app or 'no application'})"
        for pid, state, age, app in rows[:5]
    )
    findings.append(Finding(
        "transactions", Severity.CRITICAL,
        f"{len(rows)} transaction(s) open longer than {limit}: {shown}",
        value=[r[0] for r in rows], advice="let them finish, or end them with pg_terminate_backend",
    ))  # fmt: skip


def locks(findings: list[Finding], conn: psycopg.Connection[Any], plan: ProductionPlan) -> None:

    names = plan.tables
    for rev in plan.pending:
        names += [n for n in tables_in(rev.sql)[1] if n not in names]
    oids = [row[0] for row in conn.execute(RELATIONS, (names,)).fetchall()]
    rows = conn.execute(LOCKS, (oids,)).fetchall() if oids else []
    if not rows:
        findings.append(
            Finding(
                "locks",
                Severity.OK,
                f"no lock held or awaited on {', '.join(names) or 'any table'}",
            )
        )
        return  # fmt: skip
    shown = "; ".join(
        f"pid {pid} {'holds' if granted else 'waits for'} {mode} on {rel} "
        f"({state or '?'}, transaction {human_duration(age)}, {app or 'no application'})"
        for pid, mode, granted, rel, state, age, app in rows[:5]
    )
    findings.append(Finding(
        "locks", Severity.CRITICAL,
        f"{len(rows)} lock(s) on tables the migration alters: {shown}",
        value=sorted({r[0] for r in rows}),
        advice="the migration would queue behind them and block everyone after it",
    ))  # fmt: skip
