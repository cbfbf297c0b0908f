"""What the integrity report and the corruption runbook show: tables, a trend plot, the damage
scope, the restore point with its evidence and cost, from ``powrops.integrity`` and
``powrops.audit.trail``; presentation only. Ids only: never names, emails or row values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from powrops.format import human_count, human_time
from powrops.integrity import IntegrityReport
from powrops.integrity.restore_point import RestorePoint
from powrops.reports.plotting import ONE_POINT_NOTE, add_note, integer_ticks, pyplot

COLOURS = {"OK": "#1e7b34", "WARNING": "#f0a202", "CRITICAL": "#c0262d", "UNKNOWN": "#6c757d"}


def check_rows(report: IntegrityReport) -> list[dict[str, Any]]:
    """Every rule and check with its count, sample ids and how it ran, problems first."""
    rows = sorted(report.results, key=lambda r: -r.severity.rank)
    return [
        {
            "status": r.severity.name,
            "check": r.name,
            "category": r.category,
            "table": r.table or "-",
            "rows": "-" if r.count is None else r.count,
            "sample ids": ", ".join(r.sample_ids) or "-",
            "repairable": "yes" if r.repairable else "",
            "scope": scope(report, r.name),
            "message": r.message,
        }
        for r in rows
    ]


def scope(report: IntegrityReport, name: str) -> str:
    """How a check ran: ``incremental``, ``skipped``, or ``full`` (with why, in an incremental
    run: the run's own reason is in its summary)."""
    how = report.scopes.get(name)
    if how is None:
        return report.mode
    if how["scope"] == "full" and report.mode == "incremental":
        return f"full: {how['why']}"
    return how["scope"]


def plot_trend(rows: list[dict[str, Any]]) -> Any:
    """Failed checks per run over time, coloured by the run's status."""

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3))
    labels = [r["time"] for r in rows]
    ax.bar(
        range(len(rows)),
        [r["failed checks"] for r in rows],
        color=[COLOURS.get(r["status"], "#6c757d") for r in rows],
    )
    step = max(1, len(rows) // 10)
    ax.set_xticks(range(0, len(rows), step), labels[::step], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("failed checks (count)")
    ax.set_title("Failed integrity checks per run")
    integer_ticks(ax, "y")
    if len(rows) == 1:
        add_note(ax, ONE_POINT_NOTE)
    fig.tight_layout()
    return fig


def next_steps(report: IntegrityReport) -> list[str]:
    """What to do about the problems, most urgent first, one line per piece of advice."""
    grouped: dict[str, list[str]] = {}
    for r in sorted(report.problems(), key=lambda r: -int(r.severity)):
        grouped.setdefault(r.advice or "investigate", []).append(f"{r.severity.name} {r.name}")
    steps = [f"{', '.join(names)}: {advice}" for advice, names in grouped.items()]
    return steps or ["Nothing to do: every rule and check passed."]


def figures(report: IntegrityReport) -> dict[str, Any]:
    counts = report.counts()
    orphans = sum(v or 0 for k, v in counts.items() if k.startswith("orphan_"))
    errors = sum(r.count or 0 for r in report.results if r.category == "validation")
    return {
        "failed_checks": report.failed_checks(),
        "orphaned_records": orphans,
        "data_errors": errors,
        "run_id": report.run_id,
    }


def period(report: IntegrityReport, trend_days: int) -> str:
    """What the run covers: the data as checked, and the trend's span."""
    return (
        f"the data as of {human_time(report.finished_at)}, {report.described()}; "
        f"trend over the last {human_count(trend_days)} days"
    )


USERS_SHOWN = 50


def exact_time(moment: datetime | None) -> str:
    """A moment in UTC to the microsecond, as a restore target needs it."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def evidence_rows(point: RestorePoint) -> list[dict[str, Any]]:
    """Per failed check, the earliest failing rows with the change that made each fail, then
    the rows no recorded change explains."""
    first = point.first_bad_change
    rows = []
    for b in point.blames:
        for e in b.evidence:
            c = e.change
            rows.append(
                {
                    "check": b.check,
                    "failing row": f"{b.table} {e.row_id}",
                    "change": f"{c.action} on {c.table} {c.row_id or ''}",
                    "actor": c.actor or "-",
                    "time": exact_time(c.time),
                    "first bad change": "yes" if c == first else "",
                }
            )
        if b.explained > len(b.evidence):
            later = human_count(b.explained - len(b.evidence))
            rows.append(
                _more(b.check, f"{later} more rows, made to fail by the same or later changes")
            )
        if b.unexplained:
            ids = ", ".join(b.unexplained_ids)
            more = " ..." if b.unexplained > len(b.unexplained_ids) else ""
            what = f"{human_count(b.unexplained)} rows ({b.table} {ids}{more})"
            rows.append(_more(b.check, f"{what} that no recorded change explains"))
    return rows


def _more(check: str, what: str) -> dict[str, Any]:
    return {"check": check, "failing row": what, "change": "-", "actor": "-", "time": "-",
            "first bad change": ""}  # fmt: skip


def restore_point_rows(point: RestorePoint) -> list[dict[str, Any]]:
    """The first bad change, the target (or why there is none) and what it would discard."""
    first = point.first_bad_change
    finding = point.findings[-1]
    users = ", ".join(str(u) for u in point.users[:USERS_SHOWN])
    if len(point.users) > USERS_SHOWN:
        users += f" and {human_count(len(point.users) - USERS_SHOWN)} more"
    return [
        {"item": "first bad change",
         "value": f"{first.describe()} at {exact_time(first.time)}" if first else "-"},
        {"item": "recommended target",
         "value": exact_time(point.target) if point.target else f"none: {finding.message}"},
        {"item": "failing rows explained by a recorded change",
         "value": human_count(sum(b.explained for b in point.blames))},
        {"item": "failing rows no recorded change explains",
         "value": human_count(point.unexplained)},
        {"item": "audit trail",
         "value": f"off on {', '.join(point.trail_off)}" if point.trail_off
         else "on for the tables involved"},
        {"item": "audit trail begins", "value": exact_time(point.trail_begins)},
        {"item": "searched from", "value": exact_time(point.since)},
        {"item": "writes a restore would discard",
         "value": human_count(point.writes_discarded()) if point.target else "-"},
        {"item": "users affected (ids)", "value": users or "-"},
    ]  # fmt: skip


def discarded_rows(point: RestorePoint) -> list[dict[str, Any]]:
    """Per table, the writes recorded since the target: what a restore to it would discard."""
    return [{**w.to_dict(), "total": w.total} for w in point.discarded]
