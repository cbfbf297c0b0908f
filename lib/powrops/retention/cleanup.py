"""The strategy's data cleanup: temp data, expired cache entries and stale sessions.

Which rows are due (``cleanup.targets``; the cutoffs are fixed once per run from the database's
``now()``):

========== ========================================================================
target     a row is due when
========== ========================================================================
temp_data  ``created_at`` is older than ``temp_data`` (24 h)
cache      ``expires_at`` has passed, or ``created_at`` is older than ``cache_ttl`` (1 h)
sessions   it has expired (``expires_at`` passed) and was last used (``last_seen_at``, else
           ``created_at``) longer ago than ``sessions`` (14 d): a session that can still log
           somebody in is never removed, and an expired one is kept 14 days after its last
           use for support questions ("why was I logged out?")
========== ========================================================================

powrops' own history is bounded the same way: ``ops.check_runs`` (alerts runs after
``cleanup.history.alert_runs``, 92 d; other runs after ``check_runs``, 395 d), ``ops.events``
(``events``, 395 d), ``ops.metric_snapshots`` (``metric_snapshots``, 2 y; downsampled to
the first snapshot of each hour after ``snapshots_hourly_after``, 1 d, and of each day after
``snapshots_daily_after``, 7 d, so growth forecasts keep their history) and ``audit_log``
(``audit.retention``, 1 y). A lifetime of "indefinite" keeps that target whole. Servers that
share one ``ops`` each clean only their own rows of it (``server``), by their own
``cleanup.history``; the audit trail belongs to the database.

Rows are deleted in batches of ``cleanup.batch_size``; each batch is its own short
transaction that takes only rows nobody else has locked (``FOR UPDATE SKIP LOCKED``) and waits
at most ``lock_timeout`` for anything, so cleanup never holds long locks or queues behind the
application. A failing batch is logged as an error and ends that target; the others still run.
"Bytes reclaimed" is the size of the deleted rows (``pg_column_size``): space that VACUUM makes
reusable. A dry run counts exactly what a real run would delete, by the same conditions, and
is journaled where the database accepts writes; on a read-only database or a standby it counts
all the same and says its journal row was skipped (``CleanupResult.journal_skipped``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from powrops import journal as powrops_journal
from powrops.config import CleanupTargets, Settings
from powrops.format import human_bytes, human_time
from powrops.retention import journal

log = logging.getLogger("powrops.retention.cleanup")
SAMPLE_IDS = 10


@dataclass(frozen=True)
class CleanupTarget:
    """One kind of short-lived data: where it is, when a row is due, and why."""

    name: str
    table: str
    key: str
    condition: sql.SQL  # over the row, with %(cutoff)s and %(now)s
    why: str


@dataclass
class TargetResult:
    target: str
    cutoff: datetime
    due: int = 0
    deleted: int = 0
    bytes: int = 0
    batches: int = 0
    sample_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        return data


@dataclass
class CleanupResult:
    """What a cleanup run found and did, per target."""

    dry_run: bool
    started_at: datetime
    targets: list[TargetResult]
    # Why a dry run's journal row was not written (a read-only database, a standby).
    journal_skipped: str | None = None

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.targets)

    @property
    def due(self) -> int:
        return sum(t.due for t in self.targets)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.targets)

    @property
    def errors(self) -> list[str]:
        return [f"{t.target}: {e}" for t in self.targets for e in t.errors]

    def rows(self) -> list[dict[str, Any]]:
        """One row per target: what a table in a report or the CLI shows (sizes and times in
        units; ``to_dict`` keeps the raw values). ``size``: of the rows due (a dry run) or
        deleted."""
        return [
            {
                "target": t.target,
                "cutoff": human_time(t.cutoff),
                "rows due": t.due,
                "rows deleted": t.deleted,
                "size": human_bytes(t.bytes),
                "errors": "; ".join(t.errors) or "",
            }
            for t in self.targets
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "due": self.due,
            "deleted": self.deleted,
            "bytes": self.bytes,
            "errors": self.errors,
            "targets": [t.to_dict() for t in self.targets],
            "journal_skipped": self.journal_skipped,
        }


TEMP_DATA_DUE = sql.SQL("created_at < %(cutoff)s")
CACHE_ENTRY_DUE = sql.SQL("(expires_at < %(now)s OR created_at < %(cutoff)s)")
SESSION_DUE = sql.SQL("expires_at < %(now)s AND COALESCE(last_seen_at, created_at) < %(cutoff)s")
# powrops' history: servers sharing one ops keep each its own, by its own retention
CHECK_RUN_DUE = sql.SQL("server = %(server)s AND kind <> 'alerts' AND started_at < %(cutoff)s")
ALERT_RUN_DUE = sql.SQL("server = %(server)s AND kind = 'alerts' AND started_at < %(cutoff)s")
EVENT_DUE = sql.SQL("server = %(server)s AND at < %(cutoff)s")
SNAPSHOT_DUE = sql.SQL("server = %(server)s AND taken_at < %(cutoff)s")
AUDIT_DUE = sql.SQL("occurred_at < %(cutoff)s")
# the first snapshot of the server's hour or day stays
_FIRST_OF = (
    "server = %(server)s AND taken_at < %(cutoff)s AND id NOT IN (SELECT DISTINCT ON "
    "(date_trunc('{unit}', k.taken_at)) k.id FROM ops.metric_snapshots k "
    "WHERE k.server = %(server)s ORDER BY date_trunc('{unit}', k.taken_at), k.taken_at, k.id)"
)
SNAPSHOT_HOURLY_DUE = sql.SQL(_FIRST_OF.replace("{unit}", "hour"))
SNAPSHOT_DAILY_DUE = sql.SQL(_FIRST_OF.replace("{unit}", "day"))
"""When a row of each target is due (see the module docstring)."""


def targets(settings: Settings) -> tuple[tuple[CleanupTarget, timedelta], ...]:
    """The cleanup targets with their lifetimes from ``settings.cleanup.targets``, then
    powrops' history (``cleanup.history``, ``audit.retention``) unless kept indefinitely."""
    t = settings.cleanup.targets
    h = settings.cleanup.history
    history = (
        (
            "check_runs",
            "ops.check_runs",
            CHECK_RUN_DUE,
            h.check_runs,
            "check runs other than alerts are kept",
        ),
        ("alert_runs", "ops.check_runs", ALERT_RUN_DUE, h.alert_runs, "alerts runs are kept"),
        ("events", "ops.events", EVENT_DUE, h.events, "powrops' journal is kept"),
        (
            "metric_snapshots",
            "ops.metric_snapshots",
            SNAPSHOT_DUE,
            h.metric_snapshots,
            "metric snapshots are kept",
        ),
        (
            "snapshots_daily",
            "ops.metric_snapshots",
            SNAPSHOT_DAILY_DUE,
            h.snapshots_daily_after,
            "one snapshot a day is kept of those older than",
        ),
        (
            "snapshots_hourly",
            "ops.metric_snapshots",
            SNAPSHOT_HOURLY_DUE,
            h.snapshots_hourly_after,
            "one snapshot an hour is kept of those older than",
        ),
        ("audit_log", "audit_log", AUDIT_DUE, settings.audit.retention, "the audit trail is kept"),
    )
    return _short_lived(t) + tuple(
        (CleanupTarget(name, table, "id", due, f"{why} {life}"), life.timedelta)
        for name, table, due, life, why in history
        if not life.indefinite
    )  # fmt: skip


