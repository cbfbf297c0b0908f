"""The data corruption procedure's steps: stop writes, assess the scope, pick a recovery target.

Used by ``runbooks/data_corruption_response.ipynb``. Stopping writes makes the database
read-only for new sessions (``ALTER DATABASE ... SET default_transaction_read_only = on``) and
only when confirmed; the undo command is always shown. The damage scope comes from the integrity
run (which checks fail, on which tables, sample rows) and the audit trail (when those rows were
changed, by whom, which users they belong to, and the system changes on those tables). The
recovery target is the moment just before the first bad change, in the parameters of the
``point_in_time_restore`` runbook.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from powrops import audit, journal
from powrops.config import Settings
from powrops.errors import ParameterError
from powrops.integrity.consistency import WRONG_TOTALS, WRONG_VOLUME, orphan_sql, relationships
from powrops.integrity.model import IntegrityReport
from powrops.integrity.rules import rule_checks
from powrops.integrity.run import connection, run

DATA_CATEGORIES = ("validation", "referential", "calculated", "totals")
BEFORE = timedelta(milliseconds=1)


def _dbname(settings: Settings) -> str:
    with connection(settings) as conn:
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


def stop_writes(settings: Settings, confirm: bool) -> dict[str, Any]:
    """Make the database read-only for new sessions when ``confirm``; the commands either way.

    Sessions already connected keep their setting: end the application's sessions (or stop the
    application) after this for the change to take full effect.
    """
    if not isinstance(confirm, bool):
        raise ParameterError(f"confirm must be True or False (got {confirm!r})")
    dbname = _dbname(settings)
    commands = read_only_commands(dbname)
    done = False
    if confirm:
        with connection(settings) as conn:
            conn.execute(read_only_statements(dbname)["stop"])
            journal.record(conn, "read_only", {"database": dbname, "read_only": True,
                                               "undo": commands["undo"]},
                           server=settings.server)  # fmt: skip
        done = True
    return {"database": dbname, "read_only": done, **commands}


def resume_writes(settings: Settings, confirm: bool) -> dict[str, Any]:
    """Undo :func:`stop_writes` when ``confirm``: the database accepts writes again; journaled
    like the switch itself, so the incident's timeline shows both."""
    if not isinstance(confirm, bool):
        raise ParameterError(f"confirm must be True or False (got {confirm!r})")
    dbname = _dbname(settings)
    commands = read_only_commands(dbname)
    if confirm:
        with connection(settings) as conn:
            conn.execute(read_only_statements(dbname)["undo"])
            # this session started read-only: the journal row needs a writable transaction
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
            journal.record(
                conn, "read_only", {"database": dbname, "read_only": False}, server=settings.server
            )
    return {"database": dbname, "read_only": not confirm, **commands}


def assess(settings: Settings, heapallindexed: bool = True) -> IntegrityReport:
    """Every check now, amcheck with ``heapallindexed`` as asked; nothing is stored."""

    if not isinstance(heapallindexed, bool):
        raise ParameterError(f"heapallindexed must be True or False (got {heapallindexed!r})")
    consistency = settings.consistency.model_copy(update={"heapallindexed": heapallindexed})
    return run(settings.model_copy(update={"consistency": consistency}), store=False)


def _damaged_rows(report: IntegrityReport) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for r in report.results:
        if r.failed and r.category in DATA_CATEGORIES and r.table:
            rows.setdefault(r.table, []).extend(r.sample_ids)
    return rows


@dataclass(frozen=True)
class Suspects:
    """Rows of ``table`` (their ids, as SQL) whose recorded ``actions`` may have done damage."""

    check: str
    table: str
    ids_sql: sql.Composable
    params: tuple[Any, ...] = ()
    actions: tuple[str, ...] = audit.DATA_ACTIONS


RULE_SUSPECTS = sql.SQL("SELECT id::text FROM {table} WHERE {condition}")
"""The rows now failing a validation rule."""

ORPHAN_SUSPECTS = sql.SQL("SELECT {column}::text {orphans}")
"""An orphan's id, or the id of the parent row it points at, from :data:`ORPHANS`."""

VOLUME_SUSPECTS = sql.SQL("SELECT w.id::text {wrong}").format(wrong=WRONG_VOLUME)
TOTALS_SUSPECTS = sql.SQL("SELECT t.user_id::text {wrong}").format(wrong=WRONG_TOTALS)


