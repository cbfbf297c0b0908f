"""The sections of the quarterly review, each a pure function of the evidence.

A section has a status, a one-line summary, rows for a table, headline figures for the index,
and (for trends) the series a plot needs. Metric snapshots are read defensively: the keys a
snapshot carries may differ between powrops versions, so each figure is looked up under the
names it has been known by, and a snapshot without it is simply not a data point.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from powrops.findings import Severity
from powrops.format import human_bytes, human_time
from powrops.growth.forecast import MIN_SNAPSHOTS, MIN_SPAN_DAYS, linear_fit
from powrops.quarterly.model import Evidence, Snapshot


@dataclass
class Section:
    key: str
    title: str
    status: Severity
    summary: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    headline: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status.name,
            "summary": self.summary,
            "rows": self.rows,
            "headline": self.headline,
        }


def _sev(status: Any) -> Severity:
    try:
        sev = Severity.parse(str(status or "UNKNOWN"))
    except ValueError:
        return Severity.CRITICAL
    return Severity.CRITICAL if sev == Severity.UNKNOWN else sev


def _missing(key: str, title: str, what: str) -> Section:
    return Section(key, title, Severity.CRITICAL, f"no {what} in the quarter")


# --- backups and verification ---------------------------------------------------------------


def longest_failure_streak(statuses: Sequence[str]) -> int:
    streak = best = 0
    for status in statuses:
        streak = streak + 1 if status != "ok" else 0
        best = max(best, streak)
    return best


def backups(ev: Evidence) -> Section:
    runs = ev.quarter_backups()
    title = "Backups"
    if not runs:
        return _missing("backups", title, "backup runs in the backup catalog")
    ok = sum(r.status == "ok" for r in runs)
    failed = [r for r in runs if r.status != "ok"]
    rate = 100.0 * ok / len(runs)
    streak = longest_failure_streak([r.status for r in runs])
    status = Severity.OK
    if streak >= ev.failed_backups["critical"]:
        status = Severity.CRITICAL
    elif len(failed) >= ev.failed_backups["warning"]:
        status = Severity.WARNING
    kinds = Counter(r.kind for r in runs)
    summary = (
        f"{ok} of {len(runs)} backup runs succeeded ({rate:.1f} %); {len(failed)} failed "
        f"(longest streak {streak}); " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    rows = [
        {
            "label": r.label,
            "kind": r.kind,
            "status": r.status,
            "started": human_time(r.started_at),
            "error": r.error or "",
        }
        for r in failed
    ]
    headline = {
        "backup_runs": len(runs),
        "backup_success_pct": round(rate, 1),
        "backup_failures": len(failed),
    }
    return Section("backups", title, status, summary, rows, headline)


def verification(ev: Evidence) -> Section:
    runs = ev.quarter_runs("backup_verification")
    title = "Backup verification"
    if not runs:
        return _missing("verification", title, "backup_verification reports")
    tally = Counter(r.status for r in runs)
    restores = [r.figures.get("test_restore") for r in runs]
    restored = sum(v is True for v in restores)
    tried = sum(v is not None for v in restores)
    summary = (
        f"{len(runs)} verification runs ("
        + ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
        + f"); test restores {restored} of {tried} succeeded; latest {runs[-1].status}"
    )
    rows = [
        {
            "run": r.run_id,
            "status": r.status,
            "backups": r.figures.get("backups"),
            "gaps": r.figures.get("gaps"),
            "test_restore": r.figures.get("test_restore"),
            "link": r.html,
        }
        for r in runs
    ]
    status = _sev(runs[-1].status)
    if tried and restored < tried:
        status = max(status, Severity.WARNING)
    headline = {"verifications": len(runs), "test_restores_ok": restored}
    return Section("verification", title, status, summary, rows, headline)


# --- drills ---------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def drills(ev: Evidence) -> Section:
    events = ev.drills()
    title = "Recovery drills"
    if not events:
        return _missing("drills", title, "recovery drills (ops.events kind 'drill')")
    rto_goal, rpo_goal = ev.objectives["rto_s"], ev.objectives["rpo_s"]
    rows: list[dict[str, Any]] = []
    met = 0
    for e in events:
        rto, rpo = _number(e.details.get("rto_s")), _number(e.details.get("rpo_s"))
        ok = rto is not None and rpo is not None and rto <= rto_goal and rpo <= rpo_goal
        met += ok
        rows.append(
            {
                "at": human_time(e.at),
                "rto_s": rto,
                "rpo_s": rpo,
                "status": str(e.details.get("status") or "UNKNOWN"),
                "objectives_met": ok,
            }
        )
    last = rows[-1]
    status = max(Severity.OK if last["objectives_met"] else Severity.WARNING, _sev(last["status"]))
    summary = (
        f"{len(rows)} drills; {met} met both objectives (RTO {rto_goal:g} s, RPO {rpo_goal:g} s); "
        f"latest RTO {last['rto_s']} s, RPO {last['rpo_s']} s"
    )
    series = {
        "at": [e.at for e in events],
        "rto_s": [r["rto_s"] for r in rows],
        "rpo_s": [r["rpo_s"] for r in rows],
        "objective_rto_s": [rto_goal],
        "objective_rpo_s": [rpo_goal],
    }
    headline = {"drills": len(rows), "last_rto_s": last["rto_s"], "last_rpo_s": last["rpo_s"]}
    return Section("drills", title, status, summary, rows, headline, series)


# --- integrity ------------------------------------------------------------------------------


def _violations(counts: Mapping[str, Any]) -> int:
    return int(sum(v for v in counts.values() if isinstance(v, int) and not isinstance(v, bool)))


def integrity(ev: Evidence) -> Section:
    runs = ev.quarter_checks("integrity")
    repairs = ev.quarter_repairs()
    title = "Integrity and repairs"
    if not runs:
        return _missing("integrity", title, "integrity runs (ops.check_runs kind 'integrity')")
    failing = [r for r in runs if r.status != "OK"]
    last = runs[-1]
    per_check = {k: v for k, v in last.counts.items() if isinstance(v, int) and v}
    repaired: dict[tuple[str, str], int] = defaultdict(int)
    for repair in repairs:
        repaired[(repair.kind, repair.table)] += repair.rows
    rows = [{"check": k, "violations in latest run": v} for k, v in sorted(per_check.items())]
    rows += [{"repair": k, "table": t, "rows repaired": n} for (k, t), n in repaired.items()]
    summary = (
        f"{len(runs)} integrity runs, {len(failing)} of them found violations; latest "
        f"{last.status}: {len(per_check)} checks failing as the integrity report counts them, "
        f"{_violations(last.counts)} violations; {len(repairs)} repairs "
        f"({sum(repaired.values())} rows)"
    )
    headline = {
        "integrity_runs": len(runs),
        "integrity_failures": len(failing),  # runs that found violations
        "failed_checks": len(per_check),  # in the latest run: the integrity report's figure
        "repairs": len(repairs),
    }
    return Section("integrity", title, _sev(last.status), summary, rows, headline)


# --- growth and performance -----------------------------------------------------------------

# Figures read from a snapshot's ``metrics`` (shape documented in
# :mod:`powrops.metrics.snapshot`):
# the database size, and the performance block with ratios shown as percentages.
PERF_FIGURES: dict[str, tuple[str, float]] = {
    "cache_hit_pct": ("cache_hit_rate", 100.0),
    "dead_tuple_pct": ("dead_tuple_ratio", 100.0),
    "dead_tuples": ("dead_tuples", 1.0),
    "mean_query_ms": ("mean_query_ms", 1.0),
    "slow_queries": ("slow_queries", 1.0),
}


PERF_LABELS = {
    "cache_hit_pct": "cache hit rate {:.2f} %",
    "dead_tuple_pct": "dead tuples {:.2f} %",
    "dead_tuples": "{:,.0f} dead rows",
    "mean_query_ms": "mean statement time {:.2f} ms",
    "slow_queries": "{:.0f} slow statements",
}


def size_metric(metrics: Mapping[str, Any]) -> float | None:
    """The database size in bytes of one snapshot."""
    volume = metrics.get("volume")
    return _number(volume.get("total_size_bytes")) if isinstance(volume, Mapping) else None


def perf_metric(metrics: Mapping[str, Any], name: str) -> float | None:
    """A performance figure in its display unit (ratios become percentages)."""
    key, scale = PERF_FIGURES[name]
    block = metrics.get("performance")
    value = _number(block.get(key)) if isinstance(block, Mapping) else None
    return None if value is None else round(value * scale, 3)


def _sizes(snapshots: Sequence[Snapshot]) -> list[tuple[datetime, float]]:
    found = []
    for snap in snapshots:
        size = size_metric(snap.metrics)
        if size is not None:
            found.append((snap.taken_at, size))
    return found


def growth(ev: Evidence) -> Section:
    title = "Growth and forecast"
    before = [s for s in ev.snapshots if s.taken_at < ev.quarter.start]
    points = _sizes(([before[-1]] if before else []) + ev.in_quarter_snapshots())
    if not any(ev.in_quarter(t) for t, _ in points):
        return _missing("growth", title, "metric snapshots with a database size")
    origin = points[0][0]
    span_days = (points[-1][0] - origin).total_seconds() / 86400
    fit = linear_fit([t for t, _ in points], [y for _, y in points])
    if len(points) < MIN_SNAPSHOTS or span_days < MIN_SPAN_DAYS:
        # too short a history for a trend, as the growth report judges it: use its figure
        fit = None
    first, last = points[0][1], points[-1][1]
    horizon = ev.quarter.end + (ev.quarter.next().end - ev.quarter.next().start)
    rows = [{"at": human_time(t), "size_bytes": int(y), "size": human_bytes(y)} for t, y in points]
    series: dict[str, list[Any]] = {"at": [t for t, _ in points], "bytes": [y for _, y in points]}
    reported = _reported_growth(ev)
    if fit is None and reported is None:
        return Section(
            "growth",
            title,
            Severity.WARNING,
            f"{len(points)} size data points over {span_days:.1f} days "
            f"({human_bytes(last)} now): no trend yet",
            rows,
            {"size_bytes": int(last)},
            series,
        )
    if fit is not None:
        per_day, forecast = fit.slope, fit.predict(horizon)[0]
        summary = (
            f"{human_bytes(first)} -> {human_bytes(last)} ({human_bytes(last - first)}), "
            f"{human_bytes(per_day)}/day; forecast {human_bytes(forecast)} by {horizon:%Y-%m-%d}"
        )
    else:  # too short a history: the rate the growth report gave, as it gave it (same figure)
        assert reported is not None
        per_day, source = reported
        forecast = last + per_day * (horizon - points[-1][0]).total_seconds() / 86400
        summary = (
            f"{human_bytes(last)}, {human_bytes(per_day)}/day as the growth report "
            f"{_SOURCE_WORDS.get(source, 'gives it')} ({len(points)} snapshots over "
            f"{span_days:.1f} days: at least {MIN_SNAPSHOTS} over {MIN_SPAN_DAYS:g} days make a "
            f"trend); forecast {human_bytes(forecast)} by {horizon:%Y-%m-%d}"
        )
    status = Severity.OK
    if ev.disk_capacity:
        share = 100 * forecast / ev.disk_capacity
        summary += f" ({share:.0f} % of the disk)"
        status = Severity.CRITICAL if share >= 90 else Severity.WARNING if share >= 80 else status
    series["forecast_at"] = [points[-1][0], horizon]
    series["forecast_bytes"] = [last, forecast]
    headline = {
        "size_bytes": int(last),
        "growth_bytes_per_day": round(per_day),
        "forecast_bytes": round(forecast),
    }
    return Section("growth", title, status, summary, rows, headline, series)


_SOURCE_WORDS = {
    "timestamps": "estimates it from the data's own timestamps",
    "snapshots": "fits it to the metric snapshots",
}


def _reported_growth(ev: Evidence) -> tuple[float, str] | None:
    """The growth rate (bytes/day) and its source from the quarter's latest growth report."""
    run = ev.latest_run("growth_report")
    if run is None:
        return None
    rate = run.figures.get("growth_bytes_per_day")
    if not isinstance(rate, int | float) or isinstance(rate, bool):
        return None
    return float(rate), str(run.figures.get("growth_source") or "")


