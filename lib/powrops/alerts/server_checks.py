"""The server checks a DBA expects from check_postgres or postgres_exporter, as findings.

Each check has its thresholds in ``alerts.*`` (defaults and their source in ``config.py``)
and advice naming the command or runbook that fixes it:

* ``wraparound`` — ``age(datfrozenxid)`` and ``mxid_age(datminmxid)`` of every database
  against ``autovacuum_freeze_max_age`` / ``autovacuum_multixact_freeze_max_age``;
* ``connections`` — client backends against ``max_connections`` less the reserved ones;
* ``blocked`` — sessions waiting on a lock another session holds (``pg_blocking_pids``), by
  how long they have waited (``pg_locks.waitstart``), naming the blocker;
* ``idle_in_transaction`` / ``long_transaction`` — open transactions by how long they have
  been idle / open (powrops' own sessions, ``application_name`` powrops, are left out of the
  long-transaction check: a nightly scan is expected to take a while);
* ``replication_slot`` — WAL a slot retains; an inactive slot is at least a WARNING;
* ``replication_lag`` — ``replay_lag`` of each standby in ``pg_stat_replication``;
* ``wal_size`` — the size of ``pg_wal`` against ``max_wal_size``;
* ``checkpoints`` — requested checkpoints in % of all checkpoints since the previous run;
* ``archive_ready`` — the ``.ready`` backlog in ``archive_status``; ``archive_failures`` —
  ``pg_stat_archiver.failed_count`` grown since the previous run, or failing now.

Reading (``read_server``) takes the rows ``reads.read_all`` read for every check in one
statement; what it did not read (the role may not) is read here on the autocommit connection,
each read in its own transaction: what the role may not read comes back as a ``Denied``
(``pg_ls_waldir`` needs ``pg_monitor``; other roles' sessions are hidden from a role without
``pg_read_all_stats``), and the checks judging it are UNKNOWN, naming the privilege and the
GRANT; the others are still evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from powrops.config import Settings, SizeThreshold
from powrops.findings import Finding, Severity, grade
from powrops.format import human_bytes, human_duration, human_time
from powrops.pg import catalog
from powrops.pg.privileges import Denied, guarded, lacking, readable
from powrops.verify.freshness import ArchiverState, archiver_from_row, archiver_state

WRAPAROUND_SQL = """
SELECT datname, age(datfrozenxid)::bigint AS xid_age, mxid_age(datminmxid)::bigint AS mxid_age,
       current_setting('autovacuum_freeze_max_age')::bigint AS xid_limit,
       current_setting('autovacuum_multixact_freeze_max_age')::bigint AS mxid_limit
FROM pg_database WHERE datallowconn ORDER BY datname
"""

OLDEST_TABLE_SQL = """
SELECT oid::regclass::text AS name, xid_age
FROM (SELECT c.oid, age(c.relfrozenxid)::bigint AS xid_age FROM pg_class c
      WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'::xid
      ORDER BY age(c.relfrozenxid) DESC LIMIT 1) AS oldest
"""

CONNECTIONS_SQL = """
SELECT count(*) FILTER (WHERE backend_type = 'client backend')::int AS used,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved
FROM pg_stat_activity
"""

BLOCKED_SQL = """
SELECT a.pid, a.usename, a.datname, pg_blocking_pids(a.pid) AS blockers,
       EXTRACT(epoch FROM clock_timestamp() - coalesce(
           (SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted),
           a.query_start))::float8 AS seconds
FROM pg_stat_activity a
WHERE a.wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(a.pid)) > 0
ORDER BY seconds DESC
"""

TRANSACTIONS_SQL = """
SELECT pid, usename, datname, application_name, state,
       EXTRACT(epoch FROM clock_timestamp() - xact_start)::float8 AS open_seconds,
       EXTRACT(epoch FROM clock_timestamp() - state_change)::float8 AS state_seconds
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_backend_pid()
ORDER BY xact_start
"""

RUNNING_SQL = sql.SQL("""
SELECT pid, query_id::text AS query_id, split_part(ltrim(query), ' ', 1) AS command,
       EXTRACT(epoch FROM clock_timestamp() - query_start)::float8 AS seconds
FROM pg_stat_activity
WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND query_start < clock_timestamp() - make_interval(secs => {min_seconds})
  AND application_name IS DISTINCT FROM {application}
ORDER BY query_start
""")
"""Statements running longer than ``min_seconds``, not powrops' own (``application``)."""

SLOTS_SQL = """
SELECT slot_name, slot_type, active, wal_status,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                            ELSE pg_current_wal_lsn() END, restart_lsn)::bigint AS retained
FROM pg_replication_slots ORDER BY slot_name
"""

