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

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powrops import audit, journal, migrate
from powrops.config import Settings
from powrops.durations import Duration
from powrops.errors import ParameterError, PowropsError
from powrops.findings import Finding, Severity, exit_code
from powrops.format import Echo

_NAME = r'((?:"[^"]+"|\w+)(?:\.(?:"[^"]+"|\w+))?)'
_TABLE_PATTERNS = [
    rf"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_NAME}",
    rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?:\S+\s+)?ON\s+(?:ONLY\s+)?{_NAME}",
    rf"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}",
    rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+\S+\s+(?:BEFORE|AFTER|INSTEAD\s+OF)"
    rf"\s+[\w\s]+?\s+ON\s+{_NAME}",
    rf"\bDROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?\S+\s+ON\s+{_NAME}",
    rf"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|LOCK\s+TABLE)\s+(?:ONLY\s+)?{_NAME}",
]
_INDEX_DROP = rf"\bDROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?{_NAME}"
MAX_TRANSACTION_AGE = Duration.parse("1min")
LOCK_TIMEOUT = Duration.parse("5s")
_IGNORED = {"alembic_version", "ops.alembic_version", "on", "of", "or", "set", "skip", "nowait"}


def tables_in(sql: str) -> tuple[list[str], list[str]]:
    """(tables, dropped indexes) that SQL text touches, each in first-seen order."""
    tables: list[str] = []
    for pattern in _TABLE_PATTERNS:
        for match in re.finditer(pattern, sql, re.IGNORECASE):
            name = match.group(1)
            if name.lower() not in _IGNORED and name not in tables:
                tables.append(name)
    indexes = [m.group(1) for m in re.finditer(_INDEX_DROP, sql, re.IGNORECASE)]
    return tables, list(dict.fromkeys(indexes))


@dataclass(frozen=True)
class Options:
    """The knobs of a production migration (CLI flags, runbook parameters)."""

    max_backup_age: Duration | None = None  # None: backup.schedule.full
    take_backup: bool = False
    max_transaction_age: Duration = MAX_TRANSACTION_AGE
    lock_timeout: Duration = LOCK_TIMEOUT
    statement_timeout: Duration | None = None  # None: database.statement_timeout

    @classmethod
    def parse(cls, **values: Any) -> Options:
        """Options from strings (CLI, notebook); ParameterError names a bad one."""
        parsed: dict[str, Any] = {}
        for key, value in values.items():
            if key == "take_backup":
                if not isinstance(value, bool):
                    raise ParameterError(f"take_backup = {value!r}: expected True or False")
                parsed[key] = value
            elif value is not None:
                try:
                    duration = Duration.parse(value)
                    duration.timedelta  # noqa: B018 - "indefinite" has no length
                except ValueError as exc:
                    raise ParameterError(f"{key} = {value!r}: {exc}") from None
                parsed[key] = duration
        return cls(**parsed)

    def session(self, settings: Settings) -> dict[str, str]:
        statement = self.statement_timeout or settings.database.statement_timeout
        return {
            "lock_timeout": f"{int(self.lock_timeout.timedelta.total_seconds() * 1000)}ms",
            "statement_timeout": f"{int(statement.timedelta.total_seconds() * 1000)}ms",
        }


@dataclass(frozen=True)
class PendingRevision:
    revision: str
    slug: str
    doc: str
    transaction: bool
    sql: str
    tables: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tables": list(self.tables)}


@dataclass
class ProductionPlan:
    """What ``migrate production`` would do, and whether its safeguards allow it."""

    current: str | None
    head: str
    pending: list[PendingRevision]
    rollback_sql: str
    session: dict[str, str]
    findings: list[Finding] = field(default_factory=list)
    backup: str | None = None

    @property
    def allowed(self) -> bool:
        return all(f.severity in (Severity.OK, Severity.WARNING) for f in self.findings)

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(t for p in self.pending for t in p.tables))

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current, "head": self.head, "allowed": self.allowed,
            "backup": self.backup, "session": self.session, "tables": self.tables,
            "pending": [p.to_dict() for p in self.pending], "rollback_sql": self.rollback_sql,
            "findings": [f.to_dict() for f in self.findings],
        }  # fmt: skip


@dataclass
class ProductionResult:
    plan: ProductionPlan
    applied: bool
    before: str | None = None
    after: str | None = None
    error: str | None = None
    rollback_file: str | None = None
    checks: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> Severity:
        """OK done and checked; WARNING done with a check WARNING or UNKNOWN; CRITICAL refused
        or failed."""
        if not self.applied and self.plan.pending:
            return Severity.CRITICAL
        if self.error or any(f.severity == Severity.CRITICAL for f in self.checks):
            return Severity.CRITICAL
        if any(f.severity != Severity.OK for f in self.checks):
            return Severity.WARNING
        return Severity.OK

    @property
    def exit_code(self) -> int:
        return exit_code(self.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(), "applied": self.applied, "before": self.before,
            "after": self.after, "error": self.error, "rollback_file": self.rollback_file,
            "checks": [f.to_dict() for f in self.checks], "exit_code": self.exit_code,
        }  # fmt: skip


