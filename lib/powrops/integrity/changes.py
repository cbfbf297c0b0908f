"""What changed since the last integrity check: the watermark each check stores with its run,
and the rows written, updated away or deleted since the one before.

A check records the snapshot it read under (``pg_current_snapshot()``: its ``xmin`` as a
64-bit ``xid8``), the cluster and database it read, and per table the counters of
``pg_stat_user_tables`` (updates, deletes) and the relation's file node, read just *before*
the snapshot so that nothing they count is newer than what the check saw. A role that may not
read the cluster's identity (``pg_control_system()``) checks in full: a database reloaded into
another cluster keeps its name and the last watermark, not its transaction ids. The watermark is
stored as the ``watermark`` note among the run's findings in ``ops.check_runs``.

The next check finds the rows written since by their ``xmin``: a row version whose
inserting transaction was not yet visible in the watermark's snapshot has an ``xmin`` at or
after the snapshot's ``xmin``, i.e. ``age(xmin) <= age(<watermark xmin>)`` in the same
transaction (``age`` works on the 32-bit ``xid`` modulo 2^32, which is exact while fewer than
2^31 transactions separate the two checks: beyond that the check runs in full). Freezing keeps
the raw ``xmin`` (PostgreSQL 9.4+), so a row frozen since is still found; a row frozen long
ago whose ``xmin`` wrapped around into the window is looked at again, which costs time, never
a miss. Nothing here needs an optional setting (no ``updated_at``, no trigger).

Deletes, and updates that move a row away from a parent (a set to another workout), leave no
``xmin`` behind. The audit trail gives their old rows (``old_value``); the counters say
whether it recorded them all: where they saw more updates and deletes in a table since the
watermark than the trail recorded (no audit trail, a bypassed trigger), or cannot tell (a
truncate or rewrite, statistics reset), the table's deletes are *unknown* and the checks they
affect run in full, saying why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from powrops.audit.trail import BULK_ACTIONS, DATA_ACTIONS, REPAIR_ACTION
from powrops.config import Settings
from powrops.findings import Finding, Severity
from powrops.integrity.consistency import relationships
from powrops.integrity.model import CheckResult
from powrops.pg import control

NOTE = "watermark"
"""The check name of the note that carries the watermark in a run's findings."""

MAX_CHANGED = 200_000
"""More changed (or audited) rows than this in one table: a full check reads less."""

MAX_XID_DISTANCE = 2**31 - 2**24
"""Transactions between two checks beyond which 32-bit ``age()`` is no longer exact."""


def key_columns() -> dict[str, list[str]]:
    """Per POWR table the checks look at, the columns they follow: the primary key and every
    foreign key column (``workout_sets``: id, workout_id, exercise_id)."""
    columns: dict[str, list[str]] = {}
    for rel in relationships():
        columns.setdefault(rel.table, [rel.pk])
        columns.setdefault(rel.parent, [rel.key])
        if rel.column not in columns[rel.table]:
            columns[rel.table].append(rel.column)
    return columns


@dataclass(frozen=True)
class TableStats:
    """A table's write counters and file node as one check read them."""

    updated: int
    deleted: int
    filenode: int | None


@dataclass(frozen=True)
class Watermark:
    """What one check read, for the next to start from."""

    cluster: str
    database: str
    xmin: int
    taken_at: datetime
    full_at: datetime
    rules: str
    stats_reset: str | None
    oldest_xact: datetime | None
    tables: dict[str, TableStats]
    #: Per check, every violating id when the run kept them all (count <= KEPT_IDS).
    violations: dict[str, list[str] | None] = field(default_factory=dict)
    #: ``track_counts`` was on: the counters moved with the writes.
    counting: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("taken_at", "full_at", "oldest_xact"):
            value = getattr(self, key)
            data[key] = value.isoformat() if value else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Watermark:
        data = dict(data)
        for key in ("taken_at", "full_at", "oldest_xact"):
            data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
        data["tables"] = {t: TableStats(**s) for t, s in data["tables"].items()}
        return cls(**data)

    def note(self) -> Finding:
        return Finding(
            NOTE,
            Severity.OK,
            f"the next incremental check starts from this run's snapshot (xmin {self.xmin}, "
            f"{self.taken_at:%Y-%m-%d %H:%M:%S %Z})",
            object="ops.check_runs",
            details=self.to_dict(),
        )


