"""Maintenance, the actions that take locks: vacuum, analyze, reindex and rebuild
(:mod:`.actions`), and the strategy's index list checked (:mod:`.indexes`).

The package hands on both modules' names: ``maintenance.run(settings, "vacuum")``."""

from __future__ import annotations

from powrops.maintenance.actions import (
    ACTIONS,
    ANALYZE,
    DROP_INDEX,
    LEFTOVER,
    LEFTOVERS_SQL,
    MIN_BLOAT_BYTES,
    MIN_DEAD_TUPLES,
    MIN_LEAF_DENSITY,
    REINDEX,
    STALE_FRACTION,
    TABLE_STATS_SQL,
    VACUUM,
    VACUUM_FULL,
    MaintenanceRun,
    Target,
    plan_analyze,
    plan_rebuild,
    plan_reindex,
    plan_vacuum,
    record_event,
    run,
    table_stats,
)
from powrops.maintenance.indexes import (
    FK_WITHOUT_INDEX_SQL,
    INDEX_SQL,
    UNUSED_MIN_BYTES,
    UNUSED_SQL,
    index_checks,
    index_status,
    strategy_index_findings,
)

__all__ = [
    "ACTIONS",
    "ANALYZE",
    "DROP_INDEX",
    "FK_WITHOUT_INDEX_SQL",
    "INDEX_SQL",
    "LEFTOVER",
    "LEFTOVERS_SQL",
    "MIN_BLOAT_BYTES",
    "MIN_DEAD_TUPLES",
    "MIN_LEAF_DENSITY",
    "REINDEX",
    "STALE_FRACTION",
    "TABLE_STATS_SQL",
    "UNUSED_MIN_BYTES",
    "UNUSED_SQL",
    "VACUUM",
    "VACUUM_FULL",
    "MaintenanceRun",
    "Target",
    "index_checks",
    "index_status",
    "plan_analyze",
    "plan_rebuild",
    "plan_reindex",
    "plan_vacuum",
    "record_event",
    "run",
    "strategy_index_findings",
    "table_stats",
]
