"""Tests of the report pipeline: notebooks really executed by papermill into an archive."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from powrops import bundle
from powrops.errors import ParameterError, ReportError
from powrops.findings import Finding, Severity
from powrops.reports import (
    RUN_DIR_ENV,
    build_index,
    current_run_dir,
    external_resources,
    latest,
    list_runs,
    record,
    render_html,
)
from powrops.reports.display import findings_html, summary_html, table_html
from powrops.reports.kernel import ensure_kernel, kernel_name
from powrops.reports.redaction import redact
from powrops.reports.runner import new_run_dir, run_report
from powrops.reports.spec import coerce_parameters, discover

pytestmark = pytest.mark.pg

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
SECRET = 'Pw"<&>-7q!x9Zk'
RUN_ID = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


@dataclass
class Archive:
    root: Path
    reports: Path
    runs: dict[str, Any]  # label -> RunResult, in the order they ran
    order: list[str]

    def html(self, label: str) -> str:
        return str(self.runs[label].html.read_text(encoding="utf-8"))

    def result(self, label: str) -> dict[str, Any]:
        return dict(self.runs[label].result)


def make_project(root: Path) -> Path:
    """A project root with the fixture notebooks: ``*_runbook`` ones are runbooks."""
    (root / "notebooks").mkdir(parents=True)
    (root / "runbooks").mkdir()
    for nb in FIXTURES.glob("*.ipynb"):
        folder = "runbooks" if nb.stem.endswith("_runbook") else "notebooks"
        shutil.copy(nb, root / folder / nb.name)
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """Every fixture notebook run once into one archive (about a second per run)."""
    base = tmp_path_factory.mktemp("reports")
    root = make_project(base / "project")
    reports = base / "archive"
    plan: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        ("ok", "ok_report", {}, {}),
        ("warn", "threshold", {}, {}),
        (
            "typed",
            "threshold",
            {"threshold": "2", "label": "y", "ratio": "1.5", "verbose": "yes"},
            {},
        ),
        ("fails", "fails", {}, {}),
        ("sleeps", "sleeps", {}, {"timeout": 2}),
        ("silent", "silent", {}, {}),
        (
            "runbook",
            "secret_runbook",
            {},
            {"env": {"FIXTURE_SECRET": SECRET}, "secrets": [SECRET]},
        ),
    ]
    runs = {}
    for label, name, params, options in plan:
        runs[label] = run_report(name, params, reports_dir=reports, root=root, **options)
    return Archive(root, reports, runs, [label for label, *_ in plan])


# --- discovery and parameters ----------------------------------------------------------


def test_discover_finds_scheduled_reports_and_runbooks(tmp_path: Path) -> None:
    specs = discover(make_project(tmp_path))
    assert set(specs) == {"ok_report", "threshold", "fails", "sleeps", "silent", "secret_runbook"}
    assert specs["ok_report"].kind == "scheduled"
    assert specs["secret_runbook"].kind == "runbook"
    assert specs["threshold"].description == "Threshold report"
    params = specs["threshold"].parameters
    assert list(params) == ["threshold", "label", "ratio", "verbose"]
    assert [(p.type_name, p.default) for p in params.values()] == [
        ("int", 5),
        ("str", "x"),
        ("float", 0.5),
        ("bool", False),
    ]
    assert specs["ok_report"].parameters == {}


def test_string_parameters_take_the_type_of_the_default(tmp_path: Path) -> None:
    spec = discover(make_project(tmp_path))["threshold"]
    given = {"threshold": "7", "label": "42", "ratio": "2", "verbose": "off"}
    converted = coerce_parameters(spec, given)
    assert converted == {"threshold": 7, "label": "42", "ratio": 2.0, "verbose": False}
    assert type(converted["ratio"]) is float
    assert coerce_parameters(spec, {"threshold": 9}) == {"threshold": 9}


@pytest.mark.parametrize(
    ("given", "expected"),
    [({"threshold": "five"}, "threshold"), ({"verbose": "maybe"}, "verbose")],
)
def test_bad_parameter_values_are_parameter_errors(
    tmp_path: Path, given: dict[str, str], expected: str
) -> None:
    spec = discover(make_project(tmp_path))["threshold"]
    with pytest.raises(ParameterError, match=expected) as info:
        coerce_parameters(spec, given)
    assert info.value.exit_code == 3


def test_unknown_parameter_is_refused_before_anything_runs(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    reports = tmp_path / "archive"
    with pytest.raises(ParameterError) as info:
        run_report("threshold", {"treshold": "2"}, reports_dir=reports, root=root)
    message = str(info.value)
    assert "'treshold'" in message
    assert "threshold (int, default 5)" in message and "label (str" in message
    assert not reports.exists()


def test_an_archive_it_cannot_write_is_a_report_error_naming_the_folder(tmp_path: Path) -> None:
    """A report archive powrops may not write (root's, run as the jobs' OS user; here a file
    in the way, which root cannot write through either) is said, not a crash of powrops."""
    root = make_project(tmp_path / "project")
    (tmp_path / "archive").write_text("")
    with pytest.raises(ReportError, match=r"cannot create the run folder .*archive/ok_report/"):
        run_report("ok_report", {}, reports_dir=tmp_path / "archive", root=root)
    with pytest.raises(ReportError, match=r"cannot write the index of .*archive/sub: "):
        build_index(tmp_path / "archive" / "sub")  # powrops report index


@pytest.mark.skipif(os.geteuid() != 0, reason="writing as root into another user's folder")
def test_root_run_leaves_the_archive_to_the_user_the_scheduled_reports_run_as() -> None:
    """Root runs a report by hand in an archive the jobs' OS user owns: the report's folder
    it creates belongs to that user, whose next scheduled run of it can add its own."""
    from powrops.pg.cluster import ensure_os_user

    jobs = ensure_os_user("powrops")
    base = Path(tempfile.mkdtemp(prefix="powrops-archive-"))  # pytest's is root's, 0700
    try:
        base.chmod(0o711)
        archive = base / "archive"
        archive.mkdir()
        os.chown(archive, jobs.uid, jobs.gid)
        started = datetime(2026, 3, 2, 14, 12, tzinfo=UTC)
        by_root = new_run_dir(archive / "growth_report", started)
        for made in (archive / "growth_report", by_root):
            assert (made.stat().st_uid, made.stat().st_gid) == (jobs.uid, jobs.gid), made
        os.setegid(jobs.gid)
        os.seteuid(jobs.uid)
        try:
            by_job = new_run_dir(archive / "growth_report", started)
        finally:
            os.seteuid(0)
            os.setegid(0)
        assert by_job.name == "20260302T141200Z-2"
        mine = new_run_dir(base / "root-archive" / "growth_report", started)  # root's own
        assert mine.parent.stat().st_uid == 0
    finally:
        shutil.rmtree(base)


def test_unknown_report_lists_the_available_ones(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    with pytest.raises(ReportError, match="unknown report 'nope'") as info:
        run_report("nope", {}, reports_dir=tmp_path / "archive", root=root)
    assert "ok_report" in str(info.value) and "secret_runbook" in str(info.value)


def test_the_checkout_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWROPS_PROJECT_ROOT", str(tmp_path))
    assert bundle.checkout() == tmp_path.resolve()
    assert bundle.folder("runbooks") == tmp_path.resolve() / "runbooks"


def test_without_a_checkout_the_installed_copies_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POWROPS_PROJECT_ROOT", raising=False)
    monkeypatch.setattr(bundle, "PACKAGE", tmp_path / "site-packages" / "powrops")
    assert bundle.checkout() is None
    assert bundle.folder("migrations") == tmp_path / "site-packages/powrops/bundled/migrations"


def test_kernelspec_runs_this_interpreter() -> None:
    name = ensure_kernel()
    assert name == kernel_name() and name.startswith("powrops-")
    spec_file = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]
    before = spec_file.stat().st_mtime_ns
    assert ensure_kernel() == name
    assert spec_file.stat().st_mtime_ns == before


# --- runs and the archive --------------------------------------------------------------


def test_archive_layout(archive: Archive) -> None:
    for label, run in archive.runs.items():
        assert run.path.parent.parent == archive.reports.resolve(), label
        assert RUN_ID.match(run.path.name), run.path.name
        assert {p.name for p in run.path.iterdir()} == {
            "notebook.ipynb",
            "report.html",
            "result.json",
        }
        on_disk = json.loads((run.path / "result.json").read_text())
        assert on_disk == run.result
        assert on_disk["run_id"] == run.path.name
        assert on_disk["exit_code"] == int(run.status) == run.exit_code


def test_ok_run_records_findings_and_figures(archive: Archive) -> None:
    result = archive.result("ok")
    assert (result["status"], result["exit_code"], result["failed"]) == ("OK", 0, False)
    assert result["error"] is None
    assert result["kind"] == "scheduled" and result["name"] == "ok_report"
    assert result["figures"] == {"rows checked": 42}
    assert result["summary"] == "fixture ok"
    [finding] = [Finding.from_dict(f) for f in result["findings"]]
    assert finding.check == "fixture.ok" and finding.severity is Severity.OK
    assert finding.value == 42
    assert result["duration_s"] > 0
    assert result["started_at"] < result["finished_at"]
    assert result["versions"]["powrops"] and result["versions"]["papermill"]


def test_threshold_default_gives_warning(archive: Archive) -> None:
    result = archive.result("warn")
    assert (result["status"], result["exit_code"]) == ("WARNING", 1)
    assert archive.runs["warn"].status is Severity.WARNING
    assert result["parameters"] == {}
    assert result["figures"]["threshold"] == 5


def test_cli_style_parameters_reach_the_notebook_typed(archive: Archive) -> None:
    result = archive.result("typed")
    assert result["parameters"] == {"threshold": 2, "label": "y", "ratio": 1.5, "verbose": True}
    # The notebook computed with real numbers and booleans, not strings.
    assert result["figures"] == {"threshold": 2, "label": "y", "ratio": 1.5, "verbose": True}
    assert (result["status"], result["exit_code"]) == ("OK", 0)
    assert result["findings"][0]["message"] == "y: threshold is 2"


def test_failing_cell_is_archived_as_failed(archive: Archive) -> None:
    result = archive.result("fails")
    assert (result["status"], result["exit_code"], result["failed"]) == ("UNKNOWN", 3, True)
    assert result["error"]["ename"] == "ValueError"
    assert result["error"]["evalue"] == "planned failure 42"
    assert result["error"]["cell_index"] == 2
    page = archive.html("fails")
    assert "before the failure" in page  # output of the cells that ran
    assert "planned failure 42" in page
    assert "never reached" not in page.split("</header>", 1)[1].split("planned failure")[0]


def test_timed_out_cell_is_archived_as_failed(archive: Archive) -> None:
    result = archive.result("sleeps")
    assert (result["status"], result["exit_code"], result["failed"]) == ("UNKNOWN", 3, True)
    assert result["error"]["ename"] == "CellTimeoutError"
    assert result["error"]["cell_index"] == 2
    assert result["duration_s"] < 60
    page = archive.html("sleeps")
    assert "about to sleep" in page and "CellTimeoutError" in page


def test_notebook_that_records_nothing_is_unknown(archive: Archive) -> None:
    result = archive.result("silent")
    assert (result["status"], result["exit_code"]) == ("UNKNOWN", 3)
    assert result["error"]["evalue"] == "notebook did not record a result"
    assert "nothing to record" in archive.html("silent")


def test_every_page_is_self_contained(archive: Archive) -> None:
    pages = [run.html for run in archive.runs.values()] + [archive.reports / "index.html"]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert external_resources(text) == [], page
        assert re.search(r"<script[^>]*\ssrc\s*=", text, re.IGNORECASE) is None, page
        assert "cdnjs" not in text and "require.js" not in text


def test_plot_is_inline_png(archive: Archive) -> None:
    page = archive.html("ok")
    match = re.search(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"', page)
    assert match, "no inline PNG in the report"
    assert base64.b64decode(match.group(1))[:8] == b"\x89PNG\r\n\x1a\n"


def test_scheduled_report_hides_code(archive: Archive) -> None:
    page = archive.html("ok")
    assert "hidden_marker_value_91" not in page
    assert "all &lt;good&gt;" in page and "all <good>" not in page  # output, escaped
    typed = archive.html("typed")
    assert "# Parameters" not in typed  # papermill's injected cell
    assert "threshold: 2" in typed  # the parameters are shown in the header bar instead
    assert "status <b>WARNING</b>" in archive.html("warn")


def test_runbook_shows_code(archive: Archive) -> None:
    page = archive.html("runbook")
    assert "visible_marker_value_17" in page
    assert "ipykernel_launcher" not in page


def test_secrets_never_reach_the_archive(archive: Archive) -> None:
    run = archive.runs["runbook"]
    assert run.status is Severity.OK
    leaks = [SECRET, json.dumps(SECRET)[1:-1], "Pw&quot;&lt;&amp;&gt;", "-7q!x9Zk", "hunter2pass"]
    files = [*run.path.iterdir(), archive.reports / "index.html", archive.reports / "catalog.json"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for leak in leaks:
            assert leak not in text, f"{leak!r} leaked into {path.name}"
    for name in ("notebook.ipynb", "report.html", "result.json"):
        assert "[REDACTED]" in (run.path / name).read_text(encoding="utf-8"), name
    assert run.result["figures"]["echo"] == "[REDACTED]"
    assert "FIXTURE_SECRET" not in os.environ
    assert RUN_DIR_ENV not in os.environ


def test_index_lists_runs_newest_first(archive: Archive) -> None:
    index = (archive.reports / "index.html").read_text(encoding="utf-8")
    runs_table = index.split("id='runs'", 1)[1]
    names = re.findall(r'<tr data-server="[^"]*" data-name="([^"]+)"', runs_table)
    expected = [archive.runs[label].result["name"] for label in reversed(archive.order)]
    assert names == expected
    for run in archive.runs.values():
        link = f"{run.result['name']}/{run.path.name}/report.html"
        assert f'href="{link}"' in index
        assert (archive.reports / link).is_file()
    assert "planned failure 42" in index and "CellTimeoutError" in index
    catalog = json.loads((archive.reports / "catalog.json").read_text())
    assert [r["run_id"] for r in catalog["runs"]] == [
        r["run_id"] for r in list_runs(archive.reports)
    ]
    newest = latest(archive.reports, "threshold")
    assert newest is not None and newest["run_id"] == archive.runs["typed"].path.name


# --- self-containment check ------------------------------------------------------------

PLANTED = [
    (
        '<script src="https://cdn.example.org/require.js"></script>',
        "https://cdn.example.org/require.js",
    ),
    (
        '<link rel="stylesheet" href="http://fonts.example.org/a.css">',
        "http://fonts.example.org/a.css",
    ),
    ('<img src="//img.example.org/x.png">', "//img.example.org/x.png"),
    (
        "<style>body { background: url('https://x.example.org/bg.png'); }</style>",
        "https://x.example.org/bg.png",
    ),
    ('<style>@import "https://x.example.org/more.css";</style>', "https://x.example.org/more.css"),
    (
        '<div style="background:url(http://x.example.org/d.gif)"></div>',
        "http://x.example.org/d.gif",
    ),
    ('<iframe src="https://x.example.org/frame"></iframe>', "https://x.example.org/frame"),
]


@pytest.mark.parametrize(("markup", "url"), PLANTED)
def test_external_resources_finds_what_loads(markup: str, url: str) -> None:
    assert external_resources(f"<html><head></head><body>{markup}</body></html>") == [url]


def test_external_resources_ignores_links_and_inline_data() -> None:
    page = (
        '<a href="https://www.postgresql.org/docs/">docs</a>'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"></svg>'
        '<img src="data:image/png;base64,iVBORw0KGgo=">'
        "<script>var x = 1;</script><style>.a { color: red; }</style>"
    )
    assert external_resources(page) == []


def test_planted_cdn_script_in_a_real_report_is_caught(archive: Archive) -> None:
    page = archive.html("ok")
    assert external_resources(page) == []
    defect = page.replace(
        "</head>", '<script src="https://cdn.example.org/mathjax.js"></script></head>'
    )
    assert external_resources(defect) == ["https://cdn.example.org/mathjax.js"]


def test_render_html_default_nbconvert_would_not_pass() -> None:
    """The check is not vacuous: nbconvert's own lab template loads from a CDN."""
    from nbconvert import HTMLExporter

    nb_path = FIXTURES / "silent.ipynb"
    stock, _ = HTMLExporter(template_name="lab").from_filename(str(nb_path))
    assert external_resources(stock) != []
    ours = render_html(nb_path, hide_code=False)
    assert external_resources(ours) == []
    assert "nothing to record" in ours and "Rendered by powrops" in ours
    assert 'class="jp-CodeMirrorEditor' in ours
    assert 'class="jp-CodeMirrorEditor' not in render_html(nb_path, hide_code=True)