def rules_digest(settings: Settings) -> str:
    """A digest of the settings the data checks depend on: changed rules mean a full check."""
    wanted = {
        "validation": settings.validation.model_dump(mode="json"),
        "checks": settings.consistency.checks.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


def kept_violations(results: list[CheckResult]) -> dict[str, list[str] | None]:
    """Per result, all its violating ids when the run kept them all, else None."""
    return {
        r.name: list(r.kept_ids) if r.count is not None and r.count <= len(r.kept_ids) else None
        for r in results
    }


LATEST = """
SELECT f -> 'details' FROM ops.check_runs r, jsonb_array_elements(r.findings) f
WHERE r.server = %s AND r.kind = %s AND r.findings @> %s::jsonb AND f ->> 'check' = %s
ORDER BY r.started_at DESC, r.id DESC LIMIT 1
"""


NONE_STORED = "no earlier check stored a watermark for this server"


def latest(conn: psycopg.Connection[Any], server: str, kind: str) -> Watermark | str:
    """The watermark of the server's newest stored run that has one, or why there is none."""
    marker = json.dumps([{"check": NOTE}])
    try:
        with conn.transaction():
            row = conn.execute(LATEST, (server, kind, marker, NOTE)).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return "this role may not read ops.check_runs, which keeps the last check's watermark"
    except psycopg.errors.UndefinedTable:
        return NONE_STORED
    if row is None or row[0] is None:
        return NONE_STORED
    try:
        return Watermark.from_dict(row[0])
    except (KeyError, TypeError, ValueError):
        return "the last stored watermark is not in a form this version of powrops reads"


STATS = """
SELECT s.relname, s.n_tup_upd, s.n_tup_del, pg_relation_filenode(s.relid)
FROM pg_stat_user_tables s WHERE s.schemaname = 'public' AND s.relname = ANY(%s)
"""

DATABASE = """
SELECT d.stats_reset::text, least(statement_timestamp(), min(a.xact_start)),
       bool_or(a.query = '<insufficient privilege>'), current_setting('track_counts')::bool
FROM pg_stat_database d LEFT JOIN pg_stat_activity a ON a.datid = d.datid
WHERE d.datname = current_database() GROUP BY d.stats_reset
"""


@dataclass(frozen=True)
class Counters:
    """Read before the snapshot: table counters, the statistics' reset time, the start of
    the oldest transaction then open (None when some sessions are hidden from this role), and
    whether the server counts at all (``track_counts``)."""

    tables: dict[str, TableStats]
    stats_reset: str | None
    oldest_xact: datetime | None
    counting: bool = True


FLUSH = "SELECT pg_stat_force_next_flush()"
"""This session's own pending counters (a repair just before a re-check) reach the shared
statistics as the statement ends (PostgreSQL 15+): read after it, they are counted now, not
by the next run."""


def flush_counters(conn: psycopg.Connection[Any]) -> None:
    """:data:`FLUSH`, where the server has it and the role may (PUBLIC may by default)."""
    if conn.info.server_version < 150000:
        return
    try:
        with conn.transaction():
            conn.execute(FLUSH)
    except psycopg.errors.InsufficientPrivilege:
        pass


def read_counters(conn: psycopg.Connection[Any]) -> Counters:
    flush_counters(conn)
    tables = {
        name: TableStats(int(upd), int(dele), filenode)
        for name, upd, dele, filenode in conn.execute(STATS, (list(key_columns()),))
    }
    row = conn.execute(DATABASE).fetchone()
    assert row is not None
    return Counters(tables, row[0], None if row[2] else row[1], bool(row[3]))


#: The snapshot, and whether this role may read the cluster's identity (:data:`CLUSTER`).
SNAPSHOT = sql.SQL("""
SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint, now(),
       d.oid::text || ':' || d.datname,
       ({may_read}) AND has_function_privilege('pg_control_checkpoint()', 'EXECUTE')
FROM pg_current_snapshot() s, pg_database d WHERE d.datname = current_database()
""").format(may_read=sql.SQL(control.MAY_READ_SQL))

CLUSTER = sql.SQL(
    "SELECT ({system_identifier}) || ':' || timeline_id FROM pg_control_checkpoint()"
).format(system_identifier=sql.SQL(control.SYSTEM_IDENTIFIER_SQL))


@dataclass(frozen=True)
class Here:
    """The snapshot this check reads under, and where."""

    cluster: str
    database: str
    xmin: int
    xmax: int
    taken_at: datetime


def here(conn: psycopg.Connection[Any]) -> Here:
    """Inside the check's snapshot: its xmin and xmax (xid8), time, cluster and database."""
    row = conn.execute(SNAPSHOT).fetchone()
    assert row is not None
    ident = conn.execute(CLUSTER).fetchone() if row[4] else None
    cluster = str(ident[0]) if ident else UNKNOWN
    return Here(cluster, str(row[3]), int(row[0]), int(row[1]), row[2])


UNKNOWN = "unknown"
"""The cluster of a check whose role may not execute pg_control_system() or
pg_control_checkpoint() (PUBLIC may by default)."""


def elsewhere(previous: Watermark, now: Here) -> str | None:
    """Why the last check may have read another cluster or database, or None.

    A cluster whose identity a role could not read is never taken for the same: a database
    reloaded into a new cluster (``pg_dump``, a logical replica) keeps its name and often its
    oid and the last watermark, while its transaction ids start again."""
    if UNKNOWN in (previous.cluster, now.cluster):
        whose = "this check's" if now.cluster == UNKNOWN else "the last check's"
        return (
            f"{whose} role may not execute pg_control_system() and pg_control_checkpoint(): "
            "without the system identifier and timeline, another or a restored cluster cannot "
            "be told from the one the last check read (GRANT EXECUTE on both to the role)"
        )
    if (previous.cluster, previous.database) != (now.cluster, now.database):
        return (
            f"the last check read another cluster or database ({previous.cluster} "
            f"{previous.database}; now {now.cluster} {now.database})"
        )
    return None


FORCED = "a full check was asked for"


def full_reason(previous: Watermark | str, now: Here, settings: Settings) -> str | None:
    """Why this check must run in full (``previous`` is that reason when it is no watermark:
    :func:`latest`, :data:`FORCED`), or None when it can be incremental."""
    if isinstance(previous, str):
        return previous
    moved = elsewhere(previous, now)
    if moved is not None:
        return moved
    if not 0 <= now.xmax - previous.xmin < MAX_XID_DISTANCE:
        return "the transaction ids since the last check are out of the incremental range"
    if previous.rules != rules_digest(settings):
        return "the validation rules or consistency checks changed since the last check"
    every = settings.consistency.full_every
    if not every.indefinite and now.taken_at >= previous.full_at + every.timedelta:
        return (
            f"the last full check was at {previous.full_at:%Y-%m-%d %H:%M %Z}: one is due "
            f"every {settings.consistency.full_every} (consistency.full_every)"
        )
    return None


@dataclass
class Changes:
    """The rows changed since the watermark, by table and column; the old rows (from the
    audit trail) of updates and deletes; and, per table, why they are unknown where they are."""

    since: datetime
    rows: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    old: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)
    too_many: str | None = None
    #: The audited writes of the tables whose updates and deletes the audit trail covers.
    audit: dict[str, list[Write]] = field(default_factory=dict)

    def new(self, table: str, column: str) -> list[Any]:
        return self.rows.get(table, {}).get(column, [])

    def gone(self, table: str, column: str) -> list[Any]:
        return self.old.get(table, {}).get(column, [])

    def quiet(self, table: str, columns: tuple[str, ...]) -> set[str]:
        """Ids of rows of ``table`` written since only by audited updates that left every one
        of ``columns`` as it was: for a check that reads only those, nothing changed."""
        key = key_columns()[table][0]
        seen: set[str] = set()
        loud: set[str] = set()
        for action, old, new in self.audit.get(table, []):
            row = new or old or {}
            ident = str(row.get(key))
            seen.add(ident)
            if action != "UPDATE" or not old or not new or _differ(old, new, columns):
                loud.add(ident)
        return seen - loud

    def written(self, table: str, column: str, but: tuple[str, ...] = ()) -> list[Any]:
        """``column`` of the rows of ``table`` written since; with ``but``, leaving out the
        rows that only audited updates of other columns wrote (:meth:`quiet`)."""
        quiet = self.quiet(table, but) if but else set()
        ids = self.new(table, key_columns()[table][0])
        return [v for i, v in zip(ids, self.new(table, column), strict=True) if str(i) not in quiet]


