"""Data metrics snapshots: the strategy's volume, performance and integrity metrics.

``powrops metrics snapshot`` (and the weekly growth report) reads the metrics from catalog views
and cumulative statistics only — no user table is scanned, so the cost does not grow with the
data — in one read-only snapshot transaction, and stores them in ``ops.metric_snapshots``
(``metrics jsonb``) so that history accumulates with every scheduled run.

The ``metrics`` JSON (version 1)::

    {
      "version": 1,
      "taken_at": "2026-01-05T06:00:00+00:00",
      "database": {"name": "powr", "total_bytes": 123456, "server_version": "18.1"},
      "tables": [                        # every table outside the system schemas
        {"schema": "public", "table": "workout_sets",
         "total_bytes": ..., "table_bytes": ..., "index_bytes": ..., "toast_bytes": ...,
         # total = table (heap, free space and visibility maps) + indexes + TOAST
         "rows": ...,                    # reltuples, or n_live_tup before the first ANALYZE
         "live_tuples": ..., "dead_tuples": ..., "dead_ratio": 0.12,   # dead / (live + dead)
         "mod_since_analyze": ..., "last_vacuum": iso|null, "last_analyze": iso|null,
         "seq_scan": ..., "idx_scan": ...}
      ],
      "indexes": [{"schema", "table", "index", "bytes", "idx_scan", "valid", "unique"}],
      "dead_tuples": {"total": ..., "live": ..., "ratio": ...},
      "cache": {"blks_hit": ..., "blks_read": ..., "hit_rate": 0.99 | null},
      "wal": {"lsn": "0/1A2B3C4", "lsn_bytes": ..., "wal_bytes": ... | null,
              "stats_reset": iso|null, "since_previous_bytes": ... | null,
              "previous_taken_at": iso|null},
      "statements": {"available": bool, "note": str|null,
                     "slowest": [statement], "most_time": [statement]},
      "integrity": {"available": bool, "run_id": ..., "finished_at": iso, "status": "...",
                    "counts": {check: violations}, "failed_checks": n, "violations": n},
      "volume": {"total_size_bytes": ..., "table_distribution": {"schema.table": bytes}},
      "performance": {"cache_hit_rate": ..., "dead_tuples": ..., "dead_tuple_ratio": ...,
                      "mean_query_ms": ... | null, "slow_queries": ... | null}
    }

``volume`` and ``performance`` restate the headline figures under the names of the strategy's
``DataMetrics`` interface (flat, for trend readers such as the quarterly review);
``slow_queries`` counts statements whose mean time exceeds ``alerts.query_time.warning``.

A ``statement`` is ``{"queryid", "query", "calls", "mean_ms", "max_ms", "total_ms", "rows"}``:
the normalised text from ``pg_stat_statements`` (constants replaced by ``$n``), cut to 500
characters; a statement that mentions a password is shown as ``[hidden]``. Statements are those
of the current database. When ``pg_stat_statements`` is not loaded (``shared_preload_libraries``)
or not created in the database, ``available`` is false and ``note`` says which; neither needs
a privilege beyond CONNECT (the extension's own view says whether it is loaded).

``integrity`` comes from the newest ``ops.check_runs`` row of kind ``integrity`` (whose
``counts`` is ``{check: violations}``); ``available`` is false when no check has run yet.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from powrops.config import Settings
from powrops.db import connect, snapshot
from powrops.errors import DatabaseError, database_message
from powrops.pg.privileges import Denied, guarded

VERSION = 1
QUERY_TEXT_LIMIT = 500
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS table,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_table_size(c.oid)
         - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast_bytes,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE s.n_live_tup END AS rows,
       s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples,
       s.n_mod_since_analyze AS mod_since_analyze,
       GREATEST(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       GREATEST(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       s.seq_scan, s.idx_scan
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname <> ALL(%(system)s)
  AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY total_bytes DESC, schema, "table"
"""

INDEXES_SQL = """
SELECT n.nspname AS schema, t.relname AS table, c.relname AS index,
       pg_relation_size(c.oid) AS bytes, s.idx_scan,
       i.indisvalid AS valid, i.indisunique AS unique
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY bytes DESC, schema, index
"""

STATEMENTS_SQL = sql.SQL("""
SELECT s.queryid::text AS queryid, s.query, s.calls,
       s.mean_exec_time AS mean_ms, s.max_exec_time AS max_ms,
       s.total_exec_time AS total_ms, s.rows
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.max_exec_time >= %(min_ms)s
ORDER BY {order} DESC
LIMIT %(limit)s
""")
"""This database's statements, by one of :data:`STATEMENT_ORDERS` (a column of the view)."""

