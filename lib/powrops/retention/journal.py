"""Recording what retention, archival, cleanup and GDPR runs did.

Every run leaves one ``ops.events`` row (kind ``retention``, ``archive``, ``cleanup`` or
``gdpr``; details with counts per policy or table, bytes, errors and whether it was a dry run)
and, when it changed data, one summary ``audit_log`` row (action ``RETENTION``, ``ARCHIVE``,
``CLEANUP`` or ``GDPR_ERASE``). Bulk changes switch the row-level audit triggers off for their
transaction (:func:`powrops.audit.trail.suppress_row_audit`) and are represented by that summary,
which carries counts and ids of files or requests, never personal data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg

from powrops import audit, journal
from powrops.audit.trail import set_actor, suppress_row_audit
from powrops.config import Settings
from powrops.db import connect as db_connect

log = logging.getLogger("powrops.retention")

ACTOR = "powrops:retention"
#: How long a batch may wait for a row lock before it gives up (cleanup never queues).
LOCK_TIMEOUT = "2s"


def connect(settings: Settings) -> psycopg.Connection[Any]:
    """A connection (not autocommit) to the target database."""

    return db_connect(settings, autocommit=False)


@contextmanager
def bulk_transaction(
    conn: psycopg.Connection[Any],
    *,
    lock_timeout: str = LOCK_TIMEOUT,
    statement_timeout: str = "5min",
) -> Iterator[psycopg.Connection[Any]]:
    """A short transaction for a bulk change: actor named, row audit off, lock wait bounded."""
    with conn.transaction():
        set_actor(conn, ACTOR)
        suppress_row_audit(conn)
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (statement_timeout,))
        yield conn


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, default=str, sort_keys=True)


def record_event(
    conn: psycopg.Connection[Any], kind: str, details: Mapping[str, Any], server: str
) -> None:
    """One ``ops.events`` row for a run of ``server`` (in the caller's transaction or
    autocommit)."""
    journal.record(conn, kind, details, server=server, actor=ACTOR)
    log.info("%s run recorded: %s", kind, dumps(details))


def audit_summary(
    conn: psycopg.Connection[Any],
    action: str,
    details: Mapping[str, Any],
    *,
    table_name: str | None = None,
    row_id: str | None = None,
) -> None:
    """The one summary ``audit_log`` row a bulk change leaves (no personal data in details)."""
    audit.record(conn, action, actor=ACTOR, table_name=table_name, row_id=row_id, details=details)


def record_run(
    settings: Settings,
    kind: str,
    details: Mapping[str, Any],
    *,
    audit_action: str | None = None,
    audit_details: Mapping[str, Any] | None = None,
) -> None:
    """Record a finished run: the event, and the audit summary when data changed."""
    with connect(settings) as conn, conn.transaction():
        set_actor(conn, ACTOR)
        record_event(conn, kind, details, settings.server)
        if audit_action is not None:
            audit_summary(conn, audit_action, audit_details or details)


def recent_events(
    conn: psycopg.Connection[Any], kinds: tuple[str, ...], server: str, limit: int = 20
) -> list[dict[str, Any]]:
    """``server``'s newest recorded runs of the given kinds, newest first."""
    rows = conn.execute(
        "SELECT id, at, kind, details FROM ops.events WHERE server = %s AND kind = ANY(%s) "
        "ORDER BY at DESC, id DESC LIMIT %s",
        (server, list(kinds), limit),
    ).fetchall()
    return [{"id": r[0], "at": r[1], "kind": r[2], "details": r[3]} for r in rows]
