"""Catalog and statistics queries shared by the checks and reports.

Each function takes an open psycopg connection and returns plain data; none of them scans
user tables, so their cost does not grow with the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

#: A query as the checks keep it: a literal string or one composed with ``psycopg.sql``.
Query = LiteralString | sql.SQL | sql.Composed


def dict_rows(conn: psycopg.Connection[Any], query: Query) -> list[dict[str, Any]]:
    """Every row of ``query`` as a dict keyed by column name."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query)
        return [dict(row) for row in cur.fetchall()]


def server_version_num(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0])


def server_version(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_setting('server_version')").fetchone()
    assert row is not None
    return str(row[0])


def settings(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """pg_settings rows by name (missing names are absent: e.g. summarize_wal before 17)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT name, setting, unit, source, pending_restart FROM pg_settings "
            "WHERE name = ANY(%s)",
            (list(names),),
        )
        return {row["name"]: row for row in cur.fetchall()}


def setting_seconds(row: dict[str, Any]) -> float:
    """A time setting's value in seconds, whatever unit pg_settings reports it in."""
    factor = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}.get(
        row.get("unit") or "s", 1.0
    )
    return float(row["setting"]) * factor


def indexes(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Definition and validity of the named indexes."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT c.relname AS name, t.relname AS table_name, n.nspname AS schema,
                   pg_get_indexdef(i.indexrelid) AS definition,
                   i.indisvalid AS valid, i.indisready AS ready,
                   pg_get_expr(i.indpred, i.indrelid) AS predicate
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relname = ANY(%s)
            """,
            (list(names),),
        )
        return {row["name"]: row for row in cur.fetchall()}


def roles(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Attributes and memberships of the named roles."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT r.rolname AS name, r.rolcanlogin AS can_login, r.rolreplication AS replication,
                   r.rolsuper AS superuser,
                   COALESCE(array_agg(g.rolname ORDER BY g.rolname)
                            FILTER (WHERE g.rolname IS NOT NULL), '{}') AS member_of
            FROM pg_roles r
            LEFT JOIN pg_auth_members m ON m.member = r.oid
            LEFT JOIN pg_roles g ON g.oid = m.roleid
            WHERE r.rolname = ANY(%s)
            GROUP BY r.rolname, r.rolcanlogin, r.rolreplication, r.rolsuper
            """,
            (list(names),),
        )
        return {row["name"]: row for row in cur.fetchall()}


def extensions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Extensions installed in the current database, with their versions."""
    rows = conn.execute("SELECT extname, extversion FROM pg_extension").fetchall()
    return {str(name): str(version) for name, version in rows}


def available_extensions(conn: psycopg.Connection[Any]) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM pg_available_extensions").fetchall()}


def archiver(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM pg_stat_archiver")
        row = cur.fetchone()
        return dict(row) if row else {}


READ_ONLY_SQL = """
SELECT current_database(), pg_is_in_recovery(),
       coalesce((SELECT 'default_transaction_read_only=on' = ANY(s.setconfig)
                 FROM pg_db_role_setting s
                 JOIN pg_database d ON d.oid = s.setdatabase
                 WHERE d.datname = current_database() AND s.setrole = 0), false)
"""


def read_only_state(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Whether the server is a standby, and whether the current database is set read-only
    for new sessions (``ALTER DATABASE ... SET default_transaction_read_only = on``)."""
    row = conn.execute(READ_ONLY_SQL).fetchone()
    assert row is not None
    return read_only_from_row(row)


def read_only_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """:func:`read_only_state` of a row of ``READ_ONLY_SQL``."""
    return {"database": str(row[0]), "in_recovery": bool(row[1]), "read_only": bool(row[2])}
