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

from powrops.config import Settings
from powrops.errors import ParameterError
from powrops.findings import Finding, Severity
from powrops.reports.plotting import barh
from powrops.retention import consent, journal, run
from powrops.retention.erase import erase_user
from powrops.retention.gdpr import export_user

KINDS = ("retention", "archive", "cleanup", "gdpr")
ACTIONS = ("export", "erase")


# --- the weekly report ----------------------------------------------------------------------


def plan_rows(settings: Settings) -> list[dict[str, Any]]:
    """Each policy: action, period, cutoff, rows due and why (a plan; nothing changes)."""
    return [p.row() for p in run.plan(settings).plans()]


def _sum(done: dict[str, Any], word: str) -> int:
    return sum(int(v) for k, v in done.items() if word in k and "bytes" not in k)


def _figures(kind: str, d: dict[str, Any]) -> dict[str, int]:
    """Rows archived, deleted, anonymized and erased, and bytes, from one event's details."""
    if kind == "cleanup":
        return {"deleted": int(d.get("deleted", 0)), "bytes": int(d.get("bytes", 0))}
    if kind == "archive":
        return {"archived": int(d.get("rows", 0)), "bytes": int(d.get("bytes", 0))}
    if kind == "gdpr":
        rows = sum(int(v) for v in (d.get("rows") or {}).values())
        return {"erased" if d.get("operation") == "erase" else "exported": rows}
    done: dict[str, Any] = {}
    for policy in (d.get("policies") or {}).values():
        for key, value in (policy.get("done") or {}).items():
            done[key] = done.get(key, 0) + int(value)
    return {"archived": _sum(done, "archived"), "deleted": _sum(done, "deleted"),
            "anonymized": _sum(done, "anonymized"), "erased": _sum(done, "users erased"),
            "bytes": int(done.get("bytes written", 0))}  # fmt: skip


def last_runs(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs of retention, archival, cleanup and GDPR requests, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ParameterError(f"recent_runs must be a positive integer (got {limit!r})")
    with journal.connect(settings) as conn:
        events = journal.recent_events(conn, KINDS, limit)
    rows = []
    for event in events:
        details = event["details"] or {}
        figures = _figures(event["kind"], details)
        rows.append({
            "at": event["at"].astimezone(UTC).isoformat(timespec="seconds"), "kind": event["kind"],
            "operation": details.get("operation", "-"), "dry run": bool(details.get("dry_run")),
            "archived": figures.get("archived", 0), "deleted": figures.get("deleted", 0),
            "anonymized": figures.get("anonymized", 0), "erased": figures.get("erased", 0),
            "bytes": figures.get("bytes", 0), "errors": len(details.get("errors") or []),
        })  # fmt: skip
    return rows


def archive_growth(settings: Settings) -> list[dict[str, Any]]:
    """Archive index entries, rows and bytes per week (set-based), oldest first."""
    with journal.connect(settings) as conn:
        found = conn.execute(
            "SELECT date_trunc('week', created_at)::date, count(*), sum(rows), "
            "COALESCE(sum((details->>'bytes')::bigint), 0), "
            "count(*) FILTER (WHERE details->>'restored_at' IS NOT NULL) "
            "FROM ops.archive_index GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return [{"week": r[0].isoformat(), "files": r[1], "rows": int(r[2]), "bytes": int(r[3]),
             "restored": r[4]} for r in found]  # fmt: skip


def archive_totals(growth: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "files": sum(g["files"] for g in growth),
        "rows": sum(g["rows"] for g in growth),
        "bytes": sum(g["bytes"] for g in growth),
    }


def plot_growth(growth: list[dict[str, Any]]) -> Any:
    """Cumulative archived rows by week."""

    total, labels, values = 0, [], []
    for g in growth:
        total += g["rows"]
        labels.append(g["week"])
        values.append(float(total))
    return barh(labels, values, title="Archived rows (cumulative, by week)", xlabel="rows")


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


def consent_rows(settings: Settings) -> list[dict[str, Any]]:
    with journal.connect(settings) as conn:
        return [t.to_dict() for t in consent.report(conn)]


def findings(settings: Settings, runs: list[dict[str, Any]]) -> list[Finding]:
    """Did retention and cleanup run on schedule (weekly, a day's grace), without errors?"""
    now = datetime.now(UTC)
    every = settings.cleanup.schedule
    found = []
    for kind, command in (("retention", "retention apply"), ("cleanup", "cleanup")):
        real = [r for r in runs if r["kind"] == kind and not r["dry run"]]
        if not real:
            message, severity = f"no {kind} run is recorded", Severity.WARNING
        else:
            at = datetime.fromisoformat(real[0]["at"])
            late = now - at > every.timedelta + timedelta(days=1)
            message = f"last {kind} run at {real[0]['at']}"
            severity = Severity.WARNING if late else Severity.OK
        advice = f"schedule `powrops {command}` {every}"
        found.append(Finding(f"{kind}.last_run", severity, message, expected=f"every {every}",
                             advice=advice))  # fmt: skip
    errors = sum(r["errors"] for r in runs)
    severity = Severity.WARNING if errors else Severity.OK
    found.append(Finding("runs.errors", severity, f"{errors} errors in the last {len(runs)} runs"))
    return found


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


def request_plan(settings: Settings, user_id: int) -> list[dict[str, Any]]:
    """What the database and archive hold about the user, as counts per table."""

    counted = erase_user(settings, user_id, dry_run=True)
    rows = [{"table": t, "rows": n} for t, n in counted.rows.items()]
    return [*rows, {"table": "archive files", "rows": counted.archive_files}]


def carry_out(
    settings: Settings, user_id: int, action: str, path: str, proceed: bool
) -> dict[str, Any] | None:
    """Export or erase (only when ``proceed``); counts and ids, never the path."""
    if not proceed:
        return None
    if action == "export":
        return export_user(settings, user_id, export_path(path)).to_dict()

    return erase_user(settings, user_id).to_dict()


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
