"""What one ``powrops alerts`` run leaves for the next: ``ops.alert_state``, one JSON per name.

The statement baseline, the server counters (checkpoints, archiver failures) and the
notification state live in the database so that any machine running ``alerts`` sees the same;
one row per server and name (servers sharing one ``ops`` keep their own baselines).
On a server that cannot take the write (a standby, a database set read-only, a schema before
the alert state revision, a role without the grant) they live in the state directory
(``<state.dir>/alerts/<name>.json``) instead; reading prefers the database's row.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from powrops.config import Settings

#: The name of what the next run compares against (statement counters, server counters).
BASELINE = "baseline"

LOAD_SQL = sql.SQL("SELECT state FROM ops.alert_state WHERE server = {server} AND name = {name}")
SAVE_SQL = """
INSERT INTO ops.alert_state (server, name, state, updated_at) VALUES (%s, %s, %s, now())
ON CONFLICT (server, name) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
"""


def _file(settings: Settings, name: str) -> Path:
    return settings.state_dir / "alerts" / f"{name}.json"


def load(
    conn: psycopg.Connection[Any],
    settings: Settings,
    name: str,
    rows: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The state saved under ``name`` (empty when there is none yet); ``rows`` are the rows
    of ``LOAD_SQL`` when they were read already (``reads.read_all``)."""
    if rows is None:
        rows = _read(conn, settings, name)
    if rows:
        return dict(rows[0]["state"])
    try:  # none yet, or a state directory this OS user may not read: no baseline
        data = json.loads(_file(settings, name).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_query(settings: Settings, name: str) -> sql.Composed:
    return LOAD_SQL.format(server=sql.Literal(settings.server), name=sql.Literal(name))


def _read(conn: psycopg.Connection[Any], settings: Settings, name: str) -> list[dict[str, Any]]:
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            return list(cur.execute(load_query(settings, name)).fetchall())
    except psycopg.Error:
        return []


def save(
    conn: psycopg.Connection[Any], settings: Settings, name: str, state: dict[str, Any]
) -> str:
    """Store ``state`` under ``name``; where it went: "database", "state directory", or
    "nowhere" and why (a state directory another OS user owns: alerts still report, and
    the run's history finding already says it was not recorded)."""
    try:
        with conn.transaction():
            conn.execute(SAVE_SQL, (settings.server, name, Jsonb(state)))
        return "database"
    except psycopg.Error:
        pass
    path = _file(settings, name)
    try:
        settings.make_state_dir(path.parent.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, default=str)
        os.replace(tmp, path)
    except OSError as exc:
        return f"nowhere: {exc.strerror} ({path})"
    return "state directory"