REPLICATION_SQL = """
SELECT application_name, client_addr::text AS client_addr, state,
       EXTRACT(epoch FROM replay_lag)::float8 AS lag_seconds
FROM pg_stat_replication ORDER BY application_name
"""

WAL_SIZE_SQL = """
SELECT (SELECT coalesce(sum(size), 0)::bigint FROM pg_ls_waldir()) AS wal_bytes,
       pg_size_bytes(current_setting('max_wal_size')) AS max_wal_size
"""

ARCHIVE_READY_SQL = """
SELECT count(*)::int FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'
"""

# Table bloat from catalog statistics, as check_postgres and the widely used estimate of
# ioguix/pgsql-bloat-estimation do (no pgstattuple scan): the pages the table would need for
# reltuples rows of the average width pg_stats reports, at its fillfactor, against relpages.
# Tables whose statistics cannot say (a column without pg_stats, a name column) are left out.
# Only tables of at least {min_bytes} are estimated (a table smaller than the warning cannot
# waste that much), and pg_stats is looked up per column of those (LATERAL, OFFSET 0 keeps the
# lookup inside the loop), so the estimate reads the big tables' statistics alone.
TABLE_BLOAT_SQL = sql.SQL("""
SELECT schemaname, tblname, (bs * tblpages)::bigint AS real_bytes,
       greatest((tblpages - est_tblpages_ff) * bs, 0)::bigint AS bloat_bytes,
       CASE WHEN tblpages > 0 AND tblpages - est_tblpages_ff > 0
            THEN 100 * (tblpages - est_tblpages_ff) / tblpages::float8 ELSE 0 END AS bloat_pct
FROM (
  SELECT ceil(reltuples / ((bs - page_hdr) * fillfactor / (tpl_size * 100)))
         + ceil(toasttuples / 4) AS est_tblpages_ff,
         tblpages, bs, schemaname, tblname, is_na
  FROM (
    SELECT (4 + tpl_hdr_size + tpl_data_size + (2 * ma)
            - CASE WHEN tpl_hdr_size % ma = 0 THEN ma ELSE tpl_hdr_size % ma END
            - CASE WHEN ceil(tpl_data_size)::int % ma = 0 THEN ma
                   ELSE ceil(tpl_data_size)::int % ma END) AS tpl_size,
           heappages + toastpages AS tblpages, reltuples, toasttuples, bs, page_hdr,
           schemaname, tblname, fillfactor, is_na
    FROM (
      SELECT ns.nspname AS schemaname, tbl.relname AS tblname, tbl.reltuples,
             tbl.relpages AS heappages, coalesce(toast.relpages, 0) AS toastpages,
             coalesce(toast.reltuples, 0) AS toasttuples,
             coalesce(substring(array_to_string(tbl.reloptions, ' ')
                                FROM 'fillfactor=([0-9]+)')::smallint, 100) AS fillfactor,
             current_setting('block_size')::numeric AS bs, 8 AS ma, 24 AS page_hdr,
             23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0
                       THEN (7 + count(s.attname)) / 8 ELSE 0::int END AS tpl_hdr_size,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS tpl_data_size,
             bool_or(att.atttypid = 'pg_catalog.name'::regtype)
               OR sum(CASE WHEN att.attnum > 0 THEN 1 ELSE 0 END) <> count(s.attname) AS is_na
      FROM pg_attribute att
      JOIN pg_class tbl ON att.attrelid = tbl.oid
      JOIN pg_namespace ns ON ns.oid = tbl.relnamespace
      LEFT JOIN LATERAL (
        SELECT s.attname, s.null_frac, s.avg_width FROM pg_stats s
        WHERE s.schemaname = ns.nspname AND s.tablename = tbl.relname
          AND NOT s.inherited AND s.attname = att.attname
        OFFSET 0
      ) AS s ON true
      LEFT JOIN pg_class toast ON tbl.reltoastrelid = toast.oid
      WHERE NOT att.attisdropped AND att.attnum > 0 AND tbl.relkind IN ('r', 'm')
        AND ns.nspname NOT IN ('pg_catalog', 'information_schema')
        AND ns.nspname NOT LIKE 'pg_toast%%'
        AND (tbl.relpages + coalesce(toast.relpages, 0))::bigint
            * current_setting('block_size')::bigint >= {min_bytes}
      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ) AS s
  ) AS s2
) AS s3
WHERE NOT is_na AND tblpages > 0
ORDER BY bloat_bytes DESC
LIMIT 50
""")

