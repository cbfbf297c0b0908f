"""``powrops backup list``: one damaged record is one finding, not the end of the listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powrops.backup.catalog import Catalog
from powrops.backup.model import BackupRecord
from powrops.backup.run import BackupRun
from powrops.config import load_settings
from powrops.storage.registry import open_repository


def _record(label: str, start: datetime) -> BackupRecord:
    return BackupRecord(
        label=label, kind="full", status="ok", start_time=start,
        stop_time=start + timedelta(minutes=2),
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    catalog = Catalog(open_repository(root.as_uri()))
    start = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    for day in range(3):
        label = (start + timedelta(days=day)).strftime("%Y%m%dT%H%M%SF")
        catalog.write(_record(label, start + timedelta(days=day)))
    return root


def _list(tmp_path: Path, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "powrops.toml"
    config.write_text(f'[backup.storage.primary]\nkind = "file"\nurl = "{repo.as_uri()}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    return subprocess.run(
        [sys.executable, "-m", "powrops", "-c", str(config), "backup", "list", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("damage", [b"{not json", b'{"label": "x"}', b"[]"])
def test_a_damaged_record_is_marked_and_the_rest_listed(
    tmp_path: Path, repo: Path, damage: bytes
) -> None:
    (repo / "backups" / "20261201T030000F" / "backup.json").write_bytes(damage)
    run = _list(tmp_path, repo)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "20261201T030000F" in run.stderr and "record" in run.stderr
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "20261130T030000F", "20261201T030000F", "20261202T030000F",
    ]  # fmt: skip
    assert "damaged" in lines[1] and "ok" in lines[0] and "ok" in lines[2]
    rows = json.loads(_list(tmp_path, repo, "--json").stdout)
    assert [r["status"] for r in rows] == ["ok", "damaged", "ok"]


def test_an_intact_repository_lists_ok(tmp_path: Path, repo: Path) -> None:
    run = _list(tmp_path, repo)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 3


def test_a_run_in_the_same_second_as_another_takes_the_next_second(tmp_path: Path) -> None:
    config = tmp_path / "powrops.toml"
    root = tmp_path / "repo"
    config.write_text(f'[backup.storage.primary]\nkind = "file"\nurl = "{root.as_uri()}"\n')
    run = BackupRun(load_settings(config), "incremental", echo=None)
    now = datetime.now(UTC)
    taken = {
        now.strftime("%Y%m%dT%H%M%SF"),
        (now + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SI"),
    }
    for label in taken:
        run.catalog.write(_record(label, now))
    run._claim_label()
    assert run.label.endswith("I") and run.label[:-1] not in {t[:-1] for t in taken}
    assert run.label > max(taken) and run.started > now + timedelta(seconds=1)
