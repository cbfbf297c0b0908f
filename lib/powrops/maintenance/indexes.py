"""The strategy's index list, checked: ``index_checks`` finds the strategy's indexes present and
valid, unused indexes (no scan since the statistics were reset, not unique, not backing a
foreign key, over ``UNUSED_MIN_BYTES``), foreign keys without an index leading with their
columns, and invalid indexes. Reads only."""

from __future__ import annotations

from typing import Any

from powrops.config import Settings
from powrops.db import connect
from powrops.findings import Finding, Severity, overall
from powrops.format import human_bytes
from powrops.metrics.snapshot import database_errors
from powrops.pg import catalog
from powrops.tables import STRATEGY_INDEXES

UNUSED_MIN_BYTES = 8 << 20

INDEX_SQL = """
SELECT n.nspname AS schema, c.relname AS name, i.indisvalid AS valid,
       pg_relation_size(c.oid) AS bytes, am.amname AS method, c.oid AS oid
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY n.nspname, c.relname
"""

UNUSED_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index,
       pg_relation_size(s.indexrelid) AS bytes, s.idx_scan
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
  AND NOT EXISTS (
      SELECT 1 FROM pg_constraint k
      WHERE k.contype = 'f' AND k.conrelid = i.indrelid
        AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey)
ORDER BY bytes DESC
"""

FK_WITHOUT_INDEX_SQL = """
SELECT n.nspname AS schema, t.relname AS table, k.conname AS constraint,
       (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
        WHERE a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey)) AS columns
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE k.contype = 'f' AND NOT EXISTS (
    SELECT 1 FROM pg_index i
    WHERE i.indrelid = k.conrelid
      AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey)
ORDER BY n.nspname, t.relname, k.conname
"""


def _predicate_matches(definition: str, predicate: str) -> bool:
    def squash(text: str) -> str:
        return "".join(ch for ch in text if ch not in " ()")

    return squash(predicate) in squash(definition)


def strategy_index_findings(found: dict[str, dict[str, Any]]) -> list[Finding]:
    """The strategy's indexes: present, on the right columns, valid."""
    result = []
    for name, index in STRATEGY_INDEXES.items():
        table, columns, predicate = index.table, index.columns, index.predicate
        row = found.get(name)
        expected = f"{table}{columns}" + (f" WHERE {predicate}" if predicate else "")
        if row is None:
            message, severity, definition = "missing", Severity.CRITICAL, None
        else:
            definition = str(row["definition"])
            shape_ok = columns in definition and row["table_name"] == table
            if predicate:
                shape_ok = shape_ok and _predicate_matches(definition, predicate)
            if not row["valid"]:
                severity, message = Severity.CRITICAL, "present but INVALID"
            elif not shape_ok:
                severity, message = Severity.WARNING, "present with another definition"
            else:
                severity, message = Severity.OK, "present and valid"
        result.append(
            Finding(
                "strategy_index",
                severity,
                message,
                object=name,
                value=definition,
                expected=expected,
                advice=None if severity == Severity.OK else "powrops migrate latest / reindex",
            )
        )
    return result


def _invalid(row: dict[str, Any]) -> Finding:
    return Finding(
        "invalid_index",
        Severity.CRITICAL,
        "index is INVALID: queries do not use it, writes still maintain it",
        object=f"{row['schema']}.{row['name']}",
        advice="powrops maintenance reindex",
    )


def _unused(row: dict[str, Any]) -> Finding:
    return Finding(
        "unused_index",
        Severity.WARNING,
        f"no index scan since the statistics were reset ({human_bytes(int(row['bytes']))})",
        object=f"{row['schema']}.{row['index']}",
        value=row["bytes"],
        advice="review: drop it if no query needs it",
    )


def _fk_without_index(row: dict[str, Any]) -> Finding:
    table = f"{row['schema']}.{row['table']}"
    return Finding(
        "fk_without_index",
        Severity.WARNING,
        f"foreign key {row['constraint']} ({row['columns']}) has no index",
        object=table,
        advice=f"CREATE INDEX CONCURRENTLY ON {table} ({row['columns']})",
    )


def index_checks(settings: Settings) -> list[Finding]:
    """The index strategy checked on the live database."""

    with database_errors("index checks failed"), connect(settings, autocommit=True) as conn:
        result = strategy_index_findings(catalog.indexes(conn, STRATEGY_INDEXES))
        result += [_invalid(row) for row in catalog.dict_rows(conn, INDEX_SQL) if not row["valid"]]
        result += [
            _unused(row)
            for row in catalog.dict_rows(conn, UNUSED_SQL)
            if row["index"] not in STRATEGY_INDEXES and int(row["bytes"]) >= UNUSED_MIN_BYTES
        ]
        result += [_fk_without_index(row) for row in catalog.dict_rows(conn, FK_WITHOUT_INDEX_SQL)]
    if not any(f.check != "strategy_index" for f in result):
        message = "no invalid or unused index; every foreign key has an index"
        result.append(Finding("indexes", Severity.OK, message))
    return result


def index_status(findings: list[Finding]) -> Severity:
    return overall(findings)
