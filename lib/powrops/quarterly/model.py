"""The quarterly review's inputs: a quarter and the evidence kept during it, as plain data.

An :class:`Evidence` is what :func:`powrops.quarterly.evidence.gather` reads from the report
archive, the backup catalog and the ``ops`` schema; tests build one by hand. Its helpers only
ever look at evidence inside the quarter, up to :attr:`Evidence.as_of` (the end of the quarter,
or now for the current one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter in UTC, e.g. 2026Q3 = 2026-07-01 .. 2026-10-01 (exclusive)."""

    year: int
    number: int

    @classmethod
    def of(cls, when: datetime) -> Quarter:
        moment = when.astimezone(UTC)
        return cls(moment.year, (moment.month - 1) // 3 + 1)

    @property
    def label(self) -> str:
        return f"{self.year}Q{self.number}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, 3 * (self.number - 1) + 1, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Quarter:
        return (
            Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)
        )

    def previous(self) -> Quarter:
        return (
            Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)
        )

    def __str__(self) -> str:
        return self.label


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware datetime from an ISO string or datetime (naive means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReportRun:
    """One archived report run (from its result.json)."""

    name: str
    run_id: str
    status: str
    started_at: datetime
    figures: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Mapping[str, Any], ...] = ()
    html: str | None = None  # relative to the reports directory
    failed: bool = False

    @classmethod
    def from_catalog(cls, entry: Mapping[str, Any]) -> ReportRun | None:
        """From a catalog entry; None when the run has no start time (incomplete)."""
        started = parse_time(entry.get("started_at"))
        if started is None:
            return None
        return cls(
            name=str(entry.get("name")),
            run_id=str(entry.get("run_id")),
            status=str(entry.get("status") or "UNKNOWN"),
            started_at=started,
            figures=dict(entry.get("figures") or {}),
            findings=tuple(entry.get("findings") or ()),
            html=entry.get("html"),
            failed=bool(entry.get("failed")),
        )


@dataclass(frozen=True)
class BackupRun:
    """One backup run from the catalog: ok, failed, or incomplete (killed, no record)."""

    label: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class OpsEvent:
    """A row of ``ops.events``."""

    kind: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    def mentions(self, word: str) -> bool:
        """Whether the details name ``word`` as an action/operation (e.g. 'analyze')."""
        for key in ("action", "operation", "operations", "actions", "task", "tasks", "kind"):
            value = self.details.get(key)
            values = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, str) and word in v.lower() for v in values):
                return True
        return False


@dataclass(frozen=True)
class CheckRun:
    """A row of ``ops.check_runs`` (integrity: counts per check; alerts: findings)."""

    id: int
    kind: str
    status: str
    started_at: datetime
    counts: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Repair:
    """A row of ``ops.repairs``."""

    kind: str
    table: str
    rows: int
    at: datetime


@dataclass(frozen=True)
class Snapshot:
    """A row of ``ops.metric_snapshots``."""

    taken_at: datetime
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetentionCount:
    """Rows still present past one retention policy."""

    policy: str  # e.g. "user_account.deleted"
    table: str
    rule: str
    retention: str
    rows_past: int


DEFAULT_INTERVALS: dict[str, timedelta] = {
    "backup_full": timedelta(days=1),
    "verification": timedelta(days=1),
    "integrity": timedelta(days=1),
    "analyze": timedelta(days=1),
    "alerts": timedelta(days=1),
    "vacuum": timedelta(days=7),
    "cleanup": timedelta(days=7),
    "retention": timedelta(days=7),
    "growth": timedelta(days=7),
    "drill": timedelta(days=30),
    "quarterly": timedelta(days=91),
}


@dataclass
class Evidence:
    """Everything the review reads, for one quarter."""

    quarter: Quarter
    now: datetime
    runs: list[ReportRun] = field(default_factory=list)
    backups: list[BackupRun] = field(default_factory=list)
    events: list[OpsEvent] = field(default_factory=list)
    check_runs: list[CheckRun] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)  # oldest first, may start earlier
    retention: list[RetentionCount] | None = None  # None: the audit could not run
    retention_audited_at: datetime | None = None
    analyzed_at: datetime | None = None  # oldest statistics among POWR tables with rows
    objectives: Mapping[str, float] = field(
        default_factory=lambda: {"rto_s": 3600.0, "rpo_s": 900.0}
    )
    intervals: dict[str, timedelta] = field(default_factory=lambda: dict(DEFAULT_INTERVALS))
    failed_backups: Mapping[str, int] = field(default_factory=lambda: {"warning": 1, "critical": 2})
    disk_capacity: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def as_of(self) -> datetime:
        """Where freshness is measured: the end of the quarter, or now for the current one."""
        return min(self.now, self.quarter.end)

    def in_quarter(self, at: datetime | None) -> bool:
        return at is not None and self.quarter.start <= at <= self.as_of

    # -- per source ------------------------------------------------------------------------

    def quarter_runs(self, name: str) -> list[ReportRun]:
        """Runs of report ``name`` in the quarter, oldest first."""
        found = [r for r in self.runs if r.name == name and self.in_quarter(r.started_at)]
        return sorted(found, key=lambda r: r.started_at)

    def latest_run(self, name: str) -> ReportRun | None:
        runs = self.quarter_runs(name)
        return runs[-1] if runs else None

    def quarter_backups(self) -> list[BackupRun]:
        found = [b for b in self.backups if self.in_quarter(b.started_at)]
        return sorted(found, key=lambda b: b.started_at)

    def latest_backup(self, kind: str | None = None, ok: bool = False) -> BackupRun | None:
        found = [
            b
            for b in self.quarter_backups()
            if (kind is None or b.kind == kind) and (not ok or b.status == "ok")
        ]
        return found[-1] if found else None

    def in_quarter_events(self, kinds: Iterable[str]) -> list[OpsEvent]:
        """Events of ``kinds`` in the quarter, oldest first; dry runs changed nothing."""
        wanted = set(kinds)
        found = [
            e
            for e in self.events
            if e.kind in wanted and self.in_quarter(e.at) and e.details.get("dry_run") is not True
        ]
        return sorted(found, key=lambda e: e.at)

    def quarter_checks(self, kind: str) -> list[CheckRun]:
        found = [c for c in self.check_runs if c.kind == kind and self.in_quarter(c.started_at)]
        return sorted(found, key=lambda c: c.started_at)

    def latest_check(self, kind: str) -> CheckRun | None:
        runs = self.quarter_checks(kind)
        return runs[-1] if runs else None

    def quarter_repairs(self) -> list[Repair]:
        return sorted((r for r in self.repairs if self.in_quarter(r.at)), key=lambda r: r.at)

    def in_quarter_snapshots(self) -> list[Snapshot]:
        found = [s for s in self.snapshots if self.in_quarter(s.taken_at)]
        return sorted(found, key=lambda s: s.taken_at)

    def drills(self) -> list[OpsEvent]:
        return self.in_quarter_events(("drill",))

    def latest_drill(self) -> tuple[datetime | None, str | None]:
        """When the newest drill of the quarter ran, and its status."""
        drills = self.drills()
        if drills:
            last = drills[-1]
            return last.at, str(last.details.get("status") or "UNKNOWN")
        run = self.latest_run("recovery_drill")
        return (run.started_at, run.status) if run else (None, None)