# --- redaction, recording, catalog, display --------------------------------------------


def test_redact_secrets_in_every_spelling_and_url_passwords() -> None:
    text = f"a {SECRET} b {json.dumps(SECRET)} c Pw&quot;&lt;&amp;&gt;-7q!x9Zk"
    cleaned = redact(text, [SECRET, ""])
    assert "7q!x9Zk" not in cleaned and cleaned.count("[REDACTED]") == 3
    assert redact("postgresql+psycopg://powr:tops3cret@db:5432/powr") == (
        "postgresql+psycopg://powr:[REDACTED]@db:5432/powr"
    )
    assert redact("postgresql://powr:{password}@db/powr") == "postgresql://powr:{password}@db/powr"
    assert redact("see https://example.org/a@b and user@example.org") == (
        "see https://example.org/a@b and user@example.org"
    )


def test_record_outside_a_run_only_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    findings = [
        Finding("a", Severity.OK, "fine"),
        Finding("b", Severity.WARNING, "meh", value=3),
    ]
    result = record(findings=findings, figures={"n": 3})
    assert current_run_dir() is None
    assert (result["status"], result["exit_code"]) == ("WARNING", 1)
    assert result["findings"][1]["severity"] == "WARNING"
    assert list(tmp_path.iterdir()) == []


