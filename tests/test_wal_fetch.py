"""``wal fetch`` with a spool: the next segments come ahead, most calls only move a local file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from powrops.backup.wal.archive import (
    FETCH_MISSING,
    FETCH_OK,
    KEEP,
    MISSING,
    fetch,
    following,
    push,
    warm,
)  # fmt: skip
from powrops.backup.wal.names import wal_key
from powrops.restore.prepare import restore_command
from powrops.storage.base import Repository
from powrops.storage.registry import open_repository

FIRST = "000000010000000000000010"


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    repository = open_repository((tmp_path / "repo").as_uri())
    source = tmp_path / "pg_wal"
    source.mkdir()
    for n, name in enumerate([FIRST, *following(FIRST, 5)]):
        path = source / name
        path.write_bytes(bytes([n]) * 4096)
        push(repository, path)
    history = source / "00000002.history"  # a timeline the repository has: 2, not 3
    history.write_text("1\t0/10000000\tno recovery target specified\n")
    push(repository, history)
    return repository


def test_following_crosses_the_xlogid_boundary() -> None:
    assert following("0000000200000001000000FE", 3) == [
        "0000000200000001000000FF", "000000020000000200000000", "000000020000000200000001",
    ]  # fmt: skip
    assert following("00000002.history", 3) == []


def test_a_fetch_spools_the_next_segments_and_the_spool_serves_them(
    repo: Repository, tmp_path: Path
) -> None:
    spool, dest = tmp_path / "spool", tmp_path / "RECOVERYXLOG"
    assert fetch(repo, FIRST, dest, spool, ahead=4) == FETCH_OK
    assert dest.read_bytes() == bytes([0]) * 4096
    assert sorted(p.name for p in spool.iterdir()) == following(FIRST, 4)
    second = following(FIRST, 1)[0]
    repo.delete(wal_key(second))  # served from the spool, not the repository
    assert fetch(repo, second, dest, spool, ahead=4) == FETCH_OK
    assert dest.read_bytes() == bytes([1]) * 4096 and not (spool / second).exists()
    beyond = following(FIRST, 6)[-1]  # the archive ends before it: nothing spooled, exit 1
    assert fetch(repo, beyond, dest, spool, ahead=4) == FETCH_MISSING
    assert not (spool / beyond).exists() and not list(spool.glob(".*"))


def test_the_restore_command_moves_a_spooled_file_without_starting_python(
    repo: Repository, tmp_path: Path
) -> None:
    spool, dest = tmp_path / "spool", tmp_path / "RECOVERYXLOG"
    spec = tmp_path / "archive.json"
    spec.write_text(json.dumps({"url": repo.url, "has_keys": False}))
    fetch(repo, FIRST, dest, spool, ahead=2)
    second, third = following(FIRST, 2)
    spool_only = tmp_path / "nowhere.json"  # a spec that cannot work: only the spool can serve
    command = restore_command(spool_only, spool)

    def run(name: str) -> int:
        shell = command.replace("%f", name).replace("%p", str(dest))
        return subprocess.run(["/bin/sh", "-c", shell], capture_output=True, check=False).returncode

    assert run(second) == 0 and dest.read_bytes() == bytes([1]) * 4096
    assert run(following(FIRST, 4)[-1]) not in (0, 1)  # not spooled: Python, which fails loudly
    assert not (spool / second).exists() and (spool / third).exists()
    real = restore_command(spec, spool).replace("%f", following(FIRST, 4)[-1])
    done = subprocess.run(["/bin/sh", "-c", real.replace("%p", str(dest))], check=False)
    assert done.returncode == 0 and dest.read_bytes() == bytes([4]) * 4096


def test_warm_fills_the_spool_before_recovery_and_the_shell_answers_from_it(
    repo: Repository, tmp_path: Path
) -> None:
    """What recovery asks for first, again at its end, and the timeline probes are answered
    from the shell, with a spec that cannot work: no Python starts for any of them."""
    spool, dest = tmp_path / "spool", tmp_path / "RECOVERYXLOG"
    last = following(FIRST, 1)[0]
    assert warm(repo, spool, FIRST, last, ahead=3) == FETCH_OK
    assert sorted(p.name for p in spool.iterdir() if p.is_file()) == [FIRST, *following(FIRST, 3)]
    assert sorted(p.name for p in (spool / KEEP).iterdir()) == [
        last, "00000002.history", f"00000003.history{MISSING}",
    ]  # fmt: skip
    command = restore_command(tmp_path / "nowhere.json", spool)

    def run(name: str) -> int:
        shell = command.replace("%f", name).replace("%p", str(dest))
        return subprocess.run(["/bin/sh", "-c", shell], capture_output=True, check=False).returncode

    assert run(FIRST) == 0 and dest.read_bytes() == bytes([0]) * 4096
    for _ in range(2):  # the segment where the backup is consistent, asked again at the end
        assert run(last) == 0 and dest.read_bytes() == bytes([1]) * 4096
    assert run("00000002.history") == 0 and dest.read_bytes().startswith(b"1\t0/10000000")
    assert run("00000003.history") == 1  # the timeline a promoted copy takes: not archived
    assert run("00000004.history") not in (0, 1)  # never probed when warmed: Python, which fails
    assert warm(repo, tmp_path / "other", following(FIRST, 9)[-1], last) == FETCH_MISSING
