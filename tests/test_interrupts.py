"""Ctrl-C and SIGTERM at each phase of ``restore``, ``backup`` and ``drill``: a real ``powrops``
process is signalled at a point it shows (a line of its output, a row of
``pg_stat_progress_basebackup``), and must stop at once with exit 3 and one line saying what
it left, no traceback, no false diagnosis, and no server running from what it left.

One site (an embedded cluster archiving through powrops) with a full backup of ~90 MB of
data, enough for the unpacking to last a moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_site import Site
from powrops.pg.cluster import postmaster_pid
from powrops.restore import base_dir_for
from powrops.restore.recovery import LAUNCH_GRACE

pytestmark = [pytest.mark.pg, pytest.mark.slow]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    site = Site.create()
    try:
        assert site.cli("migrate", "latest").returncode == 0
        site.sql("CREATE TABLE lifts AS SELECT g, md5(g::text) AS t FROM generate_series(1, 6e5) g")
        full = site.cli("backup", "full")
        assert full.returncode == 0, full.stdout + full.stderr
        site.sql("INSERT INTO lifts SELECT g, md5(g::text) FROM generate_series(1, 2e5) g")
        site.switch_wal()
        yield site
    finally:
        site.destroy()


def interrupt(site: Site, argv: list[str], ready: str, sig: int = signal.SIGINT) -> tuple[int, str]:
    """Run ``powrops *argv`` in a session of its own; when ``ready`` shows in its output (or,
    ``ready`` starting with "sql:", when that query answers true, or with "path:", when that
    path exists), signal its whole process group as a terminal's Ctrl-C does. Its exit code
    and everything it printed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "powrops.cli", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**base, "POWROPS_CONFIG": str(site.config)},
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    if ready.startswith(("sql:", "path:")):
        deadline = time.monotonic() + 60
        while not (site.sql(ready[4:])[0][0] if ready[0] == "s" else Path(ready[5:]).exists()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.02)
    else:
        for line in proc.stdout:
            lines.append(line)
            if ready in line:
                break
        else:
            pytest.fail(f"{ready!r} never showed:\n{''.join(lines)}")
    os.killpg(proc.pid, sig)
    lines.append(proc.stdout.read())
    return proc.wait(timeout=120), "".join(lines)


def last_line(output: str) -> str:
    """The line the interrupt printed: the last one, which must say so."""
    assert "Traceback" not in output, output
    line = output.strip().splitlines()[-1]
    assert line.startswith("powrops: interrupted by SIG"), output
    return line


def no_server(data: Path) -> None:
    assert postmaster_pid(data) is None
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(data) not in ps, ps


def test_ctrl_c_while_unpacking_removes_both_directories(site: Site) -> None:
    to = site.root / "unpacking"
    code, output = interrupt(site, ["restore", "--to", str(to), "--start"], "reconstruct:")
    assert code == 3, output
    line = last_line(output)
    assert "stopped while preparing" in line and f"{to} removed" in line, line
    assert "cannot fetch WAL" not in output and "restore failed" not in output, output
    assert not to.exists() and not base_dir_for(to).exists()
    no_server(to)


def test_sigterm_during_recovery_stops_the_server_and_names_the_kept_directory(
    site: Site,
) -> None:
    to = site.root / "recovering"
    code, output = interrupt(
        site, ["restore", "--to", str(to), "--start"], "recovery: replaying", signal.SIGTERM
    )
    assert code == 3, output
    line = last_line(output)
    assert "SIGTERM" in line and f"{to} is kept" in line and "pg_ctl start" in line, line
    no_server(to)
    assert (to / "recovery.signal").exists()  # prepared: starting it resumes recovery


def test_ctrl_c_while_a_backup_streams_records_it_failed(site: Site) -> None:
    before = {b["label"] for b in site.backups()}
    code, output = interrupt(
        site, ["backup", "full"], "sql:SELECT count(*) > 0 FROM pg_stat_progress_basebackup"
    )
    assert code == 3, output
    line = last_line(output)
    assert "recorded as failed" in line and "lock" in line, line
    new = [b for b in site.backups() if b["label"] not in before]
    assert [b["status"] for b in new] == ["failed"], new
    assert "pg_basebackup failed" not in output, output


