"""For each row failing a data check, the recorded change that made it fail (the audit trail).

The rows are found again by the checks' own conditions (set-based, every failing row, not only
the samples); each is matched with ``audit_log`` rows since ``since`` by their old and new
values (the row trigger's ``to_jsonb`` images):

- a validation rule: the latest INSERT or UPDATE whose new values fail the rule and whose old
  values passed it (an INSERT: the row was born bad), provided no later recorded change left
  the row passing;
- an orphan: the later of the DELETE of the parent it points at (or its quarantine) and the
  INSERT or UPDATE that set the reference to it;
- a calculated field (``workouts.total_volume``, ``user_totals``): the row and the rows it is
  computed from are rolled back from their present state, one transaction (one ``occurred_at``)
  at a time, with the recorded old values; the change is the one after which the value no
  longer matched.

A row no recorded change explains (the trail was off, does not reach back to ``since``, or
holds no old or new values) is counted as unexplained, never guessed at.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import psycopg
from psycopg import sql

from powrops.integrity.consistency import WRONG_TOTALS, WRONG_VOLUME, orphan_sql, relationships
from powrops.integrity.rules import RuleCheck

EVIDENCE_ROWS = 10
"""How many failing rows of one check are shown with their change: the earliest ones."""

SAMPLE_IDS = 5
"""How many ids of unexplained rows one check names."""

ROW_ACTIONS = ("INSERT", "UPDATE", "DELETE", "REPAIR")
"""The audit actions that change a row (REPAIR: powrops' own fixes, with old and new values)."""

WRITES = ("INSERT", "UPDATE", "REPAIR")
"""Actions that leave a new row image."""

REMOVALS = ("DELETE", "REPAIR")
"""Actions that can take a row away (a REPAIR without new values is a quarantine)."""


@dataclass(frozen=True)
class Change:
    """One ``audit_log`` row: a recorded change."""

    audit_id: int
    time: datetime
    actor: str | None
    action: str
    table: str
    row_id: str | None

    def describe(self) -> str:
        return f"{self.action} on {self.table} {self.row_id or ''} by {self.actor or '?'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit_id": self.audit_id,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "table": self.table,
            "row_id": self.row_id,
        }


@dataclass(frozen=True)
class Evidence:
    """A failing row and the change that made it fail."""

    row_id: str
    change: Change

    def to_dict(self) -> dict[str, Any]:
        return {"row_id": self.row_id, "change": self.change.to_dict()}


@dataclass(frozen=True)
class Blame:
    """One failed check: its failing rows, the earliest explained ones with their change, and
    how many no recorded change explains (with a few of their ids)."""

    check: str
    table: str
    evidence: tuple[Evidence, ...]
    explained: int
    unexplained: int
    unexplained_ids: tuple[str, ...] = ()

    @property
    def earliest(self) -> Change | None:
        return self.evidence[0].change if self.evidence else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "table": self.table,
            "explained": self.explained,
            "unexplained": self.unexplained,
            "unexplained_ids": list(self.unexplained_ids),
            "evidence": [e.to_dict() for e in self.evidence],
        }


# --- set-based: validation rules and orphans ---------------------------------------------------

AUDIT_COLUMNS = sql.SQL(
    "a.id AS audit_id, a.occurred_at, a.actor, a.action, a.table_name, a.row_id"
)

FAILS = sql.SQL(
    "EXISTS (SELECT 1 FROM jsonb_populate_record(NULL::{table}, {image}) r WHERE {cond})"
)
"""A row image (jsonb) fails a rule: the condition, evaluated on the image as a row."""

