"""Data metrics: snapshots of the strategy's volume, performance and integrity metrics
(:mod:`.snapshot`) and the disk the data lives on (:mod:`.disk`).

The package hands on both modules' names: ``metrics.take_snapshot(settings)``."""

from __future__ import annotations

from powrops.metrics.disk import Disk
from powrops.metrics.snapshot import (
    EXPLAIN,
    EXPLAIN_ANALYZE,
    EXPLAIN_GENERIC,
    EXPLAINABLE,
    INDEXES_SQL,
    QUERY_TEXT_LIMIT,
    STATEMENT_ORDERS,
    STATEMENTS_SQL,
    SYSTEM_SCHEMAS,
    TABLES_SQL,
    VERSION,
    Snapshot,
    collect,
    database_errors,
    explain,
    history,
    indexes,
    integrity,
    latest,
    lsn_bytes,
    redact_query,
    statement_text,
    statements,
    statements_status,
    store,
    tables,
    take_snapshot,
)

__all__ = [
    "EXPLAIN",
    "EXPLAINABLE",
    "EXPLAIN_ANALYZE",
    "EXPLAIN_GENERIC",
    "INDEXES_SQL",
    "QUERY_TEXT_LIMIT",
    "STATEMENTS_SQL",
    "STATEMENT_ORDERS",
    "SYSTEM_SCHEMAS",
    "TABLES_SQL",
    "VERSION",
    "Disk",
    "Snapshot",
    "collect",
    "database_errors",
    "explain",
    "history",
    "indexes",
    "integrity",
    "latest",
    "lsn_bytes",
    "redact_query",
    "statement_text",
    "statements",
    "statements_status",
    "store",
    "tables",
    "take_snapshot",
]