def suspects(settings: Settings, failed: set[str]) -> list[Suspects]:
    """For each failed data check, the rows now violating it, and for orphans the parent rows
    they point at (deleted, probably): where the audit trail holds the bad change."""
    found = [
        Suspects(
            c.name,
            c.table,
            RULE_SUSPECTS.format(table=sql.Identifier("public", c.table), condition=c.condition),
            c.params,
        )
        for c in rule_checks(settings.validation)
        if c.name in failed
    ]
    for rel in relationships():
        if rel.name in failed:
            orphans = orphan_sql(rel)
            ids = ORPHAN_SUSPECTS.format(column=sql.Identifier("c", rel.pk), orphans=orphans)
            parents = ORPHAN_SUSPECTS.format(
                column=sql.Identifier("c", rel.column), orphans=orphans
            )
            found.append(Suspects(rel.name, rel.table, ids))
            found.append(Suspects(rel.name, rel.parent, parents, actions=("DELETE", "UPDATE")))
    if "workout_total_volume" in failed:
        found.append(Suspects("workout_total_volume", "workouts", VOLUME_SUSPECTS))
    if "user_totals" in failed:
        found.append(Suspects("user_totals", "user_totals", TOTALS_SUSPECTS))
    return found


FIRST_CHANGE = sql.SQL("""
SELECT a.occurred_at, a.actor, a.action, a.row_id FROM public.audit_log a
WHERE a.table_name = %s AND a.action = ANY(%s) AND a.occurred_at >= %s
  AND a.row_id IN ({ids})
ORDER BY a.occurred_at, a.id LIMIT 1
""")
"""The earliest recorded change, since a time, to one of the rows the subquery ``ids`` finds."""


def first_bad_change(
    conn: psycopg.Connection[Any], settings: Settings, report: IntegrityReport, since: datetime
) -> dict[str, Any] | None:
    """The earliest recorded change, since ``since``, to a row that now fails a data check."""
    failed = {r.name for r in report.results if r.failed and r.category in DATA_CATEGORIES}
    best: dict[str, Any] | None = None
    for s in suspects(settings, failed):
        row = conn.execute(
            FIRST_CHANGE.format(ids=s.ids_sql), (s.table, list(s.actions), since, *s.params)
        ).fetchone()
        if row is not None and (best is None or row[0] < best["time"]):
            best = {
                "time": row[0],
                "actor": row[1],
                "action": row[2],
                "table": s.table,
                "row id": row[3],
                "check": s.check,
            }
    return best


def scope(settings: Settings, report: IntegrityReport, since: datetime) -> dict[str, Any]:
    """Which checks, tables, users and time range the damage covers, from data and audit."""
    damaged = _damaged_rows(report)
    tables = sorted(damaged)
    with connection(settings) as conn:
        first = first_bad_change(conn, settings, report, since)
        ddl = [
            c
            for c in audit.system_changes(conn, since, limit=200)
            if any(t in (c["object"] or "") for t in tables)
        ]
        if ddl:
            earliest = min(ddl, key=lambda c: c["time"])
            if first is None or earliest["time"] < first["time"]:
                first = {
                    "time": earliest["time"],
                    "actor": earliest["actor"],
                    "action": "DDL",
                    "table": earliest["object"],
                    "row id": None,
                    "check": None,
                }
        users = audit.affected_users(conn, first["time"], tables) if first else []
    return {
        "failed_checks": [r.name for r in report.results if r.failed],
        "physical": [r.name for r in report.results if r.category == "physical" and r.failed],
        "tables": tables,
        "sample_rows": {t: ids[:10] for t, ids in damaged.items()},
        "first_bad_change": first,
        "system_changes": ddl,
        "users": users,
        "since": since,
    }


def scope_rows(found: dict[str, Any]) -> list[dict[str, Any]]:
    first = found["first_bad_change"]
    when = first["time"].isoformat() if first else "not in the audit trail"
    return [
        {"item": "failed checks", "value": ", ".join(found["failed_checks"]) or "none"},
        {"item": "physical damage", "value": ", ".join(found["physical"]) or "none found"},
        {"item": "tables", "value": ", ".join(found["tables"]) or "none"},
        {
            "item": "sample rows",
            "value": "; ".join(f"{t}: {', '.join(ids)}" for t, ids in found["sample_rows"].items())
            or "-",
        },
        {
            "item": "first bad change",
            "value": when
            if not first
            else f"{when} ({first['action']} on {first['table']} {first['row id'] or ''} by "
            f"{first['actor']})",
        },
        {"item": "system changes on those tables", "value": len(found["system_changes"])},
        {"item": "users affected (ids)", "value": ", ".join(found["users"][:50]) or "-"},
        {"item": "audit trail searched from", "value": found["since"].isoformat()},
    ]


def recovery_target(found: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the point_in_time_restore runbook: just before the first bad change."""
    first = found["first_bad_change"]
    if first is None:
        return {
            "target_time": None,
            "parameters": {},
            "why": "no bad change found in the audit trail: nothing to restore to; widen "
            "`since`, or pick a time from the backup verification report",
        }
    target = first["time"] - BEFORE
    params = {"target_time": target.isoformat(), "confirm": False}
    command = f"powrops report run point_in_time_restore -p target_time {target.isoformat()}"
    return {
        "target_time": target.isoformat(),
        "parameters": params,
        "command": command,
        "why": f"1 ms before the first bad change ({first['action']} on {first['table']})",
    }
