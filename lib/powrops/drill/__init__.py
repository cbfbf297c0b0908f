"""Recovery drills: the strategy's recovery plan run against a scratch target with measured RTO
and RPO (``run``), and what a notebook shows of it (``view``)."""

from __future__ import annotations

from powrops.drill.run import (
    Drill,
    DrillResult,
    DrillStep,
    drill_findings,
    run_drill,
)

__all__ = [
    "Drill",
    "DrillResult",
    "DrillStep",
    "drill_findings",
    "run_drill",
]
