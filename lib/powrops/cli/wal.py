"""``powrops wal push | fetch | warm``: PostgreSQL's archive_command and restore_command.

With ``--spec`` these are answered before argparse is imported (``powrops.__main__``); this
module is the full parser's path, used without a spec or when the fast path declines.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powrops.cli.common import Parser, settings_of
from powrops.errors import EXIT_WAL_FETCH_ERROR, ConfigError

if TYPE_CHECKING:
    from powrops.config import Settings
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


def _wal_repository(args: argparse.Namespace, push: bool = False) -> Repository:
    if args.spec:
        from powrops.storage.spec import open_from_spec

        return open_from_spec(args.spec)
    from powrops.backup.repos import primary

    settings = settings_of(args)
    if push:
        _refuse_inside_data_directory(settings)
    return primary(settings)


def _refuse_inside_data_directory(settings: Settings) -> None:
    """A ``file://`` WAL archive inside a PostgreSQL data directory is refused: it is what
    ``archive_command = 'powrops wal push %p'`` without ``--config`` gets on a server of one's
    own (the server runs it in its data directory, where no configuration is found, so the
    defaults put the archive in ``.powrops/backups`` there), and every base backup would then
    carry the whole archive. PostgreSQL keeps the segment and retries."""
    from powrops.storage.local import path_from_url
    from powrops.storage.spec import primary_url

    url = primary_url(settings)
    if not url.startswith("file://"):
        return
    archive = Path(path_from_url(url)).absolute()
    data = next((d for d in (archive, *archive.parents) if (d / "PG_VERSION").is_file()), None)
    if data is None:
        return
    found = (
        f"the configuration {settings.source}"
        if settings.config_file
        else "no configuration found: no --config, $POWROPS_CONFIG or powrops.toml"
    )
    raise ConfigError(
        f"the WAL archive {url} would be inside the PostgreSQL data directory {data} ({found}): "
        "name the configuration in archive_command: "
        "'powrops --config /etc/powrops/powrops.toml wal push %p'"
    )


def cmd_wal_push(args: argparse.Namespace) -> int:
    from powrops.backup.wal.entry import push

    return push(lambda: _wal_repository(args, push=True), args.path, args.verbose)


def cmd_wal_fetch(args: argparse.Namespace) -> int:
    from powrops.backup.wal.entry import fetch

    return fetch(lambda: _wal_repository(args), args.name, args.dest, args.spool)


def cmd_wal_warm(args: argparse.Namespace) -> int:
    from powrops.backup.wal.entry import warm

    return warm(lambda: _wal_repository(args), args.spool, args.first, args.last)
