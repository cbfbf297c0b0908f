"""What the growth report and the disk-space and performance runbooks read from the database.

Reads only, but for :func:`snapshot_and_report`, which first stores a metric snapshot (its name
says so). What they show of it is :mod:`powrops.monitoring.growth_view`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from powrops.config import Settings
from powrops.db import connect
from powrops.findings import Finding
from powrops.monitoring import growth, maintenance, metrics
from powrops.monitoring.alerts import AlertReport, disk_usage, evaluate
from powrops.monitoring.growth import Growth
from powrops.monitoring.metrics import (
    Snapshot,
    database_errors,
    explain,
    statement_text,
    statements,
    statements_status,
)


def growth_for(settings: Settings) -> Growth:
    """The growth of the configured database, with the disk it lives on."""

    thr = settings.alerts.disk_usage
    with database_errors("growth analysis failed"), connect(settings, autocommit=True) as conn:
        disk = disk_usage(settings, conn)
        return growth.analyze(conn, disk=disk, warning_pct=thr.warning, critical_pct=thr.critical)


@dataclass
class GrowthReport:
    """Everything the weekly report shows, gathered by :func:`build`."""

    snapshot: Snapshot
    alerts: AlertReport
    growth: Growth
    index_findings: list[Finding]
    history: list[dict[str, Any]]
    vacuum_plan: list[dict[str, Any]]
    analyze_plan: list[dict[str, Any]]

    @property
    def findings(self) -> list[Finding]:
        return [*self.alerts.findings, *self.index_findings]


def snapshot_history(settings: Settings, days: float = 365) -> list[dict[str, Any]]:
    """Size and cache hit rate of each stored snapshot (oldest first)."""

    with connect(settings, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT taken_at, (metrics -> 'database' ->> 'total_bytes')::bigint, "
            "(metrics -> 'cache' ->> 'hit_rate')::float8 FROM ops.metric_snapshots "
            "WHERE taken_at > now() - make_interval(secs => %s) ORDER BY taken_at",
            (days * 86400,),
        ).fetchall()
    return [{"taken_at": r[0], "total_bytes": r[1], "hit_rate": r[2]} for r in rows]


def snapshot_and_report(settings: Settings, *, take_snapshot: bool = True) -> GrowthReport:
    """Take a snapshot, evaluate the alerts (recorded), compute growth, check the indexes."""

    snap = metrics.take_snapshot(settings, save=take_snapshot)
    alerts = evaluate(settings, data=snap.metrics)
    with connect(settings, autocommit=True) as conn:
        stats = maintenance.table_stats(conn)
    vacuum = maintenance.plan_vacuum(stats, settings)
    analyze = maintenance.plan_analyze(stats, settings)
    return GrowthReport(
        snapshot=snap,
        alerts=alerts,
        growth=growth_for(settings),
        index_findings=maintenance.index_checks(settings),
        history=snapshot_history(settings),
        vacuum_plan=[{"table": t.qualified, "reason": t.reason} for t in vacuum],
        analyze_plan=[{"table": t.qualified, "reason": t.reason} for t in analyze],
    )


def table_growth_rows(settings: Settings, recent_months: int = 3) -> list[dict[str, Any]]:
    """Which tables grow, how fast: rows and bytes per day from the rows' creation times
    (mean of the last ``recent_months`` full months), and from the snapshot history."""

    with connect(settings, autocommit=True) as conn:
        monthly = growth.monthly_rows(conn)
        per_row = growth.bytes_per_row(conn)
        by_snapshots = _snapshot_table_rates(conn)
    rows = []
    for table, counts in monthly.items():
        months = sorted(counts)[-recent_months - 1 : -1] or sorted(counts)[-1:]
        rows_per_day = sum(counts[m] for m in months) / (30.0 * len(months))
        rows.append({
            "table": f"public.{table}",
            "rows per day (creation times)": round(rows_per_day, 1),
            "bytes per day (creation times)": round(rows_per_day * per_row.get(table, 0.0)),
            "bytes per day (snapshots)": by_snapshots.get(f"public.{table}"),
            "bytes per row": round(per_row.get(table, 0.0)),
        })  # fmt: skip
    return sorted(rows, key=lambda r: -float(r["bytes per day (creation times)"]))


def _snapshot_table_rates(conn: Any, days: float = 90) -> dict[str, float]:
    """Bytes per day per table between the oldest and newest snapshot of the last ``days``."""
    rows = conn.execute(
        "(SELECT taken_at, metrics -> 'volume' -> 'table_distribution' FROM ops.metric_snapshots "
        " WHERE taken_at > now() - make_interval(days => %s) AND metrics ? 'volume' "
        " ORDER BY taken_at LIMIT 1) UNION ALL "
        "(SELECT taken_at, metrics -> 'volume' -> 'table_distribution' FROM ops.metric_snapshots "
        " WHERE metrics ? 'volume' ORDER BY taken_at DESC LIMIT 1)",
        (int(days),),
    ).fetchall()
    if len(rows) < 2:
        return {}
    (t0, first), (t1, last) = rows[0], rows[-1]
    span = (t1 - t0).total_seconds() / 86400
    if span < 1:
        return {}
    return {name: round((size - first.get(name, 0)) / span) for name, size in last.items()}


def slow_statements(settings: Settings, limit: int = 10) -> list[dict[str, Any]]:
    """The slowest statements by mean time, at or over maintenance.alerts.query_time first."""

    with connect(settings, autocommit=True) as conn:
        note = statements_status(conn)
        if note:
            return [{"note": note}]
        found = statements(conn, order="mean", limit=limit)
    limit_ms = settings.maintenance.alerts.query_time.timedelta.total_seconds() * 1000
    for row in found:
        row["over maintenance.alerts.query_time"] = row["mean_ms"] >= limit_ms
    return found


def plans(settings: Settings, found: list[dict[str, Any]], analyze: bool = False) -> str:
    """EXPLAIN of each statement (generic plans for parameterised ones), as text."""

    parts = []
    with connect(settings, autocommit=True) as conn:
        for row in found:
            if "queryid" not in row:
                continue
            text = statement_text(conn, str(row["queryid"]))
            plan = explain(conn, text, analyze=analyze) if text else "(statement text hidden)"
            parts.append(f"-- queryid {row['queryid']}: mean {row['mean_ms']} ms\n{plan}")
    return "\n\n".join(parts) or "no statements to explain"
