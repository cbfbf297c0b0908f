"""Checks never fail because their history cannot be written.

On a read-only database (the corruption runbook's first step, or a standby) ``alerts`` and
``check integrity`` evaluate, report, and add a finding that the run was not recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from cli_helpers import libpq, run_cli

pytestmark = pytest.mark.pg


@pytest.fixture
def read_only_db(migrated_db: str) -> str:
    url = libpq(migrated_db)
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    return url


@pytest.mark.parametrize("command", [["alerts", "--json"], ["check", "integrity", "--json"]])
def test_a_read_only_database_is_checked_and_the_run_not_recorded(
    read_only_db: str, command: list[str], tmp_path: Path
) -> None:
    # the state the database cannot take goes to a state folder: this test's, not the checkout's
    run = run_cli(*command, env={"POWROPS_DATABASE_URL": read_only_db,
                                 "POWROPS_STATE_DIR": str(tmp_path / "state")})  # fmt: skip
    assert run.returncode in (0, 1, 2), run.stderr
    report = json.loads(run.stdout)
    findings = report["findings"] if "findings" in report else report["before"]["findings"]
    history = [f for f in findings if f["check"] == "history"]
    assert len(history) == 1, findings
    assert "not recorded" in history[0]["message"] and "read-only" in history[0]["message"]
    assert history[0]["severity"] == "OK"
    with psycopg.connect(read_only_db) as conn:
        assert conn.execute("SELECT count(*) FROM ops.check_runs").fetchone() == (0,)
    if command[0] == "alerts":  # its baseline, in the state folder named
        assert (tmp_path / "state" / "alerts" / "baseline.json").is_file()


def test_a_writable_database_records_the_run(migrated_db: str) -> None:
    run = run_cli("alerts", "--json", env={"POWROPS_DATABASE_URL": libpq(migrated_db)})
    assert run.returncode in (0, 1, 2), run.stderr
    report = json.loads(run.stdout)
    assert report["run_id"] is not None
    assert not [f for f in report["findings"] if f["check"] == "history"]


def test_a_database_left_read_only_is_critical_in_alerts_and_readiness(
    read_only_db: str, tmp_path: Path
) -> None:
    env = {"POWROPS_DATABASE_URL": read_only_db, "POWROPS_STATE_DIR": str(tmp_path / "state")}
    run = run_cli("alerts", "--json", env=env)
    assert run.returncode == 2, run.stderr
    found = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "read_only"]
    assert [f["severity"] for f in found] == ["CRITICAL"]
    assert "default_transaction_read_only = off" in found[0]["advice"]

    from powrops import readiness
    from powrops.config import validate

    settings = validate({"database": {"url": read_only_db}})
    with psycopg.connect(read_only_db) as conn:
        writable = [f for f in readiness.run_checks(conn, settings) if f.check == "read_only"]
    assert [f.severity.name for f in writable] == ["CRITICAL"]


def test_a_writable_database_is_ok_in_alerts(migrated_db: str) -> None:
    run = run_cli("alerts", "--json", env={"POWROPS_DATABASE_URL": libpq(migrated_db)})
    found = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "read_only"]
    assert [f["severity"] for f in found] == ["OK"]