def _short_lived(t: CleanupTargets) -> tuple[tuple[CleanupTarget, timedelta], ...]:
    return (
        (
            CleanupTarget(
                "temp_data", "temp_data", "id", TEMP_DATA_DUE,
                f"temporary data lives {t.temp_data} (by created_at)",
            ),
            t.temp_data.timedelta,
        ),
        (
            CleanupTarget(
                "cache_entries", "cache_entries", "key", CACHE_ENTRY_DUE,
                f"cache entries live until expires_at, at most their {t.cache_ttl} TTL",
            ),
            t.cache_ttl.timedelta,
        ),
        (
            CleanupTarget(
                "sessions", "sessions", "id", SESSION_DUE,
                f"expired sessions are kept {t.sessions} after their last use",
            ),
            t.sessions.timedelta,
        ),
    )  # fmt: skip


COUNT_DUE = sql.SQL(
    "SELECT count(*), COALESCE(sum(pg_column_size(t.*)), 0) FROM {table} t WHERE {due}"
)
"""How many rows of a target are due, and their size in bytes."""

DELETE_BATCH = sql.SQL("""
DELETE FROM {table} t WHERE t.ctid = ANY(ARRAY(
    SELECT ctid FROM {table} WHERE {due} LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
RETURNING t.{key}::text, pg_column_size(t.*)
""")
"""One batch of a target's due rows that nobody else has locked: deleted, keys and sizes."""


