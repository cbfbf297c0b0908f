"""Display of the quarterly review in its notebook: summary, checklist with links, sections, plots.

Links to the reports that prove an item are relative to the review's own run directory
(``reports/quarterly_review/<run id>/report.html`` -> ``../../<report>/<run id>/report.html``),
so they work from the file system and from a copy of the archive alike; a named server's run
sits one level deeper (``reports/<server>/quarterly_review/<run id>/``).

Every ``show_*`` function takes a :class:`Review` or a :class:`FleetReview`: the fleet's
summary is one row per server, and every other part is shown once per server under its name.
"""

from __future__ import annotations

from datetime import timedelta
from html import escape
from typing import Any

from powrops.config import DEFAULT_SERVER
from powrops.findings import Severity
from powrops.format import human_duration, human_label, human_value
from powrops.quarterly.assessment import ChecklistItem, FleetReview, Review, summary_counts
from powrops.quarterly.sections import Section
from powrops.reports.display import (
    cell_text,
    markup_table,
    severity_badge,
    show_html,
    show_table,
    summary_html,
)
from powrops.reports.plotting import (
    add_note,
    barh,
    fit_time_axis,
    fit_value_axis,
    integer_ticks,
    pyplot,
    show,
    threshold,
)

LINK_PREFIX = "../../"
SERVER_LINK_PREFIX = "../../../"

#: What the notebook shows: one server's review, or several servers' with the fleet summary.
Shown = Review | FleetReview


def link_prefix(shown: Shown) -> str:
    """From the review's run directory back to the archive's root."""
    home = shown.home if isinstance(shown, FleetReview) else shown.server
    return LINK_PREFIX if home == DEFAULT_SERVER else SERVER_LINK_PREFIX


def link_html(target: str | None, label: str = "report", prefix: str = LINK_PREFIX) -> str:
    if not target:
        return '<span style="color:#888">no archived report</span>'
    return f'<a href="{escape(prefix + target)}">{escape(label)}</a>'


def _each(shown: Shown) -> list[tuple[str | None, Review]]:
    """(heading server or None, review) for every review shown."""
    if isinstance(shown, FleetReview):
        return list(shown.reviews.items())
    return [(None, shown)]


def _heading(server: str | None) -> str:
    if server is None:
        return ""
    return f'<h3 style="font-family:sans-serif">Server {escape(server)}</h3>'


# --- the fleet ------------------------------------------------------------------------------


def fleet_html(fleet: FleetReview) -> str:
    """The fleet's banner and its summary: one row per server, one column per area."""
    rows = fleet.summary_rows()
    header = list(dict.fromkeys(k for row in rows for k in row))
    body = [[_cell(k, row.get(k)) for k in header] for row in rows]
    quarter = fleet.quarter
    return "".join(
        [
            summary_html(fleet.findings(), f"Fleet quarterly review {quarter.label}", fleet.status),
            '<p style="font-family:sans-serif;font-size:14px">'
            f"Quarter {escape(quarter.label)} ({quarter.start:%Y-%m-%d} to "
            f"{quarter.end:%Y-%m-%d}): {len(fleet.reviews)} servers, each from its own "
            "evidence; a section per server follows under each heading.</p>",
            markup_table(header, body, "The fleet at a glance"),
        ]
    )


# --- summary and checklist ------------------------------------------------------------------


def summary_html_of(review: Review) -> str:
    counts = summary_counts(review.items)
    tally = ", ".join(f"{n} {s}" for s, n in counts.items())
    lines = [
        summary_html(review.findings(), f"Quarterly review {review.quarter.label}", review.status),
        '<p style="font-family:sans-serif;font-size:14px">'
        f"Quarter {escape(review.quarter.label)} "
        f"({review.quarter.start:%Y-%m-%d} to {review.quarter.end:%Y-%m-%d}), evidence up to "
        f"{review.as_of:%Y-%m-%d %H:%M} UTC. Checklist: {escape(tally)}.</p>",
        _section_overview(review),
    ]
    if review.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in review.problems)
        lines.append(f'<ul style="font-family:sans-serif;color:#8a1c1c">{items}</ul>')
    return "".join(lines)


def _section_overview(review: Review) -> str:
    rows = [
        [severity_badge(s.status), escape(s.title), escape(s.summary)]
        for s in review.sections.values()
    ]
    return markup_table(("status", "area", "summary"), rows, "The quarter at a glance")


