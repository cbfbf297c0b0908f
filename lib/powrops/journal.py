"""powrops' own history: ``ops.events`` (what powrops did: drills, maintenance, retention,
migrations) and ``ops.check_runs`` (each evaluation of the alerts and integrity checks).

Each run leaves one row: its kind and a JSON object of details that reports (the quarterly
review above all) read back. Details hold counts, names and ids, never personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from powrops.findings import Finding, Severity


def record(
    conn: psycopg.Connection[Any],
    kind: str,
    details: Mapping[str, Any],
    *,
    actor: str | None = None,
) -> int:
    """Add one event (in the caller's transaction, or autocommit); returns its id.

    ``actor`` defaults to the database role (the column's default)."""
    row = conn.execute(
        "INSERT INTO ops.events (kind, actor, details) "
        "VALUES (%s, coalesce(%s, CURRENT_USER), %s::jsonb) RETURNING id",
        (kind, actor, json.dumps(details, default=str, sort_keys=True)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def record_check_run(
    conn: psycopg.Connection[Any],
    kind: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    counts: Mapping[str, Any],
    findings: Sequence[Finding],
) -> int:
    """Store one check run (alerts, integrity) in ``ops.check_runs``; its id."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO ops.check_runs (kind, status, started_at, finished_at, counts, findings) "
            "VALUES (%s, %s, %s, coalesce(%s, clock_timestamp()), %s::jsonb, %s::jsonb) "
            "RETURNING id",
            (
                kind,
                status,
                started_at,
                finished_at,
                json.dumps(counts, default=str),
                json.dumps([f.to_dict() for f in findings], default=str),
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
) -> tuple[int | None, Finding | None]:
    """Record a check run if the database lets us; a check never fails for its history.

    Returns the run's id, or None and a finding saying why it was not recorded: on a
    read-only database or a standby that is expected (OK, said so); a missing privilege or
    table is a WARNING with the fix.
    """
    try:
        run_id = record_check_run(conn, kind, status, started_at, finished_at, counts, findings)
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        return None, Finding(
            "history",
            Severity.OK,
            f"run not recorded in ops.check_runs: the database is read-only "
            f"({str(exc).strip()}); the checks above were evaluated all the same",
            object="ops.check_runs",
        )
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable) as exc:
        return None, Finding(
            "history",
            Severity.WARNING,
            f"run not recorded in ops.check_runs: {str(exc).strip()}",
            object="ops.check_runs",
            advice="run `powrops migrate latest` (it grants the reporting role INSERT on "
            "powrops' history tables) or run the job under its documented role",
        )
    return run_id, None
