"""``powrops wal push|fetch|warm --spec FILE ...`` without argparse: the archive and restore
command path, which must start fast. Anything it does not recognise is left to the full
command-line parser (``run_fast`` returns None) so that errors read the same."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from powrops.errors import EXIT_UNKNOWN, EXIT_WAL_FETCH_ERROR, Interrupted, PowropsError

if TYPE_CHECKING:
    from powrops.storage.base import Repository

#: Seconds of silence from an object store after which ``wal push`` gives up (no retries: the
#: server runs the archive command again, three times a cycle). A server shutting down waits
#: for its archiver's cycle under way and a last one: six tries, which then stay within
#: pg_ctl's 60 s wait. A live service answers a WAL segment's PUT in far less.
ARCHIVE_SILENCE = 8.0


def _option(rest: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` from ``rest``; its value, or None (also when VALUE is missing)."""
    at = rest.index(flag) if flag in rest else -1
    if at < 0 or at + 1 >= len(rest):
        return None
    value = rest[at + 1]
    del rest[at : at + 2]
    return value


def _parse(argv: list[str]) -> tuple[str, str, list[str], bool, str | None] | None:
    if len(argv) < 3 or argv[0] != "wal" or argv[1] not in ("push", "fetch", "warm"):
        return None
    rest = argv[2:]
    spec = _option(rest, "--spec")
    if spec is None:
        return None
    spool = _option(rest, "--spool") if argv[1] != "push" else None
    verbose = any(r in ("-v", "--verbose") for r in rest)
    rest = [r for r in rest if r not in ("-v", "--verbose")]
    if any(r.startswith("-") for r in rest):
        return None
    wanted = 1 if argv[1] == "push" else 2
    if len(rest) != wanted or (verbose and argv[1] != "push") or (argv[1] == "warm" and not spool):
        return None
    return argv[1], spec, rest, verbose, spool


def push(open_repo: Callable[[], Repository], path: str, verbose: bool = False) -> int:
    """Archive one WAL file (``archive_command``); exit 0 when archived or already there.
    A silent object store fails the command in :data:`ARCHIVE_SILENCE` seconds: PostgreSQL
    retries it, and waits for it when the server shuts down."""
    from powrops.backup.wal.archive import push as push_file

    outcome = push_file(open_repo().failing_fast(ARCHIVE_SILENCE), path)
    if verbose:
        print(f"{path}: {outcome}")
    return 0


def fetch(
    open_repo: Callable[[], Repository], name: str, dest: str, spool: str | None = None
) -> int:
    """Restore one WAL file (``restore_command``): 0 restored, 1 not archived, 128 error.
    With ``spool``, the next segments are fetched ahead into that directory."""
    from pathlib import Path

    from powrops.backup.wal.archive import FETCH_ERROR
    from powrops.backup.wal.archive import fetch as fetch_file

    try:
        return fetch_file(open_repo(), name, dest, Path(spool) if spool else None)
    except Exception as exc:  # any failure, expected or not: never 1-125, which ends recovery
        print(f"powrops: error: wal fetch {name}: {exc}", file=sys.stderr)
        return FETCH_ERROR


def warm(open_repo: Callable[[], Repository], spool: str, first: str, last: str) -> int:
    """Fill a restore's spool before recovery starts: 0 done, 1 ``first`` not archived, 128
    error (what ``fetch`` of ``first`` would answer)."""
    from pathlib import Path

    from powrops.backup.wal.archive import FETCH_ERROR
    from powrops.backup.wal.archive import warm as warm_spool

    try:
        return warm_spool(open_repo(), Path(spool), first, last)
    except Exception as exc:
        print(f"powrops: error: wal warm {first}: {exc}", file=sys.stderr)
        return FETCH_ERROR


def _from_spec(spec: str) -> Callable[[], Repository]:
    def open_repo() -> Repository:
        from powrops.storage.spec import open_from_spec

        return open_from_spec(spec)

    return open_repo


def run_fast(argv: list[str]) -> int | None:
    """The exit code of a recognised ``wal push|fetch --spec`` command, else None."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    action, spec, rest, verbose, spool = parsed
    try:
        if action == "push":
            return push(_from_spec(spec), rest[0], verbose)
        if action == "warm":
            assert spool is not None
            return warm(_from_spec(spec), spool, rest[0], rest[1])
        return fetch(_from_spec(spec), rest[0], rest[1], spool)
    except PowropsError as exc:
        print(f"powrops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C by hand: one line; a restore's fetch stays fatal
        print(f"powrops: {Interrupted.of(exc)}", file=sys.stderr)
        return EXIT_UNKNOWN if action == "push" else EXIT_WAL_FETCH_ERROR
    except Exception as exc:  # wal push: any failure is non-zero, and never a traceback
        print(f"powrops: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