# --- plan ----------------------------------------------------------------------------------


def prepare(settings: Settings, options: Options, echo: Echo | None = None) -> ProductionPlan:
    """The plan and its safeguards; takes (and verifies) a backup only when asked to."""
    from powrops.db import engine

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
    from powrops.migrate import safeguards as guards

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
    from powrops.db import engine

    result = ProductionResult(plan, applied=False, before=plan.current)
    if not plan.pending:
        result.after = plan.current
        return result
    if not (plan.allowed or force):
        result.error = "refused: a safeguard failed"
        return result
    result.rollback_file = str(_save_rollback(settings, plan))
    if echo:
        echo(f"rollback plan saved to {result.rollback_file}")
    eng = engine(settings)
    try:
        try:
            result.after = migrate.upgrade_with_session(eng, plan.session, plan.head)
            result.applied = True
        except PowropsError as exc:
            result.error = str(exc)
            result.after = migrate.current(eng)
        _audit(settings, result)
        result.checks = post_checks(settings, eng, plan)
    finally:
        eng.dispose()
    return result


def _save_rollback(settings: Settings, plan: ProductionPlan) -> Path:
    folder = settings.state_dir / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"rollback-{plan.head}-to-{plan.current or 'base'}-{stamp}.sql"
    header = (
        f"-- rollback plan: downgrade {plan.head} -> {plan.current or 'base'}\n"
        f"-- or: powrops migrate rollback (one revision at a time)\n"
    )
    path.write_text(header + plan.rollback_sql)
    return path


def _audit(settings: Settings, result: ProductionResult) -> None:
    """One audit_log row and one ops.events row for the attempt (done or failed)."""
    from powrops.db import connect

    plan = result.plan
    details = {
        "from": result.before, "to": result.after, "target": plan.head,
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
            journal.record(conn, "migration", details)
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
    """The integrity check after migrating, recorded like any other run."""
    from powrops import integrity

    try:
        report = integrity.run(settings)
    except PowropsError as exc:
        return Finding("integrity", Severity.UNKNOWN, f"integrity check could not run: {exc}")
    bad = [f.message for f in report.findings() if f.severity != Severity.OK][:3]
    message = "integrity check: " + ("; ".join(bad) if bad else report.summary())
    return Finding("integrity", report.status, message)


# --- rendering -----------------------------------------------------------------------------


def render_plan(plan: ProductionPlan) -> str:
    """The plan as text: safeguards, then each pending revision's SQL, then the rollback SQL."""
    lines = [f"database at {plan.current or 'base'}; head {plan.head}; "
             f"{len(plan.pending)} pending revision(s)", "", "safeguards:"]  # fmt: skip
    lines += [f"  {f.severity.name:8} {f.check:12} {f.message}" for f in plan.findings]
    return "\n".join(lines) + ("\n\n" + render_sql(plan) if plan.pending else "")


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


def confirmed(confirm: Any) -> bool:
    """The runbook's confirmation gate: ``confirm`` must be True or False."""
    if not isinstance(confirm, bool):
        raise ParameterError(f"confirm = {confirm!r}: expected True or False")
    if not confirm:
        print("Not confirmed: nothing was changed. Review the plan, then run with confirm = True.")
    return confirm


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


def cli_main(args: Any, settings: Settings) -> int:
    """Plan, show, confirm, apply, check; the exit code of :attr:`ProductionResult.exit_code`
    (3 when not confirmed in a non-interactive run)."""
    import sys

    options = Options.parse(
        max_backup_age=args.max_backup_age, take_backup=args.take_backup,
        max_transaction_age=args.max_transaction_age, lock_timeout=args.lock_timeout,
        statement_timeout=args.statement_timeout,
    )  # fmt: skip
    progress = None if args.json else (lambda line: print(f"  {line}", file=sys.stderr))
    plan = prepare(settings, options, echo=progress)
    if not args.json:
        print(render_plan(plan))
        print()
    if plan.pending and plan.allowed and not args.yes:
        if not sys.stdin.isatty():
            raise ParameterError("not confirmed: pass --yes to migrate production without a prompt")
        answer = input(f"apply {len(plan.pending)} revision(s) up to {plan.head}? type yes: ")
        if answer.strip().lower() != "yes":
            print("not migrated: not confirmed")
            return 3
    result = apply(settings, plan, echo=progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(render_result(result))
    return result.exit_code
