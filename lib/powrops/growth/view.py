"""What the weekly growth report and the two response runbooks show: tables and plots from the
metrics, growth, alerts and maintenance modules; presentation only.

Every plot is titled with its units and reads on its own in a meeting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from powrops.alerts.run import MIN_DEAD_TUPLES
from powrops.config import Settings
from powrops.findings import Finding
from powrops.format import (
    human_bytes,
    human_count,
    human_days,
    human_percent,
    human_rate,
    human_seconds,
    human_time,
)
from powrops.growth.forecast import Growth
from powrops.growth.gather import GrowthReport
from powrops.reports.display import show_table
from powrops.reports.plotting import add_note, barh, fit_time_axis, pyplot, show, threshold

GIB = float(1 << 30)
MIB = float(1 << 20)


# --- tables ----------------------------------------------------------------------------------


def _when(value: Any) -> str:
    """A snapshot time as format.human_time writes every time; "never" when there is none."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return human_time(value) if isinstance(value, datetime) else "never"


def table_rows(metrics: dict[str, Any], limit: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "table": f"{t['schema']}.{t['table']}",
            "total": human_bytes(t["total_bytes"]),
            "table data": human_bytes(t["table_bytes"]),
            "indexes": human_bytes(t["index_bytes"]),
            "TOAST": human_bytes(t["toast_bytes"]),
            "rows (estimate)": t["rows"],
            "dead tuples": t["dead_tuples"],
            "dead %": round(100 * float(t["dead_ratio"]), 1),
        }
        for t in metrics["tables"][:limit]
    ]


def maintenance_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Last vacuum and analyze (manual or auto) of every table."""
    return [
        {
            "table": f"{t['schema']}.{t['table']}",
            "last vacuum": _when(t["last_vacuum"]),
            "last analyze": _when(t["last_analyze"]),
            "modified since analyze": t["mod_since_analyze"],
            "dead tuples": t["dead_tuples"],
        }
        for t in sorted(metrics["tables"], key=lambda t: (t["schema"], t["table"]))
    ]


STATEMENT_CODE = ("statement",)
"""The columns of a statements table shown as code (``show_table(..., code=...)``)."""


def slow_rows(found: list[dict[str, Any]], nothing: str) -> list[dict[str, Any]]:
    """The slow statements of the performance runbook: the text as code (``STATEMENT_CODE``),
    times in units, who ran it."""
    if found and "note" in found[0]:
        return found
    return [
        {
            "queryid": s["queryid"],
            "statement": s["query"],
            "run by": s.get("source") or s.get("role"),
            "calls": s["calls"],
            "mean": human_seconds(float(s["mean_ms"]) / 1000),
            "max": human_seconds(float(s["max_ms"]) / 1000),
            "total": human_seconds(float(s["total_ms"]) / 1000),
            "slow": "yes" if s.get("over maintenance.alerts.query_time") else "",
        }
        for s in found
    ] or [{"result": nothing}]


def show_slow_statements(application: list[dict[str, Any]], own: list[dict[str, Any]]) -> None:
    """The application's slowest statements, then powrops' own and psql's set apart."""
    show_table(slow_rows(application, "no statement of the application recorded"),
               caption="Slowest statements of the application", code=STATEMENT_CODE)  # fmt: skip
    show_table(
        slow_rows(own, "none"),
        caption="Left out above: powrops' own statements (its roles, COPY, ANALYZE, the "
        "integrity and catalog queries) and psql's",
        code=STATEMENT_CODE,
    )


def statement_rows(metrics: dict[str, Any], key: str = "slowest") -> list[dict[str, Any]]:
    block = metrics["statements"]
    if not block["available"]:
        return [{"note": block["note"]}]
    return [
        {
            "queryid": s["queryid"],
            "statement": s["query"],
            "calls": s["calls"],
            "mean ms": s["mean_ms"],
            "max ms": s["max_ms"],
            "total ms": s["total_ms"],
        }
        for s in block[key]
    ]