def _count(
    conn: psycopg.Connection[Any], target: CleanupTarget, params: dict[str, Any]
) -> tuple[int, int]:
    query = COUNT_DUE.format(table=sql.Identifier(*target.table.split(".")), due=target.condition)
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _delete_batch(
    conn: psycopg.Connection[Any], target: CleanupTarget, params: dict[str, Any], size: int
) -> list[tuple[str, int]]:
    query = DELETE_BATCH.format(
        table=sql.Identifier(*target.table.split(".")),
        due=target.condition,
        key=sql.Identifier(target.key),
    )
    with journal.bulk_transaction(conn):
        rows = conn.execute(query, {**params, "limit": size}).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def _clean(
    conn: psycopg.Connection[Any],
    target: CleanupTarget,
    result: TargetResult,
    params: dict[str, Any],
    batch_size: int,
) -> None:
    """Delete the target's due rows batch by batch until none is left (or a batch fails)."""
    while True:
        try:
            rows = _delete_batch(conn, target, params, batch_size)
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0]
            result.errors.append(message)
            log.error("cleanup of %s stopped: %s", target.name, message)
            return
        result.batches += 1
        result.deleted += len(rows)
        result.bytes += sum(size for _, size in rows)
        if target.key == "id":
            room = SAMPLE_IDS - len(result.sample_ids)
            result.sample_ids.extend(key for key, _ in rows[: max(room, 0)])
        log.info("cleanup %s: batch %d deleted %d rows", target.name, result.batches, len(rows))
        if len(rows) < batch_size:
            return


def run_cleanup(settings: Settings, *, dry_run: bool) -> CleanupResult:
    """Apply ``settings.cleanup`` (or, with ``dry_run``, only count what is due); record it."""
    with journal.connect(settings) as conn:
        row = conn.execute("SELECT now()").fetchone()
        conn.commit()
        assert row is not None
        now: datetime = row[0]
        result = CleanupResult(dry_run=dry_run, started_at=now, targets=[])
        for target, lifetime in targets(settings):
            params = {"now": now, "cutoff": now - lifetime, "server": settings.server}
            outcome = TargetResult(target.name, now - lifetime, why=target.why)
            result.targets.append(outcome)
            try:
                outcome.due, due_bytes = _count(conn, target, params)
                conn.commit()
            except psycopg.Error as exc:
                conn.rollback()
                outcome.errors.append(str(exc).strip().splitlines()[0])
                continue
            if dry_run:
                outcome.bytes = due_bytes
            elif outcome.due:
                _clean(conn, target, outcome, params, settings.cleanup.batch_size)
    _record(settings, result)
    return result


def _record(settings: Settings, result: CleanupResult) -> None:
    details = {
        "dry_run": result.dry_run,
        "deleted": result.deleted,
        "due": result.due,
        "bytes": result.bytes,
        "errors": result.errors,
        "tables": {
            t.target: {"due": t.due, "deleted": t.deleted, "bytes": t.bytes, "errors": t.errors}
            for t in result.targets
        },
    }
    if not result.dry_run:
        samples = {t.target: t.sample_ids for t in result.targets if t.sample_ids}
        details["sample_ids"] = samples
    action = None if result.dry_run or not result.deleted else "CLEANUP"
    try:
        journal.record_run(settings, "cleanup", details, audit_action=action)
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        if not result.dry_run:
            raise
        # a dry run reads only: on a read-only database or a standby it still counts
        result.journal_skipped = powrops_journal.skipped_note(exc)


HISTORY = ("check_runs", "alert_runs", "events", "metric_snapshots", "snapshots_daily",
           "snapshots_hourly", "audit_log")  # fmt: skip
"""The targets that bound powrops' own history (and the audit trail)."""


def history_due(settings: Settings) -> list[dict[str, Any]]:
    """What the next cleanup would remove of powrops' history, per target; reads only (the
    retention report shows it; a target kept indefinitely is listed as such)."""
    kept = {t.name: t for t, _ in targets(settings)}
    h = settings.cleanup.history
    lifetimes = {"check_runs": h.check_runs, "alert_runs": h.alert_runs, "events": h.events,
                 "metric_snapshots": h.metric_snapshots,
                 "snapshots_daily": h.snapshots_daily_after,
                 "snapshots_hourly": h.snapshots_hourly_after,
                 "audit_log": settings.audit.retention}  # fmt: skip
    rows: list[dict[str, Any]] = []
    with journal.connect(settings) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        for name in HISTORY:
            life = lifetimes[name]
            target = kept.get(name)
            out: dict[str, Any] = {"target": name, "kept": str(life), "cutoff": None,
                                   "rows due": 0, "bytes due": 0}  # fmt: skip
            if target is not None:
                cutoff = now - life.timedelta
                out["cutoff"] = cutoff.isoformat(timespec="seconds")
                try:
                    out["rows due"], out["bytes due"] = _count(
                        conn, target, {"now": now, "cutoff": cutoff, "server": settings.server}
                    )
                except psycopg.Error as exc:
                    conn.rollback()
                    out["rows due"] = f"unreadable: {str(exc).strip().splitlines()[0]}"
            rows.append(out)
        conn.rollback()
    return rows
