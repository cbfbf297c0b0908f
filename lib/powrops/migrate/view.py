"""What a notebook and the command line show of a production migration; renders only."""

from __future__ import annotations

from typing import Any

from powrops.migrate.model import ProductionPlan, ProductionResult


def render_plan(plan: ProductionPlan) -> str:
    """The plan as text: safeguards, then each pending revision's SQL, then the rollback SQL."""
    lines = [_heading(plan), "", "safeguards:"]
    lines += [f"  {f.severity.name:8} {f.check:12} {f.message}" for f in plan.findings]
    return "\n".join(lines) + ("\n\n" + render_sql(plan) if plan.pending else "")


def _heading(plan: ProductionPlan) -> str:
    at = f"database at {plan.current or 'base'}"
    if plan.downgrade:
        return f"{at}; rolls back to {plan.head}; {len(plan.pending)} revision(s) to undo"
    return f"{at}; head {plan.head}; {len(plan.pending)} pending revision(s)"


def render_sql(plan: ProductionPlan) -> str:
    """Session settings, each pending revision's SQL with its transaction mode, the rollback."""
    if not plan.pending:
        return f"nothing pending: the database is at head ({plan.head})"
    lines = ["session: " + ", ".join(f"{k} = {v}" for k, v in plan.session.items())]
    for rev in plan.pending:
        mode = "in a transaction" if rev.transaction else "NOT in a transaction (autocommit)"
        tables = ", ".join(rev.tables) or "-"
        lines += ["", f"=== {rev.revision} {rev.slug}: runs {mode}; tables: {tables}",
                  rev.sql.strip()]  # fmt: skip
    if not plan.downgrade:  # a rollback's own undoing is the next upgrade, not shown here
        lines += ["", f"=== rollback plan (downgrade {plan.head} -> {plan.current or 'base'})",
                  plan.rollback_sql.strip()]  # fmt: skip
    return "\n".join(lines)


def pending_rows(plan: ProductionPlan) -> list[dict[str, Any]]:
    """One row per pending revision, for a table."""
    return [
        {"revision": r.revision, "name": r.slug,
         "transaction": "yes" if r.transaction else "no (autocommit)",
         "tables": ", ".join(r.tables) or "-"}
        for r in plan.pending
    ]  # fmt: skip


def render_result(result: ProductionResult) -> str:
    if not result.plan.pending:
        return f"nothing to migrate: already at head ({result.plan.head})"
    if not result.applied and result.rollback_file is None:
        return f"not migrated: {result.error or 'not confirmed'}"
    lines = [
        f"migrated {result.before or 'base'} -> {result.after or 'base'}"
        if result.applied
        else f"migration FAILED at {result.after or 'base'}: {result.error}",
        f"rollback plan: {result.rollback_file}",
    ]
    lines += [f"  {f.severity.name:8} {f.check:12} {f.message}" for f in result.checks]
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------