LATEST_INTEGRITY_SQL = """
SELECT id, started_at, finished_at, status, counts FROM ops.check_runs
WHERE kind = 'integrity' AND server = %s ORDER BY started_at DESC, id DESC LIMIT 1
"""

STATEMENT_ORDERS = {"mean": "mean_exec_time", "max": "max_exec_time", "total": "total_exec_time"}


@contextlib.contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Turn a failing query into DatabaseError (exit 3) naming what could not be done, and
    what to do where the error says (:func:`~powrops.errors.database_problem`)."""
    try:
        yield
    except psycopg.Error as exc:
        raise DatabaseError(f"{what}: {database_message(exc)}") from exc


@dataclass(frozen=True)
class Snapshot:
    """One stored (or just collected) metrics snapshot."""

    id: int | None
    taken_at: datetime
    metrics: dict[str, Any]

    @property
    def total_bytes(self) -> int:
        return int(self.metrics["database"]["total_bytes"])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "taken_at": self.taken_at.isoformat(), "metrics": self.metrics}


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(
    conn: psycopg.Connection[Any], query: LiteralString | sql.Composed, params: Any = None
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return [{k: _iso(v) for k, v in row.items()} for row in cur.fetchall()]


def tables(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Size, rows and dead tuples of every table outside the system schemas, largest first."""
    rows = _rows(conn, TABLES_SQL, {"system": list(SYSTEM_SCHEMAS)})
    for row in rows:
        live, dead = int(row["live_tuples"] or 0), int(row["dead_tuples"] or 0)
        row["dead_ratio"] = dead / (live + dead) if live + dead else 0.0
    return rows


def indexes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return _rows(conn, INDEXES_SQL, {"system": list(SYSTEM_SCHEMAS)})


def statements_status(conn: psycopg.Connection[Any]) -> str | None:
    """None when pg_stat_statements can be read here, else why not.

    Asked of the extension itself, not of ``shared_preload_libraries`` (a setting only
    pg_read_all_settings may examine): its view refuses to answer when the library is not
    loaded. The probe runs in its own transaction (a savepoint inside one)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"
    ).fetchone()
    if row is None or not row[0]:
        return "extension pg_stat_statements is not created in this database: query times unknown"
    try:
        with conn.transaction():
            conn.execute("SELECT dealloc FROM pg_stat_statements_info").fetchone()
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return "pg_stat_statements is not in shared_preload_libraries: query times unknown"
    return None


def statements(
    conn: psycopg.Connection[Any], *, order: str = "mean", limit: int = 10, min_ms: float = 0.0
) -> list[dict[str, Any]]:
    """Statements of this database from pg_stat_statements, by mean, max or total time."""
    query = STATEMENTS_SQL.format(order=sql.Identifier("s", STATEMENT_ORDERS[order]))
    rows = _rows(conn, query, {"min_ms": min_ms, "limit": limit})
    for row in rows:
        row["query"] = redact_query(str(row["query"]))
        for key in ("mean_ms", "max_ms", "total_ms"):
            row[key] = round(float(row[key]), 3)
    return rows


def redact_query(text: str) -> str:
    """Statement text fit for a report: no passwords, at most QUERY_TEXT_LIMIT characters."""
    if "password" in text.lower():
        return "[hidden: the statement mentions a password]"
    text = " ".join(text.split())
    return text if len(text) <= QUERY_TEXT_LIMIT else text[: QUERY_TEXT_LIMIT - 1] + "…"


def _statements_block(conn: psycopg.Connection[Any], limit: int) -> dict[str, Any]:
    note = statements_status(conn)
    if note is not None:
        return {"available": False, "note": note, "slowest": [], "most_time": []}
    return {
        "available": True,
        "note": None,
        "slowest": statements(conn, order="mean", limit=limit),
        "most_time": statements(conn, order="total", limit=limit),
    }


def _cache(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute(
        "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    hit, read = (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)
    return {
        "blks_hit": hit,
        "blks_read": read,
        "hit_rate": hit / (hit + read) if hit + read else None,
    }


def _wal(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute(
        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
        "ELSE pg_current_wal_lsn() END"
    ).fetchone()
    assert row is not None
    lsn = str(row[0])
    stat = _rows(conn, "SELECT wal_bytes, stats_reset FROM pg_stat_wal")
    wal = stat[0] if stat else {"wal_bytes": None, "stats_reset": None}
    return {
        "lsn": lsn,
        "lsn_bytes": lsn_bytes(lsn),
        "wal_bytes": int(wal["wal_bytes"]) if wal["wal_bytes"] is not None else None,
        "stats_reset": wal["stats_reset"],
    }


def lsn_bytes(lsn: str) -> int:
    """An LSN (``X/Y``) as a byte position."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def integrity(conn: psycopg.Connection[Any], server: str) -> dict[str, Any]:
    """Counts of ``server``'s newest integrity check run; ``available`` false before the
    first, or when this role may not read ``ops.check_runs`` (the note names the GRANT)."""
    rows = guarded(conn, lambda: _rows(conn, LATEST_INTEGRITY_SQL, (server,)))
    if isinstance(rows, Denied):
        return {"available": False, "note": f"{rows.reason}: {rows.grant}", "counts": {}}
    if not rows:
        return {"available": False, "note": "no integrity check has run yet", "counts": {}}
    run = rows[0]
    raw = run["counts"] if isinstance(run["counts"], dict) else {}
    counts = {str(k): int(v) for k, v in raw.items() if isinstance(v, int | float)}
    return {
        "available": True,
        "run_id": run["id"],
        "finished_at": run["finished_at"] or run["started_at"],
        "status": run["status"],
        "counts": counts,
        "failed_checks": sum(1 for v in counts.values() if v > 0),
        "violations": sum(counts.values()),
    }