CHANGED = sql.SQL("SELECT {columns} FROM {table} WHERE age(xmin) <= %s LIMIT %s")
"""The row versions written since the watermark: ``age(xmin)`` no older than its xmin's."""

AGE = "SELECT age(%s::text::xid)"


def threshold(conn: psycopg.Connection[Any], previous: Watermark) -> int:
    """``age()`` of the watermark's xmin in this transaction: newer rows are at most this old."""
    row = conn.execute(AGE, (str(previous.xmin % 2**32),)).fetchone()
    assert row is not None
    return int(row[0])


def changed_rows(
    conn: psycopg.Connection[Any], table: str, columns: list[str], age: int
) -> dict[str, list[Any]] | None:
    """Per column, the values of the rows of ``table`` written since; None above MAX_CHANGED."""
    query = CHANGED.format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table=sql.Identifier("public", table),
    )
    rows = conn.execute(query, (age, MAX_CHANGED + 1)).fetchall()
    if len(rows) > MAX_CHANGED:
        return None
    return {c: [r[i] for r in rows] for i, c in enumerate(columns)}


AUDITED = """
SELECT table_name, action, old_value, new_value FROM public.audit_log
WHERE (action = ANY(%(row)s) AND table_name = ANY(%(tables)s) OR action = ANY(%(bulk)s))
  AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s) AND age(xmin) <= %(age)s
LIMIT %(limit)s
"""
"""Audited writes since the watermark: rows written by transactions the
watermark did not see (``xmin``), and not older than the oldest transaction then open (the
``occurred_at`` index; without that bound, the whole audit log is scanned). A repair's rows
(``REPAIR``: the whole old row, and the new one or none for a quarantined row) count as the
updates and deletes they are. The summary of a bulk change (retention, archival, cleanup, a
GDPR erasure: ``BULK_ACTIONS``) says that rows of its table, or of any table when it names
none, changed without a row of their own in the trail."""


