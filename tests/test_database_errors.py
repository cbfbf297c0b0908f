"""A database's answer a DBA can act on (a schema not migrated, a missing grant, a read-only
server, a lost connection) is said in one line with what to do, exit 3, no crash log; anything
else a query raises stays a crash (a defect of powrops), with its log."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from by_hand import run_by_hand
from cli_helpers import libpq, login_role, run_cli
from powrops.errors import database_problem
from powrops.reports.runner import run_report

REPO = Path(__file__).resolve().parents[1]

MIGRATE = "is the schema migrated? (powrops migrate latest)"


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (psycopg.errors.UndefinedTable('relation "ops.events" does not exist'), MIGRATE),
        (psycopg.errors.UndefinedColumn("column x does not exist"), MIGRATE),
        (psycopg.errors.InvalidSchemaName('schema "ops" does not exist'), MIGRATE),
        (psycopg.errors.InsufficientPrivilege("permission denied for table users"), "grant it"),
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT"), "read-only"),
        (psycopg.errors.AdminShutdown("terminating connection"), "shut down or restarted"),
        (psycopg.errors.DiskFull("could not extend file"), "ran out of a resource"),
        (psycopg.errors.ConnectionFailure("no connection to the server"), "connection"),
        (psycopg.OperationalError("server closed the connection unexpectedly"), "connection"),
    ],
)
def test_what_a_dba_can_act_on_is_said_with_what_to_do(error: Exception, says: str) -> None:
    said = database_problem(error)
    assert said is not None and says in said
    assert said.startswith(str(error).splitlines()[0]) and "\n" not in said


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.SyntaxError('syntax error at or near "SELEC"'),  # powrops' own SQL
        psycopg.errors.DivisionByZero("division by zero"),
        psycopg.ProgrammingError("the query has 2 placeholders but 1 parameters were passed"),
        KeyError("sqlstate"),
        type("Lookalike", (Exception,), {"sqlstate": "42P01"})("not a database's answer"),
    ],
)
def test_anything_else_stays_a_defect(error: Exception) -> None:
    assert database_problem(error) is None


def _no_crash(result: subprocess.CompletedProcess[str], state: Path) -> str:
    assert result.returncode == 3, result.stderr
    err = result.stderr
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    assert not list(state.glob("log/powrops-crash-*.log"))
    return err


@pytest.mark.pg
@pytest.mark.parametrize(
    "args",
    [["audit", "changes"], ["retention", "plan"], ["archive", "list"], ["gdpr", "consent-report"]],
)
def test_a_database_not_migrated_is_named_not_a_crash(
    args: list[str], fresh_db: str, tmp_path: Path
) -> None:
    env = {"POWROPS_DATABASE_URL": libpq(fresh_db), "POWROPS__STATE__DIR": str(tmp_path)}
    err = _no_crash(run_cli(*args, env=env), tmp_path)
    assert err.startswith("powrops: error: relation ") and MIGRATE in err


@pytest.fixture
def no_grants(migrated_db: str) -> Iterator[str]:
    """The URL of a login role that may connect to a migrated database, and nothing more."""
    with login_role(libpq(migrated_db), "t_nogrant") as url:
        yield url


@pytest.mark.pg
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["audit", "changes"], ""),
        (["check", "integrity"], "integrity check failed: "),
        (["migrate", "status"], "cannot read the schema version: "),
    ],
)
def test_a_missing_grant_is_named_not_a_crash(
    args: list[str], said: str, no_grants: str, tmp_path: Path
) -> None:
    env = {"POWROPS_DATABASE_URL": no_grants, "POWROPS__STATE__DIR": str(tmp_path)}
    err = _no_crash(run_cli(*args, env=env), tmp_path)
    assert err.startswith(f"powrops: error: {said}permission denied for ")
    assert "lacks a privilege this needs: grant it" in err and "few@" not in err


@pytest.mark.pg
def test_a_notebook_says_it_in_one_message(fresh_db: str, tmp_path: Path) -> None:
    """The GDPR runbook on a database not migrated: one message, no traceback; UNKNOWN."""
    env = {"POWROPS_DATABASE_URL": libpq(fresh_db), "POWROPS__STATE__DIR": str(tmp_path / "s")}
    run = run_report("gdpr_request", {"user_id": 1}, reports_dir=tmp_path / "r", root=REPO, env=env)
    assert run.exit_code == 3 and run.result["failed"] is True
    html = (run.path / "report.html").read_text()
    notebook = (run.path / "notebook.ipynb").read_text()
    assert "Stopped: relation " in html and MIGRATE in html, html[-3000:]
    assert "Traceback" not in html and "Traceback" not in notebook
    assert run.result["error"]["ename"] == "UndefinedTable"
    # the header, result.json and the index say what to do, as the page's "Stopped:" line does
    assert MIGRATE in run.result["error"]["evalue"]


@pytest.mark.pg
def test_a_working_copy_run_by_hand_keeps_what_to_do_with_the_error(
    fresh_db: str, tmp_path: Path
) -> None:
    """The same runbook opened by hand: result.json (and so the header and the index) keeps
    the one line the page showed, with what to do, not the database's bare message."""
    from test_interactive import open_runbook

    config = tmp_path / "powrops.toml"
    config.write_text(
        f'[database]\nurl = "{libpq(fresh_db)}"\n[state]\ndir = "{tmp_path / "s"}"\n'
        f'[reports]\ndir = "{tmp_path / "r"}"\n'
    )
    copy = open_runbook("gdpr_request", config, "-p", "user_id", "1")
    assert run_by_hand(copy, [])[-1]["status"] == "error"
    error = json.loads((copy.parent / "result.json").read_text())["error"]
    assert error["ename"] == "UndefinedTable" and MIGRATE in error["evalue"]
    assert "\n" not in error["evalue"]
