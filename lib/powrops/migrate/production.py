"""``migrate production``: pending migrations with the safeguards a DBA expects.

:func:`prepare` builds a :class:`ProductionPlan` and changes nothing: the pending revisions with
their SQL (alembic offline mode) and transaction mode, the tables each one touches, the rollback
SQL (the downgrade back to the current revision) and the safeguards as findings:

- ``backup``: a verified backup (``verified_at`` written by ``powrops verify``) of this cluster,
  newer than ``max_backup_age`` (default ``backup.schedule.full``); ``take_backup`` takes a full
  backup and verifies it first;
- ``transactions``: no transaction in this database open longer than ``max_transaction_age``;
- ``locks``: no other session holds or waits for a lock on a table a pending revision alters.

:func:`apply` runs a plan whose safeguards passed: the rollback SQL is saved under the state
directory, the migration runs on one connection with ``lock_timeout`` and ``statement_timeout``
set, an ``audit_log`` row (action ``MIGRATION``) and an ``ops.events`` row (kind ``migration``)
record from/to revisions, and post-migration checks follow (alembic at head, and the integrity
check of :mod:`powrops.integrity`, recorded in ``ops.check_runs`` like any other run).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powrops import audit, integrity, journal, migrate
from powrops.config import Settings
from powrops.db import connect, engine
from powrops.errors import PowropsError
from powrops.findings import Finding, Severity
from powrops.format import Echo
from powrops.migrate import safeguards as guards
from powrops.migrate.model import (
    Options,
    PendingRevision,
    ProductionPlan,
    ProductionResult,
    tables_in,
)


def prepare(settings: Settings, options: Options, echo: Echo | None = None) -> ProductionPlan:
    """The plan and its safeguards; takes (and verifies) a backup only when asked to."""

    eng = engine(settings)
    try:
        rows = migrate.status(eng)
        current = migrate.current(eng)
    finally:
        eng.dispose()
    heads = migrate.heads()
    if len(heads) != 1:
        raise PowropsError(f"the migration history has {len(heads)} heads; merge them first")
    pending = []
    for row in rows:
        if row.applied:
            continue
        sql = migrate.revision_sql(row.revision)
        pending.append(
            PendingRevision(
                row.revision, row.slug, row.doc, row.transaction, sql, tables_in(sql)[0]
            )
        )
    rollback = migrate.offline_sql(heads[0], current or "base", downgrade=True) if pending else ""
    plan = ProductionPlan(current, heads[0], pending, rollback, options.session(settings))
    if not pending:
        plan.findings.append(Finding("pending", Severity.OK, f"already at head ({heads[0]})"))
        return plan

    plan.backup = guards.backup(plan.findings, settings, options, echo)
    with guards.connection(settings) as conn:
        guards.transactions(plan.findings, conn, options.max_transaction_age)
        guards.locks(plan.findings, conn, plan)
    return plan


# --- apply ---------------------------------------------------------------------------------


def apply(
    settings: Settings, plan: ProductionPlan, *, force: bool = False, echo: Echo | None = None
) -> ProductionResult:
    """Run the plan's migrations (refused unless its safeguards passed, or ``force``)."""

    result = ProductionResult(plan, applied=False, before=plan.current)
    if not plan.pending:
        result.after = plan.current
        return result
    if not (plan.allowed or force):
        result.error = "refused: a safeguard failed"
        return result
    eng = engine(settings)
    try:
        now = migrate.current(eng)
        if now != plan.current:  # the plan confirmed is no longer what would run
            result.after = now
            result.error = (
                f"refused: the database is at {now or 'base'} now, not at "
                f"{plan.current or 'base'} as when this plan was made; make the plan again "
                "(the runbook's safeguards cell, or powrops migrate production) and review it"
            )
            return result
        result.rollback_file = str(_save_rollback(settings, plan))
        if echo:
            echo(f"rollback plan saved to {result.rollback_file}")
        try:
            result.after = migrate.upgrade_with_session(eng, plan.session, plan.head)
            result.applied = True
        except PowropsError as exc:
            result.error = str(exc)
            result.after = migrate.current(eng)
        record_attempt(settings, result)
        result.checks = post_checks(settings, eng, plan)
    finally:
        eng.dispose()
    return result


def _save_rollback(settings: Settings, plan: ProductionPlan) -> Path:
    folder = settings.make_state_dir("migrations")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"rollback-{plan.head}-to-{plan.current or 'base'}-{stamp}.sql"
    header = (
        f"-- rollback plan: downgrade {plan.head} -> {plan.current or 'base'}\n"
        f"-- or: powrops migrate rollback (one revision at a time)\n"
    )
    path.write_text(header + plan.rollback_sql)
    return path


def record_attempt(settings: Settings, result: ProductionResult, kind: str = "migration") -> None:
    """One audit_log row and one ops.events row for the attempt (done or failed); ``kind``
    says whether it migrated or rolled back."""

    plan = result.plan
    details = {
        "direction": kind, "from": result.before, "to": result.after, "target": plan.head,
        "revisions": [p.revision for p in plan.pending], "status": "ok" if result.applied
        else "failed", "error": result.error, "backup": plan.backup, "session": plan.session,
        "rollback_file": result.rollback_file,
    }  # fmt: skip
    with connect(settings) as conn:
        found = conn.execute(
            "SELECT to_regclass('public.audit_log') IS NOT NULL, "
            "to_regclass('ops.events') IS NOT NULL"
        ).fetchone()
        has_audit, has_events = found if found else (False, False)
        if has_audit:
            audit.record(
                conn,
                "MIGRATION",
                row_id=result.after,
                old_value={"revision": result.before},
                new_value={"revision": result.after},
                details=details,
            )
        if has_events:
            journal.record(conn, "migration", details, server=settings.server)
        conn.commit()


def post_checks(settings: Settings, eng: Any, plan: ProductionPlan) -> list[Finding]:
    """Alembic at head, then the integrity check."""
    now_at = migrate.current(eng)
    checks = [
        Finding("at_head", Severity.OK, f"the database is at head ({now_at})")
        if now_at == plan.head
        else Finding("at_head", Severity.CRITICAL,
                     f"the database is at {now_at or 'base'}, not at head {plan.head}")
    ]  # fmt: skip
    checks.append(_integrity(settings))
    return checks


def _integrity(settings: Settings) -> Finding:
    """The integrity check after migrating, in full (a migration may have changed any row),
    recorded like any other run."""

    try:
        report = integrity.run(settings, full=True)
    except PowropsError as exc:
        return Finding("integrity", Severity.UNKNOWN, f"integrity check could not run: {exc}")
    bad = [f.message for f in report.findings() if f.severity != Severity.OK][:3]
    message = "integrity check: " + ("; ".join(bad) if bad else report.summary())
    return Finding("integrity", report.status, message)
