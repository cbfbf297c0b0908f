"""What the integrity report and the corruption runbook show: tables, a trend plot, the damage
scope and the recovery target, from ``powrops.integrity`` and ``powrops.audit.trail``; presentation
only. Ids only: never names, emails or row values."""

from __future__ import annotations

from typing import Any

from powrops.format import human_count, human_time
from powrops.integrity import IntegrityReport
from powrops.reports.plotting import ONE_POINT_NOTE, add_note, integer_ticks, pyplot

COLOURS = {"OK": "#1e7b34", "WARNING": "#f0a202", "CRITICAL": "#c0262d", "UNKNOWN": "#6c757d"}


def check_rows(report: IntegrityReport) -> list[dict[str, Any]]:
    """Every rule and check with its count and sample ids, problems first."""
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
            "message": r.message,
        }
        for r in rows
    ]


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
        f"the data as of {human_time(report.finished_at)}; "
        f"trend over the last {human_count(trend_days)} days"
    )