# B-tree index bloat the same way (ioguix/pgsql-bloat-estimation's btree estimate): the leaf
# pages reltuples entries of the columns' average widths need at the index's fillfactor;
# only indexes of at least {min_bytes}, as the tables.
INDEX_BLOAT_SQL = sql.SQL("""
SELECT nspname AS schemaname, tblname, idxname, (bs * relpages)::bigint AS real_bytes,
       greatest(bs * (relpages - est_pages_ff), 0)::bigint AS bloat_bytes,
       CASE WHEN relpages > 0 AND relpages - est_pages_ff > 0
            THEN 100 * (relpages - est_pages_ff)::float8 / relpages ELSE 0 END AS bloat_pct
FROM (
  SELECT coalesce(1 + ceil(reltuples / floor((bs - pageopqdata - pagehdr) * fillfactor
                                             / (100 * (4 + nulldatahdrwidth)::float8))), 0)
           AS est_pages_ff,
         bs, nspname, tblname, idxname, relpages, is_na
  FROM (
    SELECT bs, nspname, tblname, idxname, reltuples, relpages, fillfactor, pagehdr, pageopqdata,
           is_na,
           (index_tuple_hdr_bm + maxalign
            - CASE WHEN index_tuple_hdr_bm % maxalign = 0 THEN maxalign
                   ELSE index_tuple_hdr_bm % maxalign END
            + nulldatawidth + maxalign
            - CASE WHEN nulldatawidth = 0 THEN 0
                   WHEN nulldatawidth::int % maxalign = 0 THEN maxalign
                   ELSE nulldatawidth::int % maxalign END)::numeric AS nulldatahdrwidth
    FROM (
      SELECT n.nspname, i.tblname, i.idxname, i.reltuples, i.relpages, i.fillfactor,
             current_setting('block_size')::numeric AS bs, 8 AS maxalign, 24 AS pagehdr,
             16 AS pageopqdata,
             CASE WHEN max(coalesce(s.null_frac, 0)) = 0 THEN 8 ELSE 8 + ((32 + 8 - 1) / 8) END
               AS index_tuple_hdr_bm,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 1024)) AS nulldatawidth,
             max(CASE WHEN i.atttypid = 'pg_catalog.name'::regtype THEN 1 ELSE 0 END) > 0
               AS is_na
      FROM (
        SELECT ct.relname AS tblname, ct.relnamespace, ic.idxname, ic.reltuples, ic.relpages,
               ic.fillfactor, coalesce(a1.attname, a2.attname) AS attname,
               coalesce(a1.atttypid, a2.atttypid) AS atttypid,
               CASE WHEN a1.attnum IS NULL THEN ic.idxname ELSE ct.relname END AS attrelname
        FROM (
          SELECT idxname, reltuples, relpages, tbloid, idxoid, fillfactor, indkey,
                 generate_series(1, indnatts) AS attpos
          FROM (
            SELECT ci.relname AS idxname, ci.reltuples, ci.relpages, i.indrelid AS tbloid,
                   i.indexrelid AS idxoid,
                   coalesce(substring(array_to_string(ci.reloptions, ' ')
                                      FROM 'fillfactor=([0-9]+)')::smallint, 90) AS fillfactor,
                   i.indnatts,
                   string_to_array(textin(int2vectorout(i.indkey)), ' ')::int[] AS indkey
            FROM pg_index i
            JOIN pg_class ci ON ci.oid = i.indexrelid
            WHERE ci.relam = (SELECT oid FROM pg_am WHERE amname = 'btree') AND ci.relpages > 0
              AND ci.relpages::bigint * current_setting('block_size')::bigint >= {min_bytes}
          ) AS idx_data
        ) AS ic
        JOIN pg_class ct ON ct.oid = ic.tbloid
        LEFT JOIN pg_attribute a1 ON ic.indkey[ic.attpos] <> 0 AND a1.attrelid = ic.tbloid
                                 AND a1.attnum = ic.indkey[ic.attpos]
        LEFT JOIN pg_attribute a2 ON ic.indkey[ic.attpos] = 0 AND a2.attrelid = ic.idxoid
                                 AND a2.attnum = ic.attpos
      ) i
      JOIN pg_namespace n ON n.oid = i.relnamespace
      JOIN LATERAL (
        SELECT s.null_frac, s.avg_width FROM pg_stats s
        WHERE s.schemaname = n.nspname AND s.tablename = i.attrelname AND s.attname = i.attname
        OFFSET 0
      ) AS s ON true
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ) AS rows_data_stats
  ) AS rows_hdr_pdg_stats
) AS relation_stats
WHERE NOT is_na
ORDER BY bloat_bytes DESC
LIMIT 50
""")

CHECKPOINTS_SQL = {  # pg_stat_checkpointer from PostgreSQL 17, pg_stat_bgwriter before
    True: "SELECT num_timed::bigint AS timed, num_requested::bigint AS requested "
    "FROM pg_stat_checkpointer",
    False: "SELECT checkpoints_timed::bigint AS timed, checkpoints_req::bigint AS requested "
    "FROM pg_stat_bgwriter",
}


