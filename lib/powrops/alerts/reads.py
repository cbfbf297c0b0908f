"""Every figure the alert checks judge, read in one statement.

Read one query at a time, the checks cost a round trip and a transaction each: over a hundred
statements a run. :func:`read_all` first asks, in one small statement (``PROBE_SQL``), what
this role may read, then reads every part it may in one statement: a JSON object holding, per
part, the rows of the query its check would run alone (the check's own SQL, composed with
``psycopg.sql``). The checks judge those rows. A part the role may not read is left out, and
its check reads it alone as before and reports the refusal as it always did
(``privileges.guarded``: UNKNOWN, naming the GRANT); when the statement fails as a whole (a
server refusing what the probe allowed), every check reads alone.

What the statement reads are catalog views and cumulative statistics (and the size of the few
files below), so its time follows neither the rows of the data nor, beyond one pass over the
catalogs, the number of tables:

* tables, indexes and the database (the ``total_bytes`` figure) are sized by
  ``pg_class.relpages``, the pages the last VACUUM or ANALYZE counted (autovacuum keeps them
  current), not by ``pg_relation_size`` or ``pg_database_size``, which open every relation
  or stat every file; dead and live tuples are the cumulative statistics'. Only the tables
  and indexes a check can flag come back (:data:`TABLES_SQL`, :data:`INDEXES_SQL`), with the
  dead and live tuples of all;
* but relpages is 0 until something counts a table (on PostgreSQL 14 and later its reltuples
  is -1 until then): a freshly bulk-loaded table, or any table with autovacuum off, would pass
  every size check unseen. The planner meets the same gap and measures the file
  (``RelationGetNumberOfBlocks``) when relpages is 0; so does :data:`SIZE_SQL`, for those
  relations only. A table the statistics never counted (relpages 0 or reltuples -1) into which
  the cumulative statistics say rows went (``pg_stat_get_tuples_inserted``), its TOAST table
  alike, and its indexes (whose relpages went stale with it) are measured with
  ``pg_relation_size``, the main fork relpages counts. Only the few tables being loaded and
  never analyzed are measured, not the empty tables every schema has (never counted either,
  but with nothing inserted). The sizes match what check_postgres and postgres_exporter report
  (they call ``pg_relation_size`` / ``pg_total_relation_size`` on every relation): such a
  table is judged by the same limits as any other and its bytes are in ``total_bytes``,
  rather than named in a finding that only says its size is unknown;
* a measurement never waits for a lock: ``pg_relation_size`` takes an ACCESS SHARE lock
  (``try_relation_open``, released on return), which waits behind an ACCESS EXCLUSIVE one (a
  TRUNCATE and reload, an ALTER TABLE, a VACUUM FULL), and SQL offers no NOWAIT for it (nor can
  one statement set a ``lock_timeout`` for itself without failing whole). So a relation on
  which the lock table (``pg_lock_status()``, what ``pg_locks`` shows) has an ACCESS EXCLUSIVE
  lock held or awaited is not measured that run: relpages stands, a later run measures it.
  Each place that measures (:data:`MEASURED_SQL`: the heaps, the TOAST tables, the indexes,
  the database) reads the lock table once, when it meets its first relation to measure;
* what stays unseen: a lock asked for in the milliseconds between that read and the
  measurement can still hold the statement up; a table whose inserts the cumulative
  statistics do not know (after ``pg_stat_reset()`` or a crash, which drop them, or on a
  standby, which keeps none of a table's inserts) stays unmeasured until something counts it;
  and a stale non-zero relpages is taken as it is;
* the bloat estimates read ``pg_stats`` only for the relations big enough to reach their
  warning threshold (``server_checks.TABLE_BLOAT_SQL``), and are not even planned when the
  probe finds no such relation (their rows are then known to be none). The probe goes by
  relpages alone, rightly: an estimate needs what ANALYZE gathers (reltuples, ``pg_stats``),
  so a table it never counted has none to give whatever its size.

Only reads: the statement is one SELECT. The state a run keeps (``alert_state``) is read with
it; what a run writes (its state, ``ops.check_runs``) is written apart, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from powrops.alerts import intervals, peer_checks, recoverability, server_checks
from powrops.alerts import state as alert_state
from powrops.config import Settings
from powrops.metrics.snapshot import SYSTEM_SCHEMAS
from powrops.pg import catalog, control
from powrops.verify.freshness import ARCHIVER_SQL

#: What this role may read, one boolean per column (NULL: the object is missing), and
#: whether a relation may be big enough for a bloat estimate, from one pass over pg_class:
#: a table whose heap and TOAST reach {table_bloat} needs the largest heap and the largest
#: TOAST to reach it together; a B-tree index must reach {index_bloat}.
PROBE_SQL = sql.SQL("""
SELECT pg_has_role('pg_read_all_stats', 'USAGE') AS sessions,
       pg_has_role('pg_read_all_settings', 'USAGE') AS settings,
       has_function_privilege('pg_ls_waldir()', 'EXECUTE') AS waldir,
       has_function_privilege('pg_ls_archive_statusdir()', 'EXECUTE') AS archive_status,
       ({control}) AS control,
       EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements')
         AND current_setting('pg_stat_statements.max', true) IS NOT NULL AS statements,
       CASE WHEN ops THEN has_table_privilege(to_regclass('ops.events'), 'SELECT')
              AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ops.events')
                          AND attname = 'server' AND NOT attisdropped) END AS drills,
       CASE WHEN ops THEN has_table_privilege(to_regclass('ops.alert_state'), 'SELECT')
            END AS alert_state,
       (heap + toast) * current_setting('block_size')::bigint >= {table_bloat} AS big_tables,
       btree * current_setting('block_size')::bigint >= {index_bloat} AS big_indexes
