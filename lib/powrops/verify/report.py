"""The verification report: plain data that the CLI, JSON results and notebooks all render."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from powrops.findings import Finding, Graded, Severity, counts
from powrops.verify.continuity import TimelineCoverage


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True)
class RecoveryWindow:
    """The span a backup can be restored to: its consistency point to the last contiguous WAL."""

    label: str
    timeline: int | None
    start_lsn: str | None  # the backup's stop LSN: where it becomes consistent
    start_time: datetime | None
    end_lsn: str | None  # end of the last segment reachable without a gap
    end_time: datetime | None  # when that segment was archived
    end_segment: str | None
    stopped_by: str | None  # the gap that ends the window, None when it reaches the newest WAL

    @property
    def seconds(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return max((self.end_time - self.start_time).total_seconds(), 0.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start_time"] = _iso(self.start_time)
        data["end_time"] = _iso(self.end_time)
        data["seconds"] = self.seconds
        return data


@dataclass(frozen=True)
class Freshness:
    """One freshness figure: how old the newest of something is, against its limit."""

    check: str
    reference: str | None  # the backup label or WAL name it is about
    at: datetime | None
    age_s: float | None
    limit_s: float | None
    severity: Severity

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = _iso(self.at)
        data["severity"] = self.severity.name
        return data


@dataclass
class BackupRow:
    """One backup and the outcome of each check on it."""

    label: str
    kind: str
    status: str  # ok / failed (the run's status, not the verification's)
    parent: str | None
    chain: list[str]  # labels to combine, full first
    timeline: int | None
    start_lsn: str | None
    stop_lsn: str | None
    start_time: datetime
    stop_time: datetime | None
    stored_size: int
    server_version: str | None
    checksums: str = "not checked"  # ok / failed / not checked
    secondary: str = "not configured"  # ok / missing / damaged / not checked / not configured
    # the manifest check and the WAL of its range parsed: ok / failed / ok at <when> /
    # incomplete (the WAL could not be parsed: no pg_waldump) / not checked
    content: str = "not checked"
    pg_verifybackup: str = "not run"  # ok / failed / skipped: ... / not run
    pg_verifybackup_s: float | None = None
    wal: str = "not checked"  # continuous / gap at ... / not checked
    window: RecoveryWindow | None = None
    severity: Severity = Severity.OK

    def passed(self) -> bool:
        """Whether this backup counts as verified after the run: a successful backup whose
        content matched its manifest (in this run, or earlier for the same stored bytes) and
        none of whose checks failed."""
        failed = "failed" in (self.checksums, self.pg_verifybackup)
        return self.status == "ok" and self.content.startswith("ok") and not failed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start_time"] = _iso(self.start_time)
        data["stop_time"] = _iso(self.stop_time)
        data["window"] = self.window.to_dict() if self.window else None
        data["severity"] = self.severity.name
        return data


@dataclass
class VerificationReport(Graded):
    """Everything one verification found: findings, per-backup rows, WAL, windows, freshness."""

    repository: str
    secondary: str | None
    label: str | None
    now: datetime
    findings: list[Finding] = field(default_factory=list)
    backups: list[BackupRow] = field(default_factory=list)
    timelines: list[TimelineCoverage] = field(default_factory=list)
    windows: list[RecoveryWindow] = field(default_factory=list)
    freshness: list[Freshness] = field(default_factory=list)
    test_restore: dict[str, Any] | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def graded(self) -> list[Finding]:
        return self.findings

    def add(
        self,
        check: str,
        severity: Severity,
        message: str,
        obj: str | None = None,
        *,
        advice: str | None = None,
        **details: Any,
    ) -> Finding:
        finding = Finding(
            check=check,
            severity=severity,
            message=message,
            object=obj,
            advice=advice,
            details={k: v for k, v in details.items() if v is not None},
        )
        self.findings.append(finding)
        return finding

    def problems(self) -> list[Finding]:
        """Findings worse than OK, worst first."""
        return sorted(
            (f for f in self.findings if f.severity != Severity.OK),
            key=lambda f: -f.severity.rank,
        )

    def verified_until(self) -> datetime | None:
        """The end of the verified recovery window: the newest point a verified backup (its
        whole chain :meth:`BackupRow.passed`) recovers to over WAL that was read back intact
        (the windows follow only such WAL); None when no backup is verified."""
        rows = {b.label: b for b in self.backups}
        ends = [
            b.window.end_time
            for b in self.backups
            if b.window is not None and b.window.end_time is not None
            and all(label in rows and rows[label].passed() for label in b.chain)
        ]  # fmt: skip
        return max(ends, default=None)

    def summary(self) -> str:
        c = counts(self.findings)
        scope = f"backup {self.label}" if self.label else f"{len(self.backups)} backups"
        skipped = self.figures.get("objects_skipped", 0)
        trusted = f" ({skipped} more intact when last read)" if skipped else ""
        return (
            f"verify {self.status.name}: {scope}, {self.figures.get('files_checked', 0)} files "
            f"and {self.figures.get('wal_checked', 0)} WAL files read back{trusted} in "
            f"{self.duration_s:.1f} s; {c['CRITICAL']} critical, {c['WARNING']} warning, "
            f"{c['UNKNOWN']} unknown, {c['OK']} ok"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.name,
            "exit_code": self.exit_code,
            "repository": self.repository,
            "secondary": self.secondary,
            "label": self.label,
            "now": self.now.isoformat(),
            "summary": self.summary(),
            "counts": counts(self.findings),
            "findings": [f.to_dict() for f in self.findings],
            "backups": [b.to_dict() for b in self.backups],
            "timelines": [t.to_dict() for t in self.timelines],
            "windows": [w.to_dict() for w in self.windows],
            "freshness": [f.to_dict() for f in self.freshness],
            "test_restore": self.test_restore,
            "figures": self.figures,
            "duration_s": self.duration_s,
        }
