"""Audit trails: who changed what, recorded in ``audit_log``.

The row triggers installed by the audit migration read two session settings that powrops (and
the application) set per transaction:

- ``powrops.actor``: who is acting, written to ``audit_log.actor`` (default: the database role);
- ``powrops.audit_rows``: ``off`` makes the row triggers skip this transaction's changes. Only
  powrops' own bulk operations use it, and each writes its own summary record instead (archival
  moves thousands of rows and records one entry with counts and the archive file; repairs write
  every changed row themselves with old and new values).

The migration ``20240401090000_audit_trail`` installs the row trigger ``powrops_audit_row`` on
``AUDITED_TABLES`` and, for a superuser, the DDL event triggers (``action = 'DDL'``).
:func:`apply_config` turns each event class of ``audit.events`` on or off, :func:`status` says
what is installed, and the queries below serve the reports: changes per table and action,
recent system changes, one row's history, the users affected since a time, and access patterns
(``pg_stat_statements`` and sessions per role). Query results carry ids, never row values,
unless asked for explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from powrops.config import AuditEvents, AuditMetadata

ACTOR_SETTING = "powrops.actor"
ROWS_SETTING = "powrops.audit_rows"


def set_actor(conn: psycopg.Connection[Any], actor: str) -> None:
    """Name the actor of the current transaction's changes (``SET LOCAL powrops.actor``)."""
    conn.execute("SELECT set_config(%s, %s, true)", (ACTOR_SETTING, actor))


def suppress_row_audit(conn: psycopg.Connection[Any]) -> None:
    """Make the row triggers skip the current transaction; the caller records a summary."""
    conn.execute("SELECT set_config(%s, 'off', true)", (ROWS_SETTING,))


# --- what the audit migration installs --------------------------------------------------------

ROW_TRIGGER = "powrops_audit_row"
EVENT_TRIGGERS = ("powrops_audit_ddl", "powrops_audit_drop")
AUDITED_TABLES = ("users", "exercises", "workouts", "workout_sets", "user_totals", "consents")
"""The POWR tables whose row changes the trigger writes to ``audit_log``."""

DATA_ACTIONS = ("INSERT", "UPDATE", "DELETE")
REPAIR_ACTION = "REPAIR"
DDL_ACTION = "DDL"
BULK_ACTIONS = ("RETENTION", "ARCHIVE", "CLEANUP", "GDPR_ERASE")
"""The summary rows of bulk changes made with the row triggers off (``suppress_row_audit``):
the rows they changed are not in the trail one by one."""


@dataclass(frozen=True)
class TrailStatus:
    """What of the audit trail is installed, and enabled, in the database."""

    row_triggers: dict[str, str | None]  # table -> 'enabled' / 'disabled' / None (missing)
    event_triggers: dict[str, str | None]  # name -> 'enabled' / 'disabled' / None (missing)

    def missing(self) -> list[str]:
        rows = [f"{ROW_TRIGGER} on {t}" for t, s in self.row_triggers.items() if s is None]
        events = [name for name, s in self.event_triggers.items() if s is None]
        return rows + events

    def to_dict(self) -> dict[str, Any]:
        return {
            "row_triggers": dict(self.row_triggers),
            "event_triggers": dict(self.event_triggers),
        }


