"""What the recovery drill runbook shows: steps with timings, RTO/RPO against objectives,
the verification results. Presentation only; the drill itself is in ``powrops.drill.run``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from powrops.drill.run import DrillResult
from powrops.format import human_duration, human_seconds, human_value
from powrops.reports import show_findings, show_summary, show_table
from powrops.reports.plotting import barh, show
from powrops.restore import RecoveryTarget

STATUS_COLOURS = {"ok": "#1e7b34", "skipped": "#9aa0a6", "failed": "#c0262d"}


def parse_time(text: str | None) -> datetime | None:
    """A notebook parameter as a target time (empty: a drill to now, with markers)."""
    if not text:
        return None

    return RecoveryTarget("time", text).time


def steps_rows(result: DrillResult) -> list[dict[str, Any]]:
    return [
        {
            "step": f"{s.number}. {s.name}",
            "status": s.status,
            "took": human_seconds(s.seconds),
            "what happened": s.message,
        }
        for s in result.steps
    ]


def objectives_rows(result: DrillResult) -> list[dict[str, Any]]:
    rows = []
    for name, value in (("RTO", result.rto_s), ("RPO", result.rpo_s)):
        objective = result.objectives.get(f"{name.lower()}_s")
        met = value is not None and objective is not None and value <= objective
        rows.append({
            "measure": name,
            "measured": "not measured" if value is None else human_seconds(value),
            "objective": "-" if objective is None else human_duration(objective),
            "met": "yes" if met else "NO",
        })  # fmt: skip
    return rows


def verification_rows(result: DrillResult) -> list[dict[str, Any]]:
    return [
        {"check": f.check, "severity": f.severity.name, "result": f.message}
        for f in result.findings
        if f.check.startswith("verify.")
    ]


def plot_steps(result: DrillResult) -> Any:

    steps = result.steps
    return barh(
        [f"{s.number}. {s.name}" for s in steps],
        [s.seconds for s in steps],
        title=f"Recovery drill {result.drill_id}: time per step",
        xlabel="seconds",
        colours=[STATUS_COLOURS.get(s.status, "#3a6ea5") for s in steps],
    )


def show_result(result: DrillResult) -> None:
    """The drill's outcome as a summary banner, tables and a plot."""

    target = human_value("target", result.target.get("value"))
    show_summary(result.findings, title=f"Recovery drill to {target}")
    show_table(
        objectives_rows(result), caption="RTO and RPO against the objectives (recovery.objectives)"
    )
    show_table(steps_rows(result), caption="The recovery plan, step by step")
    if result.steps:
        show(plot_steps(result))
    show_findings(result.findings)


def figures(result: DrillResult) -> dict[str, Any]:
    return {
        "rto_s": result.rto_s,
        "rpo_s": result.rpo_s,
        "backup": result.label,
        "chain_length": len(result.chain),
        "target": result.target.get("value"),
        "finished_at": result.finished_at.isoformat() if result.finished_at else None,
    }


def period(result: DrillResult) -> str:
    """What the drill covers: recovery to its target."""
    return f"recovery to {human_value('target', result.target.get('value'))}"
