"""``migrate rollback``: one revision back, with the safeguards of a production migration.

:func:`prepare_rollback` changes nothing: the downgrade's SQL (alembic offline mode), the tables
it touches and drops, and the safeguards as findings (a verified backup, no long transaction,
no lock on a touched table). A downgrade that would drop a table still holding rows (the audit
revision's ``ops.quarantine`` keeps the only copy of repaired rows) is refused unless
``allow_data_loss``. :func:`apply_rollback` runs it on one connection with ``lock_timeout``
and ``statement_timeout`` set and records an ``audit_log`` row and an ``ops.events`` row, like
``migrate production``.
"""

from __future__ import annotations

import re

from psycopg import sql

from powrops import migrate
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
from powrops.migrate.production import record_attempt

_DROPPED = re.compile(
    r'\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?((?:"[^"]+"|\w+)(?:\.(?:"[^"]+"|\w+))?)',
    re.IGNORECASE,
)


def previous_revision(current: str) -> str | None:
    """The revision before ``current`` (None: base)."""
    ids = [r.revision for r in migrate.revisions()]
    at = ids.index(current)
    return ids[at - 1] if at > 0 else None


def dropped_tables(downgrade_sql: str) -> list[str]:
    """Tables the downgrade drops, as named in its SQL."""
    names = (m.group(1).replace('"', "") for m in _DROPPED.finditer(downgrade_sql))
    return list(dict.fromkeys(names))


def prepare_rollback(
    settings: Settings,
    options: Options,
    *,
    allow_data_loss: bool = False,
    echo: Echo | None = None,
) -> ProductionPlan:
    """The rollback plan (``head`` is the revision rolled back to; ``pending`` the one undone)."""
    eng = engine(settings)
    try:
        current = migrate.current(eng)
    finally:
        eng.dispose()
    if current is None:
        plan = ProductionPlan(None, "base", [], "", options.session(settings), downgrade=True)
        plan.findings.append(Finding("pending", Severity.OK, "nothing to roll back"))
        return plan
    target = previous_revision(current)
    downgrade_sql = migrate.offline_sql(current, target or "base", downgrade=True)
    tables = tables_in(downgrade_sql)[0]
    undone = next(r for r in migrate.revisions() if r.revision == current)
    pending = [
        PendingRevision(current, undone.slug, undone.doc, undone.transaction, downgrade_sql, tables)
    ]
    plan = ProductionPlan(current, target or "base", pending, "", options.session(settings),
                          downgrade=True)  # fmt: skip
    _data_loss(plan.findings, settings, dropped_tables(downgrade_sql), allow_data_loss)
    plan.backup = guards.backup(plan.findings, settings, options, echo)
    with guards.connection(settings) as conn:
        guards.transactions(plan.findings, conn, options.max_transaction_age)
        guards.locks(plan.findings, conn, plan)
    return plan


def _data_loss(
    findings: list[Finding], settings: Settings, dropped: list[str], allowed: bool
) -> None:
    holding = []
    with connect(settings, autocommit=True) as conn:
        for name in dropped:
            schema, _, table = name.rpartition(".")
            ident = sql.Identifier(schema or "public", table)
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            if exists and exists[0]:
                row = conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(ident)
                ).fetchone()
                if row and row[0]:
                    holding.append(name)
    if not holding:
        findings.append(Finding("data_loss", Severity.OK, "the downgrade drops no table with rows"))
        return
    severity = Severity.WARNING if allowed else Severity.CRITICAL
    findings.append(
        Finding(
            "data_loss",
            severity,
            f"the downgrade drops {', '.join(holding)}, which still hold rows"
            + ("; allowed by --allow-data-loss" if allowed else ""),
            value=holding,
            advice=None
            if allowed
            else "keep a copy of those rows first (pg_dump -t), then pass --allow-data-loss",
        )
    )


def apply_rollback(
    settings: Settings, plan: ProductionPlan, *, echo: Echo | None = None
) -> ProductionResult:
    """Run the rollback (refused unless its safeguards passed); audited like a migration."""
    result = ProductionResult(plan, applied=False, before=plan.current)
    if not plan.pending:
        result.after = plan.current
        return result
    if not plan.allowed:
        result.error = "refused: a safeguard failed"
        return result
    eng = engine(settings)
    try:
        try:
            result.after = migrate.downgrade_with_session(eng, plan.session, plan.head)
            result.applied = True
            if echo:
                echo(f"rolled back {plan.current} -> {result.after or 'base'}")
        except PowropsError as exc:
            result.error = str(exc)
            result.after = migrate.current(eng)
        record_attempt(settings, result, kind="rollback")
    finally:
        eng.dispose()
    return result
