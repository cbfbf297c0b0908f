"""One target: a command and every notebook it starts act on the configuration they were given,
reading changes nothing, and a monitor never starts what it monitors.

Two servers whose data differ: a new, unmigrated database of the session cluster
(configuration A, what ``$POWROPS_CONFIG`` names, with an empty repository) and a migrated
embedded cluster with its own repository and one full backup (configuration B, the site). A
run with ``-c B`` must report B's facts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_site import Site
from cli_helpers import libpq, run_cli
from powrops import db, migrate
from powrops.config import handoff_env, load_settings, to_toml


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """Configuration B: an embedded cluster, migrated, archiving WAL, one full backup."""
    site = Site.create()
    try:
        engine = db.engine(site.settings)
        migrate.upgrade(engine)
        engine.dispose()
        backup = site.cli("backup", "full")
        assert backup.returncode == 0, backup.stderr
        yield site
    finally:
        site.destroy()


@pytest.fixture
def config_a(fresh_db: str, pg_tmp: Path) -> Path:
    """Configuration A: another server (unmigrated) and another, empty, repository."""
    path = pg_tmp / "a.toml"
    data = {"database": {"url": libpq(fresh_db)}, "state": {"dir": str(pg_tmp / "a-state")}}
    path.write_text(to_toml(data))
    return path


def _result(stdout: str) -> tuple[Path, dict[str, Any]]:
    """The run folder a ``report run`` printed, and its result.json."""
    page = Path(stdout.strip().rsplit(" -> ", 1)[1])
    return page.parent, json.loads((page.parent / "result.json").read_text())


def _report(site: Site, config_a: Path, name: str, *params: str) -> tuple[str, dict[str, Any]]:
    """``powrops -c B report run NAME`` with ``$POWROPS_CONFIG`` naming A: the page, the result."""
    env = {"POWROPS_CONFIG": str(config_a)}
    run = run_cli("-c", str(site.config), "report", "run", name, *params, env=env, timeout=300)
    assert "failed" not in run.stdout, run.stdout + run.stderr
    folder, result = _result(run.stdout)
    assert result["failed"] is False, result["error"]
    assert folder.is_relative_to(site.root / "reports"), folder  # B's archive, not A's
    return (folder / "report.html").read_text(), result


@pytest.mark.pg
def test_dash_c_reaches_the_readiness_kernel(site: Site, config_a: Path) -> None:
    html, result = _report(site, config_a, "readiness_report")
    findings = {f["check"]: f for f in result["findings"]}
    # B is at head; A, which the kernel would find through $POWROPS_CONFIG, is unmigrated
    assert findings["alembic"]["severity"] == "OK", findings["alembic"]
    assert "schema is at head" in html and "not under migration control" not in html
    spec = findings["archive_spec"]  # only B has an embedded cluster and an archive spec
    assert spec["severity"] == "OK"
    assert spec["object"] == str(site.root / "state" / "archive.json")


@pytest.mark.pg
def test_dash_c_reaches_the_verification_kernel(site: Site, config_a: Path) -> None:
    label = site.backups()[0]["label"]
    params = ("-p", "restore", "false", "-p", "pg_verifybackup", "false")
    html, result = _report(site, config_a, "backup_verification", *params)
    assert result["figures"]["backups"] == 1, result["figures"]  # A's repository is empty
    assert label in html and str(site.root / "state" / "backups") in html


@pytest.mark.pg
def test_alerts_with_another_repository_rewrite_nothing(site: Site, pg_tmp: Path) -> None:
    """A second configuration sharing B's state directory but naming another repository:
    looking changes neither the archive spec nor the server's settings, and says so."""
    other = (pg_tmp / "other-repo").as_uri()
    config_c = pg_tmp / "c.toml"
    data = {**site.data, "backup": {"storage": {"primary": {"kind": "file", "url": other}}}}
    config_c.write_text(to_toml(data))
    spec = site.root / "state" / "archive.json"
    conf = site.root / "state" / "cluster" / "pgdata" / "powrops.conf"
    before = spec.read_bytes(), conf.read_bytes()

    alerts = run_cli("-c", str(config_c), "alerts", "--no-record", "--json")
    assert (spec.read_bytes(), conf.read_bytes()) == before
    assert alerts.returncode == 2, alerts.stderr
    found = [f for f in json.loads(alerts.stdout)["findings"] if f["check"] == "archive_spec"]
    assert [f["severity"] for f in found] == ["CRITICAL"]
    assert found[0]["value"] == (site.root / "state" / "backups").as_uri()
    assert found[0]["expected"] == other
    verify = run_cli("-c", str(config_c), "verify")
    assert "warning: the embedded server archives WAL to" in verify.stderr
    assert spec.read_bytes() == before[0]

    # the one command that rewrites it says what it changed; B's own then reports the change
    moved = run_cli("-c", str(config_c), "db", "configure-archiving")
    assert moved.returncode == 0, moved.stderr
    assert f"WAL goes to {other} (was {(site.root / 'state' / 'backups').as_uri()})" in (
        moved.stdout
    )
    assert json.loads(spec.read_text())["url"] == other
    back = site.cli("db", "configure-archiving")
    assert back.returncode == 0 and json.loads(spec.read_text())["url"] != other


