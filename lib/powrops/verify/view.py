"""What the daily backup verification report shows: tables and a timeline plot, from the
verification report's data (``powrops.verify``); presentation only."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from powrops.format import (
    human_bytes,
    human_duration,
    human_label,
    human_rows,
    human_seconds,
    human_time,
)
from powrops.reports.plotting import add_note, fit_time_axis, pyplot
from powrops.verify import VerificationReport

KIND_COLOURS = {"full": "#1e5aa5", "incremental": "#6fa8dc"}

#: The timeline plots at most this many backups (the newest); the table lists every one.
TIMELINE_LIMIT = 40


def backup_rows(report: VerificationReport) -> list[dict[str, Any]]:
    return [
        {
            "backup": b.label,
            "kind": b.kind,
            "run": b.status,
            "verdict": b.severity.name,
            "stopped": human_time(b.stop_time),
            "stored": human_bytes(b.stored_size),
            "checksums": b.checksums,
            "content": b.content,
            "secondary": b.secondary,
            "pg_verifybackup": b.pg_verifybackup,
            "WAL": b.wal,
            "chain": " <- ".join(reversed(b.chain)),
        }
        for b in report.backups
    ]


REASONS = {
    "new": "written since the last verification",
    "content": "content not yet checked against its manifest",
    "changed": "size changed since it was last read",
    "due": "not read for the re-read period",
    "rotation": "today's share of the re-reads",
    "history": "timeline history (always read)",
    "requested": "asked for (one backup, or --all)",
}


def read_rows(report: VerificationReport) -> list[dict[str, Any]]:
    """How much of the primary was read today and why, and what was trusted from earlier."""
    plan = report.figures.get("plan") or {}
    rows: list[dict[str, Any]] = [
        {"objects": count, "why": REASONS.get(reason, reason)}
        for reason, count in sorted((plan.get("reasons") or {}).items())
    ]
    if plan.get("objects_skipped"):
        oldest = datetime.fromisoformat(plan["oldest_skipped_read"])
        rows.append({
            "objects": plan["objects_skipped"],
            "why": f"not read: intact when last read (the oldest at {human_time(oldest)}), "
            f"re-read within {plan.get('reread_every')}",
        })  # fmt: skip
    return rows


def read_summary(report: VerificationReport) -> str:
    plan = report.figures.get("plan") or {}
    return (
        f"read {human_bytes(plan.get('bytes_to_read', 0))}, "
        f"not read {human_bytes(plan.get('bytes_skipped', 0))}"
    )


def window_rows(report: VerificationReport) -> list[dict[str, Any]]:
    return [
        {
            "backup": w.label,
            "from (consistent)": f"{human_time(w.start_time)} / {w.start_lsn}",
            "to (last contiguous WAL)": f"{human_time(w.end_time)} / {w.end_lsn}",
            "span": _span(w.seconds),
            "ended by": w.stopped_by or "the newest archived WAL",
        }
        for w in report.windows
    ]


def _span(seconds: float | None) -> str:
    """A span or age in the units of ``format.human_duration``; a window of no length says
    what it means instead of '0 min 0 s'."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return "none yet (no WAL after the backup)"
    return human_duration(seconds)


def wal_rows(report: VerificationReport) -> list[dict[str, Any]]:
    rows = []
    for t in report.timelines:
        gaps = "; ".join(
            g.to_dict().get("first", "?") + ".." + g.to_dict().get("last", "?") for g in t.gaps
        )
        rows.append({
            "timeline": t.timeline,
            "segments": t.segments,
            "first": t.first,
            "last": t.last,
            "last archived": human_time(t.last_archived_at),
            "gaps": gaps or "none",
            "history": t.history,
        })  # fmt: skip
    return rows


def freshness_rows(report: VerificationReport) -> list[dict[str, Any]]:
    return [
        {
            "check": f.check,
            "newest": f.reference or "-",
            "at": human_time(f.at),
            "age": "-" if f.age_s is None else human_duration(f.age_s),
            "limit": "-" if f.limit_s is None else human_duration(f.limit_s),
            "verdict": f.severity.name,
        }
        for f in report.freshness
    ]


