"""Recovery drills: the strategy's recovery plan run against a scratch target with measured RTO
and RPO (``run``), and what a notebook shows of it (``view``)."""

from __future__ import annotations

from powrops.drill.run import (
    LOGIN_ROLES,
    SMOKE_QUERIES,
    Drill,
    DrillResult,
    DrillStep,
    RestoredChecks,
    drill_findings,
    run_drill,
    table_counts,
)

__all__ = [
    "LOGIN_ROLES",
    "SMOKE_QUERIES",
    "Drill",
    "DrillResult",
    "DrillStep",
    "RestoredChecks",
    "drill_findings",
    "run_drill",
    "table_counts",
]
