"""The stop on a recovery's way out: a server on its way is waited for, one that never will
write its pid file is not (real processes; the cluster that would be stopped is a fake)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from powrops.pg.cluster import launching
from powrops.restore.recovery import LAUNCH_GRACE, _Recovery


class _Cluster:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop(self, *, mode: str, timeout: float) -> None:
        self.stopped.append(mode)


def _recovery(data_dir: Path) -> tuple[_Recovery, _Cluster]:
    cluster = _Cluster()
    restored: Any = SimpleNamespace(data_dir=data_dir)
    return _Recovery(restored, cluster, timeout=60, say=print), cluster  # type: ignore[arg-type]


@contextlib.contextmanager
def _naming(data_dir: Path, script: str) -> Iterator[None]:
    """A shell running ``script`` whose command line names ``data_dir``, as pg_ctl's and the
    server's do; killed with what it started on the way out."""
    proc = subprocess.Popen(["sh", "-c", script, "sh", str(data_dir)], start_new_session=True)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_process_naming_the_data_directory_is_a_launch_under_way(tmp_path: Path) -> None:
    data = tmp_path / "restored"
    assert not launching(data)
    with _naming(data, "sleep 30; :"):
        assert launching(data)
    assert not launching(data)


def test_this_process_and_the_shell_that_started_it_are_not_a_launch(tmp_path: Path) -> None:
    data = tmp_path / "restored"
    probe = f"from powrops.pg.cluster import launching; print(launching({str(data)!r}))"
    out = subprocess.run(
        ["sh", "-c", '"$0" -c "$1" "$2"; true', sys.executable, probe, str(data)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "False", out


def test_nothing_on_its_way_is_not_waited_for(tmp_path: Path) -> None:
    recovery, cluster = _recovery(tmp_path / "restored")
    began = time.monotonic()
    recovery._stop()
    assert time.monotonic() - began < 1.0
    assert cluster.stopped == [] and recovery.down


def test_a_server_still_writing_its_pid_file_is_waited_for_and_stopped(tmp_path: Path) -> None:
    data = tmp_path / "restored"
    data.mkdir()
    # writes its own pid as a postmaster does, a moment after it started
    with _naming(data, 'sleep 0.5; echo $$ > "$1/postmaster.pid"; sleep 30'):
        recovery, cluster = _recovery(data)
        began = time.monotonic()
        recovery._stop()
        assert 0.4 < time.monotonic() - began < LAUNCH_GRACE
        assert cluster.stopped == ["fast"] and recovery.down