def growth_rows(growth: Growth) -> list[dict[str, Any]]:
    data = growth.to_dict()
    rate = data["rate_bytes_per_day"]
    band = data["rate_band"]

    def size(value: float | None) -> str:
        return "-" if value is None else human_bytes(value)

    def reached(key: str) -> str:
        value, when = data[f"days_to_{key}"], data[f"date_{key}"]
        if value is None:
            return "not at this rate"
        if when is None:
            return "not within a century at this rate"
        return f"in {human_days(value)} ({when})"

    rows = [
        ("trend from", _SOURCES.get(data["source"], data["source"])),
        ("database size now", size(data["current_bytes"])),
        ("growth per day", "-" if rate is None else f"{size(rate)}/day"),
        ("95 % band", "-" if band is None else f"{size(band[0])} .. {size(band[1])} per day"),
        ("filesystem", "-" if data["disk"] is None else
         f"{human_percent(data['disk']['percent'])} used of "
         f"{size(data['disk']['capacity_bytes'])} ({data['disk']['source']})"),
        ("warning threshold reached", reached("warning")),
        ("critical threshold reached", reached("critical")),
        ("earliest warning (upper band)", reached("warning_earliest")),
        ("database size in a year", size(data["size_in_a_year_bytes"])),
        ("filesystem used in a year (everything on it, not only this database)",
         size(data["needed_in_a_year_bytes"])),
    ]  # fmt: skip
    rows += [("note", note) for note in data["notes"]]
    return [{"item": k, "value": v} for k, v in rows]


def figures(report: GrowthReport) -> dict[str, Any]:
    data = report.growth.to_dict()
    metrics = report.snapshot.metrics
    return {
        "total_bytes": metrics["database"]["total_bytes"],
        "growth_bytes_per_day": data["rate_bytes_per_day"],
        "growth_source": data["source"],
        "days_to_warning": data["days_to_warning"],
        "disk_percent": None if data["disk"] is None else data["disk"]["percent"],
        "dead_tuple_ratio": round(metrics["dead_tuples"]["ratio"], 4),
        "cache_hit_rate": metrics["cache"]["hit_rate"],
        "alerts": report.alerts.counts()["alerts"],
    }


# --- plots -----------------------------------------------------------------------------------


def _unit(values: list[float]) -> tuple[float, str]:
    return (GIB, "GiB") if max(values, default=0) >= GIB else (MIB, "MiB")


def plot_size(growth: Growth) -> Any:
    """Size over time (history or estimate), forecast with its 95 % band, disk thresholds."""

    plt = pyplot()
    forecast = growth.forecast()
    limits = _threshold_sizes(growth)
    scale, unit = _unit(
        [v for _, v in growth.points] + [f[3] for f in forecast] + [growth.current_bytes]
    )
    fig, ax = plt.subplots(figsize=(9, 4.2))
    label = "snapshots" if growth.source == "snapshots" else "estimated from creation times"
    if growth.points:
        ax.plot([t for t, _ in growth.points], [v / scale for _, v in growth.points],
                marker="o", color="#1e5aa5", label=f"database size ({label})")  # fmt: skip
    ax.plot([growth.now], [growth.current_bytes / scale], marker="D", color="#1a1a1a",
            linestyle="none", label="now")  # fmt: skip
    if forecast:
        times = [f[0] for f in forecast]
        ax.plot(times, [f[1] / scale for f in forecast], color="#e07b00", label="forecast")
        ax.fill_between(times, [f[2] / scale for f in forecast], [f[3] / scale for f in forecast],
                        color="#f6c48f", alpha=0.5, label="95 % band")  # fmt: skip
    for name, (size, colour) in limits.items():
        ax.axhline(size / scale, color=colour, linestyle="--", label=f"disk {name}")
    ax.set_title(f"Database size over time and forecast ({unit})")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"size ({unit})")
    ax.legend(loc="upper left", fontsize=8)
    moments = [t for t, _ in growth.points] + [growth.now] + [f[0] for f in forecast]
    fit_time_axis(ax, moments)
    fig.tight_layout()
    return fig