FROM (SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'ops'
                     AND has_schema_privilege(oid, 'USAGE')) AS ops) AS s,
     (SELECT coalesce(max(c.relpages) FILTER (WHERE c.relkind IN ('r', 'm')), 0)::bigint AS heap,
             coalesce(max(c.relpages) FILTER (WHERE c.relkind = 't'), 0)::bigint AS toast,
             coalesce(max(c.relpages) FILTER (WHERE c.relkind = 'i' AND a.amname = 'btree'),
                      0)::bigint AS btree
      FROM pg_class c LEFT JOIN pg_am a ON a.oid = c.relam) AS pages
""")

#: Whether the statistics never counted the table {owner} (relpages 0, or reltuples -1 on
#: PostgreSQL 14 and later) though the cumulative statistics say rows went into it.
UNCOUNTED_SQL = sql.SQL("""(({owner}.relpages = 0 OR {owner}.reltuples < 0)
  AND pg_stat_get_tuples_inserted({owner}.oid) > 0)""")

#: The bytes of the main fork of {rel} measured, or NULL when an ACCESS EXCLUSIVE lock is
#: held or awaited on it (``pg_relation_size`` would wait behind it; see the docstring).
MEASURED_SQL = sql.SQL("""CASE WHEN {rel}.oid NOT IN (
  SELECT relation FROM pg_lock_status()
  WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock') THEN pg_relation_size({rel}.oid)
END""")

#: The bytes of {rel}: its pages as the statistics counted them, or measured when they never
#: counted its table {owner} (the table itself, or an index's table).
SIZE_SQL = sql.SQL("""CASE WHEN {uncounted} THEN coalesce({measured}, {pages}) ELSE {pages} END""")

#: The bytes the statistics counted of {rel}.
PAGES_SQL = sql.SQL("{rel}.relpages::bigint * current_setting('block_size')::bigint")

#: The dead and live tuples of every table, and the tables a check can flag: those from
#: ``alerts.dead_tuples_min_size`` (dead tuples) or over ``maintenance.alerts.table_size``,
#: sized as :data:`SIZE_SQL` says.
TABLES_SQL = sql.SQL("""
SELECT coalesce(sum(live_tuples), 0)::bigint AS live,
       coalesce(sum(dead_tuples), 0)::bigint AS dead,
       coalesce(json_agg(t ORDER BY table_bytes DESC, schema, "table")
                FILTER (WHERE table_bytes >= {judged} OR table_bytes + toast_bytes > {over}),
                '[]') AS tables
FROM (
  SELECT n.nspname AS schema, c.relname AS table, {table_bytes} AS table_bytes,
         coalesce({toast_bytes}, 0) AS toast_bytes,
         pg_stat_get_live_tuples(c.oid) AS live_tuples,
         pg_stat_get_dead_tuples(c.oid) AS dead_tuples
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
  WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname <> ALL({system})
    AND n.nspname NOT LIKE 'pg_temp%'
) AS t
""")

#: The indexes over ``maintenance.alerts.index_size``, sized as :data:`SIZE_SQL` says: those
#: the statistics count over it, and those of the tables they never counted (two branches,
#: so that each reads pg_class by what narrows it: relpages, or the tables never counted).
INDEXES_SQL = sql.SQL("""
SELECT * FROM ({over_pages} UNION ALL {uncounted}) AS i
WHERE bytes > {over}
ORDER BY bytes DESC, schema, index
""")

#: The indexes of :data:`INDEXES_SQL` on the tables {tables} whose own row meets {where}.
INDEX_ROWS_SQL = sql.SQL("""
SELECT n.nspname AS schema, t.relname AS table, c.relname AS index, {bytes} AS bytes
FROM {tables} AS t
JOIN pg_index i ON i.indrelid = t.oid
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname <> ALL({system}) AND n.nspname NOT LIKE 'pg_temp%' AND {where}
""")

#: The tables the statistics never counted that rows went into (fenced by OFFSET 0, so that
#: the few of them lead the join to their indexes).
UNCOUNTED_TABLES_SQL = sql.SQL("""(SELECT * FROM pg_class o
  WHERE o.relkind IN ('r', 'm') AND {uncounted} OFFSET 0)""")

#: The database's size: the pages the statistics counted, and what the tables they never
#: counted (``o``) and their indexes measure beyond (as :data:`SIZE_SQL` says).
DATABASE_SQL = sql.SQL("""
SELECT sum(relpages)::bigint * current_setting('block_size')::bigint
       + coalesce((SELECT sum({measured} - {pages})
                   FROM pg_class o
                   CROSS JOIN LATERAL (SELECT o.oid UNION ALL
                                       SELECT indexrelid FROM pg_index WHERE indrelid = o.oid)
                     AS r (oid)
                   JOIN pg_class m ON m.oid = r.oid
                   WHERE o.relkind IN ('r', 'm', 't') AND {uncounted}), 0) AS total_bytes
FROM pg_class
""")

#: Where the server keeps its data (for ``disk_usage`` on this host).
DATA_DIRECTORY_SQL = "SELECT current_setting('data_directory') AS data_directory"

#: Every database's size (``disk_usage`` against ``alerts.disk_capacity``).
DATABASES_SIZE_SQL = "SELECT sum(pg_database_size(oid))::bigint AS bytes FROM pg_database"

ONE_PART = sql.SQL("(SELECT coalesce(json_agg(q), '[]') FROM ({query}) AS q{columns})")
STATEMENT = sql.SQL("SELECT json_build_object({parts})")
#: json_build_object takes at most 100 arguments: 50 parts a statement.
MAX_PARTS = 50


@dataclass(frozen=True)
class Part:
    """One query of the statement: its rows come back as dicts, or as tuples when
    ``columns`` (its column count) is given; ``times`` are its timestamptz columns (strings
    in JSON, datetimes again here); ``needs`` the probe's column that must be true for the
    role to read it; ``when`` the probe's column without which it has no rows (not read)."""

    query: catalog.Query
    needs: str | None = None
    columns: int = 0
    times: tuple[str, ...] = ()
    when: str | None = None  # the probe's column that says the rows can be other than none


def data_parts(settings: Settings) -> dict[str, Part]:
    """The tables, indexes and database size (what ``metrics.collect`` gives otherwise)."""
    system = sql.Literal(list(SYSTEM_SCHEMAS))
    limits = settings.maintenance.alerts
    judged = sql.Literal(settings.alerts.dead_tuples_min_size.bytes)
    over = sql.Literal(limits.table_size.bytes)
    tables = TABLES_SQL.format(
        system=system, judged=judged, over=over,
        table_bytes=sized("c", "c"), toast_bytes=sized("t", "t"),
    )  # fmt: skip
    index_over = sql.Literal(limits.index_size.bytes)
    over_pages = sql.SQL("{} > {}").format(_alias(PAGES_SQL, "c"), index_over)
    uncounted = UNCOUNTED_TABLES_SQL.format(uncounted=_alias(UNCOUNTED_SQL, "o", "owner"))
    indexes = INDEXES_SQL.format(
        over=index_over,
        over_pages=_index_rows(system, sql.SQL("pg_class"), over_pages),
        uncounted=_index_rows(system, uncounted, sql.SQL("NOT {}").format(over_pages)),
    )  # fmt: skip
    database = DATABASE_SQL.format(
        measured=_alias(MEASURED_SQL, "m"), pages=_alias(PAGES_SQL, "m"),
        uncounted=_alias(UNCOUNTED_SQL, "o", "owner"),
    )  # fmt: skip
    return {"tables": Part(tables), "indexes": Part(indexes), "database": Part(database)}


def sized(rel: str, owner: str) -> sql.Composed:
    """:data:`SIZE_SQL` for the relation aliased ``rel``, its table aliased ``owner``."""
    return SIZE_SQL.format(
        uncounted=_alias(UNCOUNTED_SQL, owner, "owner"),
        measured=_alias(MEASURED_SQL, rel), pages=_alias(PAGES_SQL, rel),
    )  # fmt: skip


def _index_rows(
    system: sql.Composable, tables: sql.Composable, where: sql.Composable
) -> sql.Composed:
    return INDEX_ROWS_SQL.format(system=system, tables=tables, bytes=sized("c", "t"), where=where)


def _alias(query: sql.SQL, alias: str, name: str = "rel") -> sql.Composed:
    return query.format(**{name: sql.Identifier(alias)})


def check_parts(settings: Settings, version: int) -> dict[str, Part]:
    """Every other query the checks run, by the key their readers look up."""
    found = {
        key: Part(query, needs="sessions" if key in server_checks.SESSIONS else None)
        for key, query in server_checks.queries(settings, version).items()
    }
    found["bloat"] = replace(found["bloat"], when="big_tables")
    found["index_bloat"] = replace(found["index_bloat"], when="big_indexes")
    found["wal"] = Part(server_checks.WAL_SIZE_SQL, needs="waldir")
    found["archive_ready"] = Part(server_checks.ARCHIVE_READY_SQL, needs="archive_status")
    found["archiver"] = Part(ARCHIVER_SQL, columns=10, times=("c2", "c5"))
    found.update({key: Part(query) for key, query in peer_checks.QUERIES.items()})
    found["system_identifier"] = Part(peer_checks.SYSTEM_ID_SQL, needs="control")
    found["checksums"] = Part(peer_checks.CHECKSUMS_SQL, times=("last_failure",))
    found["read_only"] = Part(catalog.READ_ONLY_SQL, columns=3)
    found["data_directory"] = Part(DATA_DIRECTORY_SQL, needs="settings")
    if settings.alerts.disk_capacity is not None:  # a remote server's disk: every database
        found["databases_size"] = Part(DATABASES_SIZE_SQL, needs="sessions")
    found["statements"] = Part(intervals.baseline_query(settings), needs="statements")
    found["statements_reset"] = Part(intervals.RESET_SQL, needs="statements")
    drills = recoverability.drills_query(settings.server)
    found["drills"] = Part(drills, needs="drills", columns=2, times=("c0",))
    state = alert_state.load_query(settings, alert_state.BASELINE)
    found["state"] = Part(state, needs="alert_state")
    return found


def probe(conn: psycopg.Connection[Any], settings: Settings) -> dict[str, bool]:
    """What this role may read and which relations are big (``PROBE_SQL``), False for no."""
    query = PROBE_SQL.format(
        control=sql.SQL(control.MAY_READ_SQL),
        table_bloat=sql.Literal(settings.alerts.table_bloat.warning.bytes),
        index_bloat=sql.Literal(settings.alerts.index_bloat.warning.bytes),
    )
    rows = catalog.dict_rows(conn, query)
    return {key: bool(value) for key, value in rows[0].items()}


def read_all(
    conn: psycopg.Connection[Any], settings: Settings, *, data: bool = True
) -> dict[str, list[Any]]:
    """The rows of every part this role may read, by key, in one statement (with the
    tables and indexes unless ``data`` is false; a part the probe says has no rows is
    empty without reading); {} when the statement fails as a whole."""
    parts = {**(data_parts(settings) if data else {}),
             **check_parts(settings, conn.info.server_version)}  # fmt: skip
    try:
        allowed = probe(conn, settings)
        wanted = {k: p for k, p in parts.items() if p.needs is None or allowed.get(p.needs)}
        none: dict[str, list[Any]] = {
            k: [] for k, p in wanted.items() if p.when is not None and not allowed[p.when]
        }
        read = read_parts(conn, {k: p for k, p in wanted.items() if k not in none})
    except (psycopg.ProgrammingError, psycopg.OperationalError, psycopg.NotSupportedError):
        return {}
    return {**read, **none}


def read_parts(conn: psycopg.Connection[Any], parts: Mapping[str, Part]) -> dict[str, list[Any]]:
    """The rows of ``parts``, by key, read in one statement (one per MAX_PARTS parts)."""
    items = list(parts.items())
    read: dict[str, list[Any]] = {}
    for start in range(0, len(items), MAX_PARTS):
        read.update(_read_statement(conn, dict(items[start : start + MAX_PARTS])))
    return read


def _read_statement(
    conn: psycopg.Connection[Any], parts: Mapping[str, Part]
) -> dict[str, list[Any]]:
    pairs = [sql.SQL("{}, {}").format(sql.Literal(key), _subquery(part))
             for key, part in parts.items()]  # fmt: skip
    row = conn.execute(STATEMENT.format(parts=sql.SQL(", ").join(pairs))).fetchone()
    got: dict[str, Any] = row[0] if row else {}
    return {key: _rows(got.get(key) or [], part) for key, part in parts.items()}


def _subquery(part: Part) -> sql.Composed:
    query = part.query if isinstance(part.query, sql.Composable) else sql.SQL(part.query)
    names = [sql.Identifier(f"c{i}") for i in range(part.columns)]
    columns = sql.SQL("({})").format(sql.SQL(", ").join(names)) if names else sql.SQL("")
    return ONE_PART.format(query=query, columns=columns)


def _rows(rows: Iterable[dict[str, Any]], part: Part) -> list[Any]:
    out: list[Any] = []
    for row in rows:
        for key in part.times:
            row[key] = datetime.fromisoformat(row[key]) if row[key] is not None else None
        out.append(tuple(row.values()) if part.columns else row)
    return out


def alert_data(
    conn: psycopg.Connection[Any], settings: Settings, read: Mapping[str, list[Any]]
) -> dict[str, Any]:
    """The tables a check can flag, the indexes over their limit, the dead tuples of every
    table and the database size, from ``read`` (or read now, in one statement, when it does
    not hold them): the parts of ``metrics.collect``'s data the checks and figures use."""
    if "tables" not in read:
        read = read_parts(conn, data_parts(settings))
    totals = read["tables"][0]
    tables = [dict(row) for row in totals["tables"]]
    for table in tables:
        table["dead_ratio"] = _ratio(int(table["dead_tuples"] or 0), int(table["live_tuples"] or 0))
    live, dead = int(totals["live"]), int(totals["dead"])
    return {
        "tables": tables,
        "indexes": list(read["indexes"]),
        "dead_tuples": {"total": dead, "live": live, "ratio": _ratio(dead, live)},
        "database": {"total_bytes": int(read["database"][0]["total_bytes"])},
    }


def _ratio(dead: int, live: int) -> float:
    return dead / (live + dead) if live + dead else 0.0