def record(
    conn: psycopg.Connection[Any],
    action: str,
    *,
    actor: str | None = None,
    table_name: str | None = None,
    row_id: str | None = None,
    old_value: Mapping[str, Any] | None = None,
    new_value: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """One ``audit_log`` row written by powrops itself: a summary of a bulk change or a system
    change such as a migration (``actor`` defaults to ``powrops.actor``, else the role)."""
    conn.execute(
        "INSERT INTO audit_log (actor, action, table_name, row_id, old_value, new_value, details) "
        "VALUES (coalesce(%s, nullif(current_setting('powrops.actor', true), ''), CURRENT_USER), "
        "%s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb)",
        (actor, action, table_name, row_id, *(_json(v) for v in (old_value, new_value, details))),
    )


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def _state(code: str | None) -> str | None:
    if code is None:
        return None
    return "disabled" if code == "D" else "enabled"


def status(conn: psycopg.Connection[Any]) -> TrailStatus:
    """Which audit triggers exist and whether they are enabled."""
    found = dict(
        conn.execute(
            "SELECT c.relname, t.tgenabled::text FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = %s AND c.relnamespace = 'public'::regnamespace",
            (ROW_TRIGGER,),
        ).fetchall()
    )
    events = dict(
        conn.execute(
            "SELECT evtname, evtenabled::text FROM pg_event_trigger WHERE evtname = ANY(%s)",
            (list(EVENT_TRIGGERS),),
        ).fetchall()
    )
    return TrailStatus(
        row_triggers={t: _state(found.get(t)) for t in AUDITED_TABLES},
        event_triggers={e: _state(events.get(e)) for e in EVENT_TRIGGERS},
    )


OPTIONAL_METADATA = ("user_id", "old_value", "new_value")
"""Metadata the row trigger can leave out; time and action are always recorded."""


def trigger_arguments(metadata: AuditMetadata) -> str:
    """The row trigger's second argument: the optional metadata to record."""
    return ",".join(name for name in OPTIONAL_METADATA if getattr(metadata, name))


ROW_TRIGGER_DDL = sql.SQL(
    "CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION public.powrops_audit_row({key}, {kept})"
)
"""The row trigger on one table; its arguments (literals: DDL takes no parameters) are the
table's key column and the optional metadata to record."""

SWITCH_ROW_TRIGGER = sql.SQL("ALTER TABLE {table} {verb} TRIGGER {trigger}")
SWITCH_EVENT_TRIGGER = sql.SQL("ALTER EVENT TRIGGER {trigger} {verb}")
ENABLE, DISABLE = sql.SQL("ENABLE"), sql.SQL("DISABLE")


def apply_config(
    conn: psycopg.Connection[Any], events: AuditEvents, metadata: AuditMetadata | None = None
) -> list[str]:
    """Turn each event class on or off as configured; the statements run, in order.

    ``data_modification`` enables or disables the row triggers, ``system_changes`` the DDL event
    triggers (owner or superuser only; missing ones are skipped and :func:`status` shows them).
    With ``metadata``, the row triggers are first recreated to record what it asks for
    (``user_id`` is the actor; ``timestamp`` and ``action`` are always recorded).
    ``access_patterns`` needs no object: :func:`access_patterns` reads the statistics views
    only when it is on. Runs in one transaction.
    """
    current = status(conn)
    done: list[str] = []

    def run(stmt: sql.Composed) -> None:
        conn.execute(stmt)
        done.append(stmt.as_string(conn))

    with conn.transaction():
        verb = ENABLE if events.data_modification else DISABLE
        trigger = sql.Identifier(ROW_TRIGGER)
        for table, state in current.row_triggers.items():
            if state is None:
                continue
            name = sql.Identifier("public", table)
            if metadata is not None:
                key = sql.Literal("user_id" if table == "user_totals" else "id")
                kept = sql.Literal(trigger_arguments(metadata))
                run(ROW_TRIGGER_DDL.format(trigger=trigger, table=name, key=key, kept=kept))
            run(SWITCH_ROW_TRIGGER.format(table=name, verb=verb, trigger=trigger))
        verb = ENABLE if events.system_changes else DISABLE
        for event, state in current.event_triggers.items():
            if state is not None:
                run(SWITCH_EVENT_TRIGGER.format(trigger=sql.Identifier(event), verb=verb))
    return done


# --- audit queries the reports use -------------------------------------------------------------


def changes_by_table(conn: psycopg.Connection[Any], since: datetime) -> list[dict[str, Any]]:
    """Row changes and repairs per table and action since a time, with first and last."""
    rows = conn.execute(
        "SELECT table_name, action, count(*), min(occurred_at), max(occurred_at) "
        "FROM public.audit_log WHERE occurred_at >= %s AND action <> %s "
        "GROUP BY table_name, action ORDER BY table_name, action",
        (since, DDL_ACTION),
    ).fetchall()
    return [
        {"table": r[0], "action": r[1], "changes": int(r[2]), "first": r[3], "last": r[4]}
        for r in rows
    ]


def system_changes(
    conn: psycopg.Connection[Any], since: datetime, limit: int = 50
) -> list[dict[str, Any]]:
    """DDL recorded by the event triggers since a time, newest first."""
    rows = conn.execute(
        "SELECT occurred_at, actor, details ->> 'command_tag', details ->> 'object_type', "
        "COALESCE(details ->> 'object_identity', row_id) FROM public.audit_log "
        "WHERE action = %s AND occurred_at >= %s ORDER BY occurred_at DESC, id DESC LIMIT %s",
        (DDL_ACTION, since, limit),
    ).fetchall()
    return [
        {"time": r[0], "actor": r[1], "command": r[2], "object type": r[3], "object": r[4]}
        for r in rows
    ]


def row_history(
    conn: psycopg.Connection[Any], table: str, row_id: str | int, *, values: bool = False
) -> list[dict[str, Any]]:
    """Every recorded change of one row, oldest first: who, when, what, which columns.

    Without ``values`` only the names of the changed columns are returned (values may hold
    personal data); with it, the old and new values too.
    """
    rows = conn.execute(
        "SELECT occurred_at, actor, action, old_value, new_value, details FROM public.audit_log "
        "WHERE table_name = %s AND row_id = %s ORDER BY occurred_at, id",
        (table, str(row_id)),
    ).fetchall()
    history = []
    for at, actor, action, old, new, details in rows:
        entry: dict[str, Any] = {
            "time": at,
            "actor": actor,
            "action": action,
            "columns": ", ".join(changed_columns(old, new)),
        }
        if values:
            entry.update(old=old, new=new, details=details)
        history.append(entry)
    return history


def changed_columns(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """Columns whose value differs between two row images (all columns of a lone image)."""
    if old is None or new is None:
        return sorted((old or new or {}).keys())
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


AFFECTED_USERS = """
SELECT DISTINCT uid::bigint FROM (
    SELECT COALESCE(
        a.new_value ->> 'user_id', a.old_value ->> 'user_id',
        CASE WHEN a.table_name = 'users' THEN a.row_id END,
        (SELECT w.user_id::text FROM public.workouts w
         WHERE w.id = (COALESCE(a.new_value, a.old_value) ->> 'workout_id')::bigint)
    ) AS uid
    FROM public.audit_log a
    WHERE a.occurred_at >= %s AND a.table_name = ANY(%s) AND a.action = ANY(%s)
) changes
WHERE uid IS NOT NULL ORDER BY 1 LIMIT 1000
"""


def affected_users(conn: psycopg.Connection[Any], since: datetime, tables: list[str]) -> list[int]:
    """Ids of users whose rows in ``tables`` (and whose ``users`` row) changed since a time,
    in numeric order (at most 1,000).

    The user comes from the row images' ``user_id``, the row id of a ``users`` row, or, for a
    set, its workout's owner.
    """
    wanted = sorted({*tables, "users"})
    rows = conn.execute(AFFECTED_USERS, (since, wanted, list(DATA_ACTIONS))).fetchall()
    return [int(r[0]) for r in rows]


def access_patterns(
    conn: psycopg.Connection[Any], events: AuditEvents, limit: int = 10
) -> dict[str, list[dict[str, Any]]]:
    """Access patterns: the busiest statements (pg_stat_statements) and activity per role.

    Empty lists when ``audit.events.access_patterns`` is off; statements are normalized by
    pg_stat_statements (constants replaced by $n) and cut to 160 characters.
    """
    if not events.access_patterns:
        return {"statements": [], "roles": []}
    statements: list[dict[str, Any]] = []
    has_pgss = conn.execute(
        "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
    ).fetchone()
    if has_pgss:
        try:
            with conn.transaction():
                statements = _statements(conn, limit)
        except psycopg.Error:  # not preloaded (shared_preload_libraries) or not allowed
            statements = []
    roles = conn.execute(
        "SELECT COALESCE(usename, '(background)'), count(*), "
        "count(*) FILTER (WHERE state = 'active'), "
        "count(*) FILTER (WHERE state LIKE 'idle in transaction%%'), "
        "max(now() - backend_start) FROM pg_stat_activity WHERE datname = current_database() "
        "GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    return {
        "statements": statements,
        "roles": [
            {
                "role": r[0],
                "connections": r[1],
                "active": r[2],
                "idle in transaction": r[3],
                "longest connected": str(r[4]).split(".")[0] if r[4] else "-",
            }
            for r in roles
        ],
    }


def _statements(conn: psycopg.Connection[Any], limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT pg_get_userbyid(s.userid), s.calls, round(s.total_exec_time::numeric, 1), "
        "round(s.mean_exec_time::numeric, 2), s.rows, left(regexp_replace(s.query, "
        "'\\s+', ' ', 'g'), 160) FROM pg_stat_statements s "
        "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY s.total_exec_time DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        {
            "role": r[0],
            "calls": r[1],
            "total ms": float(r[2]),
            "mean ms": float(r[3]),
            "rows": r[4],
            "statement": r[5],
        }
        for r in rows
    ]
