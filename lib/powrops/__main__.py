"""Entry point of the ``powrops`` command (and ``python -m powrops``).

``wal push``, ``wal fetch`` and ``wal warm`` with ``--spec`` run once per WAL file or restore,
started by the server or a restore, so they are dispatched here before the full command-line
parser (argparse) is even imported.

The command ends through ``run``, which leaves without tearing the interpreter down.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["wal"] and "--spec" in arguments:
        from powrops.backup.wal.entry import run_fast

        code = run_fast(arguments)
        if code is not None:
            return code
    try:
        from powrops.cli import main as full_main

        return full_main(arguments)
    except (KeyboardInterrupt, RuntimeError) as exc:  # before the command set its handlers
        # Python wraps an interrupt in a class body's __set_name__ (a module loading) in a
        # RuntimeError; anything else is raised on
        if not isinstance(exc, KeyboardInterrupt) and not isinstance(
            exc.__cause__, KeyboardInterrupt
        ):
            raise
        print("powrops: interrupted by SIGINT", file=sys.stderr)
        return 3


def run() -> NoReturn:
    """The ``powrops`` command: ``main``, then ``leave`` with its exit code."""
    leave(main())


def leave(code: int) -> NoReturn:
    """End the process without tearing every module down: what ``atexit`` holds still runs
    (log handlers, finalizers, coverage) and the standard streams are flushed, then the
    process exits. The teardown is a noticeable share of a short command (0.05-0.1 s of a
    0.3 s ``verify LABEL`` on a small VM). While another thread runs, the ordinary exit waits
    for it."""
    if threading.active_count() > 1:
        sys.exit(code)
    try:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started without one (``>&-``)
                stream.flush()
    except (OSError, ValueError):  # a reader gone, a disk full, a stream closed: nothing to keep
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