def test_record_in_a_run_writes_result_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    record(status="critical", findings=[Finding("a", Severity.OK, "x")], figures={"f": 1.5})
    data = json.loads((tmp_path / "result.json").read_text())
    assert (data["status"], data["exit_code"]) == ("CRITICAL", 2)
    assert data["figures"] == {"f": 1.5}
    with pytest.raises(TypeError):
        record(findings=["not a finding"])  # type: ignore[list-item]


def _fake_run(reports: Path, name: str, run_id: str, status: str | None) -> None:
    run = reports / name / run_id
    run.mkdir(parents=True)
    if status is not None:
        stamp = f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T{run_id[9:11]}:{run_id[11:13]}:00+00:00"
        result = {
            "name": name,
            "run_id": run_id,
            "status": status,
            "started_at": stamp,
            "finished_at": stamp,
            "figures": {"n": 1},
            "findings": [],
        }
        (run / "result.json").write_text(json.dumps(result))


def test_catalog_orders_runs_and_flags_incomplete_ones(tmp_path: Path) -> None:
    _fake_run(tmp_path, "growth", "20260101T010000Z", "OK")
    _fake_run(tmp_path, "integrity", "20260102T010000Z", "CRITICAL")
    _fake_run(tmp_path, "growth", "20260103T010000Z", None)  # killed: no result.json
    runs = list_runs(tmp_path)
    assert [(r["name"], r["run_id"]) for r in runs] == [
        ("growth", "20260103T010000Z"),
        ("integrity", "20260102T010000Z"),
        ("growth", "20260101T010000Z"),
    ]
    assert runs[0]["status"] == "UNKNOWN" and runs[0]["incomplete"] is True
    assert runs[0]["html"] is None
    latest_growth = latest(tmp_path, "growth")
    assert latest_growth is not None and latest_growth["run_id"] == "20260103T010000Z"
    assert latest(tmp_path, "nothing") is None
    index = build_index(tmp_path).read_text()
    assert "incomplete" in index and external_resources(index) == []


