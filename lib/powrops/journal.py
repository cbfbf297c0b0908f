"""``ops.events``: the journal of what powrops did (drills, maintenance, retention, migrations).

Each run leaves one row: its kind and a JSON object of details that reports (the quarterly
review above all) read back. Details hold counts, names and ids, never personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg


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
