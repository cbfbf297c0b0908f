"""One explicit target: the config file and state directory never depend on where a kernel runs.

A runbook opened in JupyterLab runs its kernel in ``runbooks/``; it must find the project's
``powrops.toml`` and ``.powrops/``, and nothing but ``db start`` and ``demo`` may create an
embedded cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from powrops.config import config_path, handoff_env, load_settings, project_root
from powrops.db import target
from powrops.errors import DatabaseError
from powrops.storage.spec import primary_url


def _checkout(root: Path) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "powrops"\n')
    return root


def test_the_config_file_is_found_from_a_subfolder(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "clone")
    (root / "powrops.toml").write_text('[state]\ndir = "state-here"\n[reports]\ndir = "out"\n')
    found = config_path(environ={}, cwd=root / "runbooks")
    assert found == root / "powrops.toml"


def test_relative_paths_resolve_against_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _checkout(tmp_path / "clone")
    (root / "powrops.toml").write_text('[state]\ndir = "state-here"\n[reports]\ndir = "out"\n')
    monkeypatch.chdir(root / "runbooks")
    settings = load_settings(environ={})
    assert settings.state_dir == root / "state-here"
    assert settings.reports_dir == root / "out"


def test_a_relative_config_path_names_the_same_folders_in_the_same_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-c ../site/powrops.toml`` and ``$POWROPS_CONFIG=../site/powrops.toml`` from another
    folder name the site's folders as its absolute path does, without ``..``: the archive spec
    and ``archive_command`` that ``db start`` writes from one are what ``alerts`` and the
    readiness report compare from the other, and they must not pass through the folder the
    command happened to run in."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (site / "powrops.toml").write_text('[state]\ndir = "state"\n[reports]\ndir = "out"\n')
    monkeypatch.chdir(elsewhere)
    for loaded in (
        load_settings("../site/powrops.toml", environ={}),
        load_settings(environ={"POWROPS_CONFIG": "../site/powrops.toml"}),
    ):
        assert loaded.config_file == str(site / "powrops.toml")
        assert str(loaded.state_dir) == str(site / "state")
        assert str(loaded.reports_dir) == str(site / "out")
        assert primary_url(loaded) == (site / "state" / "backups").as_uri()
        assert handoff_env(loaded)["POWROPS_CONFIG"] == str(site / "powrops.toml")


def test_without_a_config_file_the_project_root_is_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _checkout(tmp_path / "clone")
    assert project_root(root / "runbooks") == root
    monkeypatch.chdir(root / "runbooks")
    settings = load_settings(environ={})
    assert settings.source == "defaults"
    assert settings.state_dir == root / ".powrops"
    assert settings.reports_dir == root / "reports"


def test_a_state_directory_marks_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "site" / ".powrops").mkdir(parents=True)
    (tmp_path / "site" / "deep" / "er").mkdir(parents=True)
    assert project_root(tmp_path / "site" / "deep" / "er") == tmp_path / "site"
    assert project_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"


def test_no_database_and_no_cluster_stops_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _checkout(tmp_path / "clone")
    monkeypatch.chdir(root / "runbooks")
    settings = load_settings(environ={})
    with pytest.raises(DatabaseError, match=r"no database configured.*powrops db start"):
        target(settings)
    assert not (root / ".powrops").exists() and not (root / "runbooks" / ".powrops").exists()


@pytest.mark.parametrize("command", [["alerts"], ["check", "integrity"], ["backup", "list"]])
def test_commands_exit_3_saying_how_to_configure(tmp_path: Path, command: list[str]) -> None:
    root = _checkout(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    run = subprocess.run(
        [sys.executable, "-m", "powrops", *command],
        cwd=root / "runbooks",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if command == ["backup", "list"]:  # reads the repository only: nothing to configure
        assert run.returncode == 0 and "no backups" in run.stdout
    else:
        assert run.returncode == 3, run.stderr
        assert "no database configured" in run.stderr and "database.url" in run.stderr
    assert not (root / ".powrops" / "cluster").exists()
    assert not (root / "runbooks" / ".powrops").exists()


def test_a_job_role_replaces_the_urls_user_and_drops_its_password() -> None:
    from powrops.config import validate

    url = "postgresql://postgres:s3cret@db.internal:5433/powr?sslmode=require"
    settings = validate({"database": {"url": url, "role": "powr_reporting"}})
    where = target(settings)
    assert where.libpq_url == "postgresql://powr_reporting@db.internal:5433/powr?sslmode=require"
    assert "s3cret" not in where.libpq_url
    assert target(validate({"database": {"url": url}})).libpq_url == url


@pytest.mark.pg
def test_every_report_run_records_and_shows_its_database(migrated_db: str, tmp_path: Path) -> None:
    import json

    from cli_helpers import libpq, run_cli

    url = libpq(migrated_db)
    name = url.rsplit("/", 1)[1]
    env = {"POWROPS_DATABASE_URL": url, "POWROPS_REPORTS_DIR": str(tmp_path / "reports")}
    run = run_cli("report", "run", "readiness_report", env=env, timeout=300)
    assert run.returncode in (0, 1, 2), run.stderr
    assert f"database {name} on 127.0.0.1:" in run.stderr
    [result_file] = (tmp_path / "reports" / "readiness_report").glob("*/result.json")
    target_ = json.loads(result_file.read_text())["target"]
    assert target_["database"] == name and target_["embedded"] is False
    assert target_["server_version"] and target_["system_identifier"].isdigit()
    page = (result_file.parent / "report.html").read_text()
    assert f"database {name} on 127.0.0.1:{target_['port']}" in page
    assert target_["system_identifier"] in page
    assert (
        f"{name} on 127.0.0.1:{target_['port']}"
        in (tmp_path / "reports" / "index.html").read_text()
    )
