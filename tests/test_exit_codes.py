"""The exit-code contract under failure: a crash is UNKNOWN (3), never WARNING (1).

Crashes are planted in-process (a function of the command replaced by one that raises), so
these tests need no server. ``wal fetch`` keeps PostgreSQL's contract instead: 128 on any
error, since an exit of 1-125 would end recovery early.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from powrops import alerts, db, verify
from powrops.cli.main import main
from powrops.reports import runner


class Planted(RuntimeError):
    """The planted defect."""


def _crash(*args: object, **kwargs: object) -> None:
    raise Planted("planted crash")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "powrops.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    monkeypatch.setenv("POWROPS_CONFIG", str(config))
    return tmp_path


def _crash_log(site: Path) -> str:
    """The one crash log, kept where only its owner reads it (tracebacks name hosts, paths)."""
    logs = sorted((site / "state" / "log").glob("powrops-crash-*.log"))
    assert len(logs) == 1, logs
    modes = [oct(p.stat().st_mode & 0o777) for p in (site / "state", logs[0].parent, logs[0])]
    assert modes == ["0o700", "0o700", "0o600"]
    return logs[0].read_text()


@pytest.mark.parametrize(
    ("argv", "target", "name"),
    [
        (["alerts"], alerts, "evaluate"),
        (["verify"], verify, "verify"),
        (["report", "run", "readiness_report"], runner, "run_report"),
    ],
)
def test_a_crash_is_unknown_with_one_line_and_a_log(
    argv: list[str],
    target: object,
    name: str,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(target, name, _crash)
    here = db.Identity("127.0.0.1", 5432, "powr", "18.1", None, embedded=False)
    monkeypatch.setattr(db, "target", lambda settings: None)  # no server needed to get there
    monkeypatch.setattr(db, "identity", lambda settings: here)
    assert main(argv) == 3
    err = capsys.readouterr().err
    crash = [line for line in err.splitlines() if "internal error" in line]
    assert len(crash) == 1 and "internal error: Planted: planted crash" in crash[0]
    assert "Traceback" not in err
    log = _crash_log(site)
    assert "Traceback" in log and "planted crash" in log and "_crash" in log


def test_verbose_prints_the_traceback(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(alerts, "evaluate", _crash)
    assert main(["-v", "alerts"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "Planted: planted crash" in err


def test_wal_fetch_answers_128_on_any_failure(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from powrops.backup.wal import archive as walarchive

    spec = site / "archive.json"
    spec.write_text(json.dumps({"url": (site / "repo").as_uri()}))
    monkeypatch.setattr(walarchive, "fetch", _crash)
    dest = str(site / "RECOVERYXLOG")
    assert main(["wal", "fetch", "--spec", str(spec), "000000010000000000000001", dest]) == 128
    from powrops.__main__ import main as entry

    argv = ["wal", "fetch", "--spec", str(spec), "000000010000000000000001", dest]
    assert entry(argv) == 128
    assert "Traceback" not in capsys.readouterr().err


def test_wal_push_fails_non_zero_without_a_traceback(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from powrops.__main__ import main as entry
    from powrops.backup.wal import archive as walarchive

    spec = site / "archive.json"
    spec.write_text(json.dumps({"url": (site / "repo").as_uri()}))
    monkeypatch.setattr(walarchive, "push", _crash)
    assert entry(["wal", "push", "--spec", str(spec), str(spec)]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(site: Path) -> None:
    run = subprocess.run(
        f"{sys.executable} -m powrops config show --json | head -c 20",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.stdout.startswith("{")
    assert run.stderr == "", run.stderr
    with_status = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{sys.executable} -m powrops config show | true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert with_status.returncode == 0 and with_status.stderr == ""


def test_the_command_leaves_quickly_but_keeps_its_output_and_exit_handlers(
    tmp_path: Path,
) -> None:
    """``run`` ends the process without the interpreter's teardown: the exit code, buffered
    output and ``atexit`` handlers are kept; with another thread running, the ordinary exit
    waits for it."""
    marker, late = tmp_path / "atexit", tmp_path / "thread"
    probe = (
        "import atexit, sys, threading, time\n"
        "from powrops.__main__ import leave\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        "if sys.argv[1] == 'thread':\n"
        f"    threading.Thread(target=lambda: (time.sleep(0.3), open({str(late)!r}, 'w')"
        ".write('done'))).start()\n"
        "leave(2)\n"
    )
    for mode in ("alone", "thread"):
        done = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.returncode == 2 and done.stdout == "buffered, no newline", done.stderr
        assert marker.read_text() == "ran"
        marker.unlink()
    assert late.read_text() == "done"
    version = subprocess.run([sys.executable, "-m", "powrops", "--version"], capture_output=True,
                             text=True, check=False)  # fmt: skip
    assert version.returncode == 0 and version.stdout.startswith("powrops ")
