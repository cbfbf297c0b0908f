"""Consistency checks: referential integrity, calculated fields and user totals, found in data.

Relationships come from ``powrops.schema.metadata`` (what the schema is meant to be), not from
the catalog's constraints, so an orphan is found even where the foreign key was dropped, is
``NOT VALID`` or was bypassed with ``session_replication_role = replica``. Every check is one
anti-join or aggregate over the whole table, returning a count and a few ids.

User totals follow what the application keeps (and ``powrops.demo.data`` builds): per user, the
number of workouts with ``deleted_at IS NULL`` (archived ones included) and the sum of
``weight * reps`` of their sets, a NULL product adding nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from powrops.config import ConsistencyChecks
from powrops.integrity.model import KEPT_IDS, CheckResult, violation
from powrops.integrity.rules import ALL_ROWS
from powrops.schema import metadata

ORPHAN = sql.SQL(
    "{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = {column})"
)
"""The condition of an orphan row: its reference is set and no parent row has that key."""

ORPHANS = sql.SQL("FROM {table} c WHERE {orphan}")
"""A relationship's orphan rows, as alias ``c``."""


@dataclass(frozen=True)
class Relationship:
    """One foreign key of the POWR schema: ``table.column`` references ``parent.key``."""

    name: str
    table: str
    column: str
    parent: str
    key: str
    pk: str
    pk_type: str
    key_type: str

    def orphan_condition(self, alias: str = "c") -> sql.Composed:
        """The SQL condition of an orphan row (:data:`ORPHAN`) of the table as ``alias``."""
        return ORPHAN.format(
            column=sql.Identifier(alias, self.column),
            parent=sql.Identifier("public", self.parent),
            key=sql.Identifier(self.key),
        )


def _sql_type(table: Table, column: str) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(table.c[column].type.compile(dialect=dialect)).lower()


def relationships() -> list[Relationship]:
    """Every foreign key between POWR tables in ``public``, parents' tables first.

    Names: ``orphan_<table>`` for a table's first foreign key, ``orphan_<table>_<parent>``
    for any further one (``orphan_workout_sets``, ``orphan_workout_sets_exercises``).
    """
    found = []
    for table in metadata.sorted_tables:
        if table.schema is not None:
            continue
        keys = [fk for col in table.columns for fk in col.foreign_keys]
        for index, fk in enumerate(keys):
            parent = fk.column.table
            if parent.schema is not None:
                continue
            pk = next(iter(table.primary_key.columns)).name
            name = f"orphan_{table.name}" + (f"_{parent.name}" if index else "")
            found.append(
                Relationship(
                    name=name,
                    table=table.name,
                    column=fk.parent.name,
                    parent=parent.name,
                    key=fk.column.name,
                    pk=pk,
                    pk_type=_sql_type(table, pk),
                    key_type=_sql_type(parent, fk.column.name),
                )
            )
    return found


COUNT_AND_SAMPLES = sql.SQL("""
WITH v AS MATERIALIZED (SELECT {key} AS k {from_where})
SELECT (SELECT count(*) FROM v), ARRAY(SELECT k FROM v ORDER BY k LIMIT %s)
""")
"""How many rows ``FROM ... WHERE ...`` finds, and the smallest of their keys."""


def _count_and_samples(
    conn: psycopg.Connection[Any], from_where: sql.Composable, key: sql.Composable
) -> tuple[int, list[Any]]:
    """Count rows of ``FROM ... WHERE ...`` and up to KEPT_IDS of their keys (smallest
    first), in one statement."""
    query = COUNT_AND_SAMPLES.format(key=key, from_where=from_where)
    row = conn.execute(query, (KEPT_IDS,)).fetchone()
    assert row is not None
    return int(row[0]), list(row[1])


def orphan_sql(rel: Relationship, within: sql.Composable = ALL_ROWS) -> sql.Composed:
    """``FROM <table> c WHERE <orphan condition>`` (:data:`ORPHANS`) of one relationship, of
    the rows (alias ``c``) that ``within`` keeps."""
    orphan = sql.SQL("({}) AND {}").format(within, rel.orphan_condition("c"))
    return ORPHANS.format(table=sql.Identifier("public", rel.table), orphan=orphan)


def check_orphans(conn: psycopg.Connection[Any]) -> list[CheckResult]:
    return [check_orphan(conn, rel) for rel in relationships()]


