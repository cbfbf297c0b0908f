"""The archive in a real browser: Debian's chromium, headless, driven over the DevTools protocol.

The index page and a rendered report open from ``file://`` with no failed resource load, no
console error and no script exception; the index's filter shows only the chosen report. Every
report of a (small) ``powrops demo`` reads at desktop and print widths without a machine value
(exponent notation, a Python repr, an ``Out[n]`` prompt), a horizontal scrollbar, or a header
that does not name its database and period; the demo's plots fit their data. ``make test``
installs ``chromium`` as root (``.ci/debian-packages``); elsewhere the test is skipped, saying
why, when it is missing.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from powrops.quarterly.model import Quarter
from powrops.reports.runner import run_report
from readable import machine_values

if TYPE_CHECKING:
    from backup_site import Site

pytestmark = [pytest.mark.pg, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


class Browser:
    """One headless chromium and one page, spoken to over the DevTools websocket."""

    def __init__(self) -> None:
        assert CHROMIUM, "chromium is not installed: make test installs Debian's chromium"
        self.profile = tempfile.mkdtemp(prefix="powrops-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--disable-extensions", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        port = self._port()
        self.ws = self._page_socket(port)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _port(self, timeout: float = 30) -> int:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                return int(match.group(1))
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError("chromium did not start its DevTools endpoint")

    def _page_socket(self, port: int) -> Any:
        import websocket

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        return websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                assert "error" not in message, message
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def open(self, url: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Navigate, wait for the load event and a moment for late errors; the page's events."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, f"{url} did not finish loading"
            self.events.append(json.loads(self.ws.recv()))
        self.call("Runtime.evaluate", expression="1")  # drain what arrived meanwhile
        return list(self.events)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def problems(events: list[dict[str, Any]]) -> list[str]:
    """Failed loads, console errors and uncaught exceptions among a page's events."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.loadingFailed":
            found.append(f"failed load: {params.get('errorText')} {params.get('requestId')}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            found.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log error: {params['entry'].get('text')} {params['entry'].get('url')}")
    return found


def requested(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def _fake_run(reports: Path, name: str, started: datetime, status: str) -> None:
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    run = reports / name / run_id
    run.mkdir(parents=True)
    when = started.isoformat()
    result = {"name": name, "run_id": run_id, "status": status, "started_at": when,
              "finished_at": when, "figures": {"checks": 3}, "findings": []}  # fmt: skip
    (run / "result.json").write_text(json.dumps(result))
    (run / "report.html").write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{name}</title></head>"
        f"<body>{name} {run_id}</body></html>"
    )


@pytest.fixture(scope="module")
def archive(migrated_db_module: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive with a real rendered quarterly review and runs of three other reports."""
    reports = tmp_path_factory.mktemp("browser") / "reports"
    now = datetime.now(UTC)
    _fake_run(reports, "backup_verification", now - timedelta(hours=5), "OK")
    _fake_run(reports, "backup_verification", now - timedelta(hours=2), "WARNING")
    _fake_run(reports, "recovery_drill", now - timedelta(days=3), "OK")
    run = run_report(
        "quarterly_review", {"quarter": Quarter.of(now).label}, reports_dir=reports, root=REPO,
        timeout=300,
        env={"POWROPS_DATABASE_URL": migrated_db_module.replace("+psycopg", ""),
             "POWROPS_REPORTS_DIR": str(reports),
             "POWROPS_STATE_DIR": str(reports.parent / "state")},
    )  # fmt: skip
    assert run.result["failed"] is False, run.result["error"]
    return reports


@pytest.fixture(scope="module")
def migrated_db_module(pg_cluster: Any) -> Iterator[str]:
    from conftest import _create_database, _drop_database
    from powrops import migrate

    name = _create_database(pg_cluster)
    url = pg_cluster.url(name)
    migrate.upgrade(url, "head")
    yield url
    _drop_database(pg_cluster, name)


def test_the_browser_reports_what_goes_wrong(browser: Browser, tmp_path: Path) -> None:
    """The checks below can fail: a missing image, a console error and an exception are seen."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        "<img src='missing.png'><script>console.error('planted');"
        "window.setTimeout(function () { undefinedFunction(); }, 0);</script></body></html>"
    )
    found = problems(browser.open(page.as_uri()))
    time.sleep(0.2)
    found += problems(browser.events)
    assert any("failed load" in p for p in found), found
    assert any("planted" in p for p in found), found
    assert any("exception" in p for p in found), found


