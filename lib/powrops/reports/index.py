"""The archive index: ``index.html`` and ``catalog.json`` rebuilt from the catalog.

The index is generated, never edited by hand. It opens from ``file://`` (all links are
relative), loads nothing from the network, and filters runs by server, report name, status
and free text with a few lines of inline script.

It opens with the fleet: one row per server, one column per report, each cell the latest
run's status and its age against the report's schedule (``every_s``, which ``powrops report
run`` records from the job table). A run older than :data:`STALE_FACTOR` intervals is stale
and its cell is red: a report that stopped running is as alarming as one that fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from powrops import __version__
from powrops.errors import ReportError
from powrops.findings import Severity
from powrops.format import human_duration, human_label, human_time, human_value
from powrops.reports.catalog import list_runs
from powrops.reports.display import COLOURS
from powrops.reports.record import write_json

INDEX_FILE = "index.html"
CATALOG_FILE = "catalog.json"
#: A report's latest run is stale once it is older than this many scheduled intervals.
STALE_FACTOR = 1.5
DEFAULT_SERVER = "default"

_STYLE = """
body { font-family: sans-serif; margin: 16px 24px; color: #1a1a1a; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 24px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
table { max-width: 100%; }
th { background: #f2f2f2; }
.badge { padding: 1px 6px; border-radius: 3px; font-weight: bold; }
.error { color: #8a1c1c; font-size: 12px; }
.period { color: #555; font-size: 12px; }
.filters { margin: 8px 0; } .filters * { margin-right: 8px; }
td.stale { background: #fbe3e4; } .stale .age { color: #c0262d; font-weight: bold; }
.age { font-size: 12px; color: #444; }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .filters { display: none; } tr { break-inside: avoid; } a { color: inherit; }
  body { margin: 0; } table { width: 100%; font-size: 11px; }
  #runs th:last-child, #runs td:last-child { display: none; }
}
"""

_SCRIPT = """
(function () {
  var server = document.getElementById('f-server');
  var name = document.getElementById('f-name');
  var status = document.getElementById('f-status');
  var text = document.getElementById('f-text');
  function apply() {
    var q = text.value.toLowerCase();
    document.querySelectorAll('#fleet tbody tr').forEach(function (row) {
      row.style.display = (!server.value || row.dataset.server === server.value) ? '' : 'none';
    });
    var rows = document.querySelectorAll('#runs tbody tr');
    var shown = 0;
    rows.forEach(function (row) {
      var ok = (!server.value || row.dataset.server === server.value) &&
               (!name.value || row.dataset.name === name.value) &&
               (!status.value || row.dataset.status === status.value) &&
               (!q || row.textContent.toLowerCase().indexOf(q) !== -1);
      row.style.display = ok ? '' : 'none';
      if (ok) { shown += 1; }
    });
    document.getElementById('f-count').textContent = shown + ' of ' + rows.length + ' runs';
  }
  [server, name, status, text].forEach(function (el) {
    el.addEventListener('input', apply);
  });
  apply();
})();
"""


def build_index(reports_dir: Path, now: datetime | None = None) -> Path:
    """Write ``index.html`` and ``catalog.json`` for ``reports_dir``; return the index path.

    ``now`` is the moment ages are measured from (the time of generation); ReportError when
    the archive cannot take them (a folder another user owns)."""
    path = reports_dir / INDEX_FILE
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        runs = list_runs(reports_dir)
        moment = now or datetime.now(UTC)
        generated = moment.isoformat(timespec="seconds")
        write_json(reports_dir / CATALOG_FILE, {"generated_at": generated, "runs": runs})
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(index_html(runs, generated, moment), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ReportError(
            f"cannot write the index of {reports_dir}: {exc.strerror} ({exc.filename}); the "
            "report archive (reports.dir) must be a folder the user running powrops can write"
        ) from exc
    return path


def index_html(runs: list[dict[str, Any]], generated: str, now: datetime | None = None) -> str:
    """The index page for catalog entries ``runs`` (newest first)."""

    names = sorted({str(r["name"]) for r in runs})
    servers = sorted(
        {str(r.get("server") or DEFAULT_SERVER) for r in runs},
        key=lambda s: (s != DEFAULT_SERVER, s),
    )
    moment = now or datetime.fromisoformat(generated)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>powrops reports</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>powrops reports</h1><p>{len(runs)} runs on {len(servers)} server"
        f"{'' if len(servers) == 1 else 's'}; generated {escape(_generated(generated))}</p>"
        f"{_fleet_table(runs, servers, names, moment)}"
        f"{_latest_table(runs, names) if len(servers) == 1 else ''}"
        f"<h2>All runs</h2>{_filters(servers, names)}{_runs_table(runs)}"
        f"<p style='font-size:12px;color:#666'>powrops {escape(__version__)}</p>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def _generated(generated: str) -> str:
    try:
        return human_time(datetime.fromisoformat(generated))
    except ValueError:
        return generated


def _badge(status: str) -> str:
    try:
        sev = Severity.parse(status)
    except ValueError:
        sev = Severity.UNKNOWN
    bg, fg = COLOURS[sev]
    return f'<span class="badge" style="background:{bg};color:{fg}">{escape(str(status))}</span>'


def _link(target: str | None, label: str) -> str:
    if not target:
        return ""
    return f'<a href="{escape(quote(target))}">{escape(label)}</a>'


def _linked(target: str | None, inner_html: str) -> str:
    return f'<a href="{escape(quote(target))}">{inner_html}</a>' if target else inner_html


def _figures(figures: Mapping[str, Any] | None) -> str:
    items = (figures or {}).items()
    return "<br>".join(
        f"{escape(human_label(str(k)))}: <b>{escape(human_value(str(k), v))}</b>" for k, v in items
    )


def _error(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, Mapping):
        name, value = str(error.get("ename", "")), str(error.get("evalue", ""))
        text = value if value.startswith(f"{name}:") else f"{name}: {value}"
    else:
        text = str(error)
    if len(text) > 300:
        text = text[:297] + "..."
    return f'<div class="error">{escape(text)}</div>'


def _by_hand(run: Mapping[str, Any]) -> str:
    """For a runbook run by hand (a working copy): who ran it and how far it got."""
    if not run.get("interactive"):
        return ""
    cells = run.get("cells_run") or 0
    if run.get("failed"):
        state = f"stopped on an error after {cells} cells"
    elif not cells:
        state = "opened, no cell run yet"
    elif run.get("recorded"):
        state = f"{cells} cells run, result recorded"
    else:
        state = f"{cells} cells run, no result recorded yet"
    user = f" by {run['user']}" if run.get("user") else ""
    return f'<div class="period">by hand{escape(user)}: {escape(state)}</div>'


def _refused(run: Mapping[str, Any]) -> str:
    """The actions asked for and refused at their prompt: not run."""
    refused = [d for d in run.get("confirmations") or [] if d.get("refused")]
    return "".join(
        f'<div class="error">not confirmed: {escape(str(d.get("action")))} was NOT run</div>'
        for d in refused
    )


def _when(run: Mapping[str, Any]) -> str:
    """When the run started, and the period its report covers when it says."""
    period = run.get("period")
    covers = f'<div class="period">covers {escape(str(period))}</div>' if period else ""
    started = run.get("started_at")
    if not started:
        return escape(str(run.get("run_id", ""))) + covers
    try:
        return escape(human_time(datetime.fromisoformat(str(started)))) + covers
    except ValueError:
        return escape(str(started)) + covers


def _latest_table(runs: list[dict[str, Any]], names: Iterable[str]) -> str:
    rows = []
    for name in names:
        run = next(r for r in runs if r["name"] == name)
        rows.append(
            f"<tr><td>{escape(name)}</td>"
            f"<td>{_badge(str(run.get('status')))}{_error(run.get('error'))}</td>"
            f"<td>{_when(run)}</td><td>{escape(_database(run.get('target')))}</td>"
            f"<td>{_figures(run.get('figures'))}</td>"
            f"<td>{_link(run.get('html'), 'report')}</td></tr>"
        )
    if not rows:
        return "<p>No runs yet.</p>"
    return (
        "<h2>Latest per report</h2><table id='latest'><thead><tr><th>report</th>"
        "<th>status</th><th>time</th><th>database</th><th>headline figures</th><th></th></tr>"
        "</thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _started(run: Mapping[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(run.get("started_at")))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def staleness(run: Mapping[str, Any], now: datetime) -> tuple[float | None, bool]:
    """The run's age in seconds at ``now``, and whether it is stale against its schedule
    (older than :data:`STALE_FACTOR` times ``every_s``; never for an unscheduled report)."""
    started = _started(run)
    if started is None:
        return None, False
    age = (now - started).total_seconds()
    every = run.get("every_s")
    stale = isinstance(every, int | float) and every > 0 and age > STALE_FACTOR * every
    return age, stale


def _fleet_cell(run: Mapping[str, Any] | None, now: datetime) -> str:
    if run is None:
        return "<td>-</td>"
    age, stale = staleness(run, now)
    every = run.get("every_s")
    schedule = f" / every {human_duration(float(every))}" if isinstance(every, int | float) else ""
    age_text = "" if age is None else f"{human_duration(age)} ago{schedule}"
    mark = " (stale)" if stale else ""
    return (
        f'<td class="{"stale" if stale else "fresh"}" data-name="{escape(str(run["name"]))}">'
        f"{_linked(run.get('html'), _badge(str(run.get('status'))))}"
        f'<div class="age">{escape(age_text + mark)}</div></td>'
    )


def _fleet_table(
    runs: list[dict[str, Any]], servers: list[str], names: list[str], now: datetime
) -> str:
    """One row per server, one column per report: the latest run, its age, stale in red."""
    if not runs:
        return "<p>No runs yet.</p>"
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:  # newest first
        latest.setdefault((str(run.get("server") or DEFAULT_SERVER), str(run["name"])), run)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = "".join(
        f'<tr data-server="{escape(server)}"><th>{escape(server)}</th>'
        + "".join(_fleet_cell(latest.get((server, name)), now) for name in names)
        + "</tr>"
        for server in servers
    )
    return (
        "<h2>Fleet</h2><table id='fleet'><thead><tr><th>server</th>"
        f"{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _filters(servers: Iterable[str], names: Iterable[str]) -> str:
    server_opts = "".join(f'<option value="{escape(s)}">{escape(s)}</option>' for s in servers)
    name_opts = "".join(f'<option value="{escape(n)}">{escape(n)}</option>' for n in names)
    status_opts = "".join(f'<option value="{s.name}">{s.name}</option>' for s in Severity)
    return (
        '<div class="filters">'
        f'<select id="f-server"><option value="">all servers</option>{server_opts}</select>'
        f'<select id="f-name"><option value="">all reports</option>{name_opts}</select>'
        f'<select id="f-status"><option value="">any status</option>{status_opts}</select>'
        '<input id="f-text" type="search" placeholder="search">'
        '<span id="f-count"></span></div>'
    )


def _database(target: Any) -> str:
    """The run's database in a few words (the page header has the whole identity)."""
    if not isinstance(target, Mapping):
        return ""
    where = (
        f"{target.get('host')}:{target.get('port')}" if target.get("port") else target.get("host")
    )
    return f"{target.get('database')} on {where}" + (
        " (embedded)" if target.get("embedded") else ""
    )


def _runs_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        status = str(run.get("status", "UNKNOWN"))
        duration = run.get("duration_s")
        took = human_duration(float(duration)) if isinstance(duration, int | float) else ""
        links = " ".join(
            filter(
                None,
                [
                    _link(run.get("html"), "report"),
                    _link(run.get("notebook"), "notebook"),
                    _link(run.get("json"), "result"),
                ],
            )
        )
        server = str(run.get("server") or DEFAULT_SERVER)
        rows.append(
            f'<tr data-server="{escape(server)}" data-name="{escape(str(run["name"]))}" '
            f'data-status="{escape(status)}"><td>{escape(server)}</td>'
            f"<td>{escape(str(run['name']))}</td><td>{_when(run)}</td>"
            f"<td>{_badge(status)}{_by_hand(run)}{_refused(run)}{_error(run.get('error'))}</td>"
            f"<td>{escape(_database(run.get('target')))}</td>"
            f"<td>{_figures(run.get('figures'))}</td><td>{escape(took)}</td>"
            f"<td>{links}</td></tr>"
        )
    return (
        "<table id='runs'><thead><tr><th>server</th><th>report</th><th>time</th><th>status</th>"
        "<th>database</th><th>headline figures</th><th>duration</th><th>links</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
