"""What an integrity run returns: one result per rule or check, and the run around them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from powrops.findings import Finding, Graded, Severity

SAMPLE_SIZE = 5
"""How many sample ids a result carries: enough to look at, never a whole table."""

KEPT_IDS = 1000
"""How many violating ids a data check reads (smallest first) for the next incremental run to
look at again; a check with more violating rows runs in full the next time."""

CHEAP = "cheap: read from the server"
"""Why the checksum counters and the audit trail's state are read whole in every run."""

CATEGORIES = ("validation", "referential", "calculated", "totals", "physical", "audit")


DEFECT_CHECKS = {
    "weight_out_of_range": "weight_range",
    "weight_missing": "weight_required",
    "reps_out_of_range": "reps_range",
    "reps_missing": "reps_required",
    "date_out_of_range": "date_range",
    "orphan_sets": "orphan_workout_sets",
    "orphan_workouts": "orphan_workouts",
    "wrong_total_volume": "workout_total_volume",
    "wrong_user_totals": "user_totals",
}
"""The check that finds each kind of defect ``powrops.demo.data`` plants."""


@dataclass(frozen=True)
class CheckResult:
    """One rule or check: how many rows violate it and a few of their ids.

    ``count`` is None when the check could not run (an extension or privilege is missing);
    ``message`` then says why.
    """

    name: str
    category: str
    table: str | None
    count: int | None
    severity: Severity
    message: str
    sample_ids: tuple[str, ...] = ()
    advice: str | None = None
    repairable: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    #: Up to KEPT_IDS violating ids (all of them when ``count`` is no more), for the watermark.
    kept_ids: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def failed(self) -> bool:
        return bool(self.count)

    def to_finding(self) -> Finding:
        return Finding(
            check=self.name,
            severity=self.severity,
            message=self.message,
            object=self.table,
            value=self.count,
            expected=0,
            advice=self.advice if self.severity != Severity.OK else None,
            details={
                "category": self.category,
                "sample_ids": list(self.sample_ids),
                "repairable": self.repairable,
                **self.details,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "table": self.table,
            "count": self.count,
            "severity": self.severity.name,
            "message": self.message,
            "sample_ids": list(self.sample_ids),
            "advice": self.advice,
            "repairable": self.repairable,
            "details": dict(self.details),
        }


def violation(
    name: str,
    category: str,
    table: str,
    count: int,
    samples: list[Any] | tuple[Any, ...],
    what: str,
    *,
    advice: str,
    severity: Severity = Severity.WARNING,
    repairable: bool = False,
    **details: Any,
) -> CheckResult:
    """The result of a data check: OK at 0 rows, ``severity`` otherwise."""
    ids = tuple(str(s) for s in samples[:SAMPLE_SIZE])
    if count:
        message = f"{count:,} {table} rows {what}"
        if ids:
            message += f" (e.g. ids {', '.join(ids)})"
    else:
        message = f"no {table} rows {what}"
    return CheckResult(
        name=name,
        category=category,
        table=table,
        count=count,
        severity=severity if count else Severity.OK,
        message=message,
        sample_ids=ids,
        advice=advice,
        repairable=repairable,
        details=dict(details),
        kept_ids=tuple(str(s) for s in samples),
    )


@dataclass
class IntegrityReport(Graded):
    """An integrity run: every result, when it ran, and its id in ``ops.check_runs``."""

    results: list[CheckResult]
    started_at: datetime
    finished_at: datetime
    run_id: int | None = None
    server_version: str | None = None
    #: Findings about the run itself (e.g. that it could not be recorded).
    notes: list[Finding] = field(default_factory=list)
    #: ``full``, or ``incremental`` (each check over what changed since ``since``).
    mode: str = "full"
    since: datetime | None = None
    #: Why the run is full (asked for, due, first run ...); empty for an incremental one.
    why: str = ""
    #: Per check, how it ran and why: {"scope": "incremental" | "full" | "skipped", "why"}.
    scopes: dict[str, dict[str, str]] = field(default_factory=dict)

    def described(self) -> str:
        """``full (why)`` or ``incremental since <time>``."""
        if self.mode == "incremental" and self.since is not None:
            full = [n for n, s in self.scopes.items() if s["scope"] == "full"]
            more = f"; {len(full)} checks in full" if full else ""
            return f"incremental since {self.since:%Y-%m-%d %H:%M:%S %Z}{more}"
        return f"full ({self.why})" if self.why else "full"

    def in_full(self) -> dict[str, str]:
        """In an incremental run, the checks that read everything, and why (the cheap ones
        that always do left out)."""
        if self.mode != "incremental":
            return {}
        return {
            n: s["why"]
            for n, s in self.scopes.items()
            if s["scope"] == "full" and s["why"] != CHEAP
        }

    def graded(self) -> list[Finding]:
        return self.findings()

    def counts(self) -> dict[str, int | None]:
        """{check name: violating rows} for every rule and check, 0 included."""
        return {r.name: r.count for r in self.results}

    def findings(self) -> list[Finding]:
        return [r.to_finding() for r in self.results] + self.notes

    def problems(self) -> list[CheckResult]:
        return [r for r in self.results if r.severity != Severity.OK]

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def failed_checks(self) -> int:
        return sum(1 for r in self.results if r.failed)

    def unchecked(self) -> list[str]:
        """The checks that could not count (not allowed, unreadable): neither passed nor
        failed."""
        return [r.name for r in self.results if r.count is None and r.severity != Severity.OK]

    def summary(self) -> str:
        failed = [r for r in self.results if r.failed]
        rows = sum(r.count or 0 for r in failed)
        seconds = (self.finished_at - self.started_at).total_seconds()
        run = f" (run {self.run_id})" if self.run_id is not None else ""
        unchecked = self.unchecked()
        if not failed:
            head = f"{len(self.results) - len(unchecked)} checks passed"
        else:
            head = f"{len(failed)} of {len(self.results)} checks failed, {rows:,} rows"
        if unchecked:
            head += f", {len(unchecked)} not checked ({', '.join(unchecked)})"
        return f"integrity {self.status.name}: {head} in {seconds:.1f} s{run}, {self.described()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status.name,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "server_version": self.server_version,
            "mode": self.mode,
            "since": self.since.isoformat() if self.since else None,
            "why": self.why,
            "described": self.described(),
            "scopes": {n: dict(s) for n, s in self.scopes.items()},
            "counts": self.counts(),
            "results": [r.to_dict() for r in self.results],
            "findings": [f.to_dict() for f in self.findings()],
            "summary": self.summary(),
        }
