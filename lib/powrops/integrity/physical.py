"""Physical checks: amcheck on B-tree indexes and heaps, checksum failures, data checksums.

amcheck runs per relation inside the snapshot, each in a savepoint, so one corrupt index is
reported by name and the others are still checked. ``heapallindexed`` (from
``consistency.heapallindexed``) also verifies that every heap tuple has its index entry: slower,
and worth it after an incident.

``guarded`` runs the other groups of checks (rules, consistency) in a savepoint too: a page they
cannot read (a data checksum failure, a corrupt index the planner used) becomes a CRITICAL result
for that group instead of ending the run, and amcheck still names the damaged relation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, LiteralString

import psycopg

from powrops.findings import Severity
from powrops.integrity.model import SAMPLE_SIZE, CheckResult

SCHEMAS = ("public", "ops")

INDEXES = """
SELECT c.oid, n.nspname || '.' || c.relname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
  AND n.nspname = ANY(%s)
ORDER BY 2
"""

HEAPS = """
SELECT c.oid, n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't' AND n.nspname = ANY(%s)
ORDER BY 2
"""

BT_INDEX_CHECK = "SELECT NULL, NULL FROM bt_index_check(%s, %s)"
"""amcheck's B-tree check of one index (oid, heapallindexed); it raises on corruption."""

VERIFY_HEAP = "SELECT count(*), min(msg) FROM verify_heapam(%s, on_error_stop => false)"
"""amcheck's check of one table's heap (oid): how many corrupt tuples, and the first message."""

AMCHECK_ADVICE = (
    "corruption: follow runbooks/data_corruption_response.ipynb (stop writes, assess the scope, "
    "restore to just before the damage); REINDEX fixes a corrupt index whose heap is sound"
)


CORRUPTION = (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted)
"""SQLSTATE XX001 and XX002: what PostgreSQL raises when it reads a damaged page."""


def guarded(
    conn: psycopg.Connection[Any], group: str, checks: Callable[[], list[CheckResult]]
) -> list[CheckResult]:
    """``checks()`` in a savepoint; if they hit a corrupt page, one CRITICAL result saying so.

    The result is ``<group>_unreadable`` (category physical, count None: the group could not
    count anything); the group's own results are missing from that run.
    """
    try:
        with conn.transaction():
            return checks()
    except CORRUPTION as exc:
        problem = str(exc).strip().splitlines()[0]
        return [
            CheckResult(
                name=f"{group}_unreadable",
                category="physical",
                table=None,
                count=None,
                severity=Severity.CRITICAL,
                message=f"{group} checks stopped on corrupt data: {problem}",
                advice=AMCHECK_ADVICE,
                details={"sqlstate": exc.sqlstate},
            )
        ]


def _unavailable(name: str, why: str) -> CheckResult:
    return CheckResult(
        name=name,
        category="physical",
        table=None,
        count=None,
        severity=Severity.WARNING,
        message=f"not checked: {why}",
        advice="run `powrops migrate latest` as a role that may create extensions, and grant "
        "the checking role EXECUTE on amcheck's functions (or pg_amcheck as a superuser)",
    )


def amcheck_version(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'amcheck'").fetchone()
    return str(row[0]) if row else None


def _verify(
    conn: psycopg.Connection[Any], query: LiteralString, params: tuple[Any, ...]
) -> str | None:
    """Run one amcheck call in a savepoint; the problem it reports, or None."""
    try:
        with conn.transaction():
            row = conn.execute(query, params).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        raise
    except psycopg.errors.QueryCanceled:
        raise
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    if row is not None and row[0]:
        return f"{row[0]} corrupt tuple(s), first: {row[1]}"
    return None


def check_amcheck(conn: psycopg.Connection[Any], heapallindexed: bool = False) -> CheckResult:
    """bt_index_check on every B-tree index and verify_heapam on every table of POWR's schemas."""
    if amcheck_version(conn) is None:
        return _unavailable("amcheck", "the amcheck extension is not installed")
    schemas = list(SCHEMAS)
    corrupt: dict[str, str] = {}
    checked = 0
    try:
        for oid, name in conn.execute(INDEXES, (schemas,)).fetchall():
            problem = _verify(conn, BT_INDEX_CHECK, (oid, heapallindexed))
            checked += 1
            if problem:
                corrupt[name] = problem
        for oid, name in conn.execute(HEAPS, (schemas,)).fetchall():
            problem = _verify(conn, VERIFY_HEAP, (oid,))
            checked += 1
            if problem:
                corrupt[name] = problem
    except psycopg.errors.InsufficientPrivilege as exc:
        return _unavailable("amcheck", f"not allowed: {str(exc).strip()}")
    names = sorted(corrupt)
    if names:
        message = f"{len(names)} of {checked} relations corrupt: " + "; ".join(
            f"{n}: {corrupt[n]}" for n in names[:SAMPLE_SIZE]
        )
    else:
        message = f"{checked} indexes and tables verified" + (
            " (heapallindexed)" if heapallindexed else ""
        )
    return CheckResult(
        name="amcheck",
        category="physical",
        table=None,
        count=len(names),
        severity=Severity.CRITICAL if names else Severity.OK,
        message=message,
        sample_ids=tuple(names[:SAMPLE_SIZE]),
        advice=AMCHECK_ADVICE,
        details={"relations_checked": checked, "heapallindexed": heapallindexed},
    )


def check_checksum_failures(conn: psycopg.Connection[Any]) -> CheckResult:
    row = conn.execute(
        "SELECT COALESCE(sum(checksum_failures), 0)::bigint, max(checksum_last_failure), "
        "array_agg(COALESCE(datname, '(shared)') ORDER BY datname) "
        "FILTER (WHERE checksum_failures > 0) FROM pg_stat_database"
    ).fetchone()
    assert row is not None
    failures, last, where = int(row[0]), row[1], list(row[2] or [])
    message = (
        f"{failures} checksum failures since statistics were reset, last at {last:%Y-%m-%d %H:%M}"
        f" in {', '.join(where)}"
        if failures and last
        else "no checksum failures recorded in pg_stat_database"
    )
    return CheckResult(
        name="checksum_failures",
        category="physical",
        table=None,
        count=failures,
        severity=Severity.CRITICAL if failures else Severity.OK,
        message=message,
        sample_ids=tuple(where[:SAMPLE_SIZE]),
        advice=AMCHECK_ADVICE,
    )


def check_data_checksums(conn: psycopg.Connection[Any]) -> CheckResult:
    row = conn.execute("SELECT current_setting('data_checksums')").fetchone()
    enabled = row is not None and row[0] == "on"
    return CheckResult(
        name="data_checksums",
        category="physical",
        table=None,
        count=0 if enabled else 1,
        severity=Severity.OK if enabled else Severity.WARNING,
        message="data checksums are enabled"
        if enabled
        else "data checksums are off: silent page corruption goes unnoticed",
        advice="enable them with pg_checksums --enable on the stopped cluster (or initdb "
        "--data-checksums for a new one)",
    )


def run_physical(conn: psycopg.Connection[Any], heapallindexed: bool = False) -> list[CheckResult]:
    return [
        check_amcheck(conn, heapallindexed),
        check_checksum_failures(conn),
        check_data_checksums(conn),
    ]