def test_index_opens_from_file_and_filters(browser: Browser, archive: Path) -> None:
    events = browser.open((archive / "index.html").as_uri())
    assert problems(events) == []
    assert all(url.startswith("file://") for url in requested(events)), requested(events)
    rows = "document.querySelectorAll('#runs tbody tr')"
    visible = f"Array.from({rows}).filter(r => r.style.display !== 'none')"
    assert browser.evaluate(f"{rows}.length") == 4
    chosen = "backup_verification"
    browser.evaluate(
        "var s = document.getElementById('f-name');"
        f"s.value = '{chosen}'; s.dispatchEvent(new Event('input'));"
    )
    names = browser.evaluate(f"{visible}.map(r => r.dataset.name)")
    assert names == [chosen, chosen]
    assert browser.evaluate("document.getElementById('f-count').textContent") == "2 of 4 runs"
    browser.evaluate(
        "var t = document.getElementById('f-status');"
        "t.value = 'WARNING'; t.dispatchEvent(new Event('input'));"
    )
    assert browser.evaluate(f"{visible}.length") == 1
    browser.evaluate(
        "['f-name', 'f-status'].forEach(function (id) { var e = document.getElementById(id);"
        "e.value = ''; e.dispatchEvent(new Event('input')); });"
        "var q = document.getElementById('f-text'); q.value = 'quarterly';"
        "q.dispatchEvent(new Event('input'));"
    )
    assert browser.evaluate(f"{visible}.map(r => r.dataset.name)") == ["quarterly_review"]
    assert problems(browser.events) == []


def test_rendered_report_opens_from_file_without_errors(browser: Browser, archive: Path) -> None:
    page = next((archive / "quarterly_review").glob("*/report.html"))
    events = browser.open(page.as_uri())
    assert problems(events) == []
    assert all(url.startswith(("file://", "data:")) for url in requested(events))
    assert browser.evaluate("document.querySelectorAll('.powrops-bar').length") == 1
    text = browser.evaluate("document.body.innerText")
    assert "Quarterly review" in text and "Test recovery procedures" in text
    assert "config_path" not in text  # a scheduled report hides its code
    # every link to proving evidence resolves inside the archive
    hrefs = browser.evaluate(
        "Array.from(document.querySelectorAll('a[href^=\"../../\"]')).map(a => a.href)"
    )
    assert hrefs, "the checklist links no evidence"
    for href in hrefs:
        assert Path(urllib.request.url2pathname(href.removeprefix("file://"))).is_file(), href
    # the print stylesheet is there: the page prints with its colours
    assert browser.evaluate(
        "Array.from(document.styleSheets).some(s => Array.from(s.cssRules)"
        ".some(r => r.media && r.media.mediaText === 'print'))"
    )


# --- every report of the demo, as a reader sees it ----------------------------------------

#: Desktop, and the printable width of an A4 page at 96 dpi (print media emulated).
WIDTHS = {"desktop": (1280, "screen"), "print": (718, "print")}

#: The page's text as read: outputs and prose, not the code a runbook shows as evidence
#: (removed from the open page, which is read last).
READ_TEXT = """(function () {
  document.querySelectorAll('.jp-InputArea, code').forEach(function (e) { e.remove(); });
  return document.body.innerText;
})()"""

SCROLLS = "document.documentElement.scrollWidth > document.documentElement.clientWidth"

PRINT_CSS = (
    "Array.from(document.styleSheets).some(s => Array.from(s.cssRules)"
    ".some(r => r.media && r.media.mediaText === 'print'))"
)


@pytest.fixture(scope="module")
def demo() -> Iterator[Site]:
    """``powrops demo`` (small) on a site of its own: every report, as a user first sees it."""
    from backup_site import Site

    site = Site.create()
    try:
        run = site.cli("demo", "--users", "10", "--weeks", "4", timeout=900)
        assert run.returncode in (0, 1, 2), run.stdout[-3000:] + run.stderr[-3000:]
        yield site
    finally:
        site.destroy()


def _pages(site: Site) -> list[Path]:
    reports = site.root / "reports"
    return [reports / "index.html", *sorted(reports.glob("*/*/report.html"))]


def _show(browser: Browser, width: int, media: str) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    browser.call("Emulation.setEmulatedMedia", media=media)


