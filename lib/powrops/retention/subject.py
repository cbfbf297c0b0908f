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

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

REDACTED_MESSAGE = "[redacted: personal data erased]"


@dataclass(frozen=True)
class Holding:
    table: str
    where: str
    erase: str  # "delete" | "redact" | "exercises" | "user"
    order: str = "t.id"
    schema: str = "public"

    @property
    def name(self) -> str:
        return self.table if self.schema == "public" else f"{self.schema}.{self.table}"

    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    def select(self) -> sql.Composed:
        return sql.SQL("SELECT to_jsonb(t)::text FROM {} t WHERE {} ORDER BY {}").format(
            self.ident(),
            sql.SQL(self.where),
            sql.SQL(self.order),  # type: ignore[arg-type]
        )

    def count(self) -> sql.Composed:
        return sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(
            self.ident(),
            sql.SQL(self.where),  # type: ignore[arg-type]
        )


_AUDIT = (
    "(t.table_name = 'users' AND t.row_id = %(uid)s::text)"
    " OR t.old_value->>'user_id' = %(uid)s::text OR t.new_value->>'user_id' = %(uid)s::text"
    " OR (t.table_name = 'workouts' AND t.row_id = ANY(%(wids)s))"
    " OR (t.table_name = 'workout_sets' AND (t.old_value->>'workout_id' = ANY(%(wids)s)"
    " OR t.new_value->>'workout_id' = ANY(%(wids)s)))"
)

_QUARANTINE = (
    "(t.table_name = 'users' AND t.row_id = %(uid)s::text)"
    " OR t.row->>'user_id' = %(uid)s::text"
    " OR (t.table_name = 'workouts' AND t.row_id = ANY(%(wids)s))"
    " OR (t.table_name = 'workout_sets' AND t.row->>'workout_id' = ANY(%(wids)s))"
)

#: In erasure order: children before parents, the users row last.
HOLDINGS = (
    Holding(
        "workout_sets",
        "t.workout_id IN (SELECT w.id FROM workouts w WHERE w.user_id = %(uid)s)",
        "delete",
    ),
    Holding("workouts", "t.user_id = %(uid)s", "delete"),
    Holding("exercises", "t.user_id = %(uid)s", "exercises"),
    Holding("user_totals", "t.user_id = %(uid)s", "delete", order="t.user_id"),
    Holding("sessions", "t.user_id = %(uid)s", "delete", order="t.created_at, t.id"),
    Holding("consents", "t.user_id = %(uid)s", "delete"),
    Holding(
        "temp_data",
        "t.payload->>'user_id' = %(uid)s::text OR t.key ~ ('^[^:]+:' || %(uid)s || ':')",
        "delete",
    ),
    Holding("cache_entries", "t.key LIKE ('user:' || %(uid)s || ':%%')", "delete", "t.key"),
    Holding("system_logs", "t.message ~ ('user[ :]' || %(uid)s || '([^0-9]|$)')", "redact"),
    Holding("audit_log", _AUDIT, "redact"),
    Holding("quarantine", _QUARANTINE, "delete", schema="ops"),
    Holding("users", "t.id = %(uid)s", "user"),
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
    if holding.table == "system_logs":
        setter = "message = %(message)s"
    else:
        setter = (
            "old_value = NULL, new_value = NULL, "
            "details = jsonb_build_object('redacted', 'gdpr erasure', 'request', %(request)s::text)"
        )
    return sql.SQL("UPDATE {} t SET {} WHERE {}").format(
        holding.ident(),
        sql.SQL(setter),
        sql.SQL(holding.where),  # type: ignore[arg-type]
    )


def deletion(holding: Holding) -> sql.Composed:
    return sql.SQL("DELETE FROM {} t WHERE {}").format(
        holding.ident(),
        sql.SQL(holding.where),  # type: ignore[arg-type]
    )
