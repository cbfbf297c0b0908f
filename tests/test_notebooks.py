"""The real notebooks, executed for real against the test cluster (papermill and nbval)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from backup_site import Site
from cli_helpers import libpq
from powrops.reports.html import external_resources
from powrops.reports.runner import run_report

pytestmark = pytest.mark.pg

REPO = Path(__file__).resolve().parents[1]


def _password(url: str) -> str:
    password = urlsplit(libpq(url)).password
    assert password
    return unquote(password)


def test_readiness_report_run_and_archived(migrated_db: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run = run_report(
        "readiness_report",
        {},
        reports_dir=reports,
        root=REPO,
        timeout=300,
        env={"POWROPS_DATABASE_URL": libpq(migrated_db)},
        secrets=[_password(migrated_db)],
    )
    result = json.loads((run.path / "result.json").read_text())
    assert result["failed"] is False, result["error"]
    findings = {f["check"]: f["severity"] for f in result["findings"]}
    assert findings["data_checksums"] == "OK"
    assert findings["alembic"] == "OK"
    assert findings["storage.primary"] == "WARNING"
    worst = {"OK": 0, "WARNING": 1, "CRITICAL": 2}
    expected = max(worst[s] for s in findings.values())
    assert result["exit_code"] == run.exit_code == expected
    assert result["figures"]["checks"] == len(findings) >= 18
    assert result["figures"]["server_version"].startswith("18")
    html = (run.path / "report.html").read_text()
    assert external_resources(html) == []
    assert "readiness.run_checks" not in html  # a scheduled report hides its code
    assert "archive_timeout is 900 s" in html
    for name in ("report.html", "notebook.ipynb", "result.json"):
        assert _password(migrated_db) not in (run.path / name).read_text()
    index = (reports / "index.html").read_text()
    assert "readiness_report" in index and f"readiness_report/{run.path.name}/report.html" in index


def test_readiness_report_bad_parameter_is_refused(tmp_path: Path) -> None:
    from powrops.errors import ParameterError

    try:
        run_report("readiness_report", {"no_such": "1"}, reports_dir=tmp_path, root=REPO)
    except ParameterError as exc:
        assert "no_such" in str(exc) and "config_path" in str(exc)
    else:
        raise AssertionError("an unknown parameter was accepted")
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def backed_up_site() -> Iterator[Site]:
    """A migrated, seeded database with a full backup and archived WAL: what runbooks need."""
    site = Site.create()
    site.seed(users=10, weeks=4, seed=3)
    assert site.cli("backup", "full").returncode == 0
    yield site
    site.destroy()


def test_notebooks_pass_nbval(backed_up_site: Site) -> None:
    """Every notebook and runbook executes cleanly under nbval (lax: outputs not compared)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    env["POWROPS_CONFIG"] = str(backed_up_site.config)
    targets = [str(p) for p in sorted((REPO / "notebooks").glob("*.ipynb"))]
    # gdpr_request's defaults refuse on purpose (no default subject): test_retention runs it
    targets += [
        str(p) for p in sorted((REPO / "runbooks").glob("*.ipynb")) if p.stem != "gdpr_request"
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(REPO), "-o", "addopts=", "-o", "testpaths=", *targets],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_recovery_drill_runbook(backed_up_site: Site) -> None:
    run = run_report(
        "recovery_drill", {}, reports_dir=backed_up_site.root / "reports", root=REPO, timeout=600,
        env={"POWROPS_CONFIG": str(backed_up_site.config)},
    )  # fmt: skip
    result = run.result
    assert result["failed"] is False, result["error"]
    assert result["status"] == "OK", result["findings"]
    assert result["figures"]["rto_s"] > 0 and result["figures"]["rpo_s"] is not None
    html = (run.path / "report.html").read_text()
    assert "restore_full" in html and "apply_incrementals" in html  # a runbook shows its code
    assert "data:image/png;base64," in html  # the step timings plot is inline
    assert external_resources(html) == []


