"""The data corruption procedure's steps: stop writes, assess the scope, pick a recovery target.

Used by ``runbooks/data_corruption_response.ipynb``. Stopping writes makes the database
read-only for new sessions (``ALTER DATABASE ... SET default_transaction_read_only = on``) and
only when confirmed; the undo command is always shown. The damage scope comes from the integrity
run (which checks fail, on which tables, sample rows) and the audit trail (the system changes on
those tables). The recovery target is the restore point of
:mod:`powrops.integrity.restore_point` (just before the first bad change), in the parameters of
the ``point_in_time_restore`` runbook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from powrops import audit, journal
from powrops.config import Settings
from powrops.errors import ParameterError
from powrops.integrity.model import IntegrityReport
from powrops.integrity.restore_point import BEFORE, RestorePoint
from powrops.integrity.run import connection, run

DATA_CATEGORIES = ("validation", "referential", "calculated", "totals")


def _dbname(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


STOP_WRITES = sql.SQL("ALTER DATABASE {database} SET default_transaction_read_only = on;")
"""New sessions of the database start read-only; sessions already connected keep theirs."""

RESUME_WRITES = sql.SQL(
    "BEGIN READ WRITE; ALTER DATABASE {database} SET default_transaction_read_only = off; COMMIT;"
)
"""The undo starts its transaction READ WRITE explicitly: in a read-only database every other
transaction is read-only, and ALTER DATABASE would be refused."""


def read_only_statements(dbname: str) -> dict[str, sql.Composed]:
    """The statement that stops writes (``stop``) and the one that undoes it (``undo``)."""
    database = sql.Identifier(dbname)
    return {
        "stop": STOP_WRITES.format(database=database),
        "undo": RESUME_WRITES.format(database=database),
    }


def read_only_commands(dbname: str) -> dict[str, str]:
    """:func:`read_only_statements` as the text shown to the DBA and journaled."""
    return {k: v.as_string(None) for k, v in read_only_statements(dbname).items()}


#: Whether new sessions of this database start read-only: its own setting, for every role
#: (``ALTER DATABASE ... SET``), as the server holds it.
READ_ONLY_SQL = """
SELECT coalesce(bool_or(lower(split_part(c, '=', 2)) IN ('on', 'true', 'yes', '1', 't', 'y')),
                false)
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase,
     unnest(s.setconfig) AS c
WHERE d.datname = current_database() AND s.setrole = 0
  AND split_part(c, '=', 1) = 'default_transaction_read_only'
"""


def _read_only(conn: psycopg.Connection[Any]) -> bool:
    """Whether the database is read-only for new sessions now, read from the server (it may
    have been made so before: by an earlier run of the runbook, or by hand)."""
    row = conn.execute(READ_ONLY_SQL).fetchone()
    return bool(row and row[0])


def stop_writes(settings: Settings, confirm: bool) -> dict[str, Any]:
    """Make the database read-only for new sessions when ``confirm``; the commands either way,
    whether this call ``changed`` it, and whether it is ``read_only`` now, as the server says.

    Sessions already connected keep their setting: end the application's sessions (or stop the
    application) after this for the change to take full effect.
    """
    if not isinstance(confirm, bool):
        raise ParameterError(f"confirm must be True or False (got {confirm!r})")
    with connection(settings) as conn:
        dbname = _dbname(conn)
        commands = read_only_commands(dbname)
        if confirm:
            conn.execute(read_only_statements(dbname)["stop"])
            journal.record(conn, "read_only", {"database": dbname, "read_only": True,
                                               "undo": commands["undo"]},
                           server=settings.server)  # fmt: skip
        return {"database": dbname, "changed": confirm, "read_only": _read_only(conn), **commands}


def resume_writes(settings: Settings, confirm: bool) -> dict[str, Any]:
    """Undo :func:`stop_writes` when ``confirm``: the database accepts writes again; journaled
    like the switch itself, so the incident's timeline shows both."""
    if not isinstance(confirm, bool):
        raise ParameterError(f"confirm must be True or False (got {confirm!r})")
    with connection(settings) as conn:
        dbname = _dbname(conn)
        commands = read_only_commands(dbname)
        if confirm:
            conn.execute(read_only_statements(dbname)["undo"])
            # this session started read-only: the journal row needs a writable transaction
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
            journal.record(conn, "read_only", {"database": dbname, "read_only": False},
                           server=settings.server)  # fmt: skip
        return {"database": dbname, "changed": confirm, "read_only": _read_only(conn), **commands}


def assess(settings: Settings, heapallindexed: bool = True) -> IntegrityReport:
    """Every check now, amcheck with ``heapallindexed`` as asked; nothing is stored."""

    if not isinstance(heapallindexed, bool):
        raise ParameterError(f"heapallindexed must be True or False (got {heapallindexed!r})")
    consistency = settings.consistency.model_copy(update={"heapallindexed": heapallindexed})
    return run(settings.model_copy(update={"consistency": consistency}), store=False, full=True)


def _damaged_rows(report: IntegrityReport) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for r in report.results:
        if r.failed and r.category in DATA_CATEGORIES and r.table:
            rows.setdefault(r.table, []).extend(r.sample_ids)
    return rows


def scope(settings: Settings, report: IntegrityReport, since: datetime) -> dict[str, Any]:
    """Which checks, tables and rows the damage covers, and the system changes on those tables
    since a time (the restore point, with the users it affects, is
    :func:`powrops.integrity.restore_point.derive`)."""
    damaged = _damaged_rows(report)
    tables = sorted(damaged)
    with connection(settings) as conn:
        ddl = [
            c
            for c in audit.system_changes(conn, since, limit=200)
            if any(t in (c["object"] or "") for t in tables)
        ]
    return {
        "failed_checks": [r.name for r in report.results if r.failed],
        "physical": [r.name for r in report.results if r.category == "physical" and r.failed],
        "tables": tables,
        "sample_rows": {t: ids[:10] for t, ids in damaged.items()},
        "system_changes": ddl,
        "since": since,
    }


def scope_rows(found: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"item": "failed checks", "value": ", ".join(found["failed_checks"]) or "none"},
        {"item": "physical damage", "value": ", ".join(found["physical"]) or "none found"},
        {"item": "tables", "value": ", ".join(found["tables"]) or "none"},
        {
            "item": "sample rows",
            "value": "; ".join(f"{t}: {', '.join(ids)}" for t, ids in found["sample_rows"].items())
            or "-",
        },
        {"item": "system changes on those tables", "value": len(found["system_changes"])},
        {"item": "audit trail searched from", "value": found["since"].isoformat()},
    ]


def recovery_target(point: RestorePoint) -> dict[str, Any]:
    """Parameters for the point_in_time_restore runbook: just before the first bad change."""
    first = point.first_bad_change
    if point.target is None or first is None:
        return {
            "target_time": None,
            "parameters": {},
            "why": "no restore point: " + point.findings[-1].message,
        }
    target = point.target.isoformat()
    return {
        "target_time": target,
        "parameters": {"target_time": target, "confirm": False},
        # the runbook's working copy, where the restore is confirmed by the name typed: a
        # `report run` of it under papermill can only plan (confirm = False) or restore unasked
        "command": f"powrops runbook point_in_time_restore -p target_time {target}",
        "why": f"{BEFORE.total_seconds() * 1000:g} ms before the first bad change "
        f"({first.describe()})",
    }