@pytest.mark.pg
def test_a_stopped_cluster_is_reported_never_started(site: Site) -> None:
    cluster_dir = site.root / "state" / "cluster"
    runs = sorted((site.root / "reports").rglob("result.json"))
    assert site.cli("db", "stop").stdout.strip() == "stopped"
    try:
        for args in (
            ("alerts", "--no-record"),
            ("report", "run", "readiness_report"),
            ("migrate", "status"),
        ):
            run = site.cli(*args)
            assert run.returncode == 3, (args, run.stdout, run.stderr)
            assert "is stopped; start it with `powrops db start`" in run.stderr, run.stderr
            assert "Traceback" not in run.stderr
            assert not (cluster_dir / "pgdata" / "postmaster.pid").exists(), args
        assert sorted((site.root / "reports").rglob("result.json")) == runs  # no kernel ran
        # what Prometheus reads says so at once: UNKNOWN, the database check, not an all-clear
        textfile = site.root / "textfile"
        textfile.mkdir(exist_ok=True)
        (textfile / "powrops.prom").write_text('powrops_alerts_status{server="default"} 0\n')
        watched = site.cli("alerts", "--no-record", "--textfile", str(textfile))
        assert watched.returncode == 3 and "is stopped" in watched.stderr, watched.stderr
        written = (textfile / "powrops.prom").read_text()
        assert 'powrops_alerts_status{server="default"} 3' in written, written
        assert (
            'check="database"' in written and not (cluster_dir / "pgdata/postmaster.pid").exists()
        )
    finally:
        start = site.cli("db", "start")
    assert start.returncode == 0, start.stderr
    assert site.cli("alerts", "--no-record").returncode in (0, 1, 2)