RULE_BLAME = sql.SQL("""
SELECT f.id::text AS failing_id, a.* FROM (SELECT id FROM {table} WHERE {condition}) f
LEFT JOIN LATERAL (
    SELECT {columns} FROM public.audit_log a
    WHERE a.table_name = %s AND a.row_id = f.id::text AND a.action = ANY(%s)
      AND a.occurred_at >= %s AND a.new_value IS NOT NULL AND {new_fails}
      AND (a.action = 'INSERT' OR (a.old_value IS NOT NULL AND NOT {old_fails}))
      AND NOT EXISTS (
          SELECT 1 FROM public.audit_log d
          WHERE d.table_name = a.table_name AND d.row_id = a.row_id AND d.action = ANY(%s)
            AND (d.occurred_at, d.id) > (a.occurred_at, a.id) AND d.new_value IS NOT NULL
            AND NOT {later_fails})
    ORDER BY a.occurred_at DESC, a.id DESC LIMIT 1
) a ON true
""")
"""Each row failing a rule, and the latest recorded change that took it from passing to
failing (or its INSERT), when no later change left it passing."""

ORPHAN_BLAME = sql.SQL("""
SELECT f.id::text AS failing_id, a.* FROM (SELECT c.{pk} AS id, c.{column}::text AS ref {orphans}) f
LEFT JOIN LATERAL (
    SELECT * FROM (
        (SELECT {columns} FROM public.audit_log a
         WHERE a.table_name = %s AND a.row_id = f.ref AND a.action = ANY(%s)
           AND a.occurred_at >= %s AND a.new_value IS NULL
         ORDER BY a.occurred_at DESC, a.id DESC LIMIT 1)
        UNION ALL
        (SELECT {columns} FROM public.audit_log a
         WHERE a.table_name = %s AND a.row_id = f.id::text AND a.action IN ('INSERT', 'UPDATE')
           AND a.occurred_at >= %s AND a.new_value ->> %s = f.ref
           AND (a.action = 'INSERT'
                OR (a.old_value IS NOT NULL AND a.old_value ->> %s IS DISTINCT FROM f.ref))
         ORDER BY a.occurred_at DESC, a.id DESC LIMIT 1)
    ) x ORDER BY x.occurred_at DESC, x.audit_id DESC LIMIT 1
) a ON true
""")
"""Each orphan and the later of: the removal of the parent row it points at, and the change
that set its reference to that parent."""

RANKED = sql.SQL("""
SELECT failing_id, audit_id, occurred_at, actor, action, table_name, row_id, n FROM (
    SELECT b.*, count(*) OVER w AS n,
           row_number() OVER (w ORDER BY b.occurred_at, b.audit_id,
                              length(b.failing_id), b.failing_id) AS rank
    FROM ({blamed}) b WINDOW w AS (PARTITION BY b.audit_id IS NULL)
) r WHERE r.rank <= %s ORDER BY r.audit_id IS NULL, r.rank
""")
"""The earliest explained rows and the first unexplained ones of a blame query, with the number
of each: the output stays small however many rows fail."""


def _ranked(
    conn: psycopg.Connection[Any], check: str, table: str, blamed: sql.Composed, params: list[Any]
) -> Blame:
    rows = conn.execute(RANKED.format(blamed=blamed), (*params, EVIDENCE_ROWS)).fetchall()
    explained = [r for r in rows if r[1] is not None]
    unexplained = [r for r in rows if r[1] is None]
    return Blame(
        check=check,
        table=table,
        evidence=tuple(Evidence(r[0], Change(*r[1:7])) for r in explained),
        explained=int(explained[0][7]) if explained else 0,
        unexplained=int(unexplained[0][7]) if unexplained else 0,
        unexplained_ids=tuple(r[0] for r in unexplained[:SAMPLE_IDS]),
    )


def blame_rule(conn: psycopg.Connection[Any], check: RuleCheck, since: datetime) -> Blame:
    """The rows failing one validation rule and the change that made each fail."""
    table = sql.Identifier("public", check.table)
    cond = check.condition

    def fails(image: str) -> sql.Composed:
        return FAILS.format(table=table, image=sql.SQL(image), cond=cond)

    blamed = RULE_BLAME.format(
        table=table,
        condition=cond,
        columns=AUDIT_COLUMNS,
        new_fails=fails("a.new_value"),
        old_fails=fails("a.old_value"),
        later_fails=fails("d.new_value"),
    )
    p = list(check.params)
    params = [*p, check.table, list(WRITES), since, *p, *p, list(WRITES), *p]
    return _ranked(conn, check.name, check.table, blamed, params)


