"""``powrops wal push | fetch | warm``: PostgreSQL's archive_command and restore_command.

With ``--spec`` these are answered before argparse is imported (``powrops.__main__``); this
module is the full parser's path, used without a spec or when the fast path declines.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from powrops.cli.common import Parser, settings_of
from powrops.errors import EXIT_WAL_FETCH_ERROR

if TYPE_CHECKING:
    from powrops.storage.base import Repository


def register(sub: Any) -> None:
    wal = sub.add_parser("wal", help="WAL archiving (archive_command / restore_command)")
    actions = wal.add_subparsers(dest="action", required=True, parser_class=Parser)
    push = actions.add_parser("push", help="archive one WAL file (archive_command = '... %%p')")
    push.add_argument("path")
    push.add_argument("--spec", help="archive spec written by powrops (fast start)")
    push.add_argument("-v", "--verbose", action="store_true", help="say what was archived")
    push.set_defaults(func=cmd_wal_push)
    fetch = actions.add_parser(
        "fetch", help="restore one WAL file (restore_command = '... %%f %%p'); exit 1 if absent"
    )
    fetch.add_argument("name")
    fetch.add_argument("dest")
    fetch.add_argument("--spec", help="archive spec written by powrops (fast start)")
    fetch.add_argument(
        "--spool", help="directory the next segments are fetched into ahead (restore)"
    )
    fetch.set_defaults(func=cmd_wal_fetch, crash_code=EXIT_WAL_FETCH_ERROR)
    warm = actions.add_parser(
        "warm",
        help="fill a restore's spool before recovery starts: segment FIRST and the ones after "
        "it, a copy of LAST (where the backup is consistent) and the timeline history files; "
        "exit 1 if FIRST is absent",
    )
    warm.add_argument("first")
    warm.add_argument("last")
    warm.add_argument("--spool", required=True, help="the restore's spool directory")
    warm.add_argument("--spec", help="archive spec written by powrops (fast start)")
    warm.set_defaults(func=cmd_wal_warm, crash_code=EXIT_WAL_FETCH_ERROR)


def _wal_repository(args: argparse.Namespace) -> Repository:
    if args.spec:
        from powrops.storage.spec import open_from_spec

        return open_from_spec(args.spec)
    from powrops.backup.repos import primary

    return primary(settings_of(args))


def cmd_wal_push(args: argparse.Namespace) -> int:
    from powrops.backup.wal.entry import push

    return push(lambda: _wal_repository(args), args.path, args.verbose)


def cmd_wal_fetch(args: argparse.Namespace) -> int:
    from powrops.backup.wal.entry import fetch

    return fetch(lambda: _wal_repository(args), args.name, args.dest, args.spool)


def cmd_wal_warm(args: argparse.Namespace) -> int:
    from powrops.backup.wal.entry import warm

    return warm(lambda: _wal_repository(args), args.spool, args.first, args.last)
