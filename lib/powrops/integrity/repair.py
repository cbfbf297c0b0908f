"""Repairs for known issues: quarantine orphans, recompute calculated fields and user totals.

Each class of fix runs in its own transaction, in this order: ``quarantine_orphans`` (so that a
set moved out of a workout is no longer in its total), ``workout_total_volume``, ``user_totals``.
Each is idempotent (it changes only rows that are still wrong when it runs), writes every
changed row to ``audit_log`` (action ``REPAIR``, old and new values, the run id) with the row
triggers suppressed for that transaction, and records one row per table in ``ops.repairs``.
Orphans are never deleted without first being copied, whole, into ``ops.quarantine``; rows that
depend on a quarantined row (the sets of an orphan workout) go with it, children first.

A dry run executes the same statements and rolls every transaction back: the counts are exact,
and nothing is changed (identity sequences may advance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from powrops.audit.trail import REPAIR_ACTION, set_actor, suppress_row_audit
from powrops.errors import ParameterError
from powrops.integrity.consistency import WRONG_TOTALS, WRONG_VOLUME, Relationship, relationships
from powrops.integrity.model import SAMPLE_SIZE
from powrops.notify import Event, notify

ACTOR = "powrops integrity repair"
CLASSES = ("quarantine_orphans", "workout_total_volume", "user_totals")


@dataclass
class RepairResult:
    """One class of fix: rows changed per table, a few ids, or the error that stopped it."""

    kind: str
    rows: dict[str, int] = field(default_factory=dict)
    sample_ids: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def describe(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        if self.error:
            return f"{self.kind}: failed, nothing changed: {self.error}"
        if not self.total:
            return f"{self.kind}: nothing to repair"
        parts = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n)
        return f"{self.kind}: {verb} {parts}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": dict(self.rows),
            "sample_ids": dict(self.sample_ids),
            "dry_run": self.dry_run,
            "error": self.error,
        }


class _Rollback(Exception):
    """Raised inside a dry run's transaction to roll it back."""


AUDIT_CHANGED = sql.SQL("""
INSERT INTO public.audit_log (actor, action, table_name, row_id, old_value, new_value, details)
SELECT %(actor)s::text, %(action)s::text, %(table_name)s::text, changed.row_id,
       changed.old_row, changed.new_row,
       jsonb_build_object('run_id', %(run_id)s::bigint, 'repair', %(kind)s::text)
FROM changed
RETURNING row_id
""")
"""One audit row per row of the CTE ``changed`` (row_id, old_row, new_row); their row ids."""

FINISH = sql.SQL("""{changes}
SELECT (SELECT count(*) FROM aud), ARRAY(SELECT row_id FROM aud ORDER BY row_id LIMIT %(sample)s)
""")
"""Run a fix whose last CTE is ``aud``: how many rows it audited, and the first few ids."""

RECOMPUTE_VOLUME = sql.SQL("""
WITH bad AS (
    SELECT w.id, w.id::text AS row_id, to_jsonb(w) AS old_row, COALESCE(s.volume, 0) AS volume
    {wrong_volume}
    FOR UPDATE OF w
), upd AS (
    UPDATE public.workouts w SET total_volume = bad.volume FROM bad
    WHERE w.id = bad.id RETURNING w.id, to_jsonb(w) AS new_row
), changed AS (
    SELECT bad.row_id, bad.old_row, upd.new_row FROM bad JOIN upd USING (id)
), aud AS ({audit})
""").format(wrong_volume=WRONG_VOLUME, audit=AUDIT_CHANGED)
"""Set each wrong workouts.total_volume to the sum of weight * reps of its sets, audited."""

RECOMPUTE_TOTALS = sql.SQL("""
WITH bad AS (
    SELECT t.user_id, t.user_id::text AS row_id, to_jsonb(t) AS old_row,
           COALESCE(l.workout_count, 0) AS n, COALESCE(l.total_volume, 0) AS volume
    {wrong_totals}
    FOR UPDATE OF t
), upd AS (
    UPDATE public.user_totals t
    SET workout_count = bad.n, total_volume = bad.volume, updated_at = now()
    FROM bad WHERE t.user_id = bad.user_id RETURNING t.user_id, to_jsonb(t) AS new_row
), changed AS (
    SELECT bad.row_id, bad.old_row, upd.new_row FROM bad JOIN upd USING (user_id)
), aud AS ({audit})
""").format(wrong_totals=WRONG_TOTALS, audit=AUDIT_CHANGED)
"""Set each wrong user_totals row to the user's live workouts and their volume, audited."""


def _finish(
    conn: psycopg.Connection[Any], changes: sql.Composable, params: dict[str, Any]
) -> tuple[int, list[str]]:
    row = conn.execute(FINISH.format(changes=changes), {**params, "sample": SAMPLE_SIZE})
    found = row.fetchone()
    assert found is not None
    return int(found[0]), list(found[1])