def test_the_hand_off_names_the_loaded_file_or_the_defaults_explicitly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a kernel receives makes it load what its starter loaded, wherever it runs."""
    site_dir, kernel_dir = tmp_path / "site", tmp_path / "checkout"
    (site_dir / ".powrops").mkdir(parents=True)
    kernel_dir.mkdir()
    (kernel_dir / "powrops.toml").write_text('[state]\ndir = "elsewhere"\n')
    monkeypatch.chdir(site_dir)
    loaded = load_settings(environ={})
    handed = handoff_env(loaded)
    monkeypatch.chdir(kernel_dir)  # a kernel runs in the checkout, beside another powrops.toml
    again = load_settings(environ=handed)
    assert (again.source, again.state_dir) == ("defaults", site_dir / ".powrops")

    (site_dir / "b.toml").write_text('[state]\ndir = "b-state"\n')
    monkeypatch.chdir(site_dir)
    handed = handoff_env(load_settings("b.toml", environ={}))
    assert handed["POWROPS_CONFIG"] == str(site_dir / "b.toml")
    monkeypatch.chdir(kernel_dir)
    assert load_settings(environ=handed).state_dir == site_dir / "b-state"


def _kernel_outputs(folder: Path) -> str:
    """Everything the notebook's own cells printed or displayed (not the runner's header)."""
    nb = json.loads((folder / "notebook.ipynb").read_text())
    return json.dumps([c.get("outputs", []) for c in nb["cells"] if c["cell_type"] == "code"])


#: Every other report and runbook, with parameters that make it read and change nothing.
OTHERS = {
    "integrity_report": (),
    "growth_report": (),
    "retention_report": (),
    "quarterly_review": (),
    "data_corruption_response": (),
    "disk_space_response": (),
    "performance_response": (),
    "migrate_production": (),
    "point_in_time_restore": (),
    "recovery_drill": (),
    "gdpr_request": ("-p", "user_id", "1"),
}


@pytest.mark.pg
@pytest.mark.parametrize("name", sorted(OTHERS))
def test_dash_c_reaches_every_kernel(site: Site, config_a: Path, name: str) -> None:
    """Each notebook's own first cell shows the target its kernel loaded: B's server, never A's
    (which ``$POWROPS_CONFIG`` names), whatever the notebook goes on to do."""
    env = {"POWROPS_CONFIG": str(config_a)}
    run = run_cli("-c", str(site.config), "report", "run", name, *OTHERS[name], env=env,
                  timeout=300)  # fmt: skip
    folder, _ = _result(run.stdout)
    assert folder.is_relative_to(site.root / "reports"), folder
    shown = _kernel_outputs(folder)
    b = db.identity(site.settings)
    a = db.identity(load_settings(config_a, environ={}))
    assert b.system_identifier and f"{b.host}:{b.port}" in shown, shown[:2000]
    assert f"{a.host}:{a.port}" not in shown


@pytest.mark.pg
@pytest.mark.parametrize("command", [("report", "run"), ("runbook",)])
def test_a_config_path_parameter_naming_another_configuration_is_refused(
    site: Site, config_a: Path, command: tuple[str, ...]
) -> None:
    """``-c B ... -p config_path A`` would archive under B's header a notebook acting on A:
    refused before a kernel starts or a copy is written; naming B itself is fine."""
    runs = sorted((site.root / "reports").rglob("result.json"))
    name = "readiness_report" if command == ("report", "run") else "performance_response"
    for given in (str(config_a), "a.toml"):
        run = run_cli("-c", str(site.config), *command, name, "-p", "config_path", given)
        assert run.returncode == 3, (given, run.stdout, run.stderr)
        assert f"config_path {given!r}" in run.stderr and "-c" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert sorted((site.root / "reports").rglob("result.json")) == runs  # nothing archived
    same = run_cli("-c", str(site.config), *command, name, "-p", "config_path", str(site.config))
    assert same.returncode in (0, 1), same.stderr


@pytest.mark.pg
def test_verify_of_an_empty_repository_creates_nothing(config_a: Path, pg_tmp: Path) -> None:
    """A's repository (under a state directory not created yet) holds nothing: verify says so
    and writes no verification state, nor the folders it would go in."""
    run = run_cli("-c", str(config_a), "verify")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no successful backup in" in run.stdout, run.stdout
    assert not (pg_tmp / "a-state").exists(), sorted((pg_tmp / "a-state").rglob("*"))


def _as_nobody(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m powrops.cli *args`` as the OS user nobody, in a bare environment."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "powrops.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, user="nobody", group="nogroup",
                          extra_groups=[], timeout=120, check=False)  # fmt: skip


@pytest.mark.pg
def test_alerts_as_an_os_user_that_cannot_reach_the_data_directory(site: Site) -> None:
    """A monitor run by another OS user (a cron line installed for another account) judges
    the disk as not evaluated, and every other check still: no internal error."""
    if _as_nobody("--version", cwd=site.root).returncode != 0:
        pytest.skip("the OS user nobody cannot run this checkout's powrops")
    config = site.root / "nobody.toml"
    config.write_text(to_toml({"database": {"url": db.target(site.settings).url}}))
    config.chmod(0o644)
    try:
        run = _as_nobody("-c", str(config), "alerts", "--no-record", "--json", cwd=site.root)
    finally:
        config.unlink()
    assert run.returncode in (0, 1, 2, 3) and "internal error" not in run.stderr, run.stderr
    findings = {f["check"]: f for f in json.loads(run.stdout)["findings"]}
    disk = findings["disk_usage"]
    assert disk["severity"] == "UNKNOWN" and "Permission denied" in disk["message"], disk
    assert findings["connections"]["severity"] == "OK", findings["connections"]


@pytest.mark.pg
def test_the_archive_spec_is_the_same_repository_through_a_symlink(site: Site) -> None:
    """A configuration reached through a symlinked folder names the site's repository in
    other words: the same folder is not another repository (no CRITICAL archive_spec)."""
    link = Path(f"{site.root}-link")
    link.symlink_to(site.root)
    config = site.root / "relative.toml"
    config.write_text(to_toml({"state": {"dir": "state"}, "reports": {"dir": "reports"}}))
    try:
        run = run_cli("-c", str(link / "relative.toml"), "alerts", "--no-record", "--json")
    finally:
        link.unlink()
        config.unlink()
    [spec] = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "archive_spec"]
    assert spec["severity"] == "OK", spec
    assert spec["object"] == str(link / "state" / "archive.json")
