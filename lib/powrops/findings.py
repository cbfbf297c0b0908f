"""Findings: the common currency of every check, rendered alike by CLI, JSON and notebooks."""

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
    """The worst severity among findings; OK when there are none.

    UNKNOWN ranks below CRITICAL: a check that could not run is less certain news than
    one that found a problem, but it is worse than WARNING.
    """
    order = [Severity.OK, Severity.WARNING, Severity.UNKNOWN, Severity.CRITICAL]
    worst = Severity.OK
    for finding in findings:
        if order.index(finding.severity) > order.index(worst):
            worst = finding.severity
    return worst


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    result = {s.name: 0 for s in Severity}
    for finding in findings:
        result[finding.severity.name] += 1
    return result
