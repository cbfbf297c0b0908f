"""Findings: the common currency of every check, rendered alike by CLI, JSON and notebooks.

Also the one order of severities (:data:`SEVERITY_ORDER`, :func:`worst`), the one mapping
from an outcome to a process exit code (:func:`exit_code`), used by every command, and
:class:`Graded`, which gives every result its status and exit code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Monitoring-convention severities; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def rank(self) -> int:
        """Position in :data:`SEVERITY_ORDER`: higher is worse news."""
        return SEVERITY_ORDER.index(self)

    @property
    def colour(self) -> str:
        return {0: "green", 1: "amber", 2: "red", 3: "grey"}[int(self)]

    @classmethod
    def parse(cls, value: str | int | Severity) -> Severity:
        if isinstance(value, Severity):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {value!r}; expected OK, WARNING, CRITICAL or UNKNOWN"
            ) from None


#: Severities from the best news to the worst. UNKNOWN ranks below CRITICAL: a check that
#: could not run is less certain news than one that found a problem, but worse than WARNING.
SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.OK,
    Severity.WARNING,
    Severity.UNKNOWN,
    Severity.CRITICAL,
)


def worst(severities: Iterable[Severity]) -> Severity:
    """The worst of some severities by :data:`SEVERITY_ORDER`; OK when there are none."""
    return max(severities, key=lambda severity: severity.rank, default=Severity.OK)


def grade(value: float, warning: float, critical: float) -> Severity:
    """A figure against its thresholds: CRITICAL from ``critical`` on, WARNING from ``warning``."""
    if value >= critical:
        return Severity.CRITICAL
    if value >= warning:
        return Severity.WARNING
    return Severity.OK


def exit_code(outcome: Severity | int) -> int:
    """The process exit code of a command's outcome.

    A severity's value is its exit code under the monitoring convention: 0 OK, 1 WARNING,
    2 CRITICAL, 3 UNKNOWN. A plain int is a code fixed by another contract and passes through
    (``wal fetch`` answers PostgreSQL's restore_command: 0 restored, 1 not archived, 128 error).
    """
    return int(outcome)


@dataclass(frozen=True)
class Finding:
    """One result of one check: what, where, and how bad."""

    check: str
    severity: Severity
    message: str
    object: str | None = None
    value: Any = None
    expected: Any = None
    advice: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        data = dict(data)
        data["severity"] = Severity.parse(data["severity"])
        return cls(**data)


def overall(findings: Iterable[Finding]) -> Severity:
    """The worst severity among findings (:func:`worst`); OK when there are none."""
    return worst(finding.severity for finding in findings)


class Graded:
    """What every result shares (``verify/report.py``'s ``VerificationReport`` is the model):
    ``status``, the worst of the findings :meth:`graded` returns, by the one order, and
    ``exit_code``, that status's code. A result whose status follows another rule (a migration
    refused, a repair that failed) overrides ``status`` and keeps ``exit_code``."""

    def graded(self) -> Iterable[Finding]:
        """The findings this result's status is the worst of."""
        raise NotImplementedError(f"{type(self).__name__} names the findings it is graded by")

    @property
    def status(self) -> Severity:
        return overall(self.graded())

    @property
    def exit_code(self) -> int:
        return exit_code(self.status)


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    result = {s.name: 0 for s in Severity}
    for finding in findings:
        result[finding.severity.name] += 1
    return result
