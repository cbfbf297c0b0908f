"""The checks pgMonitor and check_postgres page on beyond ``server_checks.py``, as findings.

Each has its thresholds in ``alerts.*`` (defaults and their source in ``config/alerts.py``):

* ``sequences`` — % of its range each sequence of the database has used (``pg_sequences``;
  cycling sequences wrap instead of failing and are left out);
* ``prepared_transactions`` — how long each prepared transaction has waited for its
  ``COMMIT PREPARED`` (``pg_prepared_xacts``): it holds locks and the xmin horizon;
* ``pending_restart`` — settings changed but waiting for a restart (``pg_settings``);
* ``checksum_failures`` — data checksum failures per database that grew since the previous run
  (``pg_stat_database.checksum_failures``), or a last failure within ``alerts.change_hold``;
* ``disk_forecast`` — days until the filesystem of the data directory (and pg_wal, when it
  lives there) is full at the growth rate the forecast observes (``growth/forecast.py``,
  handed in by the caller: ``alerts`` never imports ``growth``);
* ``system_identifier`` — ``pg_control_system()`` differs from the previous run's: another
  cluster answers under this server's name (replaced, or restored with ``pg_dump``); CRITICAL
  for ``alerts.change_hold`` after it was seen.

What the next run compares against (the checksum counts, the system identifier and when it
changed) is returned by :func:`judge_peers` for ``alert_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from powrops.config import Settings
from powrops.findings import Finding, Severity, grade
from powrops.format import human_bytes, human_days, human_duration, human_time
from powrops.metrics.disk import Disk
from powrops.pg import catalog, control
from powrops.pg.privileges import Denied, guarded

#: The caller's growth forecast: bytes per day the data grows, None without a trend.
GrowthRate = Callable[[psycopg.Connection[Any], Disk | None], float | None]

#: ``last_value`` is NULL both for a sequence never used and for one this role may not read
#: (neither SELECT nor USAGE on it): ``readable`` tells the two apart.
SEQUENCES_SQL = """
SELECT s.schemaname, s.sequencename, s.data_type::text AS data_type, s.last_value,
       s.min_value, s.max_value, s.increment_by,
       has_sequence_privilege(c.oid, 'SELECT, USAGE') AS readable
FROM pg_sequences s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
WHERE NOT s.cycle
ORDER BY s.schemaname, s.sequencename
"""
#: What lets the alerts role read every sequence (the sequence reads revision grants it).
SEQUENCE_GRANT = "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, ops TO powr_readonly"

PREPARED_SQL = """
SELECT gid, database, owner, EXTRACT(epoch FROM clock_timestamp() - prepared)::float8 AS seconds
FROM pg_prepared_xacts ORDER BY prepared
"""

PENDING_RESTART_SQL = """
SELECT name, setting, unit FROM pg_settings WHERE pending_restart ORDER BY name
"""

CHECKSUMS_SQL = """
SELECT coalesce(datname, '(shared catalogs)') AS datname, checksum_failures::bigint AS failures,
       checksum_last_failure AS last_failure
FROM pg_stat_database WHERE checksum_failures IS NOT NULL ORDER BY 1
"""

SYSTEM_ID_SQL = control.SYSTEM_IDENTIFIER_SQL


#: What ``read_peers`` reads, by key (``reads.read_all`` reads them in one statement).
QUERIES = {
    "sequences": SEQUENCES_SQL,
    "prepared": PREPARED_SQL,
    "pending_restart": PENDING_RESTART_SQL,
    "checksums": CHECKSUMS_SQL,
    "system_identifier": SYSTEM_ID_SQL,
}


def _rows(conn: psycopg.Connection[Any], query: str) -> list[dict[str, Any]] | None:
    """Rows of ``query``, or None when this role may not read them."""
    found = guarded(conn, lambda: catalog.dict_rows(conn, query))
    return None if isinstance(found, Denied) else found


def read_peers(
    conn: psycopg.Connection[Any],
    disk: Disk | None,
    growth: GrowthRate | None,
    read: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every figure these checks judge, read now (None for what this role cannot read):
    the rows ``read`` holds (``reads.read_all``), the others read here one by one."""
    got = read or {}

    def rows(key: str) -> list[dict[str, Any]] | None:
        return list(got[key]) if key in got else _rows(conn, QUERIES[key])

    ident = rows("system_identifier")
    return {
        "sequences": rows("sequences"),
        "prepared": rows("prepared") or [],
        "pending_restart": rows("pending_restart") or [],
        "checksums": rows("checksums") or [],
        "system_identifier": ident[0]["system_identifier"] if ident else None,
        "disk": disk,
        "growth_per_day": guarded(conn, lambda: growth(conn, disk)) if growth else None,
        "forecast": growth is not None,
    }


