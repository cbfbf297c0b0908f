"""powrops' own history: ``ops.events`` (what powrops did: drills, maintenance, retention,
migrations) and ``ops.check_runs`` (each evaluation of the alerts and integrity checks).

Each run leaves one row: its kind and a JSON object of details that reports (the quarterly
review above all) read back. Details hold counts, names and ids, never personal data. Every
row records the server it came from (``Settings.server``), so that several servers of a
configuration can share one database's ``ops``; a database migrated before the history-server
revision (a rollback records itself after going below it) gets rows without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from powrops.findings import Finding, Severity

SERVER_COLUMN_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
    "AND attname = 'server' AND NOT attisdropped)"
)


def has_server_column(conn: psycopg.Connection[Any], table: str) -> bool:
    """Whether ``table`` (``ops.events``...) records its server (the history-server revision)."""
    row = conn.execute(SERVER_COLUMN_SQL, (table,)).fetchone()
    return bool(row and row[0])


def record(
    conn: psycopg.Connection[Any],
    kind: str,
    details: Mapping[str, Any],
    *,
    server: str,
    actor: str | None = None,
) -> int:
    """Add one event of ``server`` (in the caller's transaction, or autocommit); its id.

    ``actor`` defaults to the database role (the column's default)."""
    text = json.dumps(details, default=str, sort_keys=True)
    if has_server_column(conn, "ops.events"):
        query = (
            "INSERT INTO ops.events (kind, actor, details, server) "
            "VALUES (%s, coalesce(%s, CURRENT_USER), %s::jsonb, %s) RETURNING id"
        )
        params: tuple[Any, ...] = (kind, actor, text, server)
    else:
        query = (
            "INSERT INTO ops.events (kind, actor, details) "
            "VALUES (%s, coalesce(%s, CURRENT_USER), %s::jsonb) RETURNING id"
        )
        params = (kind, actor, text)
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def skipped_note(exc: psycopg.Error) -> str:
    """What a page says when a dry run's journal row could not be written: the database is
    read-only (``default_transaction_read_only``, as the corruption runbook leaves it) or a
    standby."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "read-only"
    return (
        f"journal row skipped: the database does not accept writes ({reason}); "
        "nothing else depends on it"
    )


def record_if_writable(
    conn: psycopg.Connection[Any],
    kind: str,
    details: Mapping[str, Any],
    *,
    server: str,
    actor: str | None = None,
) -> tuple[int | None, str | None]:
    """:func:`record` for a dry run, which must not fail for its journal row: the event's id
    and None, or None and the note to show (:func:`skipped_note`) when the database is
    read-only or a standby. The attempt runs in a savepoint, so the caller's transaction
    goes on."""
    try:
        with conn.transaction():
            return record(conn, kind, details, server=server, actor=actor), None
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        return None, skipped_note(exc)


def record_check_run(
    conn: psycopg.Connection[Any],
    kind: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    counts: Mapping[str, Any],
    findings: Sequence[Finding],
    *,
    server: str,
) -> int:
    """Store one check run (alerts, integrity) of ``server`` in ``ops.check_runs``; its id."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO ops.check_runs "
            "(kind, status, started_at, finished_at, counts, findings, server) "
            "VALUES (%s, %s, %s, coalesce(%s, clock_timestamp()), %s::jsonb, %s::jsonb, %s) "
            "RETURNING id",
            (
                kind,
                status,
                started_at,
                finished_at,
                json.dumps(counts, default=str),
                json.dumps([f.to_dict() for f in findings], default=str),
                server,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


def try_record_check_run(
    conn: psycopg.Connection[Any],
    kind: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    counts: Mapping[str, Any],
    findings: Sequence[Finding],
    *,
    server: str,
) -> tuple[int | None, Finding | None]:
    """Record a check run if the database lets us; a check never fails for its history.

    Returns the run's id, or None and a finding saying why it was not recorded: on a
    read-only database or a standby that is expected (OK, said so); a missing privilege or
    table is a WARNING with the fix.
    """
    try:
        run_id = record_check_run(
            conn, kind, status, started_at, finished_at, counts, findings, server=server
        )
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        return None, Finding(
            "history",
            Severity.OK,
            f"run not recorded in ops.check_runs: the database is read-only "
            f"({str(exc).strip().splitlines()[0]}); the checks above were evaluated all the same",
            object="ops.check_runs",
        )
    except (
        psycopg.errors.InsufficientPrivilege,
        psycopg.errors.UndefinedTable,
        psycopg.errors.UndefinedColumn,
    ) as exc:
        return None, Finding(
            "history",
            Severity.WARNING,
            f"run not recorded in ops.check_runs: {str(exc).strip().splitlines()[0]}",
            object="ops.check_runs",
            advice="run `powrops migrate latest` (it grants the reporting role INSERT on "
            "powrops' history tables) or run the job under its documented role",
        )
    return run_id, None
