"""``powrops db start | stop | status | url | configure-archiving``: the embedded PostgreSQL
cluster. ``start``, ``stop`` and ``configure-archiving`` are the commands that change it
(with ``powrops demo``); every other command only finds it."""

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
    db.add_parser(
        "configure-archiving",
        help="write the archive spec and archive_command from this configuration "
        "(WAL then goes to its primary repository)",
    ).set_defaults(func=cmd_db_configure_archiving)
    status = db.add_parser("status", help="is it running, where, which version")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(func=cmd_db_status)
    url = db.add_parser("url", help="print the database URL (password hidden unless asked)")
    url.add_argument("--with-password", action="store_true", help="show the password too")
    url.set_defaults(func=cmd_db_url)


def _cluster(args: argparse.Namespace) -> tuple[Settings, LocalCluster]:
    from powrops.pg.embedded import embedded_cluster

    loaded = settings_of(args)
    if loaded.database.url is not None:
        raise ParameterError(
            "database.url is configured: `powrops db` manages only the embedded cluster; "
            "unset database.url (or POWROPS_DATABASE_URL) to use it"
        )
    return loaded, embedded_cluster(loaded)


def cmd_db_start(args: argparse.Namespace) -> Severity:
    from powrops.db import target
    from powrops.pg import embedded

    loaded, _ = _cluster(args)
    cluster, created, archiving = embedded.start(loaded)
    verb = "created and started" if created else "running"
    print(f"embedded PostgreSQL {cluster.binaries.version} {verb}: {target(loaded).display}")
    print(f"  data directory {cluster.data_dir} (OS user {cluster.os_user.name})")
    print(f"  password in {cluster.password_file}")
    for line in archiving.describe():
        print(f"  {line}")
    said = embedded.set_job_passwords(loaded)
    if said is not None:
        print(f"  job roles' passwords in {said.passfile} ({', '.join(said.roles) or 'none yet'})")
    if said is not None and said.missing:
        print(
            f"  job roles not in the database yet: {', '.join(said.missing)}; "
            "`powrops migrate latest` adds them, then `powrops db start` again gives them "
            "their passwords"
        )
    return Severity.OK


def cmd_db_stop(args: argparse.Namespace) -> Severity:
    from powrops.pg import embedded

    loaded, _ = _cluster(args)
    print("stopped" if embedded.stop(loaded) else "not running")
    return Severity.OK


def cmd_db_configure_archiving(args: argparse.Namespace) -> Severity:
    from powrops.pg import embedded

    loaded, cluster = _cluster(args)
    archiving = embedded.configure_archiving(loaded, cluster)
    for line in archiving.describe():
        print(line)
    if not cluster.is_running():
        print("the cluster is stopped: this applies when `powrops db start` starts it")
    elif not archiving.reloaded:
        print("archive_command was already this: the server reads the spec at its next segment")
    return Severity.OK if archiving.command else Severity.WARNING


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
