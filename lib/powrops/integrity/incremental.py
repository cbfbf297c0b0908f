"""The checks of an incremental integrity run, each over the rows it depends on that changed
since the watermark (``powrops.integrity.changes``), plus the rows the last run found
violating it, so that the count is the whole count, not only what is new.

What each check looks at:

- validation rules: the changed rows of their table;
- ``orphan_<table>``: the changed child rows, and the children of parent keys that the audit
  trail says were deleted or changed (through the foreign key column's index);
- ``workout_total_volume``: changed workouts, the workouts of changed sets, and the old
  workouts of sets deleted or moved;
- ``user_totals``: changed ``user_totals`` rows, the users of changed workouts and of the
  workouts of changed sets, and the old users of workouts deleted or moved (a ``users`` row
  does not enter a total; a key changed or deleted leaves an orphan, which that check finds);

Where the audit trail has every update of a table since, a row that updates changed only in
columns a check does not read (a workout's notes) is left out of that check.
- ``amcheck`` reads every index and heap: it waits for the full check (``consistency.full_every``)
  unless the last run found corruption; the checksum counters and ``audit_trail`` always run.

A check runs in full, and says why, where the last run did not keep every violating id (more
than ``KEPT_IDS``), or where deletes it depends on are unknown (no audit trail for them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from powrops.config import Settings
from powrops.findings import Severity
from powrops.integrity.changes import Changes, Watermark
from powrops.integrity.consistency import (
    SET_VOLUMES,
    WRONG_TOTALS_OF,
    Relationship,
    check_orphan,
    check_total_volume,
    check_user_totals,
    relationships,
    wrong_totals,
    wrong_volume,
)
from powrops.integrity.model import CHEAP, KEPT_IDS, CheckResult
from powrops.integrity.physical import (
    check_amcheck,
    check_checksum_failures,
    check_data_checksums,
    guarded,
)
from powrops.integrity.rules import rule_checks, run_rules

INCREMENTAL = "incremental"
FULL = "full"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Scope:
    """How one check ran: ``incremental``, ``full`` or ``skipped``, and why."""

    how: str
    why: str

    def to_dict(self) -> dict[str, str]:
        return {"scope": self.how, "why": self.why}


Scoped = tuple[sql.Composable | None, Scope]
"""A check's filter (None: every row) and its scope."""


def any_of(column: sql.Composable, values: Iterable[Any], type_: str) -> sql.Composed:
    """``column = ANY('{...}'::type[])`` of the distinct values."""
    distinct = sorted({str(v) for v in values})
    return sql.SQL("{} = ANY({}::{}[])").format(column, sql.Literal(distinct), sql.SQL(type_))


def _incremental(changes: Changes, what: str) -> Scope:
    return Scope(INCREMENTAL, f"since {changes.since:%Y-%m-%d %H:%M:%S %Z}: {what}")


def _kept(previous: Watermark, name: str) -> list[str] | Scope:
    """The last run's violating ids of ``name``, or the full scope when it did not keep them."""
    ids = previous.violations.get(name)
    if ids is None:
        return Scope(FULL, f"the last run did not keep every violating id (more than {KEPT_IDS:,})")
    return ids


def rule_scopes(
    settings: Settings, changes: Changes, previous: Watermark
) -> tuple[dict[str, sql.Composable], dict[str, Scope]]:
    """Per table of the rules, the filter (tables checked in full have none), and per rule
    its scope."""
    checks = rule_checks(settings.validation)
    within: dict[str, sql.Composable] = {}
    scopes: dict[str, Scope] = {}
    for table in dict.fromkeys(c.table for c in checks):
        names = [c.name for c in checks if c.table == table]
        kept = [_kept(previous, n) for n in names]
        full = [k for k in kept if isinstance(k, Scope)]
        if full or (table == "workouts" and settings.validation.workout.date.min == "today"):
            why = full[0].why if full else "date.min is today: rows age into violation"
            scopes.update({n: Scope(FULL, why) for n in names})
            continue
        ids = [*changes.new(table, "id"), *(i for k in kept if isinstance(k, list) for i in k)]
        within[table] = any_of(sql.Identifier("id"), ids, "bigint")
        what = f"{table} rows written since, and those the last run found"
        scopes.update({n: _incremental(changes, what) for n in names})
    return within, scopes