Audited = tuple[str | None, str, dict[str, Any] | None, dict[str, Any] | None]
"""An audited write: table (None for a bulk change's summary naming none), action, old row
(None for an insert), new row (None for a delete)."""

Write = tuple[str, dict[str, Any] | None, dict[str, Any] | None]
"""An audited write of one table: action, old row, new row."""


def audited(
    conn: psycopg.Connection[Any], tables: list[str], previous: Watermark, age: int
) -> list[Audited] | str:
    """The audited writes of ``tables`` since, or why they cannot be told (this role may not
    read the trail, more than MAX_CHANGED)."""
    if not tables:
        return []
    try:
        with conn.transaction():
            rows = conn.execute(AUDITED, {
                "row": [*DATA_ACTIONS, REPAIR_ACTION], "tables": tables, "bulk": list(BULK_ACTIONS),
                "since": previous.oldest_xact, "age": age, "limit": MAX_CHANGED + 1,
            }).fetchall()  # fmt: skip
    except psycopg.errors.InsufficientPrivilege:
        return "this role may not read the audit trail (audit_log)"
    except psycopg.errors.UndefinedTable:
        return "there is no audit trail (audit_log)"
    if len(rows) > MAX_CHANGED:
        return f"the audit trail recorded more than {MAX_CHANGED:,} writes since"
    return [(t if t is None else str(t), str(a), old, new) for t, a, old, new in rows]