def check_orphan(
    conn: psycopg.Connection[Any], rel: Relationship, within: sql.Composable = ALL_ROWS
) -> CheckResult:
    """One relationship's orphans among the rows ``within`` keeps (default: all)."""
    n, samples = _count_and_samples(conn, orphan_sql(rel, within), sql.Identifier("c", rel.pk))
    return violation(
        rel.name,
        "referential",
        rel.table,
        n,
        samples,
        f"whose {rel.column} references no {rel.parent} row",
        advice="`powrops check integrity --repair` moves them (and rows that depend on "
        "them) to ops.quarantine; restore from there if the parent comes back",
        repairable=True,
        column=rel.column,
        parent=rel.parent,
    )


SET_VOLUMES = sql.SQL("""
SELECT workout_id, COALESCE(sum(weight * reps), 0) AS volume
FROM public.workout_sets WHERE {sets} GROUP BY workout_id
""")
"""Each workout's volume: the sum of weight * reps of its sets (a NULL product adds nothing),
for the sets of alias-less filter ``sets``."""

WRONG_VOLUME_OF = sql.SQL("""
FROM public.workouts w LEFT JOIN ({set_volumes}) s ON s.workout_id = w.id
WHERE {workouts} AND w.total_volume IS NOT NULL AND w.total_volume <> COALESCE(s.volume, 0)
""")

LIVE_TOTALS_OF = sql.SQL("""
SELECT w.user_id, count(*)::int AS workout_count, COALESCE(sum(s.volume), 0) AS total_volume
FROM public.workouts w LEFT JOIN ({set_volumes}) s ON s.workout_id = w.id
WHERE {workouts} AND w.deleted_at IS NULL GROUP BY w.user_id
""")

WRONG_TOTALS_OF = sql.SQL("""
FROM public.user_totals t LEFT JOIN ({live_totals}) l ON l.user_id = t.user_id
WHERE {totals} AND (t.workout_count <> COALESCE(l.workout_count, 0)
   OR t.total_volume <> COALESCE(l.total_volume, 0))
""")


def wrong_volume(
    workouts: sql.Composable = ALL_ROWS, sets: sql.Composable = ALL_ROWS
) -> sql.Composed:
    """Workouts (alias ``w``, filtered by ``workouts``) whose stored total_volume differs from
    the sum of weight * reps of their sets (``sets`` must keep every set of those workouts)."""
    return WRONG_VOLUME_OF.format(set_volumes=SET_VOLUMES.format(sets=sets), workouts=workouts)


def wrong_totals(
    totals: sql.Composable = ALL_ROWS,
    workouts: sql.Composable = ALL_ROWS,
    sets: sql.Composable = ALL_ROWS,
) -> sql.Composed:
    """user_totals rows (alias ``t``, filtered by ``totals``) that disagree with the user's
    live workouts (alias ``w``, ``workouts`` keeping every one of those users) and their
    sets (``sets`` keeping every set of those workouts)."""
    live = LIVE_TOTALS_OF.format(set_volumes=SET_VOLUMES.format(sets=sets), workouts=workouts)
    return WRONG_TOTALS_OF.format(live_totals=live, totals=totals)


WRONG_VOLUME = wrong_volume()
"""Workouts whose stored total_volume differs from the sum of weight * reps of their sets."""

WRONG_TOTALS = wrong_totals()
"""user_totals rows that disagree with the user's live workouts and their sets."""


def check_total_volume(
    conn: psycopg.Connection[Any], wrong: sql.Composable = WRONG_VOLUME
) -> CheckResult:
    n, samples = _count_and_samples(conn, wrong, sql.SQL("w.id"))
    return violation(
        "workout_total_volume",
        "calculated",
        "workouts",
        n,
        samples,
        "with total_volume different from the sum of weight x reps of their sets",
        advice="`powrops check integrity --repair` recomputes them (audited)",
        repairable=True,
    )


def check_user_totals(
    conn: psycopg.Connection[Any], wrong: sql.Composable = WRONG_TOTALS
) -> CheckResult:
    n, samples = _count_and_samples(conn, wrong, sql.SQL("t.user_id"))
    return violation(
        "user_totals",
        "totals",
        "user_totals",
        n,
        samples,
        "whose workout_count or total_volume differs from the user's live workouts",
        advice="`powrops check integrity --repair` recomputes them (audited)",
        repairable=True,
    )


def run_consistency(conn: psycopg.Connection[Any], checks: ConsistencyChecks) -> list[CheckResult]:
    """The consistency checks the configuration turns on, in a fixed order."""
    results: list[CheckResult] = []
    if checks.referential_integrity:
        results += check_orphans(conn)
    if checks.calculated_fields:
        results.append(check_total_volume(conn))
    if checks.user_totals:
        results.append(check_user_totals(conn))
    return results