def test_the_restore_plan_says_what_the_restore_reads_and_writes(backed_up_site: Site) -> None:
    """The point-in-time restore's plan shows the restore point's cost before any confirmation:
    the WAL segments recovery replays to the target (those up to the first archived after it,
    not every one archived since the backup), the bytes read from the repository (the backup
    and those segments as stored) and the data directory written."""
    from powrops.format import human_bytes
    from powrops.restore import RecoveryTarget
    from powrops.restore.planning import plan

    site = backed_up_site
    site.sql("CREATE TABLE IF NOT EXISTS cost (id int)")
    site.sql("INSERT INTO cost VALUES (1)")
    site.switch_wal()
    before = site.sql("SELECT clock_timestamp()")[0][0]
    for _ in range(2):  # two segments archived after the target: recovery needs the first
        site.sql("INSERT INTO cost VALUES (2)")
        time.sleep(0.05)
        site.switch_wal()
    latest = plan(site.settings, RecoveryTarget.from_options())
    to_time = plan(site.settings, RecoveryTarget.from_options(time=before.isoformat()))
    assert latest["WAL segments to replay"] == latest["WAL segments archived since"]
    assert to_time["WAL segments to replay"] == latest["WAL segments to replay"] - 1
    repo = site.root / "state" / "backups"
    backup = sum(f.stat().st_size for f in (repo / "backups" / to_time["backup"]).iterdir()
                 if f.name != "backup.json")  # fmt: skip
    wal = sorted((repo / "wal").rglob("????????????????????????.zst"))
    start = next(i for i, f in enumerate(wal) if f.name.startswith(to_time["WAL needed from"]))
    replayed = wal[start : start + to_time["WAL segments to replay"]]
    stored = sum(f.stat().st_size for f in replayed)
    assert to_time["to read from the repository"] == (
        f"{human_bytes(backup + stored)} stored (backup {human_bytes(backup)}, "
        f"WAL {human_bytes(stored)})"
    )
    [record] = [b for b in site.backups() if b["label"] == to_time["backup"]]
    assert to_time["to write (data directory)"] == human_bytes(record["raw_size"])


def test_the_restore_plan_says_how_long_the_last_drill_took(backed_up_site: Site) -> None:
    """The plan's cost includes how long: the restore time (restore start to accepting
    queries, the drill's RTO) that the newest recovery drill of this server measured, naming
    that drill, so the DBA knows what to expect before confirming."""
    from powrops.format import human_seconds
    from powrops.restore import RecoveryTarget
    from powrops.restore.planning import plan

    site = backed_up_site
    drilled = site.cli("drill", "--json", timeout=600)
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    drill = json.loads(drilled.stdout)
    found = plan(site.settings, RecoveryTarget.from_options())
    how_long = found["how long (restore, last drill)"]
    assert how_long.startswith(f"{human_seconds(drill['rto_s'])} to accept queries")
    assert f"drill {drill['drill_id']}" in how_long and drill["label"] in how_long


def test_point_in_time_restore_runbook(backed_up_site: Site) -> None:
    site = backed_up_site
    env = {"POWROPS_CONFIG": str(site.config)}
    dry = run_report("point_in_time_restore", {}, reports_dir=site.root / "r", root=REPO, env=env)
    assert (
        dry.result["failed"] is False
        and "Not confirmed: restore into a new data directory was not run"
        in (dry.path / "report.html").read_text()
    )
    site.sql("CREATE TABLE IF NOT EXISTS incident (id int)")
    site.sql("INSERT INTO incident VALUES (1)")
    before = site.sql("SELECT clock_timestamp()")[0][0]
    site.sql("INSERT INTO incident VALUES (2)")
    site.switch_wal()
    target_dir = site.root / "restored"
    run = run_report(
        "point_in_time_restore",
        {"confirm": "True", "target_time": before.isoformat(), "target_dir": str(target_dir)},
        reports_dir=site.root / "r", root=REPO, env=env, timeout=600,
    )  # fmt: skip
    try:
        assert run.result["failed"] is False, run.result["error"]
        assert run.result["status"] == "OK"
        import psycopg

        from powrops.restore import base_dir_for

        password = (base_dir_for(target_dir) / "password").read_text().strip()
        port = int(json.loads((base_dir_for(target_dir) / "cluster.json").read_text())["port"])
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", password=password, dbname="powr"
        ) as conn:
            assert conn.execute("SELECT array_agg(id) FROM incident").fetchone() == ([1],)
    finally:
        from powrops.pg.cluster import LocalCluster
        from powrops.restore import base_dir_for

        LocalCluster(base_dir_for(target_dir), data_dir=target_dir).destroy()


