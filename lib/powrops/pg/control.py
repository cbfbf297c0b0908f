"""The cluster's system identifier, as ``pg_control_system()`` gives it: one way to read it.

``pg_control_system()`` is executable by PUBLIC by default, and a hardened server may revoke
that. PostgreSQL checks EXECUTE when a statement starts, even for a branch of a CASE that would
not run, so a statement that names the function fails as a whole for a role without the
privilege (and aborts the transaction around it): :func:`system_identifier` asks first.
A role with REPLICATION (a backup's) reads it without that privilege, as ``pg_basebackup``
does: ``IDENTIFY_SYSTEM`` on a replication connection (:func:`replication_identifier`).

Plain strings, no psycopg import: ``db.py`` loads psycopg only when it connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import psycopg

#: This cluster's identifier as text, a statement of its own or, in parentheses, a value in a
#: statement that reads it with other facts in one round trip (the role must have EXECUTE).
SYSTEM_IDENTIFIER_SQL: Final = (
    "SELECT system_identifier::text AS system_identifier FROM pg_control_system()"
)

#: Whether the connected role may execute ``pg_control_system()``.
MAY_READ_SQL: Final = "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')"


def system_identifier(conn: psycopg.Connection[Any]) -> str | None:
    """This cluster's system identifier, or None when the role may not execute
    ``pg_control_system()``; no statement fails, so the caller's transaction goes on."""
    allowed = conn.execute(MAY_READ_SQL).fetchone()
    if allowed is None or not allowed[0]:
        return None
    row = conn.execute(SYSTEM_IDENTIFIER_SQL).fetchone()
    return None if row is None else str(row[0])


#: The replication command that names the cluster (its first column, ``systemid``).
IDENTIFY_SYSTEM: Final = b"IDENTIFY_SYSTEM"


def replication_identifier(conn: psycopg.Connection[Any]) -> str:
    """This cluster's system identifier by ``IDENTIFY_SYSTEM`` on ``conn``, a replication
    connection (``replication="database"``), which needs no EXECUTE privilege; sent in the
    simple query protocol, the one a replication connection speaks. RuntimeError with the
    server's words when it refuses."""
    result = conn.pgconn.exec_(IDENTIFY_SYSTEM)
    value = result.get_value(0, 0) if result.ntuples else None
    if value is None:
        raise RuntimeError(result.error_message.decode(errors="replace").strip() or "no answer")
    return value.decode()