def table_bloat_query(min_bytes: int) -> sql.Composed:
    """``TABLE_BLOAT_SQL`` for the tables of at least ``min_bytes``."""
    return TABLE_BLOAT_SQL.format(min_bytes=sql.Literal(min_bytes))


def index_bloat_query(min_bytes: int) -> sql.Composed:
    """``INDEX_BLOAT_SQL`` for the B-tree indexes of at least ``min_bytes``."""
    return INDEX_BLOAT_SQL.format(min_bytes=sql.Literal(min_bytes))


def running_query(min_seconds: float, application: str) -> sql.Composed:
    return RUNNING_SQL.format(min_seconds=sql.Literal(min_seconds),
                              application=sql.Literal(application))  # fmt: skip


def queries(settings: Settings, version: int) -> dict[str, catalog.Query]:
    """What ``read_server`` reads, by the key of its figure (``reads.read_all`` reads them all
    in one statement; ``archiver`` is ``freshness.ARCHIVER_SQL``, read apart)."""
    warn_s = settings.alerts.query_time.warning.timedelta.total_seconds()
    return {
        "databases": WRAPAROUND_SQL,
        "oldest_table": OLDEST_TABLE_SQL,
        "connections": CONNECTIONS_SQL,
        "blocked": BLOCKED_SQL,
        "transactions": TRANSACTIONS_SQL,
        "running": running_query(warn_s, settings.database.application_name),
        "slots": SLOTS_SQL,
        "replication": REPLICATION_SQL,
        "wal": WAL_SIZE_SQL,
        "archive_ready": ARCHIVE_READY_SQL,
        "checkpoints": CHECKPOINTS_SQL[version >= 170000],
        "bloat": table_bloat_query(settings.alerts.table_bloat.warning.bytes),
        "index_bloat": index_bloat_query(settings.alerts.index_bloat.warning.bytes),
    }


#: The figures read from pg_stat_activity: hidden from a role without pg_read_all_stats.
SESSIONS = ("connections", "blocked", "transactions", "running")

Rows = list[dict[str, Any]]
#: What pg_stat_activity hides from a role without pg_read_all_stats.
HIDDEN_SESSIONS = "other roles' sessions are hidden in pg_stat_activity (no state, no times)"


def _rows(conn: psycopg.Connection[Any], query: catalog.Query) -> Rows | Denied | None:
    """Rows of ``query``; Denied when this role may not read them; None when this server
    has no such function."""
    try:
        return guarded(conn, lambda: catalog.dict_rows(conn, query))
    except psycopg.errors.UndefinedFunction:
        return None


def _first(rows: Rows | Denied | None) -> dict[str, Any] | Denied | None:
    return rows if isinstance(rows, Denied) else rows[0] if rows else None


def _sessions(conn: psycopg.Connection[Any], query: catalog.Query) -> Rows | Denied:
    """Rows of a pg_stat_activity query, or Denied when other roles' sessions are hidden."""
    hidden = lacking(conn, "pg_read_all_stats", HIDDEN_SESSIONS)
    rows = hidden or _rows(conn, query)
    return [] if rows is None else rows