def _audit_params(table: str, run_id: int, kind: str) -> dict[str, Any]:
    return {"actor": ACTOR, "action": REPAIR_ACTION, "table_name": table, "run_id": run_id,
            "kind": kind}  # fmt: skip


def _recompute_volume(
    conn: psycopg.Connection[Any], run_id: int
) -> dict[str, tuple[int, list[str]]]:
    params = _audit_params("workouts", run_id, "workout_total_volume")
    return {"workouts": _finish(conn, RECOMPUTE_VOLUME, params)}


def _recompute_totals(
    conn: psycopg.Connection[Any], run_id: int
) -> dict[str, tuple[int, list[str]]]:
    params = _audit_params("user_totals", run_id, "user_totals")
    return {"user_totals": _finish(conn, RECOMPUTE_TOTALS, params)}


QUARANTINE = sql.SQL("""
WITH ins AS (
    INSERT INTO ops.quarantine (run_id, table_name, row_id, reason, "row")
    SELECT %(run_id)s::bigint, %(table_name)s::text, c.{pk}::text,
           CASE WHEN {orphan} THEN %(reason)s::text ELSE %(follows)s::text END,
           to_jsonb(c)
    FROM {table} c
    WHERE ({orphan} OR c.{column} IN (
              SELECT q.row_id::{key_type} FROM ops.quarantine q
              WHERE q.run_id = %(run_id)s::bigint AND q.table_name = %(parent)s::text))
      AND NOT EXISTS (SELECT 1 FROM ops.quarantine q2 WHERE q2.run_id = %(run_id)s::bigint
                      AND q2.table_name = %(table_name)s::text AND q2.row_id = c.{pk}::text)
    FOR UPDATE OF c
    RETURNING id, row_id, "row", reason
),
aud AS (
    INSERT INTO public.audit_log (actor, action, table_name, row_id, old_value, new_value, details)
    SELECT %(actor)s::text, %(action)s::text, %(table_name)s::text, ins.row_id, ins."row", NULL,
           jsonb_build_object('run_id', %(run_id)s::bigint, 'repair', 'quarantine_orphans',
                              'quarantine_id', ins.id, 'reason', ins.reason)
    FROM ins
    RETURNING row_id
)
""")
"""Copy one relationship's orphans, and rows whose parent this run quarantined, into
``ops.quarantine`` (locked, so no child can be added to them before they go) with one audit
row each."""

DELETE_QUARANTINED = sql.SQL("""
DELETE FROM {table} WHERE {pk} IN (
    SELECT row_id::{pk_type} FROM ops.quarantine WHERE run_id = %s AND table_name = %s)
""")
"""Delete a table's rows that this run copied into ``ops.quarantine``."""


def _quarantine_sql(rel: Relationship, run_id: int) -> tuple[sql.Composed, dict[str, Any]]:
    query = QUARANTINE.format(
        table=sql.Identifier("public", rel.table),
        pk=sql.Identifier(rel.pk),
        column=sql.Identifier(rel.column),
        key_type=sql.SQL(rel.key_type),  # a type name from the schema, not from data
        orphan=rel.orphan_condition("c"),
    )
    params = {
        **_audit_params(rel.table, run_id, "quarantine_orphans"),
        "parent": rel.parent,
        "reason": f"{rel.column} references no {rel.parent} row",
        "follows": f"its {rel.parent} row was quarantined",
    }
    return query, params


def _quarantine(conn: psycopg.Connection[Any], run_id: int) -> dict[str, tuple[int, list[str]]]:
    rels = relationships()
    moved: dict[str, tuple[int, list[str]]] = {}
    for rel in rels:  # parents' tables first: a child sees its parent already quarantined
        query, params = _quarantine_sql(rel, run_id)
        n, ids = _finish(conn, query, params)
        before = moved.get(rel.table, (0, []))
        moved[rel.table] = (before[0] + n, sorted(before[1] + ids)[:SAMPLE_SIZE])
    pks = {rel.table: (rel.pk, rel.pk_type) for rel in rels}
    for table in reversed(list(pks)):  # children first: no ON DELETE CASCADE behind our back
        pk, pk_type = pks[table]
        query = DELETE_QUARANTINED.format(
            table=sql.Identifier("public", table),
            pk=sql.Identifier(pk),
            pk_type=sql.SQL(pk_type),  # a type name from the schema, not from data
        )
        conn.execute(query, (run_id, table))
    return {t: v for t, v in moved.items() if v[0]}


FIXES = {
    "quarantine_orphans": _quarantine,
    "workout_total_volume": _recompute_volume,
    "user_totals": _recompute_totals,
}


