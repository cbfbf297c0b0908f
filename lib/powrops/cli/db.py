"""``powrops db start | stop | status | url``: the embedded PostgreSQL cluster."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from powrops.cli.common import Parser, print_json, settings_of
from powrops.errors import ParameterError
from powrops.findings import Severity

if TYPE_CHECKING:
    from powrops.config import Settings
    from powrops.pg.cluster import LocalCluster


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="manage the embedded PostgreSQL cluster").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    db.add_parser("start", help="create (first time) and start the cluster").set_defaults(
        func=cmd_db_start
    )
    db.add_parser("stop", help="stop the cluster").set_defaults(func=cmd_db_stop)
    status = db.add_parser("status", help="is it running, where, which version")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(func=cmd_db_status)
    url = db.add_parser("url", help="print the database URL (password hidden unless asked)")
    url.add_argument("--with-password", action="store_true", help="show the password too")
    url.set_defaults(func=cmd_db_url)


def _cluster(args: argparse.Namespace) -> tuple[Settings, LocalCluster]:
    from powrops.db import embedded_cluster

    loaded = settings_of(args)
    if loaded.database.url is not None:
        raise ParameterError(
            "database.url is configured: `powrops db` manages only the embedded cluster; "
            "unset database.url (or POWROPS_DATABASE_URL) to use it"
        )
    return loaded, embedded_cluster(loaded)


def cmd_db_start(args: argparse.Namespace) -> Severity:
    from powrops.db import target

    loaded, cluster = _cluster(args)
    created = not cluster.exists()
    where = target(loaded, create=True)
    verb = "created and started" if created else "running"
    print(f"embedded PostgreSQL {cluster.binaries.version} {verb}: {where.display}")
    print(f"  data directory {cluster.data_dir} (OS user {cluster.os_user.name})")
    print(f"  password in {cluster.password_file}")
    return Severity.OK


def cmd_db_stop(args: argparse.Namespace) -> Severity:
    _, cluster = _cluster(args)
    print("stopped" if cluster.stop() else "not running")
    return Severity.OK


def cmd_db_status(args: argparse.Namespace) -> Severity:
    _, cluster = _cluster(args)
    status = cluster.status()
    if args.json:
        print_json(status)
    else:
        from powrops.format import human_value

        for key, value in status.items():
            print(f"{key:10} {human_value(key, value)}")
    return Severity.OK if status["running"] else Severity.CRITICAL


def cmd_db_url(args: argparse.Namespace) -> Severity:
    from powrops.db import target

    where = target(settings_of(args))
    print(where.libpq_url if args.with_password else where.display)
    return Severity.OK