def read_server(
    conn: psycopg.Connection[Any], settings: Settings, read: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every figure the checks judge, read now (Denied for what this role cannot read):
    the rows ``read`` holds (``reads.read_all``), the others read here one by one."""
    got = read or {}
    sql_of = queries(settings, conn.info.server_version)

    def rows(key: str) -> Rows | Denied | None:
        if key in got:
            return list(got[key])
        return (_sessions if key in SESSIONS else _rows)(conn, sql_of[key])

    ready = rows("archive_ready")
    archiver = got.get("archiver")
    return {
        "databases": rows("databases") or [],
        "oldest_table": _first(rows("oldest_table")),
        "connections": _first(rows("connections")),
        "blocked": rows("blocked") or [],
        "transactions": rows("transactions") or [],
        "slots": rows("slots") or [],
        "replication": rows("replication") or [],
        "wal": _first(rows("wal")),
        "archive_ready": ready if not isinstance(ready, list) else int(ready[0]["count"]),
        "archiver": archiver_from_row(archiver[0])
        if archiver
        else guarded(conn, lambda: archiver_state(conn)),
        "checkpoints": _first(rows("checkpoints")),
        "bloat": rows("bloat"),
        "index_bloat": rows("index_bloat"),
    }


# --- pure judgements -------------------------------------------------------------------------


def wraparound_findings(
    databases: Sequence[dict[str, Any]] | Denied,
    oldest: dict[str, Any] | Denied | None,
    settings: Settings,
) -> list[Finding]:
    if isinstance(databases, Denied):
        return [databases.finding("wraparound")]
    oldest = readable(oldest)
    thr = settings.alerts.wraparound
    expected = f"< {thr.warning:g} % of autovacuum_*freeze_max_age (critical at {thr.critical:g} %)"
    found = []
    for db in databases:
        for kind, age_key, limit_key in (
            ("xid", "xid_age", "xid_limit"),
            ("multixact", "mxid_age", "mxid_limit"),
        ):
            age, limit = int(db[age_key]), int(db[limit_key])
            pct = round(100.0 * age / limit, 3)
            severity = grade(pct, thr.warning, thr.critical)
            if severity == Severity.OK:
                continue
            table = f" (oldest table here: {oldest['name']})" if oldest and kind == "xid" else ""
            found.append(
                Finding(
                    "wraparound",
                    severity,
                    f"{kind} age {age:,} is {pct:g} % of {limit_key.replace('_limit', '')} "
                    f"freeze limit {limit:,}{table}",
                    object=str(db["datname"]),
                    value=pct,
                    expected=expected,
                    advice=f"VACUUM (FREEZE, VERBOSE) in database {db['datname']} (oldest tables "
                    "first: powrops maintenance vacuum); look for long transactions and "
                    "inactive replication slots holding the horizon back",
                    details={"kind": kind, "age": age, "limit": limit},
                )
            )
    if found:
        return found
    worst = max((int(d["xid_age"]) for d in databases), default=0)
    return [
        Finding(
            "wraparound",
            Severity.OK,
            f"every database under {thr.warning:g} % of the freeze limits "
            f"(oldest xid age {worst:,})",
            value=worst,
            expected=expected,
        )
    ]


def connection_findings(row: dict[str, Any] | Denied | None, settings: Settings) -> list[Finding]:
    if isinstance(row, Denied):
        return [row.finding("connections")]
    thr = settings.alerts.connections
    expected = f"< {thr.warning:g} % (critical at {thr.critical:g} %)"
    if row is None:
        return [Finding("connections", Severity.UNKNOWN, "pg_stat_activity unreadable")]
    usable = max(int(row["max_connections"]) - int(row["reserved"]), 1)
    used = int(row["used"])
    pct = round(100.0 * used / usable, 1)
    severity = grade(pct, thr.warning, thr.critical)
    return [
        Finding(
            "connections",
            severity,
            f"{used} of {usable} client connections in use ({pct:g} %)",
            value=pct,
            expected=expected,
            advice=None
            if severity == Severity.OK
            else "find who holds them (SELECT usename, application_name, state, count(*) FROM "
            "pg_stat_activity GROUP BY 1, 2, 3); put a pooler (PgBouncer) in front or raise "
            "max_connections (restart)",
            details={"used": used, "usable": usable},
        )
    ]


def blocked_findings(rows: Sequence[dict[str, Any]] | Denied, settings: Settings) -> list[Finding]:
    if isinstance(rows, Denied):
        return [rows.finding("blocked")]
    thr = settings.alerts.blocked
    warn, crit = thr.seconds
    found = []
    for row in rows:
        seconds = float(row["seconds"] or 0)
        severity = grade(seconds, warn, crit)
        if severity == Severity.OK:
            continue
        blockers = ", ".join(str(p) for p in row["blockers"])
        found.append(
            Finding(
                "blocked",
                severity,
                f"pid {row['pid']} ({row['usename']}) has waited {human_duration(seconds)} "
                f"for a lock held by pid {blockers}",
                object=f"pid {row['pid']}",
                value=round(seconds, 1),
                expected=f"< {thr.warning} (critical at {thr.critical})",
                advice=f"follow runbooks/performance_response (blocking chains); end the blocker "
                f"if it must stop: SELECT pg_terminate_backend({row['blockers'][0]})",
                details={"blockers": list(row["blockers"]), "database": row["datname"]},
            )
        )
    return found or [
        Finding("blocked", Severity.OK, f"no session blocked longer than {thr.warning}")
    ]


def transaction_findings(
    rows: Sequence[dict[str, Any]] | Denied, settings: Settings
) -> list[Finding]:
    if isinstance(rows, Denied):
        return [rows.finding("idle_in_transaction"), rows.finding("long_transaction")]
    idle_thr, long_thr = settings.alerts.idle_in_transaction, settings.alerts.long_transaction
    own = settings.database.application_name
    found: list[Finding] = []
    idle_found: list[Finding] = []
    for row in rows:
        state = str(row["state"] or "")
        if state.startswith("idle in transaction"):
            seconds = float(row["state_seconds"] or 0)
            severity = grade(seconds, *idle_thr.seconds)
            if severity != Severity.OK:
                idle_found.append(
                    Finding(
                        "idle_in_transaction",
                        severity,
                        f"pid {row['pid']} ({row['usename']}, {row['application_name'] or '-'})"
                        f" {state} for {human_duration(seconds)}",
                        object=f"pid {row['pid']}",
                        value=round(seconds, 1),
                        expected=f"< {idle_thr.warning} (critical at {idle_thr.critical})",
                        advice=f"fix the application's transaction handling; end it: SELECT "
                        f"pg_terminate_backend({row['pid']}); set "
                        "idle_in_transaction_session_timeout",
                        details={"database": row["datname"]},
                    )
                )
        if row["application_name"] == own:
            continue
        seconds = float(row["open_seconds"] or 0)
        severity = grade(seconds, *long_thr.seconds)
        if severity != Severity.OK:
            found.append(
                Finding(
                    "long_transaction",
                    severity,
                    f"pid {row['pid']} ({row['usename']}) has had a transaction open for "
                    f"{human_duration(seconds)} ({state})",
                    object=f"pid {row['pid']}",
                    value=round(seconds, 1),
                    expected=f"< {long_thr.warning} (critical at {long_thr.critical})",
                    advice="it holds back VACUUM (dead tuples, wraparound): see "
                    "runbooks/performance_response; SELECT pg_cancel_backend(pid) or "
                    "pg_terminate_backend(pid) if it must stop",
                    details={"database": row["datname"]},
                )
            )
    return [
        *(
            idle_found
            or [
                Finding(
                    "idle_in_transaction",
                    Severity.OK,
                    f"no session idle in transaction for {idle_thr.warning}",
                )
            ]
        ),
        *(
            found
            or [
                Finding(
                    "long_transaction", Severity.OK, f"no transaction open for {long_thr.warning}"
                )
            ]
        ),
    ]


def slot_findings(rows: Sequence[dict[str, Any]] | Denied, settings: Settings) -> list[Finding]:
    if isinstance(rows, Denied):
        return [rows.finding("replication_slot")]
    thr = settings.alerts.slot_retained_wal
    found = []
    for row in rows:
        retained = int(row["retained"] or 0)
        severity = grade(retained, thr.warning.bytes, thr.critical.bytes)
        if not row["active"]:
            severity = max(severity, Severity.WARNING, key=lambda s: s.rank)
        if row.get("wal_status") == "lost":
            severity = Severity.CRITICAL
        if severity == Severity.OK:
            continue
        state = "inactive" if not row["active"] else "active"
        found.append(
            Finding(
                "replication_slot",
                severity,
                f"{state} {row['slot_type']} slot retains {human_bytes(retained)} of WAL "
                f"(wal_status {row.get('wal_status')})",
                object=str(row["slot_name"]),
                value=retained,
                expected=f"active, < {thr.warning} retained (critical at {thr.critical})",
                advice="reconnect its consumer, or if it is abandoned drop it: SELECT "
                f"pg_drop_replication_slot('{row['slot_name']}') "
                "(runbooks/disk_space_response)",
                details={"active": bool(row["active"])},
            )
        )
    return found or [
        Finding(
            "replication_slot",
            Severity.OK,
            f"{len(rows)} slot(s), all active and under {thr.warning}",
        )
    ]


def replication_findings(
    rows: Sequence[dict[str, Any]] | Denied, settings: Settings
) -> list[Finding]:
    if isinstance(rows, Denied):
        return [rows.finding("replication_lag")]
    thr = settings.alerts.replication_lag
    found = []
    for row in rows:
        lag = float(row["lag_seconds"] or 0)
        severity = grade(lag, *thr.seconds)
        if severity != Severity.OK:
            found.append(
                Finding(
                    "replication_lag",
                    severity,
                    f"standby {row['application_name']} replays {human_duration(lag)} behind",
                    object=str(row["application_name"] or row["client_addr"]),
                    value=round(lag, 1),
                    expected=f"< {thr.warning} (critical at {thr.critical})",
                    advice="check the standby's disk and network; pg_stat_replication's "
                    "write/flush/replay lag shows where it falls behind",
                )
            )
    return found or [
        Finding(
            "replication_lag", Severity.OK, f"{len(rows)} standby(s), none behind {thr.warning}"
        )
    ]


def wal_size_findings(row: dict[str, Any] | Denied | None, settings: Settings) -> list[Finding]:
    thr = settings.alerts.wal_size
    expected = f"< {thr.warning:g} % of max_wal_size (critical at {thr.critical:g} %)"
    if isinstance(row, Denied):
        return [row.finding("wal_size")]
    if row is None:
        return [Finding("wal_size", Severity.UNKNOWN, "pg_wal size unreadable", expected=expected)]
    size, limit = int(row["wal_bytes"]), int(row["max_wal_size"])
    pct = round(100.0 * size / limit, 1)
    severity = grade(pct, thr.warning, thr.critical)
    return [
        Finding(
            "wal_size",
            severity,
            f"pg_wal holds {human_bytes(size)} ({pct:g} % of max_wal_size {human_bytes(limit)})",
            value=size,
            expected=expected,
            advice=None
            if severity == Severity.OK
            else "find what holds WAL: the archiver (archive_failures, archive_ready), "
            "replication slots, wal_keep_size; runbooks/disk_space_response",
            details={"percent": pct, "max_wal_size": limit},
        )
    ]


def checkpoint_findings(
    now: dict[str, Any] | Denied | None, before: dict[str, Any] | None, settings: Settings
) -> list[Finding]:
    if isinstance(now, Denied):
        return [now.finding("checkpoints")]
    thr = settings.alerts.checkpoints_requested
    expected = f"< {thr.warning:g} % requested (critical at {thr.critical:g} %)"
    if now is None:
        return [Finding("checkpoints", Severity.UNKNOWN, "checkpoint statistics unreadable")]
    timed, requested = int(now["timed"]), int(now["requested"])
    if (
        before is None
        or int(before.get("timed", 0)) > timed
        or int(before.get("requested", 0)) > requested
    ):
        # counters since the last reset mix in every past event (a DROP DATABASE checkpoints)
        return [Finding("checkpoints", Severity.OK,
                        "no previous run to compare with (or the statistics were reset): "
                        "judged from the next run", expected=expected)]  # fmt: skip
    timed -= int(before["timed"])
    requested -= int(before["requested"])
    since = "since the previous run"
    total = timed + requested
    if total < settings.alerts.min_checkpoints:
        return [
            Finding(
                "checkpoints",
                Severity.OK,
                f"{total} checkpoint(s) {since}: too few to judge "
                f"(alerts.min_checkpoints {settings.alerts.min_checkpoints})",
                expected=expected,
            )
        ]
    pct = round(100.0 * requested / total, 1)
    severity = grade(pct, thr.warning, thr.critical)
    return [
        Finding(
            "checkpoints",
            severity,
            f"{requested} of {total} checkpoints {since} were requested ({pct:g} %)",
            value=pct,
            expected=expected,
            advice=None
            if severity == Severity.OK
            else "WAL fills max_wal_size before checkpoint_timeout: raise max_wal_size "
            "(ALTER SYSTEM SET max_wal_size = ...; SELECT pg_reload_conf()); a manual "
            "CHECKPOINT also counts as requested",
            details={"timed": timed, "requested": requested},
        )
    ]


def archive_findings(
    ready: int | Denied | None,
    archiver: ArchiverState | Denied | None,
    before: dict[str, Any] | None,
    settings: Settings,
    now: datetime,
) -> list[Finding]:
    """archive_ready (the .ready backlog), archive_failures (failures since the last run, or
    failing now: the last failure newer than the last success) and archive_age (the last
    archived segment against ``backup.schedule.logs``; an idle server is OK)."""
    thr = settings.alerts.archive_ready
    found: list[Finding] = []
    if isinstance(ready, Denied):
        found.append(ready.finding("archive_ready"))
    elif ready is None:
        found.append(Finding("archive_ready", Severity.UNKNOWN, "archive_status unreadable"))
    else:
        severity = grade(ready, thr.warning, thr.critical)
        found.append(
            Finding(
                "archive_ready",
                severity,
                f"{ready} WAL segment(s) waiting to be archived",
                value=ready,
                expected=f"< {thr.warning} (critical at {thr.critical})",
                advice=None
                if severity == Severity.OK
                else "the archiver is behind or failing: see archive_failures and the server "
                "log; powrops verify; runbooks/disk_space_response",
            )
        )
    if isinstance(archiver, Denied):
        return [*found, archiver.finding("archive_failures"), archiver.finding("archive_age")]
    if archiver is None:
        found.append(Finding("archive_failures", Severity.UNKNOWN, "pg_stat_archiver unreadable"))
        return found
    if archiver.archive_mode not in ("on", "always"):
        found.append(
            Finding(
                "archive_failures",
                Severity.WARNING,
                f"archive_mode is {archiver.archive_mode}: no point-in-time "
                "recovery past the newest backup",
                advice="ALTER SYSTEM SET archive_mode = on (restart); powrops readiness",
            )
        )
        return found
    failed = archiver.failed_count
    previous = int(before["failed_count"]) if before and "failed_count" in before else None
    new = failed - previous if previous is not None and failed >= previous else None
    if archiver.failing or (new is not None and new > 0):
        severity = Severity.CRITICAL if archiver.failing else Severity.WARNING
        since = f"{new} since the previous run" if new is not None else f"{failed} counted"
        found.append(
            Finding(
                "archive_failures",
                severity,
                f"WAL archiving {'is failing' if archiver.failing else 'failed'} ({since}); "
                f"last failure {archiver.last_failed_wal} at "
                f"{human_time(archiver.last_failed_time)}",
                value=new if new is not None else failed,
                expected="no archiver failure",
                advice="read the archive_command's error in the server log; check powrops wal "
                "push and the repository; then powrops verify",
            )
        )
    else:
        found.append(
            Finding(
                "archive_failures",
                Severity.OK,
                f"no archiver failure since the previous run ({failed} counted)",
                value=0,
            )
        )
    logs = settings.backup.schedule.logs
    last = archiver.last_archived_time
    if last is None or logs.seconds is None:
        found.append(
            Finding(
                "archive_age",
                Severity.OK if archiver.idle or logs.seconds is None else Severity.WARNING,
                "nothing archived since the statistics were reset",
                expected=f"<= {logs}",
            )
        )
        return found
    age = max((now - last).total_seconds(), 0.0)
    severity = Severity.OK if archiver.idle else grade(age, logs.seconds, 2 * logs.seconds)
    found.append(
        Finding(
            "archive_age",
            severity,
            f"last archived {archiver.last_archived_wal} {human_duration(age)} ago"
            + (" (nothing written since)" if archiver.idle else f" (schedule: logs {logs})"),
            value=round(age, 1),
            expected=f"<= {logs} (backup.schedule.logs; critical at twice)",
            advice=None
            if severity == Severity.OK
            else "archiving lags the schedule: check archive_failures, archive_timeout and "
            "the server log; powrops verify",
        )
    )
    return found


def bloat_findings(
    rows: Sequence[dict[str, Any]] | Denied | None, settings: Settings
) -> list[Finding]:
    """``table_bloat``: estimated wasted bytes per table (catalog statistics), judged when at
    least ``alerts.bloat_min_percent`` of the table is waste."""

    def table(row: dict[str, Any]) -> tuple[str, str, str]:
        name = f"{row['schemaname']}.{row['tblname']}"
        advice = (
            "VACUUM only makes it reusable; to give it back rebuild the table: "
            f"VACUUM FULL {name} (ACCESS EXCLUSIVE lock for the whole rebuild) or "
            "pg_repack; runbooks/disk_space_response"
        )
        return name, "", advice

    return _bloat("table_bloat", "table", rows, settings.alerts.table_bloat, settings, table)


def index_bloat_findings(
    rows: Sequence[dict[str, Any]] | Denied | None, settings: Settings
) -> list[Finding]:
    """``index_bloat``: estimated wasted bytes per B-tree index, as ``table_bloat``."""

    def index(row: dict[str, Any]) -> tuple[str, str, str]:
        name = f"{row['schemaname']}.{row['idxname']}"
        advice = (
            f"REINDEX INDEX CONCURRENTLY {name} (no lock blocking writes; "
            "powrops maintenance reindex --dry-run measures it with pgstatindex)"
        )
        return name, f"; table {row['schemaname']}.{row['tblname']}", advice

    return _bloat("index_bloat", "index", rows, settings.alerts.index_bloat, settings, index)


def _bloat(
    check: str,
    noun: str,
    rows: Sequence[dict[str, Any]] | Denied | None,
    thr: SizeThreshold,
    settings: Settings,
    describe: Callable[[dict[str, Any]], tuple[str, str, str]],
) -> list[Finding]:
    """One finding per relation whose estimated waste reaches the thresholds; ``describe``
    gives a row's name, a note for the message and the advice."""
    min_pct = settings.alerts.bloat_min_percent
    expected = f"< {thr.warning} wasted (critical at {thr.critical}), from {min_pct:g} %"
    if isinstance(rows, Denied):
        return [rows.finding(check)]
    if rows is None:
        return [Finding(check, Severity.UNKNOWN, "pg_stats unreadable", expected=expected)]
    found = []
    for row in rows:
        wasted, pct = int(row["bloat_bytes"]), round(float(row["bloat_pct"]), 1)
        severity = grade(wasted, thr.warning.bytes, thr.critical.bytes)
        if severity == Severity.OK or pct < min_pct:
            continue
        name, note, advice = describe(row)
        found.append(
            Finding(
                check,
                severity,
                f"about {human_bytes(wasted)} of {human_bytes(int(row['real_bytes']))} is "
                f"free space ({pct:g} %, estimated from the statistics{note})",
                object=name,
                value=wasted,
                expected=expected,
                advice=advice,
                details={"percent": pct},
            )
        )
    return found or [Finding(check, Severity.OK,
                             f"no {noun} with more than {thr.warning} of estimated free space",
                             expected=expected)]  # fmt: skip