def test_the_reading_checks_can_fail(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "raw.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        "<p>days_to_warning: 1.21895e+06</p><pre>Out[3]: datetime.datetime(2026, 1, 1)</pre>"
        "<p>[[50]] {'a': 1} True</p><div style='width:3000px'>wide</div>"
        "<div class='jp-InputArea'>keep = False</div></body></html>"
    )
    _show(browser, *WIDTHS["desktop"])
    browser.open(page.as_uri())
    assert browser.evaluate(SCROLLS) is True
    text = browser.evaluate(READ_TEXT)
    found = " ".join(machine_values(text))
    for what in ("exponent", "datetime repr", "nested list", "dict repr", "prompt", "literal"):
        assert what in found, what
    assert "keep = False" not in text  # code shown as evidence is not read


@pytest.mark.slow
@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_demo_report_reads_without_machine_values(
    browser: Browser, demo: Site, width: str
) -> None:
    pages = _pages(demo)
    names = {p.parent.parent.name for p in pages[1:]}
    assert {"backup_verification", "growth_report", "integrity_report", "quarterly_review",
            "readiness_report", "retention_report", "recovery_drill"} <= names  # fmt: skip
    _show(browser, *WIDTHS[width])
    bad: dict[str, list[str]] = {}
    for page in pages:
        events = browser.open(page.as_uri())
        where = str(page.relative_to(demo.root / "reports"))
        found = problems(events)
        if browser.evaluate(SCROLLS):
            found.append(f"horizontal scrollbar at {WIDTHS[width][0]} px")
        if not browser.evaluate(PRINT_CSS):
            found.append("no print stylesheet")
        if page.name == "report.html":
            bar = browser.evaluate("document.querySelector('.powrops-bar').innerText")
            if "covers " not in bar or "database " not in bar:
                found.append(f"the header names no period or database: {bar}")
        found += machine_values(browser.evaluate(READ_TEXT))
        if found:
            bad[where] = found
    assert bad == {}


@pytest.mark.slow
def test_every_demo_plot_fits_its_data(demo: Site) -> None:
    """The views' own figures from the demo's data: no axis spans more than ten times its data."""
    from powrops.growth import view as growth_view
    from powrops.growth.gather import growth_for
    from powrops.quarterly import review
    from powrops.quarterly import view as quarterly_view
    from powrops.quarterly.evidence import gather
    from powrops.reports.plotting import overstretched_axes, pyplot
    from powrops.verify import view as verify_view
    from powrops.verify.runner import verify

    settings = demo.settings
    figures = [
        verify_view.plot_timeline(verify(settings, pg_verifybackup=False)),
        growth_view.plot_size(growth_for(settings)),
    ]
    quarter = review(gather(settings, Quarter.of(datetime.now(UTC))))
    figures += [f for f in (plot(quarter) for plot in quarterly_view._PLOTS.values()) if f]
    try:
        assert len(figures) >= 4
        assert [p for fig in figures for p in overstretched_axes(fig)] == []
    finally:
        pyplot().close("all")


def test_fleet_page_filters_by_server(browser: Browser, tmp_path: Path) -> None:
    from powrops.reports.index import build_index

    reports = tmp_path / "reports"
    now = datetime.now(UTC)
    for server, age in (("east", timedelta(hours=1)), ("west", timedelta(days=4))):
        _fake_run(reports / server, "backup_verification", now - age, "OK")
        result = reports / server / "backup_verification"
        for run in result.iterdir():  # a daily report: west's is stale
            data = json.loads((run / "result.json").read_text())
            (run / "result.json").write_text(json.dumps({**data, "every_s": 86400}))
    events = browser.open(build_index(reports).as_uri())
    assert problems(events) == []
    fleet = "Array.from(document.querySelectorAll('#fleet tbody tr'))"
    shown = f"{fleet}.filter(r => r.style.display !== 'none').map(r => r.dataset.server)"
    assert browser.evaluate(shown) == ["east", "west"]
    stale = "Array.from(document.querySelectorAll('#fleet td.stale')).map(td => td.parentNode"
    assert browser.evaluate(stale + ".dataset.server)") == ["west"]
    browser.evaluate(
        "var s = document.getElementById('f-server');"
        "s.value = 'west'; s.dispatchEvent(new Event('input'));"
    )
    assert browser.evaluate(shown) == ["west"]
    runs = "Array.from(document.querySelectorAll('#runs tbody tr'))"
    visible = f"{runs}.filter(r => r.style.display !== 'none').map(r => r.dataset.server)"
    assert browser.evaluate(visible) == ["west"]
    assert problems(browser.events) == []