def checklist_html(items: list[ChecklistItem], prefix: str = LINK_PREFIX) -> str:
    rows = [
        [
            escape(i.group),
            escape(i.item),
            severity_badge(i.status),
            escape(i.evidence),
            link_html(i.link, prefix=prefix),
        ]
        for i in items
    ]
    header = ("group", "item", "status", "evidence", "proof")
    return markup_table(header, rows, "The strategy's checklist, judged from evidence")


def show_summary(shown: Shown) -> None:
    """The banner, the overview of every section and any evidence that could not be read;
    for a fleet, the fleet summary first, then each server's."""
    if isinstance(shown, FleetReview):
        show_html(fleet_html(shown))
    for server, review in _each(shown):
        show_html(_heading(server) + summary_html_of(review))


def show_checklist(shown: Shown) -> None:
    prefix = link_prefix(shown)
    for server, review in _each(shown):
        show_html(_heading(server) + checklist_html(review.items, prefix))


# --- sections -------------------------------------------------------------------------------


def section_html(section: Section, prefix: str = LINK_PREFIX) -> str:
    head = (
        f'<p style="font-family:sans-serif;font-size:14px">{severity_badge(section.status)} '
        f"{escape(section.summary)}</p>"
    )
    if not section.rows:
        return head
    header = list(dict.fromkeys(k for row in section.rows for k in row))
    rows = [[_cell(k, row.get(k), prefix) for k in header] for row in section.rows]
    return head + markup_table(header, rows, None)


def show_section(shown: Shown, key: str) -> None:
    prefix = link_prefix(shown)
    for server, review in _each(shown):
        show_html(_heading(server) + section_html(review.sections[key], prefix))


def _cell(key: str, value: Any, prefix: str = LINK_PREFIX) -> str:
    if key == "link":
        return link_html(value, prefix=prefix)
    if key == "status" and isinstance(value, str) and value.upper() in Severity.__members__:
        return severity_badge(value)
    return cell_text(value)


# --- plots ----------------------------------------------------------------------------------


def plot_drills(review: Review) -> Any | None:
    """RTO and RPO of each drill against the objectives (seconds), one panel each."""
    section = review.sections["drills"]
    if not section.series.get("at"):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    objectives = {
        "rto_s": review_objective(review, "rto_s"),
        "rpo_s": review_objective(review, "rpo_s"),
    }
    for ax, key, name in zip(axes, ("rto_s", "rpo_s"), ("RTO", "RPO"), strict=True):
        values = [v if v is not None else float("nan") for v in section.series[key]]
        ax.plot(section.series["at"], values, marker="o", color="#3a6ea5", label=name)
        goal = objectives[key]
        if goal is not None:
            threshold(ax, goal, f"objective {human_duration(goal)}", values)
        ax.set_title(f"{name} per drill, {review.quarter.label}")
        ax.set_ylabel(f"{name} (seconds)")
        ax.set_xlabel("drill date (UTC)")
        ax.legend(loc="best", fontsize=8)
        fit_time_axis(ax, section.series["at"])
        fit_value_axis(ax, values)
    fig.tight_layout()
    return fig


def review_objective(review: Review, key: str) -> float | None:
    value = review.sections["drills"].series.get(f"objective_{key}") or [None]
    return float(value[0]) if isinstance(value[0], int | float) else None


def plot_growth(review: Review) -> Any | None:
    """Database size over the quarter (MiB) and the linear forecast to the next quarter's end."""
    section = review.sections["growth"]
    if not section.series.get("at"):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6))
    mib = [b / 2**20 for b in section.series["bytes"]]
    ax.plot(section.series["at"], mib, marker="o", color="#3a6ea5", label="measured")
    if section.series.get("forecast_at"):
        forecast = [b / 2**20 for b in section.series["forecast_bytes"]]
        ax.plot(section.series["forecast_at"], forecast, linestyle="--", color="#f0a202",
                label="forecast (linear)")  # fmt: skip
    ax.set_title(f"Database size, {review.quarter.label}, with forecast")
    ax.set_ylabel("size (MiB)")
    ax.set_xlabel("date (UTC)")
    ax.legend(loc="best", fontsize=8)
    moments = [*section.series["at"], *(section.series.get("forecast_at") or [])]
    fit_time_axis(ax, moments)
    if len(section.series["at"]) == 1 and section.series.get("forecast_at"):
        add_note(ax, "one measured size: the forecast uses the growth report's rate")
    fig.tight_layout()
    return fig