def _overall_statements(conn: psycopg.Connection[Any], slow_ms: float) -> tuple[Any, Any]:
    """(mean ms over every call, statements with a mean over slow_ms) of this database."""
    row = conn.execute(
        "SELECT sum(total_exec_time) / NULLIF(sum(calls), 0), "
        "count(*) FILTER (WHERE mean_exec_time > %s) FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (slow_ms,),
    ).fetchone()
    if row is None:
        return None, None
    return (None if row[0] is None else round(float(row[0]), 3)), int(row[1])


def _flat(data: dict[str, Any], conn: psycopg.Connection[Any], slow_ms: float) -> None:
    """Add the ``volume`` and ``performance`` blocks (the strategy's DataMetrics names)."""
    mean_ms, slow = (None, None)
    if data["statements"]["available"]:
        mean_ms, slow = _overall_statements(conn, slow_ms)
    data["volume"] = {
        "total_size_bytes": data["database"]["total_bytes"],
        "table_distribution": {
            f"{t['schema']}.{t['table']}": t["total_bytes"] for t in data["tables"]
        },
    }
    data["performance"] = {
        "cache_hit_rate": data["cache"]["hit_rate"],
        "dead_tuples": data["dead_tuples"]["total"],
        "dead_tuple_ratio": data["dead_tuples"]["ratio"],
        "mean_query_ms": mean_ms,
        "slow_queries": slow,
    }


def collect(
    conn: psycopg.Connection[Any],
    *,
    server: str,
    statement_limit: int = 10,
    slow_ms: float = 1000.0,
) -> dict[str, Any]:
    """The metrics JSON (see the module docstring) of ``server``, read in one snapshot;
    stores nothing."""
    with snapshot(conn, "60s"):
        data = _collect(conn, statement_limit, server)
        _flat(data, conn, slow_ms)
        return data


def _collect(conn: psycopg.Connection[Any], statement_limit: int, server: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT now(), current_database(), pg_database_size(current_database()), "
        "current_setting('server_version')"
    ).fetchone()
    assert row is not None
    table_rows = tables(conn)
    live = sum(int(t["live_tuples"] or 0) for t in table_rows)
    dead = sum(int(t["dead_tuples"] or 0) for t in table_rows)
    return {
        "version": VERSION,
        "taken_at": row[0].isoformat(),
        "database": {"name": row[1], "total_bytes": int(row[2]), "server_version": row[3]},
        "tables": table_rows,
        "indexes": indexes(conn),
        "dead_tuples": {
            "total": dead,
            "live": live,
            "ratio": dead / (live + dead) if live + dead else 0.0,
        },
        "cache": _cache(conn),
        "wal": _wal(conn),
        "statements": _statements_block(conn, statement_limit),
        "integrity": integrity(conn, server),
    }


def latest(conn: psycopg.Connection[Any], server: str) -> Snapshot | None:
    """``server``'s newest stored snapshot."""
    row = conn.execute(
        "SELECT id, taken_at, metrics FROM ops.metric_snapshots WHERE server = %s "
        "ORDER BY taken_at DESC, id DESC LIMIT 1",
        (server,),
    ).fetchone()
    return Snapshot(int(row[0]), row[1], dict(row[2])) if row else None