#: The runbooks that only read with their default parameters (the drill writes its markers).
READING_RUNBOOKS = {
    "disk_space_response": {},
    "performance_response": {},
    "data_corruption_response": {},
    "point_in_time_restore": {},
    "gdpr_request": {"user_id": "2"},
    "migrate_production": {},
}


def test_runbooks_that_read_complete_on_a_read_only_database(backed_up_site: Site) -> None:
    """What the corruption runbook leaves (default_transaction_read_only) and what a standby
    is: every runbook that reads still completes; a dry run says its journal row was
    skipped instead of failing, and the steps after it run."""
    site = backed_up_site
    env = {"POWROPS_CONFIG": str(site.config)}
    site.sql("ALTER DATABASE powr SET default_transaction_read_only = on")
    try:
        runs = {
            name: run_report(name, params, reports_dir=site.root / "ro", root=REPO, env=env)
            for name, params in READING_RUNBOOKS.items()
        }
    finally:
        site.sql(
            "BEGIN READ WRITE; ALTER DATABASE powr RESET default_transaction_read_only; COMMIT"
        )
    for name, run in runs.items():
        assert run.result["failed"] is False, (name, run.result["error"])
    disk = (runs["disk_space_response"].path / "report.html").read_text()
    assert disk.count("journal row skipped: the database does not accept writes") == 3
    assert "Capacity plan" in disk and "Growth per table" in disk
    perf = (runs["performance_response"].path / "report.html").read_text()
    assert perf.count("journal row skipped") == 2  # the ANALYZE and REINDEX dry runs
    # statements are code, never text MathJax reads; powrops' own are set apart, labelled
    assert 'class="tex2jax_ignore mathjax_ignore"' in perf and "<pre style=" in perf
    assert "Left out above: powrops" in perf
    application = perf.split("Slowest statements of the application", 1)[1]
    application, own = application.split("Left out above", 1)
    assert "COPY " in own and "pg_catalog." not in application
    for own_statement in ("COPY ", "ANALYZE ", "ops.", "WITH v AS MATERIALIZED"):
        assert own_statement not in application, own_statement


def test_expected_conditions_stop_with_one_message(backed_up_site: Site) -> None:
    """A target before every backup, a GDPR request without its subject: one message in the
    notebook's terms (its parameters, times in UTC), no traceback; the run is UNKNOWN."""
    site = backed_up_site
    env = {"POWROPS_CONFIG": str(site.config)}
    early = run_report("point_in_time_restore", {"target_time": "2001-01-01T00:00:00Z"},
                       reports_dir=site.root / "x", root=REPO, env=env)  # fmt: skip
    nobody = run_report("gdpr_request", {}, reports_dir=site.root / "x", root=REPO, env=env)
    expected = [
        (early, "target_time 2001-01-01 00:00:00 UTC is before every backup: the oldest, "),
        (nobody, "user_id is not set: a GDPR request names its subject, and there is no default "
         "user. Set user_id = 7 (the user's id) in the parameters cell."),
    ]  # fmt: skip
    for run, message in expected:
        assert run.exit_code == 3 and run.result["failed"] is True
        html = (run.path / "report.html").read_text()
        notebook = (run.path / "notebook.ipynb").read_text()
        assert message in html, html[-3000:]
        assert "Traceback" not in html and "Traceback" not in notebook
        assert "+00:00" not in run.result["error"]["evalue"] and "-p " not in html
    assert (
        "Set target_time in the parameters cell to a later time"
        in (early.path / "report.html").read_text()
    )


