"""Bad input is refused before anything is created or recorded: exit 3, one line naming what
was wrong, no traceback, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import run_cli
from powrops.config import load_settings
from powrops.errors import ParameterError
from powrops.retention.gdpr import export_directory, export_user

#: Nothing listens on port 1: a connection is refused at once.
NOWHERE = "postgresql://nobody@127.0.0.1:1/powr"


def test_a_database_url_of_another_scheme_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "powrops.toml"
    config.write_text('[database]\nurl = "mysql://app:hunter2@db.example/powr"\n')
    state = tmp_path / ".powrops"
    state.mkdir()  # a configuration that took backups before: a failed one would land here
    for args in (("config", "check"), ("backup", "full")):
        result = run_cli("-c", str(config), *args)
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert "database.url" in result.stderr and "postgresql://" in result.stderr, args
        assert "hunter2" not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert list(state.iterdir()) == []


def test_gdpr_export_refused_or_failed_leaves_nothing_behind(tmp_path: Path) -> None:
    config = tmp_path / "powrops.toml"
    config.write_text(f'[database]\nurl = "{NOWHERE}"\nconnect_timeout = 2\n')

    refused = run_cli("-c", str(config), "gdpr", "export", "-1", "--to", str(tmp_path / "out"))
    assert refused.returncode == 3 and "-1 is not a user's id" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ParameterError, match=f"^{2**63} is not a user's id"):
        export_user(load_settings(config), 2**63, tmp_path / "out")  # the library's own check
    assert not (tmp_path / "out").exists()

    new = tmp_path / "new" / "out"
    failed = run_cli("-c", str(config), "gdpr", "export", "5", "--to", str(new))
    assert failed.returncode == 3, failed.stderr
    assert not (tmp_path / "new").exists()  # the parent it created goes too

    before = tmp_path / "empty"
    before.mkdir()
    failed = run_cli("-c", str(config), "gdpr", "export", "5", "--to", str(before))
    assert failed.returncode == 3, failed.stderr
    assert before.is_dir() and list(before.iterdir()) == []


def test_a_failed_export_removes_its_files_but_not_a_directory_that_was_there(
    tmp_path: Path,
) -> None:
    before = tmp_path / "empty"
    before.mkdir()
    with pytest.raises(RuntimeError, match="cut"), export_directory(before) as directory:
        (directory / "users.json").write_text("[]\n")
        raise RuntimeError("cut")
    assert before.is_dir() and list(before.iterdir()) == []


@pytest.mark.parametrize("limit", [0, 2**63, True])
def test_the_retention_reports_recent_runs_is_checked_as_every_count(
    tmp_path: Path, limit: object
) -> None:
    """By hand as under ``report run``: a count past MOST_COUNT is refused in the parameter's
    words before any query (the database answered "bigint out of range" to 2**63)."""
    from powrops.retention.gather import last_runs

    config = tmp_path / "powrops.toml"
    config.write_text(f'[database]\nurl = "{NOWHERE}"\nconnect_timeout = 2\n')
    with pytest.raises(ParameterError, match=r"^recent_runs = .*: expected a positive whole"):
        last_runs(load_settings(config), limit)  # type: ignore[arg-type]
