"""``powrops restore``: a backup chain into a directory, to the end of the archive or a target.

Exit codes: 0 restored, 2 the restore failed (no backup reaches the target, the repository or
a backup could not be read, recovery failed or timed out), 3 it could not start: bad arguments
or configuration, PostgreSQL programs missing, or a target directory that is in use, not empty
or out of the OS user's reach (nothing was written); 3 too when it was interrupted (SIGINT,
SIGTERM), with one line saying what it left: removed while unpacking, kept and stopped during
recovery, running once the restore had finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from powrops.cli.common import settings_of, warn_archive_spec
from powrops.errors import BinariesError, ConfigError, Interrupted, ParameterError, PowropsError
from powrops.findings import Severity


def register(sub: Any) -> None:
    """Add the ``restore`` subcommand to the CLI's subparsers."""
    parser = sub.add_parser(
        "restore",
        help="restore a backup chain into a directory, to the latest WAL or a point in time",
        description=(
            "Combine a backup chain into DIR, fetch WAL through `powrops wal fetch`, and (with "
            "--start) start it on a free port and await recovery and promotion. Archiving is "
            "off on the restored cluster. Without LABEL the newest backup that can reach the "
            "target is used."
        ),
    )
    parser.add_argument("label", nargs="?", help="backup label (default: chosen for the target)")
    parser.add_argument(
        "--to",
        required=True,
        type=Path,
        metavar="DIR",
        help="new or empty directory for the data directory",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target-time", metavar="T", help="ISO-8601 time (no zone: UTC)")
    target.add_argument("--target-lsn", metavar="L", help="WAL location X/Y")
    target.add_argument("--target-xid", metavar="X", help="transaction id")
    target.add_argument("--target-name", metavar="N", help="restore point name")
    target.add_argument(
        "--immediate", action="store_true", help="stop as soon as the backup is consistent"
    )
    parser.add_argument(
        "--start",
        action="store_true",
        help="start the server and await recovery (default: prepare only)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600,
        metavar="S",
        help="seconds to wait for recovery (default 600)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=cmd_restore)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def cmd_restore(args: argparse.Namespace) -> Severity:
    from powrops.restore import RecoveryTarget, restore

    if args.timeout <= 0:
        raise ParameterError("--timeout must be a positive number of seconds")
    target = RecoveryTarget.from_options(
        time=args.target_time,
        lsn=args.target_lsn,
        xid=args.target_xid,
        name=args.target_name,
        immediate=args.immediate,
    )
    settings = settings_of(args)
    warn_archive_spec(settings)
    try:
        restored = restore(
            settings,
            to=args.to,
            label=args.label,
            target=target,
            start=args.start,
            timeout=args.timeout,
            echo=_stderr if args.json else print,
        )
    except (ParameterError, ConfigError, BinariesError):
        raise  # could not start: 3
    except PowropsError as exc:
        print(f"powrops: error: restore failed: {exc}", file=sys.stderr)
        return Severity.CRITICAL
    try:
        if args.json:
            print(json.dumps(restored.to_dict(), indent=2, default=str))
        else:
            _describe(restored, started=args.start)
    except KeyboardInterrupt as exc:
        raise Interrupted.of(exc).leaving(_finished(restored, started=args.start)) from None
    return Severity.OK


def _finished(restored: Any, *, started: bool) -> str:
    """What a restore that had finished leaves when the command is interrupted after it."""
    cluster = restored.cluster
    if not started or cluster is None:
        return f"the restore had finished: {restored.data_dir} is prepared, not started"
    return (
        f"the restore had finished: the restored server runs on 127.0.0.1:{restored.port} "
        f"from {restored.data_dir}; stop it: {cluster.ctl_command('stop')}"
    )


def _describe(restored: Any, *, started: bool) -> None:
    order = ("reconstruct_s", "configure_s", "start_s", "recovery_s", "total_s")
    timings = ", ".join(
        f"{key.removesuffix('_s')} {restored.timings[key]:.1f} s"
        for key in order
        if key in restored.timings
    )
    print(f"restored {restored.label} into {restored.data_dir} ({timings})")
    cluster = restored.cluster
    if not started or cluster is None:
        return
    info = restored.conninfo(restored.database)
    print(
        f"  running on 127.0.0.1:{info['port']}, timeline {restored.timeline}, "
        f"recovered to LSN {restored.recovered_lsn}"
    )
    print(
        f"  connect: psql 'host=127.0.0.1 port={info['port']} user={info['user']} "
        f"dbname={info['dbname']}' (password in {restored.base_dir / 'password'})"
    )
    print(f"  stop:    {cluster.ctl_command('stop')}")
