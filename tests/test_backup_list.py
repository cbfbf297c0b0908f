"""``powrops backup list``: one damaged record is one finding, not the end of the listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powrops.backup.catalog import Catalog
from powrops.backup.model import BackupRecord, wal_key
from powrops.backup.run import BackupRun
from powrops.config import load_settings
from powrops.storage.registry import open_repository
from readable import machine_values


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


def _list(
    tmp_path: Path, repo: Path, *args: str, action: str = "list"
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "powrops.toml"
    config.write_text(f'[backup.storage.primary]\nkind = "file"\nurl = "{repo.as_uri()}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    return subprocess.run(
        [sys.executable, "-m", "powrops", "-c", str(config), "backup", action, *args],
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
    lines = [line for line in run.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split()[0] for line in lines] == [
        "20261130T030000F", "20261201T030000F", "20261202T030000F",
    ]  # fmt: skip
    assert "damaged" in lines[1] and "ok" in lines[0] and "ok" in lines[2]
    rows = json.loads(_list(tmp_path, repo, "--json").stdout)
    assert [r["status"] for r in rows] == ["ok", "damaged", "ok"]


def test_an_intact_repository_lists_ok(tmp_path: Path, repo: Path) -> None:
    run = _list(tmp_path, repo)
    assert run.returncode == 0, run.stderr
    assert len([line for line in run.stdout.splitlines() if not line.startswith(" ")]) == 3


def _walled(root: Path, segments: list[int]) -> None:
    """Two backups with WAL ranges; ``segments`` of timeline 1 archived (16 MiB segments)."""
    repo = open_repository(root.as_uri())
    catalog = Catalog(repo)
    start = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    for day, first in ((0, 2), (1, 6)):
        begin = start + timedelta(days=day)
        catalog.write(
            replace(
                _record(begin.strftime("%Y%m%dT%H%M%SF"), begin),
                timeline=1, start_wal=f"0000000100000000{first:08X}",
                stop_wal=f"0000000100000000{first + 1:08X}",
                start_lsn=f"0/{first * 0x1000000 + 0x28:X}",
                stop_lsn=f"0/{(first + 1) * 0x1000000 + 0x100:X}",
                raw_size=40 * 2**20, stored_size=5 * 2**20,
            )
        )  # fmt: skip
    for number in segments:
        repo.put_bytes(wal_key(f"0000000100000000{number:08X}"), b"x")


def test_list_shows_times_sizes_wal_range_and_recovery_window(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _walled(root, [2, 3, 4, 6, 7, 8, 9])  # segment 5 lost: the first backup's window ends there
    run = _list(tmp_path, root)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert machine_values(text) == [], text
    first, second = text.split("20261201T030000F")
    assert "started 2026-11-30 03:00:00 UTC (" in first and " ago), took 2 min" in first
    assert "size 40.0 MiB, stored 5.0 MiB" in first
    assert "WAL 000000010000000000000002 .. 000000010000000000000003" in first
    assert "recovery window 2026-11-30 03:02:00 UTC to " in first
    assert "ended by a WAL gap at 000000010000000000000005" in first
    assert "to the newest archived WAL" in second
    rows = json.loads(_list(tmp_path, root, "--json").stdout)
    window = rows[0]["recovery_window"]
    assert window["stopped_by"] == "000000010000000000000005"
    assert window["end_segment"] == "000000010000000000000004"
    assert rows[1]["recovery_window"]["end_segment"] == "000000010000000000000009"
    assert rows[1]["recovery_window"]["stopped_by"] is None
    for key in ("start_time", "stop_time", "duration_s", "age_s", "raw_size", "stored_size",
                "start_wal", "stop_wal", "start_lsn", "stop_lsn"):  # fmt: skip
        assert rows[0][key] is not None, key
    assert rows[0]["age_s"] > 86400 and rows[0]["duration_s"] == 120
    shown = _list(tmp_path, root, "20261130T030000F", action="show")
    assert shown.returncode == 0 and machine_values(shown.stdout) == [], shown.stdout
    assert "raw_size           40.0 MiB" in shown.stdout
    assert "start_time         2026-11-30 03:00:00 UTC" in shown.stdout


def test_a_backup_without_wal_after_it_says_so(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _walled(root, [2, 3, 6])
    second = _list(tmp_path, root).stdout.split("20261201T030000F")[1]
    assert "only the backup's own consistency point, no WAL archived after it yet" in second


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