def restore_rows(report: VerificationReport) -> list[dict[str, Any]]:
    result = report.test_restore
    if not result:
        return [{"test restore": "not run (run with restore = True)"}]
    rows: list[dict[str, Any]] = [
        {"item": "backup", "value": result.get("label")},
        {"item": "chain", "value": " <- ".join(reversed(result.get("chain") or []))},
        {"item": "result", "value": "OK" if result.get("ok") else f"FAILED: {result.get('error')}"},
    ]
    for name, seconds in (result.get("timings") or {}).items():
        rows.append({"item": human_label(name), "value": human_seconds(seconds)})
    for query in result.get("queries") or []:
        value = human_rows(query["rows"]) if "rows" in query else f"error: {query.get('error')}"
        rows.append({"item": query_name(str(query.get("sql"))), "value": value})
    return rows


_COUNT = re.compile(r'^SELECT count\(\*\) FROM (?:public\.)?"?(\w+)"?$', re.IGNORECASE)
_REVISION = re.compile(r"^SELECT version_num FROM ", re.IGNORECASE)


def query_name(text: str) -> str:
    """A smoke query by what it asks: 'rows in users', 'schema revision', 'server answers';
    any other query as its SQL."""
    text = text.strip()
    if match := _COUNT.match(text):
        return f"rows in {match.group(1)}"
    if _REVISION.match(text):
        return "schema revision"
    if text.upper() == "SELECT 1":
        return "server answers"
    return text


def plot_timeline(report: VerificationReport) -> Any:
    """Backups as points, recoverability windows as bars, WAL gaps as red marks, over time."""

    plt = pyplot()
    shown = report.backups[-TIMELINE_LIMIT:]  # the newest; the table lists them all
    fig, ax = plt.subplots(figsize=(9, 0.3 * max(len(shown), 4) + 1.6))
    labels = [b.label for b in shown]
    windows = {w.label: w for w in report.windows}
    for index, backup in enumerate(shown):
        window = windows.get(backup.label)
        if window and window.start_time and window.end_time:
            ax.plot(
                [window.start_time, window.end_time], [index, index], color="#9fc5e8",
                linewidth=8, solid_capstyle="butt",
                label="recoverable window" if index == 0 else None,
            )  # fmt: skip
        when = backup.stop_time or backup.start_time
        colour = KIND_COLOURS.get(backup.kind, "#888888") if backup.status == "ok" else "#c0262d"
        ax.plot([when], [index], marker="o", color=colour, markersize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_title("Backups and the time each can be restored to (UTC)")
    ax.set_xlabel("time (UTC)")
    moments: list[datetime | None] = [b.stop_time or b.start_time for b in shown]
    moments += [t for w in report.windows if w.label in labels for t in (w.start_time, w.end_time)]
    fit_time_axis(ax, moments, window=timedelta(hours=1), note="one backup, no window yet")
    if len(report.backups) > len(shown):
        add_note(ax, f"the newest {len(shown)} of {len(report.backups)} backups")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def figures(report: VerificationReport) -> dict[str, Any]:
    ok = [b for b in report.backups if b.status == "ok"]
    return {
        "backups": len(report.backups),
        "ok_backups": len(ok),
        "files_checked": report.figures.get("files_checked"),
        "wal_checked": report.figures.get("wal_checked"),
        "gaps": sum(len(t.gaps) for t in report.timelines),
        "test_restore": None if not report.test_restore else bool(report.test_restore.get("ok")),
        "recovery_window_end": _iso(report.verified_until()),  # for alerts' metrics
        "duration_s": round(report.duration_s, 2),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def period(report: VerificationReport) -> str:
    """What the run covers: the backups from the oldest to the time of the check."""
    starts = [b.start_time for b in report.backups if b.start_time]
    if not starts:
        return f"the repository as of {human_time(report.now)} (no backups)"
    return f"backups from {human_time(min(starts))} to {human_time(report.now)}"
