"""The strategy's retention policies as small objects chosen from ``settings.retention``.

Each policy says what it does to a row and computes, from one ``now`` (the database's), its
cutoff and how many rows are due (``plan``); ``apply`` acts on exactly the rows its plan's
condition selects. A dry run is the plan alone: the same conditions, nothing changed.

=========================== ========== ==================================================
policy                      action     rows due
=========================== ========== ==================================================
user_account.active         keep       none: active accounts are kept indefinitely
user_account.deleted        erase      accounts deleted (``deleted_at``) longer ago than 30 d
user_account.inactive       anonymize  accounts not active (``last_active_at``, else
                                       ``created_at``) for 2 years, not yet anonymized
archival (triggers)         archive    live workouts of users inactive for ``age`` days (or
                                       over ``size`` rows: their workouts older than ``age``)
workout_data.active         keep       none: live workouts are kept indefinitely
workout_data.deleted        delete     workouts deleted (``deleted_at``) longer ago than 90 d
workout_data.archived       delete     workouts archived (``archived_at``) longer ago than
                                       5 years, and archive files indexed that long ago
system_logs.<category>      delete     security logs older than 1 year, performance 3
                                       months, debug 7 days (``logged_at``)
=========================== ========== ==================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from powrops.config import Settings
from powrops.durations import Duration
from powrops.retention import archival, erase, journal
from powrops.retention.batches import run_batches
from powrops.retention.policy_sql import (
    ARCHIVED_FILES,
    DELETED_USERS,
    INACTIVE_USERS,
    LOGS_SELECT,
    delete_workouts,
)
from powrops.retention.repository import open_archive


@dataclass
class PolicyPlan:
    policy: str
    action: str
    period: str
    cutoff: datetime | None
    due: int
    unit: str
    why: str

    def row(self) -> dict[str, Any]:
        cutoff = self.cutoff.isoformat(timespec="seconds") if self.cutoff else "-"
        return {"policy": self.policy, "action": self.action, "period": self.period,
                "cutoff": cutoff, "due": self.due, "unit": self.unit, "why": self.why}  # fmt: skip


@dataclass
class PolicyOutcome:
    plan: PolicyPlan
    done: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.plan), "done": dict(self.done), "errors": list(self.errors)}


@dataclass
class Context:
    """What a policy plans and acts with: settings, a connection, and the run's ``now``."""

    settings: Settings
    conn: psycopg.Connection[Any]
    now: datetime

    @property
    def batch(self) -> int:
        return self.settings.cleanup.batch_size


@dataclass
class Policy:
    """One policy: what it acts on, for how long rows are kept, what happens after.

    The base keeps rows (``active``: indefinitely); subclasses act on the rows ``count_sql``
    counts (parameters ``cutoff``, ``now`` and ``extra``).
    """

    name: str
    action: str
    period: Duration
    unit: str
    why: str
    count_sql: sql.Composed | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def cutoff(self, now: datetime) -> datetime | None:
        return None if self.period.indefinite else now - self.period.timedelta

    def args(self, ctx: Context) -> dict[str, Any]:
        return {"cutoff": self.cutoff(ctx.now), "now": ctx.now, **self.extra}

    def plan(self, ctx: Context) -> PolicyPlan:
        cutoff = self.cutoff(ctx.now)
        due = 0
        if cutoff is not None and self.count_sql is not None:
            row = ctx.conn.execute(self.count_sql, self.args(ctx)).fetchone()
            due = int(row[0]) if row else 0
            ctx.conn.commit()
        return PolicyPlan(
            self.name, self.action, str(self.period), cutoff, due, self.unit, self.why
        )

    def apply(self, ctx: Context, out: PolicyOutcome) -> None:
        """Carry the policy out (the base keeps everything: nothing to do)."""

    def _ids(self, ctx: Context, query: sql.Composed) -> list[int]:
        ids = [int(r[0]) for r in ctx.conn.execute(query, self.args(ctx))]
        ctx.conn.commit()
        return ids


def _add(out: PolicyOutcome, key: str, n: int) -> None:
    out.done[key] = out.done.get(key, 0) + n


class DeletedAccounts(Policy):
    def apply(self, ctx: Context, out: PolicyOutcome) -> None:
        for user in self._ids(ctx, DELETED_USERS):
            result = erase.erase_user(ctx.settings, user)
            out.errors += result.errors
            _add(out, "users erased", 1)
            _add(out, "rows erased", sum(result.rows.values()))


class InactiveAccounts(Policy):
    def apply(self, ctx: Context, out: PolicyOutcome) -> None:
        for user in self._ids(ctx, INACTIVE_USERS):
            with journal.bulk_transaction(ctx.conn):
                erase.anonymize_user(ctx.conn, user)
            _add(out, "users anonymized", 1)


class Archival(Policy):
    def plan(self, ctx: Context) -> PolicyPlan:
        due = archival.candidates(ctx.conn, ctx.settings, ctx.now)
        ctx.conn.commit()
        cutoff = ctx.now - timedelta(days=ctx.settings.archival.triggers.age)
        rows = sum(c.workouts + c.sets for c in due)
        return PolicyPlan(
            self.name, self.action, self.period.text, cutoff, rows, self.unit, self.why
        )

    def apply(self, ctx: Context, out: PolicyOutcome) -> None:
        result = archival.run_archival(ctx.settings, dry_run=False)
        _add(out, "rows archived", result.rows)
        _add(out, "users archived", len(result.archived))
        _add(out, "bytes written", sum(a.bytes for a in result.archived))


@dataclass
class WorkoutPolicy(Policy):
    """Deletes the workouts (and their sets) ``select_sql`` locks, in batches."""

    select_sql: sql.Composed | None = None
    adjust_totals: bool = False
    expire_files: bool = False

    def apply(self, ctx: Context, out: PolicyOutcome) -> None:
        def act(conn: psycopg.Connection[Any], ids: list[int]) -> dict[str, int]:
            return delete_workouts(conn, ids, adjust_totals=self.adjust_totals)

        assert self.select_sql is not None, f"{self.name} has no select_sql"
        done = run_batches(ctx.conn, self.select_sql, self.args(ctx), act, ctx.batch, out.errors)
        for key, n in done.items():
            _add(out, key, n)
        if self.expire_files:
            self._expire_files(ctx, out)

    def _expire_files(self, ctx: Context, out: PolicyOutcome) -> None:
        entries = ctx.conn.execute(ARCHIVED_FILES, self.args(ctx)).fetchall()
        ctx.conn.commit()
        for entry_id, details in entries:
            open_archive(ctx.settings, details["repository"]).delete(details["key"])
            with journal.bulk_transaction(ctx.conn):
                ctx.conn.execute("DELETE FROM ops.archive_index WHERE id = %s", (entry_id,))
            _add(out, "archive files deleted", 1)
            _add(out, "archived rows deleted", int(details["rows"]["workouts"]) + int(
                details["rows"]["workout_sets"]))  # fmt: skip


@dataclass
class LogPolicy(Policy):
    def apply(self, ctx: Context, out: PolicyOutcome) -> None:
        def act(conn: psycopg.Connection[Any], ids: list[int]) -> dict[str, int]:
            gone = conn.execute("DELETE FROM system_logs WHERE id = ANY(%s)", (ids,)).rowcount
            return {"rows deleted": gone}

        done = run_batches(ctx.conn, LOGS_SELECT, self.args(ctx), act, ctx.batch, out.errors)
        for key, n in done.items():
            _add(out, key, n)
