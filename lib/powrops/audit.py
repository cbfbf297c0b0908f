"""Audit trails: who changed what, recorded in ``audit_log``.

The row triggers installed by the audit migration read two session settings that powrops (and
the application) set per transaction:

- ``powrops.actor``: who is acting, written to ``audit_log.actor`` (default: the database role);
- ``powrops.audit_rows``: ``off`` makes the row triggers skip this transaction's changes. Only
  powrops' own bulk operations use it, and each writes its own summary record instead (archival
  moves thousands of rows and records one entry with counts and the archive file; repairs write
  every changed row themselves with old and new values).
"""

from __future__ import annotations

from typing import Any

import psycopg

ACTOR_SETTING = "powrops.actor"
ROWS_SETTING = "powrops.audit_rows"


def set_actor(conn: psycopg.Connection[Any], actor: str) -> None:
    """Name the actor of the current transaction's changes (``SET LOCAL powrops.actor``)."""
    conn.execute("SELECT set_config(%s, %s, true)", (ACTOR_SETTING, actor))


def suppress_row_audit(conn: psycopg.Connection[Any]) -> None:
    """Make the row triggers skip the current transaction; the caller records a summary."""
    conn.execute("SELECT set_config(%s, 'off', true)", (ROWS_SETTING,))