def test_ctrl_c_during_a_drill_removes_its_scratch_cluster(site: Site) -> None:
    began = time.monotonic()
    code, output = interrupt(site, ["drill"], "step 2")
    # no 10 s wait for a pid file that no process is left to write (pg_ctl got the Ctrl-C too)
    assert time.monotonic() - began < LAUNCH_GRACE, output
    assert code == 3, output
    line = last_line(output)
    assert "scratch cluster was stopped" in line and "removed" in line, line
    drills = site.settings.state_dir / "drills"
    assert not drills.exists() or not any(drills.iterdir()), list(drills.iterdir())
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(drills) not in ps, ps


def test_ctrl_c_while_copying_to_the_secondary_says_what_it_left(site: Site) -> None:
    second = site.root / "second"
    site.write_config(
        backup={"storage": {"secondary": {"kind": "file", "url": f"file://{second}"}}}
    )
    try:
        code, output = interrupt(site, ["backup", "copy"], f"path:{second}/wal")
        assert code == 3, output
        line = last_line(output)
        assert f"copy to the secondary file://{second} stopped" in line, line
        assert "lock released" in line and "`powrops backup copy`" in line, line
        again = site.cli("backup", "copy")
        assert again.returncode == 0 and "copied 1 backups" in again.stdout, again.stderr
    finally:
        site.data["backup"]["storage"].pop("secondary")
        site.write_config()


def test_ctrl_c_while_the_command_loads_is_one_line_and_exit_3() -> None:
    """Before the command sets its handlers (modules loading, arguments parsed) nothing is held:
    Ctrl-C then still ends with the one line and exit 3, never a traceback through the entry
    point (Python's own start-up, before any of powrops runs, is out of reach)."""
    exe = str(Path(sys.executable).parent / "powrops")
    codes: list[int] = []
    for _ in range(5):  # sweeps: on a loaded machine one may step over the loading window
        codes += _interrupted_while_loading(exe)
        if 3 in codes:
            break
    assert 3 in codes, codes  # some signal arrived while it loaded


def _interrupted_while_loading(exe: str) -> list[int]:
    """``powrops --version`` sent SIGINT later and later, until it finishes first: the exit
    codes of the runs powrops itself ended (its one line, or its version)."""
    codes = []
    for step in range(1, 200):
        proc = subprocess.Popen([exe, "--version"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        time.sleep(0.004 * step)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
        assert ", in run\n" not in output, output
        if proc.returncode == -signal.SIGINT and not output:
            continue  # ended by the signal before Python set its handler: its own start-up
        if "Traceback" not in output and "Fatal Python error" not in output:  # it ran
            codes.append(proc.returncode)
            if output != "powrops: interrupted by SIGINT\n":  # else it had finished
                assert output.startswith("powrops 0") and proc.returncode != 3, output
                break
    return codes


class _Loading(types.ModuleType):
    """A module whose loading is interrupted inside a class body's ``__set_name__``: Python
    raises the interrupt wrapped in a RuntimeError (``cause``), or another error as is."""

    cause: BaseException = KeyboardInterrupt()

    def __getattr__(self, name: str) -> Any:
        try:
            raise self.cause
        except BaseException as exc:
            raise RuntimeError("Error calling __set_name__ on 'cached_property'") from exc


def test_an_interrupt_python_wraps_while_a_module_loads_is_the_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from powrops import __main__ as entry

    loading = _Loading("powrops.cli")
    monkeypatch.setitem(sys.modules, "powrops.cli", loading)
    assert entry.main(["--version"]) == 3
    assert capsys.readouterr().err == "powrops: interrupted by SIGINT\n"
    loading.cause = ValueError("a defect while loading")  # not an interrupt: raised on
    with pytest.raises(RuntimeError):
        entry.main(["--version"])