def judge_peers(
    peers: dict[str, Any], before: dict[str, Any] | None, settings: Settings, now: datetime
) -> tuple[list[Finding], dict[str, Any]]:
    """The findings, and the state the next run compares against."""
    before = before or {}
    ident, after_ident = identifier_findings(
        peers["system_identifier"], before.get("system_identifier"), settings, now
    )
    found = [
        *sequence_findings(peers["sequences"], settings),
        *prepared_findings(peers["prepared"], settings),
        *pending_restart_findings(peers["pending_restart"]),
        *checksum_findings(peers["checksums"], before.get("checksums"), settings, now),
        *ident,
    ]
    if peers["forecast"]:
        found += disk_forecast_findings(peers["disk"], peers["growth_per_day"], settings)
    after = {
        "checksums": {str(r["datname"]): int(r["failures"]) for r in peers["checksums"]},
        "system_identifier": after_ident,
    }
    return found, after


# --- pure judgements -------------------------------------------------------------------------


def sequence_used_percent(row: dict[str, Any]) -> float:
    """Share of its range a sequence has used, in the direction it counts."""
    low, high, last = int(row["min_value"]), int(row["max_value"]), int(row["last_value"])
    span = max(high - low, 1)
    used = last - low if int(row["increment_by"]) > 0 else high - last
    return 100.0 * used / span


def sequence_findings(rows: Sequence[dict[str, Any]] | None, settings: Settings) -> list[Finding]:
    thr = settings.alerts.sequences
    expected = f"< {thr.warning:g} % of its range used (critical at {thr.critical:g} %)"
    if rows is None:
        return [Finding("sequences", Severity.UNKNOWN, "pg_sequences unreadable",
                        expected=expected)]  # fmt: skip
    hidden = [f"{r['schemaname']}.{r['sequencename']}" for r in rows if not r["readable"]]
    rows = [r for r in rows if r["readable"] and r["last_value"] is not None]
    found = [_hidden_sequences(hidden, expected)] if hidden else []
    for row in rows:
        pct = round(sequence_used_percent(row), 2)
        severity = grade(pct, thr.warning, thr.critical)
        if severity == Severity.OK:
            continue
        name = f"{row['schemaname']}.{row['sequencename']}"
        found.append(
            Finding(
                "sequences",
                severity,
                f"{row['data_type']} sequence at {int(row['last_value']):,} has used {pct:g} % "
                f"of its range (max {int(row['max_value']):,})",
                object=name,
                value=pct,
                expected=expected,
                advice=f"widen it before it runs out: ALTER SEQUENCE {name} AS bigint, and the "
                "column it feeds: ALTER TABLE ... ALTER COLUMN ... TYPE bigint (rewrites the "
                "table: plan it as a migration)",
            )
        )
    return found or [Finding("sequences", Severity.OK,
                             f"{len(rows)} sequence(s), none past {thr.warning:g} % of its range",
                             expected=expected)]  # fmt: skip