def performance(ev: Evidence) -> Section:
    title = "Performance trends"
    rows: list[dict[str, Any]] = []
    series: dict[str, list[Any]] = defaultdict(list)
    for snap in ev.in_quarter_snapshots():
        values = {name: perf_metric(snap.metrics, name) for name in PERF_FIGURES}
        if all(v is None for v in values.values()):
            continue
        rows.append({"at": human_time(snap.taken_at), **values})
        series["at"].append(snap.taken_at)
        for name, value in values.items():
            series[name].append(value)
    if not rows:
        return _missing("performance", title, "performance metrics in the metric snapshots")
    present = [n for n in PERF_FIGURES if any(v is not None for v in series[n])]
    latest = {n: rows[-1][n] for n in present if rows[-1][n] is not None}
    summary = f"{len(rows)} snapshots; latest: " + ", ".join(
        PERF_LABELS[k].format(v) for k, v in latest.items()
    )
    return Section("performance", title, Severity.OK, summary, rows, {}, dict(series))


# --- retention, maintenance, alerts ---------------------------------------------------------


def retention(ev: Evidence) -> Section:
    title = "Retention policy audit"
    if ev.retention is None:
        return Section("retention", title, Severity.CRITICAL, "the retention audit could not run")
    rows = [
        {
            "policy": r.policy,
            "table": r.table,
            "rule": r.rule,
            "retention": r.retention,
            "rows past retention": r.rows_past,
        }
        for r in ev.retention
    ]
    past = [r for r in ev.retention if r.rows_past]
    status = Severity.OK
    if past:
        deleted = any(r.policy.endswith("deleted") for r in past)
        status = Severity.CRITICAL if deleted else Severity.WARNING
    total = sum(r.rows_past for r in ev.retention)
    runs = ev.in_quarter_events(("retention", "archive", "cleanup", "gdpr"))
    summary = (
        f"{total} rows past their retention in {len(past)} of {len(rows)} policies; "
        f"{len(runs)} retention, archival, cleanup or GDPR runs in the quarter"
    )
    return Section("retention", title, status, summary, rows, {"rows_past_retention": total})