def test_a_runbook_copy_is_listed_when_it_ran_not_when_it_was_written(tmp_path: Path) -> None:
    _fake_run(tmp_path, "point_in_time_restore", "20260101T010000Z", "OK")  # written first
    _fake_run(tmp_path, "growth", "20260102T010000Z", "OK")
    result = tmp_path / "point_in_time_restore" / "20260101T010000Z" / "result.json"
    data = json.loads(result.read_text())
    data["started_at"] = "2026-01-03T02:30:00+01:00"  # first cell run two days later
    result.write_text(json.dumps(data))
    assert [r["name"] for r in list_runs(tmp_path)] == ["point_in_time_restore", "growth"]


def test_display_helpers_escape_and_colour() -> None:
    findings = [
        Finding(
            "c", Severity.CRITICAL, "<script>alert(1)</script>", object="t<1>", advice="fix & go"
        ),
        Finding("w", Severity.WARNING, "meh"),
    ]
    banner = summary_html(findings, "Nightly <integrity>")
    assert "CRITICAL — Nightly &lt;integrity&gt;" in banner
    assert "1 WARNING, 1 CRITICAL" in banner and "#c0262d" in banner
    table = findings_html(findings)
    assert "<script>" not in table and "&lt;script&gt;" in table and "fix &amp; go" in table
    assert table.index(">CRITICAL<") < table.index(">WARNING<")


def test_show_table_accepts_dataframes_and_rows() -> None:
    import pandas as pd

    frame = pd.DataFrame({"table": ["users", "<w>"], "rows": [10, 20]})
    html = table_html(frame, caption="Sizes")
    assert "<th" in html and "users" in html and "&lt;w&gt;" in html and "Sizes" in html
    assert "20" in table_html([{"a": 1}, {"a": 20, "b": 2}])
    assert "2 more rows" in table_html([[1], [2], [3]], max_rows=1)


@pytest.fixture(autouse=True)
def _no_leftover_run_dir() -> Iterator[None]:
    before = os.environ.get(RUN_DIR_ENV)
    yield
    assert os.environ.get(RUN_DIR_ENV) == before