def written_away(previous: Watermark, counters: Counters) -> dict[str, int | str]:
    """Per table, how many updates and deletes the counters saw since the watermark, or why
    what happened cannot be told from them (not counted, truncated or rewritten, statistics
    reset)."""
    if not (counters.counting and previous.counting):
        when = "is off" if not counters.counting else "was off at the last check"
        why = f"track_counts {when}: the statistics count no updates or deletes"
        return dict.fromkeys(key_columns(), why)
    result: dict[str, int | str] = {}
    reset = counters.stats_reset != previous.stats_reset
    for table in key_columns():
        now, then = counters.tables.get(table), previous.tables.get(table)
        if now is None or then is None:
            result[table] = f"{table} has no statistics to compare"
        elif reset:
            result[table] = "the statistics were reset since the last check"
        elif now.filenode != then.filenode:
            result[table] = f"{table} was truncated or rewritten since the last check"
        elif now.updated < then.updated or now.deleted < then.deleted:
            result[table] = f"the statistics of {table} went back since the last check"
        else:
            result[table] = (now.updated - then.updated) + (now.deleted - then.deleted)
    return result


def find(conn: psycopg.Connection[Any], previous: Watermark, counters: Counters) -> Changes:
    """Inside the snapshot: what changed since ``previous``."""
    changes = Changes(previous.taken_at)
    age = threshold(conn, previous)
    for table, columns in key_columns().items():
        found = changed_rows(conn, table, columns, age)
        if found is None:
            changes.too_many = f"more than {MAX_CHANGED:,} rows of {table} changed"
            return changes
        changes.rows[table] = found
    away = written_away(previous, counters)
    _old_rows(conn, changes, previous, away, age)
    return changes


def _old_rows(
    conn: psycopg.Connection[Any],
    changes: Changes,
    previous: Watermark,
    away: dict[str, int | str],
    age: int,
) -> None:
    """Fill ``changes.old`` and ``changes.audit`` from the audit trail, and ``changes.unknown``
    where the counters saw more updates and deletes than it recorded (or cannot tell).

    The trail is read for every table, not only those the counters moved in: a session
    flushes its counters up to about a second after its commit, while its audit rows are in
    this snapshot already."""
    for table, n in away.items():
        if isinstance(n, str):
            changes.unknown[table] = n
    known = [t for t in away if t not in changes.unknown]
    rows = audited(conn, known, previous, age)
    found = [] if isinstance(rows, str) else rows
    gap = rows if isinstance(rows, str) else None
    for table in known:
        n = int(away[table])
        bulk = next((a for t, a, _, _ in found if a in BULK_ACTIONS and t in (None, table)), None)
        if bulk is not None:
            changes.unknown[table] = (
                f"a bulk change ({bulk}) since the last check changed rows of {table} with the "
                "row audit off: the audit trail holds its summary, not its rows"
            )
            continue
        writes = [(a, old, new) for t, a, old, new in found if t == table]
        mine = [(old, new) for a, old, new in writes if a != "INSERT"]
        if (n and (gap or len(mine) < n)) or any(old is None for old, _ in mine):
            trail = gap or f"the audit trail recorded {len(mine):,} with their old values"
            changes.unknown[table] = (
                f"{n:,} rows of {table} were updated or deleted since the last check "
                f"(pg_stat_user_tables) and {trail}"
            )
            continue
        changes.old[table] = {c: _moved(mine, c) for c in key_columns()[table]}
        changes.audit[table] = writes


def _differ(old: dict[str, Any], new: dict[str, Any], columns: tuple[str, ...]) -> bool:
    return any(old.get(c) != new.get(c) for c in columns)


def _moved(
    rows: list[tuple[dict[str, Any] | None, dict[str, Any] | None]], column: str
) -> list[Any]:
    """The old values of ``column`` that a delete removed or an update changed."""
    return [
        old[column]
        for old, new in rows
        if old and old.get(column) is not None and (new is None or new.get(column) != old[column])
    ]