def orphan_scope(rel: Relationship, changes: Changes, previous: Watermark) -> Scoped:
    kept = _kept(previous, rel.name)
    if isinstance(kept, Scope):
        return None, kept
    if rel.parent in changes.unknown:
        return None, Scope(FULL, changes.unknown[rel.parent])
    child = any_of(
        sql.Identifier("c", rel.pk), [*changes.new(rel.table, rel.pk), *kept], rel.pk_type
    )
    gone = changes.gone(rel.parent, rel.key)
    parent = any_of(sql.Identifier("c", rel.column), gone, rel.key_type)
    what = f"{rel.table} rows written since; children of {len(gone):,} {rel.parent} keys gone"
    return sql.SQL("{} OR {}").format(child, parent), _incremental(changes, what)


def volume_ids(changes: Changes, kept: list[str]) -> list[Any]:
    """The workouts whose total_volume may differ from their sets now: written since (in a
    column the check reads), of sets written, deleted or moved since, or wrong last time.
    Every other workout with a total_volume still has the one the last check verified."""
    return [
        *changes.written("workouts", "id", but=VOLUME_OF_WORKOUTS),
        *changes.written("workout_sets", "workout_id", but=VOLUME_OF_SETS),
        *changes.gone("workout_sets", "workout_id"),
        *kept,
    ]


def volume_scope(changes: Changes, previous: Watermark) -> Scoped:
    kept = _kept(previous, "workout_total_volume")
    if isinstance(kept, Scope):
        return None, kept
    if "workout_sets" in changes.unknown:
        return None, Scope(FULL, changes.unknown["workout_sets"])
    ids = volume_ids(changes, kept)
    wrong = wrong_volume(
        workouts=any_of(sql.SQL("w.id"), ids, "bigint"),
        sets=any_of(sql.Identifier("workout_id"), ids, "bigint"),
    )
    return wrong, _incremental(
        changes, f"{len(set(map(str, ids))):,} workouts written or whose sets were"
    )


VOLUME_OF_WORKOUTS = ("id", "total_volume")
"""What the volume check reads of a workout: a workout changed in other columns only (its
notes, say: known from the audit trail) needs no new look."""

VOLUME_OF_SETS = ("id", "workout_id", "weight", "reps")
"""What the volume and totals checks read of a set."""

TOTALS_OF_WORKOUTS = ("id", "user_id", "deleted_at")
"""What the totals check reads of a workout besides its sets."""

USERS_OF = sql.SQL("SELECT DISTINCT user_id FROM public.workouts WHERE {ids}")

SETS_OF_USERS = sql.SQL("workout_id IN (SELECT id FROM public.workouts w WHERE {users})")


LIVE_TOTALS_VERIFIED = sql.SQL("""
SELECT w.user_id, count(*)::int AS workout_count,
       COALESCE(sum(CASE WHEN w.total_volume IS NULL OR {recheck} THEN s.volume
                         ELSE w.total_volume END), 0) AS total_volume
FROM public.workouts w LEFT JOIN ({set_volumes}) s ON s.workout_id = w.id
WHERE {users} AND w.deleted_at IS NULL GROUP BY w.user_id
""")
"""Per user, the live workouts and their volume: the verified total_volume of a workout the
volume check need not look at again, the sum of its sets for the others (:func:`volume_ids`)
and for workouts without a total_volume."""

SETS_TO_ADD = sql.SQL(
    "workout_id IN (SELECT w.id FROM public.workouts w "
    "WHERE {users} AND (w.total_volume IS NULL OR {recheck}))"
)


def wrong_totals_verified(users: list[Any], recheck: list[Any]) -> sql.Composed:
    """:func:`wrong_totals` of ``users`` reading the sets only of workouts in ``recheck`` or
    without a total_volume: a user's thousand workouts cost a thousand rows, not their sets."""
    of_users = any_of(sql.SQL("w.user_id"), users, "bigint")
    again = any_of(sql.SQL("w.id"), recheck, "bigint")
    sets = SET_VOLUMES.format(sets=SETS_TO_ADD.format(users=of_users, recheck=again))
    live = LIVE_TOTALS_VERIFIED.format(recheck=again, set_volumes=sets, users=of_users)
    return WRONG_TOTALS_OF.format(
        live_totals=live, totals=any_of(sql.SQL("t.user_id"), users, "bigint")
    )