def test_bad_target_names_the_runbook_parameter(backed_up_site: Site) -> None:
    """A target time that is not one stops the restore and the drill runbook with one message
    naming the notebook's parameter (target_time), not the command's option (--target-time);
    the command line still names its option."""
    from powrops.errors import ParameterError
    from powrops.restore import RecoveryTarget

    site = backed_up_site
    env = {"POWROPS_CONFIG": str(site.config)}
    for name in ("point_in_time_restore", "recovery_drill"):
        run = run_report(name, {"target_time": "notatime"}, reports_dir=site.root / "bad",
                         root=REPO, env=env)  # fmt: skip
        assert run.exit_code == 3 and run.result["failed"] is True
        evalue = run.result["error"]["evalue"]
        assert evalue.startswith("target_time: 'notatime' is not an ISO-8601 time"), evalue
        html = (run.path / "report.html").read_text()
        assert "Stopped: target_time: 'notatime'" in html and "--target-time" not in html
    with pytest.raises(ParameterError) as refused:
        RecoveryTarget.from_options(time="notatime")
    assert str(refused.value).startswith("--target-time: 'notatime' is not an ISO-8601 time")


def _cells(notebook: Path) -> list[dict[str, Any]]:
    return list(json.loads(notebook.read_text())["cells"])


def _open_copy(site: Site, name: str, *params: str) -> Path:
    done = site.cli("runbook", name, *params)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("working copy: "))
    return Path(line.removeprefix("working copy: "))


def test_a_restore_refused_at_its_prompt_is_archived_as_not_done(backed_up_site: Site) -> None:
    """A wrong name typed at the restore's confirmation: nothing is restored, and the archive
    says so (WARNING, the refusal named in result.json, the page and the index), where it used
    to read OK as if all went well. A dry run under papermill stays OK."""
    from by_hand import run_by_hand

    site = backed_up_site
    copy = _open_copy(site, "point_in_time_restore")
    asking = [i for i, c in enumerate(_cells(copy)) if "gate.confirm(" in "".join(c["source"])]
    replies = run_by_hand(copy, ["not-the-name", "again-wrong"], again=asking)
    assert [r["status"] for r in replies] == ["ok"] * len(replies)
    result = json.loads((copy.parent / "result.json").read_text())
    assert result["recorded"] is True and result["failed"] is False
    assert result["status"] == "WARNING" and result["exit_code"] == 1
    assert result["figures"]["restored"] is False
    [refusal] = [f for f in result["findings"] if f["check"] == "confirmation.refused"]
    assert refusal["severity"] == "WARNING"
    assert "restore into a new data directory was asked for and NOT run" in refusal["message"]
    assert "'not-the-name' typed" in result["summary"]
    [decided] = result["confirmations"]
    assert decided["refused"] is True and decided["confirmed"] is False
    # each answer names the cell that asked: in the working copy, and run again in the archive
    first, second = result["answers"]
    assert [first["answer"], second["answer"]] == ["not-the-name", "again-wrong"]
    assert [first["cell"]] == [second["cell"]] == asking
    archived = _cells(copy.parent / "notebook.ipynb")
    assert first["archived_cell"] < second["archived_cell"] == len(archived) - 1
    for answer in (first, second):
        asked = archived[answer["archived_cell"]]
        assert "gate.confirm(" in "".join(asked["source"])
        assert asked["execution_count"] == answer["execution_count"]
    page = (copy.parent / "report.html").read_text()
    header = page.split('<header class="powrops-bar"', 1)[1].split("</header>", 1)[0]
    assert "status <b>WARNING</b>" in header, header
    assert "restore into a new data directory: NOT confirmed" in header, header
    index = (site.root / "reports" / "index.html").read_text()
    assert "not confirmed: restore into a new data directory was NOT run" in index
    env = {"POWROPS_CONFIG": str(site.config)}
    dry = run_report("point_in_time_restore", {}, reports_dir=site.root / "d", root=REPO, env=env)
    assert dry.result["status"] == "OK" and dry.result["failed"] is False
    assert dry.result["confirmations"][0]["how"] == "parameter"