def _threshold_sizes(growth: Growth) -> dict[str, tuple[float, str]]:
    """Database sizes at which the disk reaches its thresholds (shown when within 10x)."""
    disk = growth.disk
    if disk is None:
        return {}
    result = {}
    for name, pct, colour in (
        (f"warning {growth.warning_pct:g} %", growth.warning_pct, "#f0a202"),
        (f"critical {growth.critical_pct:g} %", growth.critical_pct, "#c0262d"),
    ):
        size = growth.current_bytes + disk.capacity_bytes * pct / 100 - disk.used_bytes
        if 0 < size <= 10 * max(growth.current_bytes, 1):
            result[name] = (size, colour)
    return result


def plot_tables(metrics: dict[str, Any], limit: int = 12) -> Any:
    """Size per table: data, indexes and TOAST stacked."""

    plt = pyplot()
    tables = metrics["tables"][:limit]
    scale, unit = _unit([float(t["total_bytes"]) for t in tables])
    labels = [f"{t['schema']}.{t['table']}" for t in tables]
    data = [float(t["table_bytes"]) / scale for t in tables]
    index = [float(t["index_bytes"]) / scale for t in tables]
    toast = [float(t["toast_bytes"]) / scale for t in tables]
    fig, ax = plt.subplots(figsize=(9, 0.42 * max(len(labels), 2) + 1.4))
    ax.barh(labels, data, color="#1e5aa5", label="table data")
    ax.barh(labels, index, left=data, color="#6fa8dc", label="indexes")
    ax.barh(labels, toast, left=[a + b for a, b in zip(data, index, strict=True)],
            color="#b4a7d6", label="TOAST")  # fmt: skip
    ax.invert_yaxis()
    ax.set_title(f"Table distribution: size per table ({unit})")
    ax.set_xlabel(f"size ({unit})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_dead_tuples(metrics: dict[str, Any], settings: Settings, limit: int = 15) -> Any:
    """Dead tuples per table (%) against the warning and critical thresholds."""

    thr = settings.alerts.dead_tuples
    tables = sorted(metrics["tables"], key=lambda t: -float(t["dead_ratio"]))[:limit]
    values = [100 * float(t["dead_ratio"]) for t in tables]
    judged = [int(t.get("dead_tuples") or 0) >= MIN_DEAD_TUPLES for t in tables]
    colours = [
        "#9aa0a6" if not j else "#c0262d" if v >= thr.critical
        else "#f0a202" if v >= thr.warning else "#1e7b34"
        for v, j in zip(values, judged, strict=True)
    ]  # fmt: skip
    fig = barh(
        [
            f"{t['schema']}.{t['table']} ({human_count(int(t.get('dead_tuples') or 0))} dead)"
            for t in tables
        ],
        values,
        title="Dead tuples per table (% of live + dead); alerts judge tables from "
        f"{settings.alerts.dead_tuples_min_size} with 50 dead rows",
        xlabel="dead tuples (%)",
        colours=colours,
        limit=thr.warning,
        limit_label=f"warning {thr.warning:g} %",
    )
    ax = fig.axes[0]
    threshold(ax, thr.critical, f"critical {thr.critical:g} %", [0.0, *values], axis="x",
              linestyle=":")  # fmt: skip
    if not all(judged):
        add_note(ax, f"grey: fewer than {MIN_DEAD_TUPLES} dead rows, not judged by the alert")
    return fig


def plot_cache(history: list[dict[str, Any]], metrics: dict[str, Any]) -> Any:
    """Cache hit rate (%) of each snapshot."""

    plt = pyplot()
    points = [(h["taken_at"], 100 * h["hit_rate"]) for h in history if h["hit_rate"] is not None]
    if not points and metrics["cache"]["hit_rate"] is not None:
        points = [(datetime.fromisoformat(metrics["taken_at"]), 100 * metrics["cache"]["hit_rate"])]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#1e5aa5")
    ax.axhline(99, color="#f0a202", linestyle="--", label="99 % (usual target)")
    ax.set_ylim(min([p[1] for p in points] + [98]) - 1, 100.5)
    ax.set_title("Cache hit rate per snapshot (% of block reads served from shared buffers)")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("hit rate (%)")
    ax.legend(loc="lower left", fontsize=8)
    fit_time_axis(ax, [p[0] for p in points], note="one snapshot so far")
    fig.tight_layout()
    return fig


def plot_statements(metrics: dict[str, Any], settings: Settings, limit: int = 10) -> Any:
    """Mean execution time of the slowest statements (ms) against the warning threshold."""

    slowest = metrics["statements"]["slowest"][:limit]
    warn_ms = settings.alerts.query_time.warning.timedelta.total_seconds() * 1000
    labels = [_plain(f"{s['queryid']}: {s['query'][:32]}") for s in slowest]
    labels = labels or ["(none recorded)"]
    values = [float(s["mean_ms"]) for s in slowest] or [0.0]
    return barh(labels, values, title="Slowest statements: mean execution time (ms)",
                xlabel="mean execution time (ms)", limit=warn_ms,
                limit_label=f"warning {settings.alerts.query_time.warning}")  # fmt: skip


def _plain(text: str) -> str:
    """Text for a matplotlib label: ``$`` (as in ``$1``) would start mathtext."""
    return text.replace("$", r"\$")


def show_statements_plot(metrics: dict[str, Any], settings: Settings) -> None:
    """The statements plot, or a line saying why there is none."""

    if not metrics["statements"]["available"]:
        print(metrics["statements"]["note"])
        return
    show(plot_statements(metrics, settings))


def plot_table_growth(rows: list[dict[str, Any]], limit: int = 10) -> Any:

    top = rows[:limit]
    return barh(
        [r["table"] for r in top] or ["(no timestamped rows)"],
        [float(r["bytes per day (creation times)"]) / 1024 for r in top] or [0.0],
        title="Growth per table from the rows' creation times (KiB per day)",
        xlabel="growth (KiB per day)",
    )


def plan_rows(run: Any, nothing: str) -> list[dict[str, Any]]:
    """Rows of a maintenance or cleanup result, or one row saying there is nothing to do."""
    if run is None:
        return [{"result": "not run"}]
    rows: list[dict[str, Any]] = run.rows()
    return rows or [{"result": nothing}]


def plan_notes(run: Any) -> list[str]:
    """What a page says under a maintenance or cleanup table besides its rows: a dry run's
    journal row skipped (a read-only database, a standby), and the objects due when a
    confirmed action ran that its dry run had not listed (left alone)."""
    if run is None:
        return []
    notes = [run.journal_skipped] if getattr(run, "journal_skipped", None) else []
    unplanned = getattr(run, "unplanned", None) or []
    if unplanned:
        notes.append(
            f"Changed since the dry run: {', '.join(unplanned)} became due after it was "
            "reviewed and were left alone; run the dry run again to review them."
        )
    return notes


def show_plan(run: Any, nothing: str, caption: str) -> None:
    """A maintenance or cleanup result as a table (:func:`plan_rows`), then its notes."""
    show_table(plan_rows(run, nothing), caption=caption)
    for note in plan_notes(run):
        print(note)


def seq_scan_rows(metrics: dict[str, Any], min_rows: int = 1000) -> list[dict[str, Any]]:
    """Tables read mostly by sequential scans: candidates for a missing index."""
    rows = [
        {
            "table": f"{t['schema']}.{t['table']}",
            "rows": t["rows"],
            "seq scans": t["seq_scan"],
            "index scans": t["idx_scan"],
        }
        for t in metrics["tables"]
        if (t["rows"] or 0) >= min_rows and (t["seq_scan"] or 0) > (t["idx_scan"] or 0)
    ]
    return rows or [{"result": f"no table of {min_rows}+ rows is read mostly by seq scans"}]


def rows_or(rows: list[dict[str, Any]], nothing: str) -> list[dict[str, Any]]:
    return rows or [{"result": nothing}]


def only(findings: list[Finding], *checks: str) -> list[Finding]:
    """The findings of the named checks."""
    return [f for f in findings if f.check in checks]


def capacity_figures(growth: Growth, **done: bool) -> dict[str, Any]:
    keep = ("rate_bytes_per_day", "days_to_warning", "days_to_critical", "needed_in_a_year_bytes")
    data = growth.to_dict()
    return {**{k: data[k] for k in keep}, **done}


def performance_figures(slow: list[dict[str, Any]], **done: bool) -> dict[str, Any]:
    over = sum(1 for s in slow if s.get("over maintenance.alerts.query_time"))
    return {"slow_statements": over, **done}


# --- text for the command line ---------------------------------------------------------------

_SOURCES = {
    "snapshots": "fitted to the stored metric snapshots",
    "timestamps": "estimated from the data's own timestamps",
    "none": "no trend yet",
}


def growth_lines(data: dict[str, Any]) -> list[str]:
    """``Growth.to_dict()`` as ``powrops metrics growth`` prints it: units and words only."""
    rate = data.get("rate_bytes_per_day")
    source = _SOURCES.get(str(data.get("source")), str(data.get("source")))
    points = data.get("points") or 0
    lines = [f"growth              {'-' if rate is None else human_rate(rate)} ({source}, "
             f"{human_count(points)} point{'' if points == 1 else 's'})"]  # fmt: skip
    band = data.get("rate_band")
    if band:
        lines.append(f"  95 % band         {human_rate(band[0])} to {human_rate(band[1])}")
    lines.append(f"database size       {human_bytes(data.get('current_bytes') or 0)}")
    if data.get("size_in_a_year_bytes") is not None:
        lines.append(f"  in a year         {human_bytes(data['size_in_a_year_bytes'])}")
    disk = data.get("disk")
    if disk:
        lines.append(
            f"filesystem          {human_percent(disk['percent'])} used: "
            f"{human_bytes(disk['used_bytes'])} of {human_bytes(disk['capacity_bytes'])} "
            f"({disk['source']})"
        )
        if data.get("needed_in_a_year_bytes") is not None:
            lines.append(
                f"  used in a year    {human_bytes(data['needed_in_a_year_bytes'])} "
                "(everything on the filesystem, not only this database)"
            )
    for level in ("warning", "critical"):
        days = data.get(f"days_to_{level}")
        earliest = data.get(f"days_to_{level}_earliest")
        line = f"{level + ' disk usage':20}{_ahead(days)}"
        if days is not None and data.get(f"date_{level}"):
            line += f" (about {data[f'date_{level}']})"
        if earliest is not None and _ahead(earliest) != _ahead(days):
            line += f", at the earliest {_ahead(earliest)}"
        lines.append(line)
    rates = {k: v for k, v in (data.get("rates_by_source") or {}).items() if v is not None}
    if rates:
        by_source = ", ".join(f"{k} {human_rate(v)}" for k, v in rates.items())
        lines.append(f"rates by source     {by_source}")
    lines.extend(f"note: {note}" for note in data.get("notes") or [])
    return lines


def _ahead(days: float | None) -> str:
    """'in 12 days', 'not within a century', '-' (no disk figures)."""
    if days is None:
        return "-"
    text = human_days(days)
    return text if text.startswith("not ") else f"in {text}"


def period(report: GrowthReport) -> str:
    """What the run covers: the growth history the trend is fitted to, up to now."""
    growth = report.growth
    if len(growth.points) > 1:
        first = min(at for at, _ in growth.points)
        return (
            f"growth history from {human_time(first)} to {human_time(growth.now)} "
            f"({human_count(len(growth.points))} points)"
        )
    return f"the database as of {human_time(growth.now)} (no growth history yet)"
