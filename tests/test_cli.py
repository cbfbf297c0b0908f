"""The `powrops` command end to end, as a subprocess, with its exit codes."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

POWROPS = [sys.executable, "-m", "powrops.cli"]


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    return subprocess.run(
        [*POWROPS, *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_config_check_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[backup.retention]\nfull = "14d"\n')
    ok = run("config", "check", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[backup.retention]\nfull = "fortnight"\n[alerts]\ndisk = 3\n')
    result = run("config", "check", str(bad))
    assert result.returncode == 3
    assert "backup.retention.full = 'fortnight'" in result.stderr
    assert "alerts.disk: unknown key" in result.stderr
    missing = run("config", "check", str(tmp_path / "absent.toml"))
    assert missing.returncode == 3 and "does not exist" in missing.stderr


def test_config_show_redacts_secrets_and_applies_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "powrops.toml"
    cfg.write_text('[database]\nurl = "postgresql://app:S3cr3t-Pw@db.internal/powr"\n')
    result = run(
        "config",
        "show",
        env={"POWROPS_CONFIG": str(cfg), "POWROPS__BACKUP__SCHEDULE__LOGS": "5min"},
    )
    assert result.returncode == 0, result.stderr
    assert "S3cr3t-Pw" not in result.stdout
    assert 'url = "********"' in result.stdout
    assert 'logs = "5min"' in result.stdout
    as_json = run("config", "show", "--json", env={"POWROPS_CONFIG": str(cfg)})
    data = json.loads(as_json.stdout)
    assert data["database"]["url"] == "********"
    assert data["backup"]["retention"] == {"full": "30d", "incremental": "7d", "logs": "24h"}


def test_bad_arguments_exit_unknown() -> None:
    result = run("db", "stat")
    assert result.returncode == 3
    assert "invalid choice" in result.stderr
    assert run("seed", "--users", "many").returncode == 3


@pytest.mark.pg
def test_db_start_status_stop(pg_tmp: Path) -> None:
    env = {"POWROPS_STATE_DIR": str(pg_tmp / "state")}
    try:
        down = run("db", "status", env=env)
        assert down.returncode == 2 and "running    no" in down.stdout
        start = run("db", "start", env=env)
        assert start.returncode == 0, start.stderr
        assert "created and started" in start.stdout
        status = run("db", "status", "--json", env=env)
        info = json.loads(status.stdout)
        assert status.returncode == 0 and info["running"] is True
        url = run("db", "url", env=env).stdout.strip()
        password = (pg_tmp / "state" / "cluster" / "password").read_text().strip()
        assert url.startswith("postgresql://postgres@127.0.0.1:") and password not in url
        assert password in run("db", "url", "--with-password", env=env).stdout
        again = run("db", "start", env=env)
        assert again.returncode == 0 and "running" in again.stdout and "created" not in again.stdout
        assert run("db", "stop", env=env).stdout.strip() == "stopped"
        assert run("db", "stop", env=env).stdout.strip() == "not running"
    finally:
        run("db", "stop", env=env)


def test_db_commands_refuse_when_a_url_is_configured() -> None:
    result = run("db", "start", env={"POWROPS_DATABASE_URL": "postgresql://x@127.0.0.1:1/db"})
    assert result.returncode == 3
    assert "manages only the embedded cluster" in result.stderr


def test_demo_refuses_a_configured_server(tmp_path: Path) -> None:
    """On a database host POWROPS_CONFIG names production: the demo's data, planted defects
    included, never goes there, and nothing is started or written."""
    env = {"POWROPS_DATABASE_URL": "postgresql://x@127.0.0.1:1/db",
           "POWROPS_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    result = run("demo", env=env, cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "runs only on the embedded default" in result.stderr
    assert "127.0.0.1:1" in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args", [("migrate", "status"), ("alerts",), ("metrics", "growth"), ("check", "integrity")]
)
def test_unreachable_database_is_unknown_with_a_clear_message(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """Said in one line (libpq's refusal and its hint joined), naming the server, no password."""
    env = {"POWROPS_DATABASE_URL": "postgresql://x:pw@127.0.0.1:1/powr"}
    result = run(*args, env={**env, "POWROPS_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 3
    assert "127.0.0.1:1" in result.stderr and "pw@" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Connection refused Is the server running" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["gdpr", "export", "99999999999999999999", "--to", "/nonexistent/export"],
        ["gdpr", "erase", "0"],
        ["archive", "list", "--user", "9223372036854775808"],
        ["archive", "run", "--user", "-3", "--dry-run"],
        ["archive", "restore", "--user", "0"],
    ],
)
def test_a_value_no_user_can_have_is_refused_before_any_query(args: list[str]) -> None:
    """A user id outside ``users.id``'s bigint (the database answered "bigint out of range",
    a crash with its log) or below 1 is refused by the argument's own check, naming it; the
    server is never asked (its URL here reaches nothing)."""
    result = run(*args, env={"POWROPS_DATABASE_URL": "postgresql://x:pw@127.0.0.1:1/powr"})
    assert result.returncode == 3, result.stderr
    assert "is not a user's id" in result.stderr and "127.0.0.1" not in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not Path("/nonexistent").exists()


@pytest.mark.parametrize("args", [["report", "run", "no_such_report"]])
def test_unknown_report_name(args: list[str], pg_url: str) -> None:
    result = run(*args, env={"POWROPS_DATABASE_URL": pg_url})
    assert result.returncode == 3
    assert "no_such_report" in result.stderr and "readiness_report" in result.stderr


def _commands(parser: object) -> dict[str, object]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_a_command_registers_only_its_own_group_and_reads_the_same() -> None:
    """``powrops verify ...`` builds the parser of ``verify`` alone (start-up time); its help
    and options are those of the whole parser, and anything else gets the whole parser."""
    from powrops.cli.main import build_parser
    from powrops.cli.registry import group_names

    whole = _commands(build_parser())
    assert sorted(whole) == group_names()
    for name in group_names():
        for argv in ([name], ["-c", "x.toml", name], ["-v", f"--config={name}", name]):
            light = _commands(build_parser([*argv, "--json"]))
            assert list(light) == [name], argv
            assert light[name].format_help() == whole[name].format_help()  # type: ignore[attr-defined]
    for argv in (["--help"], ["-c", "verify"], ["no-such-command"], ["--version", "verify"]):
        assert sorted(_commands(build_parser(argv))) == group_names(), argv


def _probe_project(tmp_path: Path, source: str) -> Path:
    """A project whose one scheduled report, ``probe``, runs ``source`` in one cell."""
    notebook = {
        "cells": [
            {"id": "a", "cell_type": "markdown", "metadata": {}, "source": "# Probe"},
            {"id": "b", "cell_type": "code", "metadata": {}, "source": source, "outputs": [],
             "execution_count": None},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "notebooks" / "probe.ipynb").write_text(json.dumps(notebook))
    return project


def test_a_report_run_without_stdout_and_stderr_gives_its_kernel_dev_null(
    tmp_path: Path, pg_url: str
) -> None:
    """Started without its standard streams (``>&-``), the run's kernel gets /dev/null in
    their place as powrops does, and runs: it died at start without them."""
    source = "from powrops.reports.record import record\nrecord(status='ok')"
    project = _probe_project(tmp_path, source)
    archive = tmp_path / "archive"
    # ipykernel leaves the standard file descriptors alone under pytest: not this kernel
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POWROPS", "PYTEST"))}
    result = subprocess.run(
        ["bash", "-c", shlex.join([*POWROPS, "report", "run", "probe"]) + " >&- 2>&-"],
        env={**base, "POWROPS_DATABASE_URL": pg_url, "POWROPS_PROJECT_ROOT": str(project),
             "POWROPS__REPORTS__DIR": str(archive), "POWROPS__STATE__DIR": str(tmp_path / "s")},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    [run_dir] = (archive / "probe").iterdir()
    recorded = json.loads((run_dir / "result.json").read_text())
    assert (result.returncode, recorded["status"]) == (0, "OK"), recorded.get("error")


def test_a_report_whose_kernel_cannot_start_is_archived_as_unknown(
    tmp_path: Path, pg_url: str
) -> None:
    from powrops.reports.kernel import kernel_name

    project = _probe_project(tmp_path, "x = 1")
    # Found before the installed kernelspec (JUPYTER_PATH comes first): a program not there.
    spec = tmp_path / "jupyter" / "kernels" / kernel_name() / "kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"argv": [str(tmp_path / "no-python"), "-f", "{connection_file}"],
                                "display_name": "broken", "language": "python"}))  # fmt: skip
    archive = tmp_path / "archive"
    result = run(
        "report", "run", "probe",
        env={"POWROPS_DATABASE_URL": pg_url, "POWROPS_PROJECT_ROOT": str(project),
             "POWROPS__REPORTS__DIR": str(archive), "POWROPS__STATE__DIR": str(tmp_path / "s"),
             "JUPYTER_PATH": str(tmp_path / "jupyter")},
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    [database, error] = result.stderr.splitlines()  # one line says what went wrong
    assert database.startswith("probe: database powr on ")
    assert error.startswith("  error: FileNotFoundError: "), error  # one line, not a dict
    assert "FileNotFoundError" in error and "could not be started" in error and "no-python" in error
    assert result.stdout.startswith("probe: UNKNOWN -> ")
    [run_dir] = (archive / "probe").iterdir()
    recorded = json.loads((run_dir / "result.json").read_text())
    assert (recorded["status"], recorded["failed"]) == ("UNKNOWN", True)
    assert recorded["error"]["ename"] == "FileNotFoundError"
    assert "could not be started" in (run_dir / "report.html").read_text()


def test_db_start_listens_on_the_configured_port_or_says_why_not(pg_tmp: Path) -> None:
    """``postgres.port`` is the port the embedded cluster listens on (it took a free one and
    ignored the setting); taken by another program, it is refused, not moved."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"POWROPS_STATE_DIR": str(pg_tmp / "state"), "POWROPS__POSTGRES__PORT": str(port)}
    try:
        start = run("db", "start", env=env)
        assert start.returncode == 0, start.stderr
        assert json.loads(run("db", "status", "--json", env=env).stdout)["port"] == port
        assert f"127.0.0.1:{port}/" in run("db", "url", env=env).stdout
        moved = {**env, "POWROPS__POSTGRES__PORT": str(port + 1)}
        running = run("db", "start", env=moved)
        assert running.returncode == 3 and f"runs on port {port}, not on port {port + 1}" in (
            running.stderr
        )
        assert run("db", "stop", env=env).returncode == 0
        with socket.socket() as squatter:
            # the stopped server's connections may hold the port in TIME_WAIT: bind anyway
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen(1)
            taken = run("db", "start", env=env)
        assert taken.returncode == 3 and "Traceback" not in taken.stderr
        assert f"port {port} (postgres.port) is in use by another program" in taken.stderr
        again = run("db", "start", env=env)
        assert (
            again.returncode == 0
            and json.loads(run("db", "status", "--json", env=env).stdout)["port"] == port
        )
    finally:
        run("db", "stop", env=env)


def test_wal_push_refuses_an_archive_inside_the_data_directory(tmp_path: Path) -> None:
    """``archive_command = 'powrops wal push %p'`` on a server of one's own: the server runs it
    in its data directory, where no configuration is found; the defaults would archive into
    ``.powrops/backups`` there, inside every later base backup. Refused, exit 3, nothing made."""
    data = tmp_path / "pgdata"
    (data / "pg_wal").mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    segment = data / "pg_wal" / "000000010000000000000001"
    segment.write_bytes(b"\0" * 1024)
    pushed = run("wal", "push", "pg_wal/000000010000000000000001", cwd=data)
    assert pushed.returncode == 3, pushed.stdout + pushed.stderr
    assert f"inside the PostgreSQL data directory {data}" in pushed.stderr, pushed.stderr
    assert "--config" in pushed.stderr and "Traceback" not in pushed.stderr
    assert not (data / ".powrops").exists()
    config = tmp_path / "site" / "powrops.toml"  # named, outside: archived there
    config.parent.mkdir()
    config.write_text("")
    named = run("--config", str(config), "wal", "push", str(segment), cwd=data)
    assert named.returncode == 0, named.stderr
    assert list((tmp_path / "site" / ".powrops" / "backups" / "wal").rglob("*.zst"))