def test_a_restore_confirmed_by_hand_says_how_in_its_header(backed_up_site: Site) -> None:
    """Confirmed by typing the name in a working copy (confirm stays False): the header says
    the name was typed, never 'confirm: no' beside a restore that happened; the runbook's
    Confirmation section says the typed name decides by hand, as the gate does."""
    from by_hand import run_by_hand
    from powrops.db import identity
    from powrops.gate import answer_for
    from powrops.pg.cluster import LocalCluster
    from powrops.restore import base_dir_for

    site = backed_up_site
    target_dir = site.root / "by-hand"
    copy = _open_copy(site, "point_in_time_restore", "-p", "target_dir", str(target_dir))
    name = answer_for(identity(site.settings))
    try:
        replies = run_by_hand(copy, [name])
        assert [r["status"] for r in replies] == ["ok"] * len(replies), replies[-1]
    finally:
        LocalCluster(base_dir_for(target_dir), data_dir=target_dir).destroy()
    result = json.loads((copy.parent / "result.json").read_text())
    assert result["status"] == "OK" and result["figures"]["restored"] is True
    assert result["parameters"]["confirm"] is False
    page = (copy.parent / "report.html").read_text()
    header = page.split('<header class="powrops-bar"', 1)[1].split("</header>", 1)[0]
    typed = f"restore into a new data directory: confirmed, {name} typed at the prompt"
    assert typed in header and "confirm: no" not in header, header
    assert "<code>confirm</code> is not read" in page and "unless the parameter" not in page
    env = {"POWROPS_CONFIG": str(site.config)}
    dry = run_report("point_in_time_restore", {}, reports_dir=site.root / "d", root=REPO, env=env)
    header = (dry.path / "report.html").read_text().split("</header>", 1)[0]
    assert "restore into a new data directory: not run (confirm = False: a dry run)" in header


def test_no_runbook_says_a_confirmation_parameter_decides_by_hand() -> None:
    """Each runbook's text that names a confirmation parameter's True also says what decides
    in JupyterLab (the typed name), as the gate does."""
    for path in sorted((REPO / "runbooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for cell in (c for c in cells if c["cell_type"] == "markdown"):
            text = "".join(cell["source"])
            if "True`" in text and "confirm" in text:
                assert "type" in text and "by hand" in text, (path.name, text)


def test_a_busy_target_dir_names_the_runbook_parameter(backed_up_site: Site) -> None:
    """A restore into a directory that is not empty stops the runbook naming target_dir; the
    command names --to for the same check."""
    site = backed_up_site
    busy = site.root / "busy"
    busy.mkdir()
    (busy / "something").write_text("kept\n")
    run = run_report(
        "point_in_time_restore", {"confirm": "True", "target_dir": str(busy)},
        reports_dir=site.root / "busy-runs", root=REPO, env={"POWROPS_CONFIG": str(site.config)},
    )  # fmt: skip
    assert run.exit_code == 3 and run.result["failed"] is True
    evalue = run.result["error"]["evalue"]
    assert evalue.startswith(f"target_dir {busy} is not empty: refusing to restore"), evalue
    assert "--to" not in (run.path / "report.html").read_text()
    assert (busy / "something").read_text() == "kept\n"
    done = site.cli("restore", "--to", str(busy))
    assert done.returncode == 3 and f"--to {busy} is not empty" in done.stderr, done.stderr
