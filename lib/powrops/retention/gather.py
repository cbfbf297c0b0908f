"""What the retention report and the GDPR runbook read: what is due, recent runs, the archive's
growth, consents, and what is held about one user. Reads only; :mod:`powrops.retention.view`
shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from powrops.config import Settings
from powrops.counts import check_positive
from powrops.errors import ParameterError
from powrops.findings import Finding, Severity
from powrops.format import human_time
from powrops.retention import consent, journal, run
from powrops.retention.erase import erase_user, nothing_held

KINDS = ("retention", "archive", "cleanup", "gdpr")


def plan_rows(settings: Settings) -> list[dict[str, Any]]:
    """Each policy: action, period, cutoff, rows due and why (a plan; nothing changes)."""
    return [{**p.row(), "cutoff": human_time(p.cutoff)} for p in run.plan(settings).plans()]


def last_runs(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs of retention, archival, cleanup and GDPR requests, newest first."""
    check_positive("recent_runs", limit)  # the one rule of a count, as `report run` checks it
    with journal.connect(settings) as conn:
        events = journal.recent_events(conn, KINDS, settings.server, limit)
    rows = []
    for event in events:
        details = event["details"] or {}
        figures = _figures(event["kind"], details)
        rows.append({
            "at": event["at"].astimezone(UTC), "kind": event["kind"],
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
            at = real[0]["at"]
            late = now - at > every.timedelta + timedelta(days=1)
            message = f"last {kind} run at {human_time(at)}"
            severity = Severity.WARNING if late else Severity.OK
        advice = f"schedule `powrops {command}` {every}"
        found.append(Finding(f"{kind}.last_run", severity, message, expected=f"every {every}",
                             advice=advice))  # fmt: skip
    errors = sum(r["errors"] for r in runs)
    severity = Severity.WARNING if errors else Severity.OK
    found.append(Finding("runs.errors", severity, f"{errors} errors in the last {len(runs)} runs"))
    return found


def request_plan(settings: Settings, user_id: int) -> list[dict[str, Any]]:
    """What the database and archive hold about the user, as counts per table; a
    ParameterError naming ``user_id`` when nothing is held, so that the runbook never asks to
    export or erase no one."""

    counted = erase_user(settings, user_id, dry_run=True)
    if counted.holds_nothing():
        raise ParameterError(f"{nothing_held(user_id)}: check user_id in the parameters cell")
    rows = [{"table": t, "rows": n} for t, n in counted.rows.items()]
    return [*rows, {"table": "archive files", "rows": counted.archive_files}]


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


def _sum(done: dict[str, Any], word: str) -> int:
    return sum(int(v) for k, v in done.items() if word in k and "bytes" not in k)


def report_period(runs: list[dict[str, Any]], now: datetime | None = None) -> str:
    """What the retention report covers: the policies as of now and the runs it lists."""
    now = now or datetime.now(UTC)
    at = [r["at"] for r in runs if isinstance(r.get("at"), datetime)]
    since = f"; runs since {human_time(min(at))}" if at else "; no runs recorded"
    return f"policies as of {human_time(now)}{since}"