def totals_scope(
    conn: psycopg.Connection[Any],
    changes: Changes,
    previous: Watermark,
    recheck: list[Any] | None = None,
) -> Scoped:
    """The users whose totals may be wrong now; with ``recheck`` (the workouts the volume check
    looks at in this run, when it runs incrementally) the others' verified total_volume
    stands for their sets."""
    kept = _kept(previous, "user_totals")
    if isinstance(kept, Scope):
        return None, kept
    for table in ("workout_sets", "workouts"):
        if table in changes.unknown:
            return None, Scope(FULL, changes.unknown[table])
    workouts = [
        *changes.written("workout_sets", "workout_id", but=VOLUME_OF_SETS),
        *changes.gone("workout_sets", "workout_id"),
    ]
    query = USERS_OF.format(ids=any_of(sql.Identifier("id"), workouts, "bigint"))
    users = [
        *changes.new("user_totals", "user_id"),
        *changes.written("workouts", "user_id", but=TOTALS_OF_WORKOUTS),
        *changes.gone("workouts", "user_id"),
        *(r[0] for r in conn.execute(query) if r[0] is not None),
        *kept,
    ]
    wrong = (
        wrong_totals_verified(users, recheck)
        if recheck is not None
        else wrong_totals(
            totals=any_of(sql.SQL("t.user_id"), users, "bigint"),
            workouts=any_of(sql.SQL("w.user_id"), users, "bigint"),
            sets=SETS_OF_USERS.format(users=any_of(sql.SQL("w.user_id"), users, "bigint")),
        )
    )
    return wrong, _incremental(
        changes, f"{len(set(map(str, users))):,} users with changed workouts, sets or totals"
    )


def run_consistency(
    conn: psycopg.Connection[Any], settings: Settings, changes: Changes, previous: Watermark
) -> tuple[list[CheckResult], dict[str, Scope]]:
    """The consistency checks the configuration turns on, each over what changed."""
    checks = settings.consistency.checks
    results: list[CheckResult] = []
    scopes: dict[str, Scope] = {}
    if checks.referential_integrity:
        for rel in relationships():
            within, scopes[rel.name] = orphan_scope(rel, changes, previous)
            results.append(check_orphan(conn, rel, *([within] if within is not None else [])))
    recheck = None
    if checks.calculated_fields:
        wrong, scopes["workout_total_volume"] = volume_scope(changes, previous)
        results.append(check_total_volume(conn, *([wrong] if wrong is not None else [])))
        kept = _kept(previous, "workout_total_volume")
        if wrong is not None and isinstance(kept, list):
            recheck = volume_ids(changes, kept)
    if checks.user_totals:
        wrong, scopes["user_totals"] = totals_scope(conn, changes, previous, recheck)
        results.append(check_user_totals(conn, *([wrong] if wrong is not None else [])))
    return results, scopes


def run_physical(
    conn: psycopg.Connection[Any], settings: Settings, previous: Watermark
) -> tuple[list[CheckResult], dict[str, Scope]]:
    """The checksum counters; amcheck only when the last run found corruption."""
    scopes = {n: Scope(FULL, CHEAP) for n in ("checksum_failures", "data_checksums")}
    last = previous.violations.get("amcheck")
    if last == []:
        amcheck = amcheck_waits(previous, settings)
        scopes["amcheck"] = Scope(SKIPPED, amcheck.message)
    else:
        amcheck = check_amcheck(conn, settings.consistency.heapallindexed)
        why = "found corruption" if last else "did not verify every relation"
        scopes["amcheck"] = Scope(FULL, f"the last run {why}")
    return [amcheck, check_checksum_failures(conn), check_data_checksums(conn)], scopes


def amcheck_waits(previous: Watermark, settings: Settings) -> CheckResult:
    every = settings.consistency.full_every
    return CheckResult(
        name="amcheck",
        category="physical",
        table=None,
        count=None,
        severity=Severity.OK,
        message=(
            "not run: an incremental check does not read every index and table; amcheck runs "
            f"with the full check (consistency.full_every: {every}; the last full check, at "
            f"{previous.full_at:%Y-%m-%d %H:%M %Z}, found every relation sound)"
        ),
        advice="`powrops check integrity --full` runs it now",
    )


def collect(
    conn: psycopg.Connection[Any],
    settings: Settings,
    changes: Changes,
    previous: Watermark,
    today: date | None = None,
) -> tuple[list[CheckResult], dict[str, Scope]]:
    """Every configured check over what changed since ``previous`` (inside the snapshot)."""
    within, scopes = rule_scopes(settings, changes, previous)
    results = guarded(
        conn, "validation", lambda: run_rules(conn, settings.validation, today, within)
    )
    found: dict[str, Scope] = {}

    def consistency() -> list[CheckResult]:
        checked, more = run_consistency(conn, settings, changes, previous)
        found.update(more)
        return checked

    results += guarded(conn, "consistency", consistency)
    physical, more = run_physical(conn, settings, previous)
    return results + physical, {**scopes, **found, **more}