def blame_orphans(conn: psycopg.Connection[Any], name: str, since: datetime) -> Blame:
    """The orphans of one relationship and the change that made each an orphan."""
    rel = next(r for r in relationships() if r.name == name)
    blamed = ORPHAN_BLAME.format(
        pk=sql.Identifier(rel.pk),
        column=sql.Identifier(rel.column),
        orphans=orphan_sql(rel),
        columns=AUDIT_COLUMNS,
    )
    params = [rel.parent, list(REMOVALS), since, rel.table, since, rel.column, rel.column]
    return _ranked(conn, rel.name, rel.table, blamed, params)


# --- calculated fields: rolled back change by change -------------------------------------------


@dataclass(frozen=True)
class Event:
    """A recorded change with its old and new row images (numbers as Decimal)."""

    change: Change
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    @property
    def key(self) -> str | None:
        return self.change.row_id


class Replay(Protocol):
    """A failing row's value and what it is computed from, rolled back one change at a time."""

    def undo(self, event: Event) -> bool:
        """Roll back ``event``; False when the images the roll-back needs were not recorded."""
        ...

    def bad(self) -> bool:
        """The stored value differs from the value computed from its sources."""
        ...


def culprit(replay: Replay, events: list[Event]) -> Change | None:
    """The change (a transaction's first) after which the value no longer matched: undo the
    events newest first, a transaction (one ``occurred_at``) at a time, until the value matched
    before it. None when it did not match before every recorded change, or an image is missing."""
    if not replay.bad():
        return None
    groups: dict[datetime, list[Event]] = {}
    for event in sorted(events, key=lambda e: (e.change.time, e.change.audit_id)):
        groups.setdefault(event.change.time, []).append(event)
    for moment in sorted(groups, reverse=True):
        group = groups[moment]
        if not all(replay.undo(e) for e in reversed(group)):
            return None
        if not replay.bad():
            return group[0].change
    return None


def _image(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text, parse_float=Decimal))


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _product(image: dict[str, Any]) -> Decimal:
    """weight * reps of a set image; a missing factor adds nothing, as in the SQL sum."""
    weight, reps = _number(image.get("weight")), _number(image.get("reps"))
    return Decimal(0) if weight is None or reps is None else weight * reps


def _recorded(event: Event) -> bool:
    """The images a roll-back of this event needs are there."""
    action = event.change.action
    needs_old = action in ("UPDATE", "DELETE", "REPAIR")
    needs_new = action in ("INSERT", "UPDATE") or (action == "REPAIR" and event.old is None)
    return not (needs_old and event.old is None) and not (needs_new and event.new is None)


def _undo_sets(volumes: dict[str, Decimal], event: Event, workouts: Iterable[str]) -> None:
    """Roll back a set's change in the set volumes of ``workouts`` (ids as text)."""
    wanted = set(workouts)
    if event.new is not None and str(event.new.get("workout_id")) in wanted:
        volumes[str(event.new["workout_id"])] -= _product(event.new)
    if event.old is not None and str(event.old.get("workout_id")) in wanted:
        volumes[str(event.old["workout_id"])] += _product(event.old)


class VolumeReplay:
    """One workout's stored ``total_volume`` against the sum of weight * reps of its sets."""

    def __init__(self, workout: str, stored: Decimal | None, computed: Decimal) -> None:
        self.workout = workout
        self.present = True
        self.stored = stored
        self.volumes: dict[str, Decimal] = defaultdict(Decimal, {workout: computed})

    def undo(self, event: Event) -> bool:
        if not _recorded(event):
            return False
        if event.change.table == "workouts":
            self.present = event.old is not None
            self.stored = _number(event.old.get("total_volume")) if event.old else None
        else:
            _undo_sets(self.volumes, event, [self.workout])
        return True

    def bad(self) -> bool:
        return (
            self.present and self.stored is not None and self.stored != self.volumes[self.workout]
        )


