"""``powrops wal push | fetch``: PostgreSQL's archive_command and restore_command.

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


def _wal_repository(args: argparse.Namespace) -> Repository:
    if args.spec:
        from powrops.storage.spec import open_from_spec

        return open_from_spec(args.spec)
    from powrops.backup.repos import primary

    return primary(settings_of(args))


def cmd_wal_push(args: argparse.Namespace) -> int:
    from powrops.backup.walcli import push

    return push(lambda: _wal_repository(args), args.path, args.verbose)


def cmd_wal_fetch(args: argparse.Namespace) -> int:
    from powrops.backup.walcli import fetch

    return fetch(lambda: _wal_repository(args), args.name, args.dest, args.spool)