def store(conn: psycopg.Connection[Any], metrics: dict[str, Any], server: str) -> Snapshot:
    """Add WAL since ``server``'s previous snapshot and insert the metrics into
    ops.metric_snapshots, tagged with ``server``."""
    previous = latest(conn, server)
    wal = metrics["wal"]
    wal["since_previous_bytes"] = None
    wal["previous_taken_at"] = None
    if previous is not None:
        before = previous.metrics.get("wal", {}).get("lsn_bytes")
        if isinstance(before, int) and wal["lsn_bytes"] >= before:
            wal["since_previous_bytes"] = wal["lsn_bytes"] - before
            wal["previous_taken_at"] = previous.taken_at.isoformat()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO ops.metric_snapshots (taken_at, metrics, server) VALUES (%s, %s, %s) "
            "RETURNING id, taken_at",
            (metrics["taken_at"], json.dumps(metrics, default=str), server),
        ).fetchone()
    assert row is not None
    return Snapshot(int(row[0]), row[1], metrics)


def take_snapshot(settings: Settings, *, save: bool = True) -> Snapshot:
    """Collect the metrics and (unless ``save`` is false) store them in ops.metric_snapshots."""
    slow_ms = settings.alerts.query_time.warning.timedelta.total_seconds() * 1000
    with database_errors("metrics snapshot failed"), connect(settings) as conn:
        metrics = collect(conn, server=settings.server, slow_ms=slow_ms)
        if save:
            return store(conn, metrics, settings.server)
        return Snapshot(None, datetime.fromisoformat(metrics["taken_at"]).astimezone(UTC), metrics)


def history(
    conn: psycopg.Connection[Any], server: str, days: float = 365
) -> list[tuple[datetime, int]]:
    """(taken_at, total database bytes) of ``server``'s stored snapshots of the last ``days``,
    oldest first."""
    rows = conn.execute(
        "SELECT taken_at, (metrics -> 'database' ->> 'total_bytes')::bigint "
        "FROM ops.metric_snapshots WHERE server = %s "
        "AND taken_at > now() - make_interval(secs => %s) "
        "AND metrics ? 'database' ORDER BY taken_at",
        (server, days * 86400),
    ).fetchall()
    return [(r[0], int(r[1])) for r in rows if r[1] is not None]


EXPLAIN = sql.SQL("EXPLAIN {options}{statement}")
EXPLAIN_ANALYZE = sql.SQL("(ANALYZE, BUFFERS) ")
EXPLAIN_GENERIC = sql.SQL("(GENERIC_PLAN) ")
EXPLAINABLE = ("select", "with", "insert", "update", "delete", "merge", "values", "table")


def explain(
    conn: psycopg.Connection[Any], query: str, *, analyze: bool = False, timeout: str = "30s"
) -> str:
    """The plan of a (normalised) statement, in a read-only transaction that is rolled back.

    Statements with ``$n`` placeholders get PostgreSQL's generic plan (``GENERIC_PLAN``, 16+);
    ``analyze`` executes the statement (only without placeholders) and is refused for
    statements that write. Utility statements have no plan: a line says so.
    """
    first = query.lstrip().split(None, 1)[0].lower() if query.strip() else ""
    if first not in EXPLAINABLE or query.startswith("[hidden"):
        return f"(no plan: {first.upper() or 'empty'} statements cannot be explained)"
    generic = "$1" in query
    if analyze and (generic or first not in ("select", "values", "table")):
        return "(EXPLAIN ANALYZE is offered only for read-only statements without parameters)"
    options = EXPLAIN_ANALYZE if analyze else EXPLAIN_GENERIC if generic else sql.SQL("")
    # the statement is SQL text by nature (pg_stat_statements' own), explained, never formatted
    statement = EXPLAIN.format(options=options, statement=sql.SQL(query))
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
            rows = conn.execute(statement).fetchall()
    except psycopg.Error as exc:
        return f"(no plan: {str(exc).strip().splitlines()[0]})"
    return "\n".join(str(r[0]) for r in rows)


def statement_text(conn: psycopg.Connection[Any], queryid: str) -> str | None:
    """The full normalised text of one statement (None if unknown or hidden)."""
    row = conn.execute(
        "SELECT query FROM pg_stat_statements WHERE queryid::text = %s LIMIT 1", (queryid,)
    ).fetchone()
    if row is None or "password" in str(row[0]).lower():
        return None
    return str(row[0])