def _record(conn: psycopg.Connection[Any], run_id: int, result: RepairResult) -> None:
    from psycopg.types.json import Jsonb

    for table, n in result.rows.items():
        conn.execute(
            "INSERT INTO ops.repairs (run_id, kind, table_name, rows, details) "
            "VALUES (%s, %s, %s, %s, %s)",
            (run_id, result.kind, table, n, Jsonb({"sample_ids": result.sample_ids[table]})),
        )


def repair_one(
    conn: psycopg.Connection[Any],
    kind: str,
    run_id: int,
    *,
    dry_run: bool = False,
    max_rows: int | None = None,
) -> RepairResult:
    """One class of fix in one transaction (rolled back for a dry run, or when it would change
    more than ``max_rows`` rows: then nothing changes and the result says why)."""
    result = RepairResult(kind, dry_run=dry_run)
    try:
        with conn.transaction():
            set_actor(conn, ACTOR)
            suppress_row_audit(conn)
            changed = FIXES[kind](conn, run_id)
            result.rows = {t: n for t, (n, _) in changed.items()}
            result.sample_ids = {t: ids for t, (_, ids) in changed.items()}
            if dry_run:
                raise _Rollback
            if max_rows is not None and result.total > max_rows:
                result.error = (
                    f"stopped: {result.total} rows to change, above consistency.repair.max_rows "
                    f"= {max_rows}; nothing was changed. Review them (check integrity --repair "
                    "--dry-run), then repair by hand or raise the limit"
                )
                raise _Rollback
            _record(conn, run_id, result)
    except _Rollback:
        pass
    except psycopg.Error as exc:
        result.rows, result.sample_ids = {}, {}
        result.error = str(exc).strip().splitlines()[0]
    return result


@dataclass
class RepairReport:
    """Every class of fix of one repair, and whether the team was notified."""

    run_id: int | None
    results: list[RepairResult]
    dry_run: bool
    notification_problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.total for r in self.results)

    @property
    def failed(self) -> list[RepairResult]:
        return [r for r in self.results if r.error]

    def describe(self) -> str:
        head = "dry run: nothing changed" if self.dry_run else f"repair of run {self.run_id}"
        return "\n".join([head, *(f"  {r.describe()}" for r in self.results)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "total": self.total,
            "results": [r.to_dict() for r in self.results],
            "notification_problems": list(self.notification_problems),
        }


def _provisional_run(conn: psycopg.Connection[Any], server: str) -> int:
    row = conn.execute(
        "INSERT INTO ops.check_runs (kind, status, finished_at, server) "
        "VALUES ('integrity', 'UNKNOWN', now(), %s) RETURNING id",
        (server,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def repair(
    conn: psycopg.Connection[Any],
    run_id: int | None,
    *,
    dry_run: bool = False,
    classes: tuple[str, ...] = CLASSES,
    notify_channels: Any = None,
    max_rows: int | None = None,
    server: str,
) -> RepairReport:
    """Every class of fix, each in its own transaction, then one notification.

    ``conn`` must be an autocommit connection. Without ``run_id`` (a dry run of checks that
    were not stored) a run row is created for the repair; in a dry run it is rolled back too.
    ``notify_channels`` (``settings.notify.channels``) are told about a real repair that
    changed rows, for manual review.
    """
    unknown = [c for c in classes if c not in FIXES]
    if unknown:
        raise ParameterError(f"unknown repair class {unknown[0]!r}; expected one of {CLASSES}")
    results = []
    for kind in classes:
        if run_id is None and dry_run:
            results.append(_dry_without_run(conn, kind, server))
            continue
        if run_id is None:
            with conn.transaction():
                run_id = _provisional_run(conn, server)
        results.append(repair_one(conn, kind, run_id, dry_run=dry_run, max_rows=max_rows))
    report = RepairReport(run_id, results, dry_run)
    if notify_channels and not dry_run and (report.total or report.failed):
        report.notification_problems = _notify(notify_channels, report)
    return report


def _dry_without_run(conn: psycopg.Connection[Any], kind: str, server: str) -> RepairResult:
    result = RepairResult(kind, dry_run=True)
    try:
        with conn.transaction():
            run_id = _provisional_run(conn, server)
            result = repair_one(conn, kind, run_id, dry_run=True)
            raise _Rollback
    except _Rollback:
        pass
    return result


def _notify(channels: Any, report: RepairReport) -> list[str]:

    severity = "CRITICAL" if report.failed else "WARNING"
    event = Event(
        kind="integrity_repair",
        message=f"integrity repair of run {report.run_id} changed {report.total} rows; "
        "review ops.repairs and audit_log (action REPAIR)",
        severity=severity,
        details={
            "run_id": report.run_id,
            "rows": {r.kind: r.rows for r in report.results},
            "failed": [r.kind for r in report.failed],
        },
    )
    return notify(channels, event)