class TotalsReplay:
    """One user's ``user_totals`` row against their live workouts and the volume of their sets."""

    def __init__(
        self,
        user: str,
        totals: tuple[int, Decimal] | None,
        workouts: dict[str, tuple[str, bool]],
        volumes: dict[str, Decimal],
    ) -> None:
        """``workouts``: id -> (owner, live) of every workout that was the user's since the
        start, as it is now; ``volumes``: the volume of each one's sets now."""
        self.user = user
        self.totals = totals
        self.workouts = dict(workouts)
        self.volumes: dict[str, Decimal] = defaultdict(Decimal, volumes)
        self.scope = set(workouts) | set(volumes)

    def undo(self, event: Event) -> bool:
        if not _recorded(event):
            return False
        old, key = event.old, event.key or ""
        if event.change.table == "user_totals":
            self.totals = None if old is None else _totals(old)
        elif event.change.table == "workouts":
            if old is None:
                self.workouts.pop(key, None)
            else:
                self.workouts[key] = (str(old.get("user_id")), old.get("deleted_at") is None)
        else:
            _undo_sets(self.volumes, event, self.scope)
        return True

    def bad(self) -> bool:
        if self.totals is None:
            return False
        live = [w for w, (owner, alive) in self.workouts.items() if owner == self.user and alive]
        volume = sum((self.volumes[w] for w in live), Decimal(0))
        return self.totals != (len(live), volume)


def _totals(image: dict[str, Any]) -> tuple[int, Decimal]:
    return int(image.get("workout_count") or 0), _number(image.get("total_volume")) or Decimal(0)


EVENT_COLUMNS = sql.SQL(
    "a.id, a.occurred_at, a.actor, a.action, a.table_name, a.row_id, "
    "a.old_value::text, a.new_value::text"
)

ROW_EVENTS = sql.SQL("""
SELECT {columns} FROM public.audit_log a
WHERE a.table_name = %s AND a.row_id = ANY(%s) AND a.action = ANY(%s) AND a.occurred_at >= %s
""").format(columns=EVENT_COLUMNS)
"""The recorded changes of some rows of a table since a time."""

REFERRING_EVENTS = sql.SQL("""
SELECT {columns} FROM public.audit_log a
WHERE a.table_name = %s AND a.action = ANY(%s) AND a.occurred_at >= %s
  AND (a.new_value ->> %s = ANY(%s) OR a.old_value ->> %s = ANY(%s))
""").format(columns=EVENT_COLUMNS)
"""The recorded changes since a time of rows of a table that referred, before or after, to
one of some ids (the sets of some workouts, the workouts of some users)."""


def _events(conn: psycopg.Connection[Any], query: sql.Composed, params: Any) -> list[Event]:
    return [
        Event(Change(r[0], r[1], r[2], r[3], r[4], r[5]), _image(r[6]), _image(r[7]))
        for r in conn.execute(query, params).fetchall()
    ]


def _row_events(
    conn: psycopg.Connection[Any], table: str, ids: Iterable[str], since: datetime
) -> list[Event]:
    return _events(conn, ROW_EVENTS, (table, list(ids), list(ROW_ACTIONS), since))


def _referring(
    conn: psycopg.Connection[Any], table: str, column: str, ids: Iterable[str], since: datetime
) -> list[Event]:
    wanted = list(ids)
    params = (table, list(ROW_ACTIONS), since, column, wanted, column, wanted)
    return _events(conn, REFERRING_EVENTS, params)


def _refers(event: Event, column: str, ids: set[str]) -> bool:
    return any(
        image is not None and str(image.get(column)) in ids for image in (event.old, event.new)
    )


def _id_order(row_id: str) -> tuple[int, str]:
    """Ids in numeric order (shorter first), as the SQL side orders them."""
    return len(row_id), row_id


