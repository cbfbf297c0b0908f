"""What the weekly retention report and the GDPR request runbook show (presentation only).

The report: each policy's plan (nothing is changed), what the last retention, archive, cleanup
and GDPR runs did (from ``ops.events``), the archive index's size and growth, consent totals.
The runbook: a request's plan (counts only), the confirmation, and the outcome (counts and a
request id). Nothing here ever shows personal data or the export path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from powrops.reports.plotting import fit_time_axis, integer_ticks, pyplot

KINDS = ("retention", "archive", "cleanup", "gdpr")


# --- the weekly report ----------------------------------------------------------------------


def archive_totals(growth: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "files": sum(g["files"] for g in growth),
        "rows": sum(g["rows"] for g in growth),
        "bytes": sum(g["bytes"] for g in growth),
    }


def plot_growth(growth: list[dict[str, Any]]) -> Any:
    """Cumulative archived rows by week: one line over time, whatever the number of weeks."""
    total, weeks, values = 0, [], []
    for g in growth:
        total += g["rows"]
        weeks.append(datetime.fromisoformat(str(g["week"])).replace(tzinfo=UTC))
        values.append(total)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.step(weeks, values, where="post", marker="o" if len(weeks) <= 60 else None,
            color="#3a6ea5")  # fmt: skip
    ax.set_title("Archived rows (cumulative, by week)")
    ax.set_xlabel("week (UTC)")
    ax.set_ylabel("rows (count)")
    integer_ticks(ax, "y")
    fit_time_axis(ax, weeks, window=timedelta(days=7))
    fig.tight_layout()
    return fig


def report_figures(
    plan: list[dict[str, Any]], totals: dict[str, int], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The report's headline figures for the archive index page."""
    return {
        "rows_due": sum(int(p["due"]) for p in plan),
        "archive_files": totals["files"],
        "archive_rows": totals["rows"],
        "run_errors": sum(int(r["errors"]) for r in runs),
    }


# --- the GDPR request runbook ----------------------------------------------------------------


def outcome_rows(outcome: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What the request did: first one line saying it, then the rows per table."""
    if outcome is None:
        return [{"item": "result", "value": "nothing done: the request was not confirmed"}]
    said = []
    if "folder" in outcome:
        text = f"exported {outcome['files']} files to {outcome['folder']}"
        said.append({"item": "result", "value": text})
    rows = [{"item": f"rows: {t}", "value": n} for t, n in outcome.get("rows", {}).items()]
    extra = [(k, v) for k, v in outcome.items() if k not in ("rows", "errors", "folder", "files")]
    return said + rows + [{"item": k, "value": v} for k, v in extra]
