"""What the weekly retention report and the GDPR request runbook show (presentation only).

The report: each policy's plan (nothing is changed), what the last retention, archive, cleanup
and GDPR runs did (from ``ops.events``), the archive index's size and growth, consent totals.
The runbook: a request's plan (counts only), the confirmation, and the outcome (counts and a
request id). Nothing here ever shows personal data or the export path.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from powrops.errors import ParameterError
from powrops.findings import Finding, Severity
from powrops.format import human_time
from powrops.reports.plotting import _pyplot, fit_time_axis, integer_ticks

KINDS = ("retention", "archive", "cleanup", "gdpr")
ACTIONS = ("export", "erase")


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
    plt = _pyplot()
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


def check_request(user_id: Any, action: str) -> int:
    """The user id as an int, or ParameterError; the action must be export or erase."""
    if action not in ACTIONS:
        raise ParameterError(f"action must be one of {', '.join(ACTIONS)} (got {action!r})")
    if user_id is None or user_id == "":
        raise ParameterError(
            "user_id is not set: a GDPR request names its subject (-p user_id N); "
            "there is no default user"
        )
    if isinstance(user_id, str) and user_id.strip().isdigit():  # -p user_id 7 on the CLI
        user_id = int(user_id)
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
        raise ParameterError(f"user_id must be a positive integer (got {user_id!r})")
    return user_id


def export_path(value: str) -> Path:
    """The export directory: a path, or ``env:NAME`` to read it from the environment (which
    keeps it out of the archived notebook's parameters)."""
    if value.startswith("env:"):
        name = value[4:]
        if not os.environ.get(name):
            raise ParameterError(f"export_path names environment variable {name}, which is unset")
        return Path(os.environ[name])
    if not value:
        raise ParameterError("export_path is required for an export (a new, private directory)")
    return Path(value)


def outcome_rows(outcome: dict[str, Any] | None) -> list[dict[str, Any]]:
    if outcome is None:
        return [{"item": "result", "value": "nothing done (confirm is False)"}]
    rows = [{"item": f"rows: {t}", "value": n} for t, n in outcome.get("rows", {}).items()]
    extra = [(k, v) for k, v in outcome.items() if k not in ("rows", "errors")]
    return rows + [{"item": k, "value": v} for k, v in extra]


def request_findings(outcome: dict[str, Any] | None) -> list[Finding]:
    if outcome is None:
        return [Finding("gdpr.request", Severity.OK, "planned only; nothing changed")]
    errors = outcome.get("errors") or []
    severity = Severity.WARNING if errors else Severity.OK
    return [Finding("gdpr.request", severity, f"done with {len(errors)} errors")]


def report_period(runs: list[dict[str, Any]], now: datetime | None = None) -> str:
    """What the retention report covers: the policies as of now and the runs it lists."""
    now = now or datetime.now(UTC)
    at = [r["at"] for r in runs if isinstance(r.get("at"), datetime)]
    since = f"; runs since {human_time(min(at))}" if at else "; no runs recorded"
    return f"policies as of {human_time(now)}{since}"
