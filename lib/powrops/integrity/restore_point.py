"""The restore point of a data corruption: the first bad change, and the cost of undoing it.

For each row failing a data check, :mod:`powrops.integrity.blame` finds the recorded change that
made it fail. The earliest of those is the first bad change; the recommended point-in-time
target is just before it (:data:`BEFORE`). What a restore to that target would discard is read
from the audit trail (time-bounded, unlike the statistics' counters): the recorded writes since
the target per table, and the users they belong to. Everything is read in one read-only
snapshot; nothing is changed.

No target is derived when it would be a guess: a failing row that no recorded change explains
(the trail was off, does not reach back to ``since``, or holds no old or new values), or the
row triggers off on a table the failing rows depend on. The result says which, as a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from powrops import audit
from powrops.config import Settings
from powrops.db import snapshot
from powrops.findings import Finding, Graded, Severity
from powrops.integrity.blame import (
    Blame,
    Change,
    blame_orphans,
    blame_rule,
    blame_totals,
    blame_volume,
)
from powrops.integrity.consistency import relationships
from powrops.integrity.model import IntegrityReport
from powrops.integrity.rules import rule_checks
from powrops.integrity.run import connection

BEFORE = timedelta(milliseconds=1)
"""How far before the first bad change the target lies: a transaction's changes carry its start
time, so the target excludes the whole bad transaction and nothing committed before it."""

CHECK = "restore_point"

CALCULATED = {
    "workout_total_volume": ("workouts", "workout_sets"),
    "user_totals": ("user_totals", "workouts", "workout_sets"),
}
"""The calculated checks and the tables whose changes their values depend on."""


@dataclass(frozen=True)
class TableWrites:
    """The writes recorded on one table since a time: what a restore to it would discard."""

    table: str
    inserts: int
    updates: int
    deletes: int
    other: int  # repairs, powrops' summaries of bulk changes, schema changes

    @property
    def total(self) -> int:
        return self.inserts + self.updates + self.deletes + self.other

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "inserts": self.inserts,
            "updates": self.updates,
            "deletes": self.deletes,
            "other": self.other,
        }


@dataclass
class RestorePoint(Graded):
    """The evidence per failed check, the first bad change, the target and its cost."""

    since: datetime
    checked_at: datetime
    blames: list[Blame]
    first_bad_change: Change | None
    target: datetime | None
    discarded: list[TableWrites]
    users: list[int]
    trail_off: list[str]
    trail_begins: datetime | None
    findings: list[Finding]

    def graded(self) -> list[Finding]:
        return self.findings

    @property
    def unexplained(self) -> int:
        return sum(b.unexplained for b in self.blames)

    def writes_discarded(self) -> int:
        return sum(w.total for w in self.discarded)

    def figures(self) -> dict[str, Any]:
        """The headline figures a runbook records: the target, the first bad change, the cost."""
        first = self.first_bad_change
        when = f"{first.describe()} at {first.time.isoformat()}" if first else None
        return {
            "target_time": self.target.isoformat() if self.target else None,
            "first_bad_change": when,
            "writes_discarded": self.writes_discarded() if self.target else None,
            "users_affected": len(self.users) if self.target else None,
        }

    def to_dict(self) -> dict[str, Any]:
        first = self.first_bad_change
        return {
            "status": self.status.name,
            "since": self.since.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "target_time": self.target.isoformat() if self.target else None,
            "first_bad_change": first.to_dict() if first else None,
            "checks": [b.to_dict() for b in self.blames],
            "discarded": [w.to_dict() for w in self.discarded],
            "writes_discarded": self.writes_discarded(),
            "users": list(self.users),
            "trail_off": list(self.trail_off),
            "trail_begins": self.trail_begins.isoformat() if self.trail_begins else None,
            "findings": [f.to_dict() for f in self.findings],
        }


def _blames(
    conn: psycopg.Connection[Any], settings: Settings, failed: set[str], since: datetime
) -> tuple[list[Blame], set[str]]:
    """Blame for every failed data check, and the tables the failing rows depend on."""
    blames, tables = [], set()
    for check in rule_checks(settings.validation):
        if check.name in failed:
            blames.append(blame_rule(conn, check, since))
            tables.add(check.table)
    for rel in relationships():
        if rel.name in failed:
            blames.append(blame_orphans(conn, rel.name, since))
            tables |= {rel.table, rel.parent}
    finders = {"workout_total_volume": blame_volume, "user_totals": blame_totals}
    for name, finder in finders.items():
        if name in failed:
            blames.append(finder(conn, since))
            tables |= set(CALCULATED[name])
    return blames, tables


WRITES_SINCE = """
SELECT COALESCE(table_name, '(no table)'),
       count(*) FILTER (WHERE action = 'INSERT'), count(*) FILTER (WHERE action = 'UPDATE'),
       count(*) FILTER (WHERE action = 'DELETE'),
       count(*) FILTER (WHERE action NOT IN ('INSERT', 'UPDATE', 'DELETE'))