def _hidden_sequences(names: Sequence[str], expected: str) -> Finding:
    """UNKNOWN: sequences whose value this role may not read, so their use is not known."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return Finding(
        "sequences", Severity.UNKNOWN,
        f"{len(names)} sequence(s) this role may not read, their use of their range unknown: "
        f"{shown}",
        expected=expected,
        advice=f"powrops migrate latest (its sequence reads revision), or {SEQUENCE_GRANT}",
        details={"sequences": list(names)},
    )  # fmt: skip


def prepared_findings(rows: Sequence[dict[str, Any]], settings: Settings) -> list[Finding]:
    thr = settings.alerts.prepared_transactions
    warn, crit = thr.seconds
    found = []
    for row in rows:
        seconds = float(row["seconds"])
        severity = grade(seconds, warn, crit)
        if severity == Severity.OK:
            continue
        found.append(
            Finding(
                "prepared_transactions",
                severity,
                f"transaction {row['gid']!r} prepared by {row['owner']} in {row['database']} "
                f"{human_duration(seconds)} ago, neither committed nor rolled back",
                object=str(row["gid"]),
                value=round(seconds, 1),
                expected=f"< {thr.warning} (critical at {thr.critical})",
                advice="it holds its locks and the xmin horizon (VACUUM, wraparound): ask its "
                f"transaction manager, then COMMIT PREPARED '{row['gid']}' or ROLLBACK "
                f"PREPARED '{row['gid']}' in database {row['database']}",
            )
        )
    return found or [Finding("prepared_transactions", Severity.OK,
                             f"no transaction prepared for {thr.warning}")]  # fmt: skip


def pending_restart_findings(rows: Sequence[dict[str, Any]]) -> list[Finding]:
    """Every setting changed but waiting for a restart is a WARNING: the server does not run
    with its configuration, and the next restart (a failover, a crash) changes it."""
    found = [
        Finding(
            "pending_restart",
            Severity.WARNING,
            f"{row['name']} was changed; the server still runs with {row['setting']}"
            f"{row['unit'] or ''} until it is restarted",
            object=str(row["name"]),
            advice="restart in a maintenance window (pg_ctl restart), or undo the change "
            f"(ALTER SYSTEM RESET {row['name']}; SELECT pg_reload_conf())",
        )
        for row in rows
    ]
    return found or [Finding("pending_restart", Severity.OK, "no setting waits for a restart")]


def checksum_findings(
    rows: Sequence[dict[str, Any]],
    before: dict[str, int] | None,
    settings: Settings,
    now: datetime,
) -> list[Finding]:
    hold = settings.alerts.change_hold.timedelta
    if not rows:
        off = "data checksums are off: failures cannot be counted"
        advice = "initdb --data-checksums (or pg_checksums --enable, offline)"
        return [Finding("checksum_failures", Severity.OK, off, advice=advice)]
    found = []
    for row in rows:
        name, failures, last = str(row["datname"]), int(row["failures"]), row["last_failure"]
        previous = (before or {}).get(name)
        new = failures - previous if previous is not None and failures >= previous else None
        recent = last is not None and now - last < hold
        if not (new or recent):
            continue
        since = f"{new} since the previous run, " if new else ""
        found.append(
            Finding(
                "checksum_failures",
                Severity.CRITICAL,
                f"data checksum failures in {name}: {since}{failures} counted, the last at "
                f"{human_time(last)}",
                object=name,
                value=new if new else failures,
                expected="no checksum failure",
                advice="storage corrupts pages: follow runbooks/data_corruption_response "
                "(powrops check integrity; the server log names the block)",
            )
        )
    return found or [Finding("checksum_failures", Severity.OK,
                             "no data checksum failure since the previous run")]  # fmt: skip


def identifier_findings(
    current: str | None, before: dict[str, Any] | None, settings: Settings, now: datetime
) -> tuple[list[Finding], dict[str, Any] | None]:
    """The finding, and the state to keep: the identifier, and the one before it and when it
    changed while ``alerts.change_hold`` runs."""
    if current is None:
        finding = Finding("system_identifier", Severity.UNKNOWN,
                          "pg_control_system() not allowed for this role",
                          advice="GRANT EXECUTE ON FUNCTION pg_control_system() TO the alerts "
                          "role")  # fmt: skip
        return [finding], before
    state: dict[str, Any] = {"id": current}
    known = (before or {}).get("id")
    if known is not None and known != current:
        state.update(previous=known, changed_at=now.isoformat())
    elif before and before.get("changed_at"):
        state.update(previous=before.get("previous"), changed_at=before["changed_at"])
    changed_at = datetime.fromisoformat(state["changed_at"]) if "changed_at" in state else None
    if changed_at is None or now - changed_at >= settings.alerts.change_hold.timedelta:
        same = f"system identifier {current}, as before"
        if known is None:  # nothing to compare with yet: not "as before"
            same = (
                f"system identifier {current}: no previous run to compare with (kept for the next)"
            )
        return [Finding("system_identifier", Severity.OK, same)], {"id": current}
    finding = Finding(
        "system_identifier",
        Severity.CRITICAL,
        f"system identifier changed from {state['previous']} to {current} at "
        f"{human_time(changed_at)}: another cluster answers under this server's name",
        object=current,
        expected=f"system identifier {state['previous']}",
        advice="if the server was replaced or restored on purpose, take a new full backup now "
        "(its WAL and backups do not continue the old cluster's); otherwise find out who "
        "answers at this address",
    )
    return [finding], state


def disk_forecast_findings(
    disk: Disk | None, rate_per_day: float | Denied | None, settings: Settings
) -> list[Finding]:
    thr = settings.alerts.disk_full_days
    expected = f"> {thr.warning:g} days to full (critical under {thr.critical:g})"
    if disk is None:
        return [Finding("disk_forecast", Severity.UNKNOWN,
                        "no disk to forecast: see disk_usage", expected=expected)]  # fmt: skip
    if isinstance(rate_per_day, Denied):  # the growth of ops.metric_snapshots
        return [rate_per_day.finding("disk_forecast")]
    free = max(disk.capacity_bytes - disk.used_bytes, 0)
    if rate_per_day is None or rate_per_day <= 0:
        return [Finding("disk_forecast", Severity.OK,
                        f"{human_bytes(free)} free and the data does not grow "
                        "(or no trend yet)", object=disk.source, expected=expected)]  # fmt: skip
    days = round(free / rate_per_day, 1)
    severity = (
        Severity.CRITICAL
        if days <= thr.critical
        else Severity.WARNING
        if days <= thr.warning
        else Severity.OK
    )
    return [
        Finding(
            "disk_forecast",
            severity,
            f"full in {human_days(days)} at {human_bytes(rate_per_day)}/day "
            f"({human_bytes(free)} free)",
            object=disk.source,
            value=days,
            expected=expected,
            advice=None
            if severity == Severity.OK
            else "follow runbooks/disk_space_response: archive or clean up, grow the disk "
            "(powrops metrics growth for the trend)",
            details={"rate_bytes_per_day": rate_per_day, "free_bytes": free},
        )
    ]
