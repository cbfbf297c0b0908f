"""Everything powrops knows to be held about one user, table by table (a data subject's rows).

Each :class:`Holding` names a table, the predicate (on alias ``t``; parameters ``uid``, the user
id, and ``wids``, the user's workout ids - live and archived - as text) that selects the user's
rows, and what erasure does to them: ``delete`` them, or ``redact`` the personal parts of rows
that must stay (the audit trail keeps that a change happened; system logs keep their time and
category). The integrity repair's ``ops.quarantine`` rows of the user are deleted. GDPR export
and erasure share these predicates, so whatever is exported is erased.

Free-text system log messages name users as ``user 7`` or ``user:7:``; those are the ones found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

REDACTED_MESSAGE = "[redacted: personal data erased]"
#: The largest user id: ``users.id`` is a bigint.
MAX_USER_ID = 2**63 - 1


SELECT_HELD = sql.SQL("SELECT to_jsonb(t)::text FROM {table} t WHERE {held} ORDER BY {order}")
"""A holding's rows as JSON texts (the export)."""

COUNT_HELD = sql.SQL("SELECT count(*) FROM {table} t WHERE {held}")
"""How many rows of a holding there are (the dry run of an erasure)."""

DELETE_HELD = sql.SQL("DELETE FROM {table} t WHERE {held}")

REDACT_HELD = sql.SQL("UPDATE {table} t SET {redacted} WHERE {held}")
"""Remove the personal parts of a holding's rows that must stay."""

REDACTED_LOG = sql.SQL("message = %(message)s")
REDACTED_AUDIT = sql.SQL(
    "old_value = NULL, new_value = NULL, "
    "details = jsonb_build_object('redacted', 'gdpr erasure', 'request', %(request)s::text)"
)

BY_ID = sql.SQL("t.id")


@dataclass(frozen=True)
class Holding:
    table: str
    where: sql.SQL
    erase: str  # "delete" | "redact" | "exercises" | "user"
    order: sql.SQL = field(default_factory=lambda: BY_ID)
    schema: str = "public"

    @property
    def name(self) -> str:
        return self.table if self.schema == "public" else f"{self.schema}.{self.table}"

    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    def select(self) -> sql.Composed:
        return SELECT_HELD.format(table=self.ident(), held=self.where, order=self.order)

    def count(self) -> sql.Composed:
        return COUNT_HELD.format(table=self.ident(), held=self.where)


#: The user's audit rows not yet redacted: a row an earlier erasure (or anonymization)
#: redacted holds nothing of the person, and keeps that request's id as its evidence.
_AUDIT = sql.SQL(
    "((t.table_name = 'users' AND t.row_id = %(uid)s::text)"
    " OR t.old_value->>'user_id' = %(uid)s::text OR t.new_value->>'user_id' = %(uid)s::text"
    " OR (t.table_name = 'workouts' AND t.row_id = ANY(%(wids)s))"
    " OR (t.table_name = 'workout_sets' AND (t.old_value->>'workout_id' = ANY(%(wids)s)"
    " OR t.new_value->>'workout_id' = ANY(%(wids)s))))"
    " AND t.details->>'redacted' IS NULL"
)

_QUARANTINE = sql.SQL(
    "(t.table_name = 'users' AND t.row_id = %(uid)s::text)"
    " OR t.row->>'user_id' = %(uid)s::text"
    " OR (t.table_name = 'workouts' AND t.row_id = ANY(%(wids)s))"
    " OR (t.table_name = 'workout_sets' AND t.row->>'workout_id' = ANY(%(wids)s))"
)

#: In erasure order: children before parents, the users row last.
HOLDINGS = (
    Holding(
        "workout_sets",
        sql.SQL("t.workout_id IN (SELECT w.id FROM workouts w WHERE w.user_id = %(uid)s)"),
        "delete",
    ),
    Holding("workouts", sql.SQL("t.user_id = %(uid)s"), "delete"),
    Holding("exercises", sql.SQL("t.user_id = %(uid)s"), "exercises"),
    Holding("user_totals", sql.SQL("t.user_id = %(uid)s"), "delete", order=sql.SQL("t.user_id")),
    Holding(
        "sessions", sql.SQL("t.user_id = %(uid)s"), "delete", order=sql.SQL("t.created_at, t.id")
    ),
    Holding("consents", sql.SQL("t.user_id = %(uid)s"), "delete"),
    Holding(
        "temp_data",
        sql.SQL("t.payload->>'user_id' = %(uid)s::text OR t.key ~ ('^[^:]+:' || %(uid)s || ':')"),
        "delete",
    ),
    Holding(
        "cache_entries",
        sql.SQL("t.key LIKE ('user:' || %(uid)s || ':%%')"),
        "delete",
        sql.SQL("t.key"),
    ),
    Holding(
        "system_logs", sql.SQL("t.message ~ ('user[ :]' || %(uid)s || '([^0-9]|$)')"), "redact"
    ),
    Holding("audit_log", _AUDIT, "redact"),
    Holding("quarantine", _QUARANTINE, "delete", schema="ops"),
    Holding("users", sql.SQL("t.id = %(uid)s"), "user"),
)


def present(conn: psycopg.Connection[Any]) -> tuple[Holding, ...]:
    """The holdings whose tables exist (``ops.quarantine`` comes with the audit migration)."""
    names = [f"{h.schema}.{h.table}" for h in HOLDINGS]
    found = conn.execute(
        "SELECT n FROM unnest(%s::text[]) n WHERE to_regclass(n) IS NOT NULL", (names,)
    ).fetchall()
    exist = {r[0] for r in found}
    return tuple(h for h in HOLDINGS if f"{h.schema}.{h.table}" in exist)


def params(user_id: int, workout_ids: list[int]) -> dict[str, object]:
    return {"uid": user_id, "wids": [str(w) for w in workout_ids]}


def redaction(holding: Holding) -> sql.Composed:
    """The UPDATE that removes the personal parts of a holding's rows that stay."""
    redacted = REDACTED_LOG if holding.table == "system_logs" else REDACTED_AUDIT
    return REDACT_HELD.format(table=holding.ident(), redacted=redacted, held=holding.where)


def deletion(holding: Holding) -> sql.Composed:
    return DELETE_HELD.format(table=holding.ident(), held=holding.where)


def is_user_id(value: Any) -> bool:
    """Whether ``value`` can be a user's id: a whole number from 1 to :data:`MAX_USER_ID`
    (beyond it, the database answers "bigint out of range")."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_USER_ID


def not_a_user_id(value: object) -> str:
    """What is wrong with a value that :func:`is_user_id` refuses, in one line."""
    return f"{value} is not a user's id (a whole number from 1 to {MAX_USER_ID})"
