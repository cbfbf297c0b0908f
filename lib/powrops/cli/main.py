"""The ``powrops`` command: the parser wired from every command group, and the exit code.

Each module of this package is one command group with ``register(sub)``; their handlers
import what they need when they run, so that short commands start fast. Exit codes follow
the monitoring convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the command could not
judge: bad arguments or config, an unreachable database, a failed run, or a crash). A crash
never reads as a WARNING: it prints one line, keeps the traceback in a log file (on stderr
with ``-v``) and exits 3. SIGINT and SIGTERM stop a command at once (``Interrupted``): what
holds a resource releases it on the way out, and the command prints one line saying what
was left, then exits 3. Output whose reader has gone (``powrops backup full | head -1``) is
dropped without a word: the command goes on to its end and exits with its own verdict, so a
backup is not failed by the pager that showed its first lines, nor a check read as OK; so is
output to a full disk, and a standard stream the command was started without is /dev/null.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

from powrops import __version__
from powrops.cli.common import Parser
from powrops.cli.registry import group_names, register_all
from powrops.errors import (
    EXIT_UNKNOWN,
    Interrupted,
    PowropsError,
    database_problem,
)
from powrops.findings import Severity, exit_code

Handler = Callable[[argparse.Namespace], "Severity | int"]


def build_parser(arguments: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``arguments`` that name a command group, only that group is
    registered (a command starts without loading the other groups' modules)."""
    parser = Parser(prog="powrops", description="Data-management toolkit for POWR's PostgreSQL.")
    parser.add_argument("--version", action="version", version=f"powrops {__version__}")
    parser.add_argument(
        "-c", "--config", help="config file (default $POWROPS_CONFIG, ./powrops.toml)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        dest="show_traceback",
        action="store_true",
        help="on an unexpected error, print the traceback on stderr too",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    word = _command_word(arguments or [])
    if word is not None and word in group_names():
        register_all(sub, [word])
        if word in sub.choices:
            return parser
        return build_parser()  # the module registers other names: the whole parser
    register_all(sub)
    return parser


def _command_word(arguments: Sequence[str]) -> str | None:
    """The command's name: the first word after the global options, or None when anything
    else comes first (``--help``, ``--version``: the whole parser answers)."""
    words = iter(arguments)
    for word in words:
        if word in ("-c", "--config"):
            next(words, None)
        elif not (word.startswith("--config=") or word in ("-v", "--verbose")):
            return None if word.startswith("-") else word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    _standard_streams()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(arguments).parse_args(arguments)
    func: Handler = args.func
    #: What a crash exits with: 3 (UNKNOWN), or what the command's own contract says
    #: (``wal fetch`` answers 128, since PostgreSQL ends recovery on 1-125).
    crash_code: int = getattr(args, "crash_code", EXIT_UNKNOWN)
    with _Outlived("stdout"), _Outlived("stderr"):
        return _run(func, args, crash_code)


def _run(func: Handler, args: argparse.Namespace, crash_code: int) -> int:
    """The command's exit code: its verdict, or what its error or interrupt says."""
    try:
        with _Interrupts():
            _select_server(args)
            outcome = exit_code(func(args))
            sys.stdout.flush()
        return outcome
    except PowropsError as exc:
        print(f"powrops: error: {exc}", file=sys.stderr)
        return crash_code if crash_code != EXIT_UNKNOWN else exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"powrops: {Interrupted.of(exc)}", file=sys.stderr)
        return crash_code
    except Exception as exc:  # a crash: one line, the traceback kept, never exit 1
        problem = database_problem(exc)
        if problem is not None:  # the database's answer, not a defect: said, no crash log
            print(f"powrops: error: {problem}", file=sys.stderr)
            return crash_code
        where = _keep_traceback(exc, args)
        print(
            f"powrops: internal error: {type(exc).__name__}: {exc} (traceback in {where})",
            file=sys.stderr,
        )
        return crash_code


class _Interrupts:
    """While a command runs, SIGINT and SIGTERM raise ``Interrupted`` in the main thread,
    once: a second signal while the first unwinds is ignored, so that what holds a resource
    (a started server, a directory, a lock) finishes releasing it."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.raised = False
        self.previous: dict[int, Any] = {}

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        if self.raised:
            return
        self.raised = True
        raise Interrupted(signal.Signals(signum).name)

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._raise) for s in self.SIGNALS}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.raised:
            return  # the command is ending: a second Ctrl-C is ignored until it has
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _select_server(args: argparse.Namespace) -> None:
    """Check ``--server`` / ``$POWROPS_SERVER`` against the configuration, then hand the
    choice to everything this command loads or starts (settings, report kernels) through
    ``$POWROPS_SERVER``. An unknown name is a ConfigError listing the configured ones."""
    from powrops.config import SERVER_ENV, choose_server, server_names

    requested = getattr(args, "server", None) or os.environ.get(SERVER_ENV) or None
    if requested is None:
        return
    # the file a command names itself (`config check FILE`), else --config / the usual search
    explicit = getattr(args, "config_file", None) or getattr(args, "config", None)
    choose_server(server_names(explicit), requested)
    os.environ[SERVER_ENV] = requested


class _Outlived:
    """While a command runs, ``sys.stdout`` or ``sys.stderr`` as a stream that outlives what
    it writes to: once that cannot take more (its reader gone, ``| head``; a full disk under a
    job's log), what is written goes to /dev/null instead of raising in the middle of the
    command's work."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stream: TextIO = getattr(sys, name)

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError:
            self._unplug()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self._unplug()

    def _unplug(self) -> None:
        """Point the stream's file at /dev/null: what it still holds is written there."""
        with contextlib.suppress(OSError, ValueError):
            _devnull_on(self.stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def __enter__(self) -> _Outlived:
        setattr(sys, self.name, self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        setattr(sys, self.name, self.stream)


def _standard_streams() -> None:
    """Open /dev/null on each standard file descriptor the process was started without
    (``>&-``): else the next file opened takes its number, and what powrops or a program it
    starts writes to stdout or stderr lands in that file (a stored backup, a lock)."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            _devnull_on(fd)
            stream = open(fd, "r" if fd == 0 else "w", closefd=False)  # noqa: SIM115 (kept)
            setattr(sys, name, stream)


def _devnull_on(fd: int) -> None:
    """/dev/null on file descriptor ``fd``, inherited by the programs powrops starts."""
    null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: ``fd`` when it is free
    if null == fd:
        os.set_inheritable(fd, True)
        return
    os.dup2(null, fd)  # inheritable
    os.close(null)


def _keep_traceback(exc: BaseException, args: argparse.Namespace) -> str:
    """Write the traceback to a log file (and to stderr with ``-v``); the file's path."""
    text = "".join(traceback.format_exception(exc))
    if getattr(args, "show_traceback", False):
        print(text, file=sys.stderr, end="")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"powrops-crash-{stamp}-{os.getpid()}.log"
    for folder in _log_dirs(args):
        try:
            path = folder / name
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(f"powrops {__version__}: {' '.join(sys.argv)}\n{text}")
            return str(path)
        except OSError:
            continue
    return "stderr with -v"


def _log_dirs(args: argparse.Namespace) -> list[Path]:
    """Where a crash log goes: the state directory's ``log/`` (created 0700, as every state
    folder), else the temporary directory."""
    folders = []
    try:
        from powrops.cli.common import settings_of

        folders.append(settings_of(args).make_state_dir("log"))
    except Exception:  # the settings may be what failed
        pass
    folders.append(Path(tempfile.gettempdir()))
    return folders


if __name__ == "__main__":
    sys.exit(main())