def _summarise(check: str, table: str, found: list[tuple[str, Change | None]]) -> Blame:
    explained = sorted(
        ((row, change) for row, change in found if change is not None),
        key=lambda item: (item[1].time, item[1].audit_id, _id_order(item[0])),
    )
    unexplained = sorted((row for row, change in found if change is None), key=_id_order)
    return Blame(
        check=check,
        table=table,
        evidence=tuple(Evidence(row, change) for row, change in explained[:EVIDENCE_ROWS]),
        explained=len(explained),
        unexplained=len(unexplained),
        unexplained_ids=tuple(unexplained[:SAMPLE_IDS]),
    )


FAILING_VOLUMES = sql.SQL("""
SELECT w.id::text, w.total_volume::text, COALESCE(s.volume, 0)::text {wrong}
""").format(wrong=WRONG_VOLUME)
"""Each workout whose total_volume does not match its sets: stored and computed value."""


def blame_volume(conn: psycopg.Connection[Any], since: datetime) -> Blame:
    """The workouts whose total_volume does not match their sets, and the change after which it
    no longer did."""
    current = conn.execute(FAILING_VOLUMES).fetchall()
    ids = [r[0] for r in current]
    own = _row_events(conn, "workouts", ids, since)
    sets = _referring(conn, "workout_sets", "workout_id", ids, since)
    found: list[tuple[str, Change | None]] = []
    for workout, stored, computed in current:
        events = [e for e in own if e.key == workout]
        events += [e for e in sets if _refers(e, "workout_id", {workout})]
        replay = VolumeReplay(workout, _number(stored), Decimal(computed))
        found.append((workout, culprit(replay, events)))
    return _summarise("workout_total_volume", "workouts", found)


FAILING_TOTALS = sql.SQL("""
SELECT t.user_id::text, t.workout_count, t.total_volume::text {wrong}
""").format(wrong=WRONG_TOTALS)
"""Each user_totals row that disagrees with the user's live workouts: its stored values."""

USER_WORKOUTS = """
SELECT w.id::text, w.user_id::text, w.deleted_at IS NULL FROM public.workouts w
WHERE w.user_id = ANY(%s::text[]::bigint[]) OR w.id = ANY(%s::text[]::bigint[])
"""
"""Workouts of some users, or with some ids: their owner, and whether they are live."""

SET_VOLUMES_OF = """
SELECT workout_id::text, COALESCE(sum(weight * reps), 0)::text FROM public.workout_sets
WHERE workout_id = ANY(%s::text[]::bigint[]) GROUP BY workout_id
"""
"""The volume of the sets of some workouts (of workouts gone too: their orphaned sets)."""


def blame_totals(conn: psycopg.Connection[Any], since: datetime) -> Blame:
    """The user_totals rows that disagree with the user's workouts, and the change after which
    they did."""
    current = conn.execute(FAILING_TOTALS).fetchall()
    users = [r[0] for r in current]
    own = _row_events(conn, "user_totals", users, since)
    moved = _referring(conn, "workouts", "user_id", users, since)
    named = sorted({e.key for e in moved if e.key})
    workouts = conn.execute(USER_WORKOUTS, (users, named)).fetchall()
    ids = sorted({w[0] for w in workouts} | set(named))
    volumes = {w: Decimal(v) for w, v in conn.execute(SET_VOLUMES_OF, (ids,)).fetchall()}
    sets = _referring(conn, "workout_sets", "workout_id", ids, since)
    found: list[tuple[str, Change | None]] = []
    for user, count, volume in current:
        mine = {w[0] for w in workouts if w[1] == user}
        mine |= {e.key for e in moved if e.key and _refers(e, "user_id", {user})}
        events = [e for e in own if e.key == user]
        events += [e for e in moved if e.key in mine]
        events += [e for e in sets if _refers(e, "workout_id", mine)]
        replay = TotalsReplay(
            user,
            (int(count), Decimal(volume)),
            {w[0]: (w[1], bool(w[2])) for w in workouts if w[0] in mine},
            {w: volumes.get(w, Decimal(0)) for w in mine},
        )
        found.append((user, culprit(replay, events)))
    return _summarise("user_totals", "user_totals", found)
