"""The fleet page: reports/index.html opens with one row per server and one column per report,
each cell the latest run, its age against the schedule, stale in red, linked to the run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from powrops.reports.catalog import list_runs
from powrops.reports.index import build_index

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DAY = 86400.0


def _run(
    reports: Path, server: str | None, name: str, age: timedelta, status: str, every: float | None
) -> Path:
    started = NOW - age
    folder = reports / server if server else reports
    run_dir = folder / name / started.strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True)
    result = {
        "name": name,
        "run_id": run_dir.name,
        "started_at": started.isoformat(),
        "finished_at": started.isoformat(),
        "status": status,
        "exit_code": {"OK": 0, "WARNING": 1, "CRITICAL": 2}[status],
        "error": None,
        "figures": {},
        "server": server or "default",
        "every_s": every,
    }
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "report.html").write_text("<html></html>")
    return run_dir


class _Fleet(HTMLParser):
    """Cells of the #fleet table: (server, report) -> class, links and text."""

    def __init__(self) -> None:
        super().__init__()
        self.in_fleet = False
        self.server: str | None = None
        self.cell: dict[str, Any] | None = None
        self.cells: dict[tuple[str, str], dict[str, Any]] = {}
        self.row_header = False
        self.options: dict[str, list[str]] = {}
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.in_fleet = a.get("id") == "fleet"
        elif self.in_fleet and tag == "tr" and "data-server" in a:
            self.server = a["data-server"]
        elif self.in_fleet and tag == "td" and self.server and a.get("data-name"):
            self.cell = {"class": a.get("class"), "links": [], "text": ""}
            self.cells[(self.server, str(a["data-name"]))] = self.cell
        elif tag == "a" and self.cell is not None:
            self.cell["links"].append(a.get("href"))
        elif tag == "select":
            self.select = a.get("id")
            self.options[str(self.select)] = []
        elif tag == "option" and self.select:
            self.options[self.select].append(str(a.get("value")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.cell = None
        elif tag == "table":
            self.in_fleet = False
        elif tag == "select":
            self.select = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell["text"] += data


def test_fleet_page_rows_columns_age_and_stale(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _run(reports, "alpha", "backup_verification", timedelta(days=3), "OK", DAY)
    fresh = _run(reports, "alpha", "backup_verification", timedelta(hours=2), "WARNING", DAY)
    stale = _run(reports, "beta", "backup_verification", timedelta(hours=40), "OK", DAY)
    _run(reports, "beta", "growth_report", timedelta(days=5), "OK", 7 * DAY)
    _run(reports, None, "growth_report", timedelta(days=20), "CRITICAL", 7 * DAY)
    _run(reports, "alpha", "growth_report", timedelta(days=400), "OK", None)  # unscheduled

    servers = {(r["server"], r["name"]) for r in list_runs(reports)}
    assert ("default", "growth_report") in servers and ("beta", "growth_report") in servers
    page = _Fleet()
    page.feed(build_index(reports, now=NOW).read_text(encoding="utf-8"))

    cells = page.cells
    assert set(cells) == {
        (s, n)
        for s in ("default", "alpha", "beta")
        for n in ("backup_verification", "growth_report")
    } - {("default", "backup_verification")}
    # the latest run, linked, with its age against the schedule
    alpha_bv = cells[("alpha", "backup_verification")]
    assert alpha_bv["class"] == "fresh"
    assert alpha_bv["links"] == [f"alpha/backup_verification/{fresh.name}/report.html"]
    assert "WARNING" in alpha_bv["text"] and "2 h ago / every 24 h" in alpha_bv["text"]
    # 40 h against a daily schedule is stale; 5 days against a weekly one is not
    beta_bv = cells[("beta", "backup_verification")]
    assert beta_bv["class"] == "stale" and "(stale)" in beta_bv["text"]
    assert beta_bv["links"] == [f"beta/backup_verification/{stale.name}/report.html"]
    assert cells[("beta", "growth_report")]["class"] == "fresh"
    assert cells[("default", "growth_report")]["class"] == "stale"
    assert cells[("alpha", "growth_report")]["class"] == "fresh"  # no schedule, never stale
    # the filter by server lists every server
    assert page.options["f-server"] == ["", "default", "alpha", "beta"]