def plot_performance(review: Review) -> Any | None:
    """Each performance metric found in the snapshots, one small panel each, with its unit."""
    section = review.sections["performance"]
    units = {
        "cache_hit_pct": "cache hit rate (%)",
        "dead_tuple_pct": "dead tuples (%)",
        "dead_tuples": "dead tuples (rows)",
        "mean_query_ms": "mean query time (ms)",
        "slow_queries": "slow queries (count)",
    }
    present = [k for k in units if any(v is not None for v in section.series.get(k, []))]
    if not present or len(section.series.get("at", [])) < 2:
        return None  # one snapshot is a row of the table above, not five plots of one dot
    plt = pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.2), squeeze=False)
    for ax, key in zip(axes[0], present, strict=True):
        values = [v if v is not None else float("nan") for v in section.series[key]]
        ax.plot(section.series["at"], values, marker="o", color="#3a6ea5")
        ax.set_title(units[key][0].upper() + units[key][1:], fontsize=10)
        ax.set_ylabel(units[key])
        ax.set_xlabel("date (UTC)")
        if key in ("dead_tuples", "slow_queries"):
            integer_ticks(ax, "y")
        if key != "cache_hit_pct":
            fit_value_axis(ax, values)
        fit_time_axis(ax, section.series["at"], note="one snapshot")
    fig.tight_layout()
    return fig


def plot_backups(review: Review) -> Any | None:
    """Backup runs of the quarter by outcome (count)."""
    section = review.sections["backups"]
    total = section.headline.get("backup_runs")
    if not total:
        return None
    failed = int(section.headline.get("backup_failures", 0))

    return barh(
        ["succeeded", "failed"],
        [float(total - failed), float(failed)],
        title=f"Backup runs, {review.quarter.label}",
        xlabel="backup runs (count)",
        colours=["#1e7b34", "#c0262d"],
        integer=True,
    )


_PLOTS = {
    "drills": plot_drills,
    "growth": plot_growth,
    "performance": plot_performance,
    "backups": plot_backups,
}


def show_plot(shown: Shown, name: str) -> None:
    """Show one plot (per server), or say in one line why the quarter has none."""
    for server, review in _each(shown):
        if server is not None:
            show_html(_heading(server))
        fig = _PLOTS[name](review)
        if fig is None:
            points = len(review.sections[name].series.get("at", []))
            why = (
                "one data point this quarter: the table above has it; a trend needs more"
                if points == 1
                else "no data this quarter"
            )
            show_html(
                f'<p style="font-family:sans-serif;color:#666">No plot of {escape(name)}: '
                f"{escape(why)}.</p>"
            )
            continue
        show(fig)


def figures(shown: Shown) -> dict[str, Any]:
    return shown.figures()


def period(review: Shown) -> str:
    """The quarter under review, first to last day (UTC)."""
    quarter = review.quarter
    last = quarter.end - timedelta(days=1)
    return f"{quarter.label}: {quarter.start:%Y-%m-%d} to {last:%Y-%m-%d} (UTC)"


def comparison_rows(review: Review) -> list[dict[str, Any]]:
    """Each headline figure of this quarter beside the previous quarter's (words and units)."""
    now = review.figures()
    before = review.previous or {}
    keys = [k for k in now if k != "quarter"] + [
        k for k in before if k not in now and k != "quarter"
    ]
    previous = review.quarter.previous().label
    return [
        {
            "figure": human_label(key),
            previous: human_value(key, before.get(key)) if key in before else "-",
            review.quarter.label: human_value(key, now.get(key)) if key in now else "-",
        }
        for key in keys
    ]


def show_comparison(shown: Shown) -> None:
    """The headline figures beside the previous quarter's, or why there is no comparison."""
    for server, review in _each(shown):
        previous = review.quarter.previous().label
        if server is not None:
            show_html(_heading(server))
        if review.previous is None:
            show_html(
                '<p style="font-family:sans-serif;color:#666">No review of '
                f"{escape(previous)} is archived: nothing to compare with yet.</p>"
            )
            continue
        show_table(comparison_rows(review), caption=f"{review.quarter.label} beside {previous}")