FROM public.audit_log WHERE occurred_at > %s GROUP BY 1 ORDER BY 1
"""
"""Per table, the changes recorded after a time: what a restore to that time would discard."""


def writes_since(conn: psycopg.Connection[Any], target: datetime) -> list[TableWrites]:
    rows = conn.execute(WRITES_SINCE, (target,)).fetchall()
    return [TableWrites(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def _trail_off(conn: psycopg.Connection[Any], tables: set[str]) -> list[str]:
    """The audited tables among ``tables`` whose row trigger is missing or disabled."""
    triggers = audit.status(conn).row_triggers
    return sorted(t for t in tables if t in triggers and triggers[t] != "enabled")


def _trail_begins(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute("SELECT min(occurred_at) FROM public.audit_log").fetchone()
    return row[0] if row else None


def derive(settings: Settings, report: IntegrityReport, since: datetime) -> RestorePoint:
    """The restore point for the data checks ``report`` found failing, from the audit trail
    since ``since``, read in one snapshot."""
    failed = {r.name for r in report.results if r.failed}
    timeout = settings.consistency.statement_timeout.postgres()
    with connection(settings) as conn, snapshot(conn, timeout):
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        blames, tables = _blames(conn, settings, failed, since)
        off = _trail_off(conn, tables)
        begins = _trail_begins(conn)
        explained = [b.earliest for b in blames if b.earliest is not None]
        first = min(explained, key=lambda c: (c.time, c.audit_id)) if explained else None
        unexplained = sum(b.unexplained for b in blames)
        target = first.time - BEFORE if first and not unexplained and not off else None
        discarded = writes_since(conn, target) if target else []
        users = audit.affected_users(conn, target, list(audit.AUDITED_TABLES)) if target else []
    point = RestorePoint(
        since, row[0], blames, first, target, discarded, users, off, begins, findings=[]
    )
    point.findings.append(assessment(point))
    return point


def assessment(point: RestorePoint) -> Finding:
    """Whether a target could be derived, and if not, why not."""
    first = point.first_bad_change
    if not point.blames:
        return Finding(CHECK, Severity.OK, "no row fails a data check: no restore point needed")
    if point.target is not None and first is not None:
        return Finding(
            CHECK,
            Severity.OK,
            f"first bad change: {first.describe()} at {first.time.isoformat()}; a restore to "
            f"{point.target.isoformat()} discards {point.writes_discarded():,} recorded writes "
            f"of {len(point.users):,} users",
            value=point.target.isoformat(),
            details={"first_bad_change": first.to_dict()},
        )
    return Finding(
        CHECK,
        Severity.WARNING,
        "the restore point cannot be derived from the audit trail: " + "; ".join(_reasons(point)),
        value=point.unexplained,
        advice="do not restore to a guess: widen `since_days`, or find the rows' history "
        "(`powrops audit history TABLE ID`) and pick the time from the backup verification "
        "report",
    )


def _reasons(point: RestorePoint) -> list[str]:
    reasons = []
    if point.trail_off:
        reasons.append(f"the audit trail is off on {', '.join(point.trail_off)}")
    unexplained = [b for b in point.blames if b.unexplained]
    if unexplained:
        checks = ", ".join(b.check for b in unexplained)
        reasons.append(
            f"{point.unexplained:,} failing rows ({checks}) have no recorded change since "
            f"{point.since.isoformat()} that explains them"
        )
    if point.unexplained and point.trail_begins is None:
        reasons.append("the audit trail is empty")
    elif point.unexplained and point.trail_begins and point.trail_begins > point.since:
        reasons.append(
            f"the audit trail begins {point.trail_begins.isoformat()}, after the search start"
        )
    if not reasons:
        reasons.append("no failing row was found again when the trail was read")
    return reasons