MAINTENANCE_KINDS = ("maintenance", "cleanup", "retention", "archive", "gdpr", "migration")


def maintenance(ev: Evidence) -> Section:
    title = "Maintenance done"
    events = ev.in_quarter_events(MAINTENANCE_KINDS)
    if not events:
        return Section("maintenance", title, Severity.WARNING, "no maintenance recorded")
    groups: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for e in events:
        action = e.details.get("action") or e.details.get("operation") or ""
        groups[(e.kind, str(action))].append(e.at)
    rows = [
        {"kind": k, "action": a, "runs": len(ts), "last": human_time(max(ts))}
        for (k, a), ts in sorted(groups.items())
    ]
    summary = f"{len(events)} runs: " + ", ".join(
        f"{n} {k}" for k, n in sorted(Counter(e.kind for e in events).items())
    )
    return Section(
        "maintenance", title, Severity.OK, summary, rows, {"maintenance_runs": len(events)}
    )


def alerts(ev: Evidence) -> Section:
    title = "Alerts raised"
    runs = ev.quarter_checks("alerts")
    if not runs:
        return _missing("alerts", title, "alert evaluations (ops.check_runs kind 'alerts')")
    raised: Counter[tuple[str, str]] = Counter()
    for run in runs:
        for finding in run.findings:
            severity = str(finding.get("severity", "UNKNOWN"))
            if severity != "OK":
                raised[(str(finding.get("check", "?")), severity)] += 1
    rows = [{"alert": c, "severity": s, "times raised": n} for (c, s), n in raised.most_common()]
    summary = (
        f"{len(runs)} evaluations; {sum(raised.values())} alerts raised; latest {runs[-1].status}"
    )
    return Section(
        "alerts",
        title,
        _sev(runs[-1].status),
        summary,
        rows,
        {"alerts_raised": sum(raised.values())},
    )


SECTION_BUILDERS: dict[str, Callable[[Evidence], Section]] = {
    "backups": backups,
    "verification": verification,
    "drills": drills,
    "integrity": integrity,
    "growth": growth,
    "retention": retention,
    "performance": performance,
    "maintenance": maintenance,
    "alerts": alerts,
}
