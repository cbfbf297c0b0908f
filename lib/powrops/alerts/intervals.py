"""Statement timing over the interval between two ``alerts`` runs, not since the last reset.

``pg_stat_statements`` only adds up. Each run reads, per statement of this database (the key
is role, query id and top-level flag), the calls, the total and the maximum execution time,
and stores them (``alert_state`` name ``statements``); the next run judges the difference:
calls and time *in the interval*, so a statement that was slow once last week no longer
pages, and one slow since the previous run does. The statistics' reset time
(``pg_stat_statements_info.stats_reset``) is stored too: after a reset every counter starts
again, and a statement new since the previous run counts whole. The maximum is cumulative, so
it counts only when it grew in the interval.

``pg_stat_statements`` has no ``application_name``: powrops' own work (maintenance, the
integrity scan, reports, this check) is left out by the roles it runs as
(``alerts.own_roles``: the job roles; plus ``database.role``).

The first run has no previous figures: it judges the means since the statistics were reset
and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from powrops.config import Settings
from powrops.metrics.snapshot import redact_query

BASELINE_SQL = sql.SQL("""
SELECT s.userid::oid::bigint AS userid, s.queryid::text AS queryid, s.toplevel,
       s.calls::bigint AS calls, s.total_exec_time AS total_ms, s.max_exec_time AS max_ms,
       s.query
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.userid NOT IN (SELECT oid FROM pg_roles WHERE rolname = ANY({own}))
""")

RESET_SQL = "SELECT stats_reset::text FROM pg_stat_statements_info"


def own_roles(settings: Settings) -> list[str]:
    roles = list(settings.alerts.own_roles)
    if settings.database.role:
        roles.append(settings.database.role)
    return roles


def baseline_query(settings: Settings) -> sql.Composed:
    return BASELINE_SQL.format(own=sql.Literal(own_roles(settings)))


def read_statements(conn: psycopg.Connection[Any], settings: Settings) -> dict[str, Any]:
    """This database's statements now (not powrops' own), keyed, with the reset time."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(baseline_query(settings))
        rows = cur.fetchall()
    reset = conn.execute(RESET_SQL).fetchone()
    return statements_of(rows, reset[0] if reset else None)


def statements_of(rows: Iterable[Mapping[str, Any]], stats_reset: str | None) -> dict[str, Any]:
    """:func:`read_statements` of the rows of ``BASELINE_SQL`` and the reset time."""
    entries: dict[str, list[float]] = {}
    texts: dict[str, str] = {}
    for row in rows:
        key = f"{row['userid']}:{row['queryid']}:{'t' if row['toplevel'] else 'n'}"
        entries[key] = [int(row["calls"]), float(row["total_ms"]), float(row["max_ms"])]
        texts[key] = str(row["query"])
    return {"stats_reset": stats_reset, "entries": entries, "texts": texts}


def interval(
    now: dict[str, Any], before: dict[str, Any] | None, min_ms: float
) -> tuple[list[dict[str, Any]], str]:
    """Statements whose interval mean or new maximum reaches ``min_ms``, and the interval's
    description ("since the previous run" or "since the statistics were reset")."""
    fresh = before is None or before.get("stats_reset") != now["stats_reset"]
    previous: dict[str, Sequence[float]] = {} if fresh or before is None else before["entries"]
    out = []
    for key, (calls, total, peak) in now["entries"].items():
        prev = previous.get(key)
        if prev is not None and calls >= prev[0]:
            d_calls, d_total = int(calls - prev[0]), total - float(prev[1])
            new_peak = peak if peak > float(prev[2]) else 0.0
        else:
            d_calls, d_total, new_peak = int(calls), total, peak
        if d_calls <= 0:
            continue
        mean = d_total / d_calls
        if mean < min_ms and new_peak < min_ms:
            continue
        out.append(
            {
                "queryid": key.split(":")[1],
                "query": redact_query(now["texts"].get(key, "")),
                "calls": d_calls,
                "mean_ms": round(mean, 3),
                "max_ms": round(max(new_peak, mean), 3),
                "total_ms": round(d_total, 3),
            }
        )
    out.sort(key=lambda r: -float(r["mean_ms"]))
    return out, ("since the statistics were reset" if fresh else "since the previous run")


def baseline(now: dict[str, Any]) -> dict[str, Any]:
    """What the next run compares against (the statement texts stay out of the state)."""
    return {"stats_reset": now["stats_reset"], "entries": now["entries"]}
