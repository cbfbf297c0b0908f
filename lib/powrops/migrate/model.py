"""The plan and result of a production migration: what is pending, what it touches, how it went.

Plain data and the parsing of a revision's SQL for the tables it touches; the work is in
:mod:`powrops.migrate.production`, the rendering in :mod:`powrops.migrate.view`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from powrops.config import Settings
from powrops.durations import Duration
from powrops.errors import ParameterError
from powrops.findings import Finding, Graded, Severity

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
    # A rollback's plan: ``head`` is the revision rolled back to, ``pending`` what is undone.
    downgrade: bool = False

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
            "findings": [f.to_dict() for f in self.findings], "downgrade": self.downgrade,
        }  # fmt: skip


@dataclass
class ProductionResult(Graded):
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(), "applied": self.applied, "before": self.before,
            "after": self.after, "error": self.error, "rollback_file": self.rollback_file,
            "checks": [f.to_dict() for f in self.checks], "exit_code": self.exit_code,
        }  # fmt: skip


# --- plan ----------------------------------------------------------------------------------
