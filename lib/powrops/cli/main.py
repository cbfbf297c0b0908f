"""The ``powrops`` command.

Exit codes follow the monitoring convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the
command could not judge: bad arguments or config, an unreachable database, a failed run).
Imports are deferred to the subcommand that needs them, so that short commands start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from powrops import __version__
from powrops.errors import EXIT_UNKNOWN, ParameterError, PowropsError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse with the monitoring exit code for bad arguments."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"powrops: error: {message}\n")


def _settings(args: argparse.Namespace) -> Any:
    from powrops.config import load_settings

    return load_settings(getattr(args, "config", None))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


# --- config --------------------------------------------------------------------------------


def cmd_config_show(args: argparse.Namespace) -> int:
    from powrops.config import redacted_dict, to_toml

    settings = _settings(args)
    data = redacted_dict(settings)
    if args.json:
        _print_json(data)
    else:
        print(f"# effective configuration ({settings.source}); secrets are redacted")
        print(to_toml(data), end="")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from powrops.config import load_settings

    settings = load_settings(args.file or getattr(args, "config", None))
    print(f"configuration OK ({settings.source})")
    return 0


# --- db ------------------------------------------------------------------------------------


def _cluster(args: argparse.Namespace) -> Any:
    from powrops.db import embedded_cluster

    settings = _settings(args)
    if settings.database.url is not None:
        raise ParameterError(
            "database.url is configured: `powrops db` manages only the embedded cluster; "
            "unset database.url (or POWROPS_DATABASE_URL) to use it"
        )
    return settings, embedded_cluster(settings)


def cmd_db_start(args: argparse.Namespace) -> int:
    from powrops.db import target

    settings, cluster = _cluster(args)
    created = not cluster.exists()
    target(settings)
    verb = "created and started" if created else "running"
    print(f"embedded PostgreSQL {cluster.binaries.version} {verb}: {target(settings).display}")
    print(f"  data directory {cluster.data_dir} (OS user {cluster.os_user.name})")
    print(f"  password in {cluster.password_file}")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    _, cluster = _cluster(args)
    print("stopped" if cluster.stop() else "not running")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    _, cluster = _cluster(args)
    status = cluster.status()
    if args.json:
        _print_json(status)
    else:
        for key, value in status.items():
            print(f"{key:10} {value}")
    return 0 if status["running"] else 2


def cmd_db_url(args: argparse.Namespace) -> int:
    from powrops.db import target

    tgt = target(_settings(args))
    print(tgt.libpq_url if args.with_password else tgt.display)
    return 0


# --- migrate -------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from powrops import migrate
    from powrops.db import engine

    if args.action == "production":
        from powrops.migrate.production import cli_main

        return cli_main(args, _settings(args))
    eng = engine(_settings(args))
    if args.action == "latest":
        before = migrate.current(eng)
        migrate.upgrade(eng, "head")
        after = migrate.current(eng)
        print(
            f"migrated {before or 'base'} -> {after}"
            if before != after
            else f"already at head ({after})"
        )
    elif args.action == "rollback":
        before = migrate.current(eng)
        if before is None:
            print("nothing to roll back: no migration is applied")
            return 0
        migrate.downgrade(eng, "-1")
        print(f"rolled back {before} -> {migrate.current(eng) or 'base'}")
    else:
        rows = migrate.status(eng)
        if args.json:
            _print_json([row.to_dict() for row in rows])
        else:
            for row in rows:
                mark = "applied" if row.applied else "pending"
                tx = "transaction" if row.transaction else "no transaction"
                print(
                    f"{row.revision}  {row.timestamp:%Y-%m-%d %H:%M:%S}  {mark:8} {tx:15} "
                    f"{row.slug}"
                )
        return 0 if all(r.applied for r in rows) else 1
    return 0


# --- seed ----------------------------------------------------------------------------------


def cmd_seed(args: argparse.Namespace) -> int:
    from powrops.db import engine
    from powrops.demo import data as demo_data

    eng = engine(_settings(args))
    dataset = demo_data.generate(
        users=args.users, weeks=args.weeks, seed=args.seed, defects=args.defects
    )
    report = demo_data.load(eng, dataset, replace=args.replace)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.describe())
    return 0


# --- report --------------------------------------------------------------------------------


def _parameters(pairs: Sequence[Sequence[str]] | None) -> dict[str, str]:
    return {key: value for key, value in (pairs or [])}


def cmd_report_list(args: argparse.Namespace) -> int:
    from powrops.reports.runner import discover, project_root

    specs = discover(project_root())
    for spec in specs.values():
        params = ", ".join(p.describe() for p in spec.parameters.values()) or "-"
        print(f"{spec.name:28} {spec.kind:9} {spec.description}  [{params}]")
    return 0


def cmd_report_run(args: argparse.Namespace) -> int:
    from powrops.db import secrets, target
    from powrops.reports.archive import ReportArchive
    from powrops.reports.runner import run_report

    settings = _settings(args)
    target(settings)  # fail fast, before a kernel starts, when the database is unreachable
    result = run_report(
        args.name,
        _parameters(args.parameter),
        reports_dir=settings.reports_dir,
        timeout=settings.reports.timeout.timedelta.total_seconds(),
        secrets=secrets(settings),
        remote=ReportArchive.from_settings(settings),
    )
    print(f"{args.name}: {result.status.name} -> {result.path / 'report.html'}")
    if result.result.get("error"):
        print(f"  error: {result.result['error']}", file=sys.stderr)
    return int(result.exit_code)


def cmd_report_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from powrops.reports.archive import ReportArchive
    from powrops.reports.index import build_index

    settings = _settings(args)
    if args.from_archive:
        archive = ReportArchive.from_settings(settings)
        index, result = archive.rebuild_from_archive(Path(args.to) if args.to else None)
        print(f"{len(result.downloaded)} runs downloaded from {archive.url}", file=sys.stderr)
        print(index)
        return 0
    print(build_index(Path(args.to) if args.to else settings.reports_dir))
    return 0


def cmd_report_sync(args: argparse.Namespace) -> int:
    from powrops.reports.archive import ReportArchive

    result = ReportArchive.from_settings(_settings(args)).sync(dry_run=args.dry_run)
    if args.json:
        _print_json(result.to_dict())
    else:
        for run in result.uploaded:
            print(f"upload  {run}")
        for run in result.expired_remote:
            print(f"expire  {run} (archive)")
        for run in result.expired_local:
            print(f"expire  {run} (local)")
        print(result.summary())
    return 0


# --- backup --------------------------------------------------------------------------------


def cmd_backup_take(args: argparse.Namespace) -> int:
    from powrops.backup.run import take_backup

    echo = None if args.json else print
    outcome = take_backup(_settings(args), args.kind, echo=echo)
    record = outcome.record
    if args.json:
        _print_json({**record.to_dict(), "expired": outcome.expired, "copied": outcome.copied})
    else:
        print(
            f"backup {record.label} ({record.kind}) OK: {record.raw_size / 2**20:.1f} MiB -> "
            f"{record.stored_size / 2**20:.1f} MiB stored, {record.duration_s:.1f} s"
        )
    return max((_STEP_EXIT.get(s.status, 0) for s in outcome.steps), default=0)


_STEP_EXIT = {"ok": 0, "skipped": 0, "warning": 1, "failed": 2}


def cmd_backup_list(args: argparse.Namespace) -> int:
    from powrops.backup.manage import backup_rows

    rows = backup_rows(_settings(args))
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no backups")
    for r in rows:
        chain = " <- ".join([r["label"], *r["chain"]]) if r["chain"] else "-"
        size = f"{(r.get('stored_size') or 0) / 2**20:9.1f} MiB"
        print(
            f"{r['label']}  {r['kind']:11} {r['status']:10} {size}  "
            f"{','.join(r['where']):17} chain {chain}"
        )
    return 0


def cmd_backup_show(args: argparse.Namespace) -> int:
    from powrops.backup import repos
    from powrops.backup.catalog import Catalog

    record = Catalog(repos.primary(_settings(args))).get(args.label)
    data = record.to_dict()
    if args.json:
        _print_json(data)
        return 0
    for key, value in data.items():
        if key in ("files", "steps"):
            continue
        print(f"{key:18} {value}")
    for stored in record.files:
        print(
            f"file {stored.name:14} {stored.size:>12} B raw  {stored.stored_size:>12} B stored  "
            f"sha256 {stored.sha256}"
        )
    for step in record.steps:
        print(
            f"step {step['phase']:6} {step['name']:18} {step['status']:8} "
            f"{step['seconds']:7.2f}s  {step['message']}"
        )
    return 0


def cmd_backup_expire(args: argparse.Namespace) -> int:
    from powrops.backup.manage import expire

    plan = expire(_settings(args), dry_run=args.dry_run)
    if args.json:
        _print_json({"dry_run": args.dry_run, **plan.to_dict()})
    else:
        print(("would do (dry run):\n" if args.dry_run else "") + plan.describe())
    return 0


def cmd_backup_copy(args: argparse.Namespace) -> int:
    from powrops.backup.manage import copy_to_secondary

    print(copy_to_secondary(_settings(args)).summary())
    return 0


# --- wal -----------------------------------------------------------------------------------


def _wal_repository(args: argparse.Namespace) -> Any:
    if args.spec:
        from powrops.backup.archive_spec import open_from_spec

        return open_from_spec(args.spec)
    from powrops.backup.repos import primary

    return primary(_settings(args))


def cmd_wal_push(args: argparse.Namespace) -> int:
    from powrops.backup.walcli import push

    return push(lambda: _wal_repository(args), args.path, args.verbose)


def cmd_wal_fetch(args: argparse.Namespace) -> int:
    from powrops.backup.walcli import fetch

    return fetch(lambda: _wal_repository(args), args.name, args.dest)


# --- demo ----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from powrops.demo.run import run_demo

    return run_demo(_settings(args), users=args.users, weeks=args.weeks)


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="powrops", description="Data-management toolkit for POWR's PostgreSQL.")
    parser.add_argument("--version", action="version", version=f"powrops {__version__}")
    parser.add_argument(
        "-c", "--config", help="config file (default $POWROPS_CONFIG, ./powrops.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    config = sub.add_parser("config", help="show or check the configuration").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    show = config.add_parser("show", help="print the effective configuration, secrets redacted")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_config_show)
    check = config.add_parser("check", help="validate a config file (exit 3 when invalid)")
    check.add_argument("file", nargs="?")
    check.set_defaults(func=cmd_config_check)

    db = sub.add_parser("db", help="manage the embedded PostgreSQL cluster").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    db.add_parser("start", help="create (first time) and start the cluster").set_defaults(
        func=cmd_db_start
    )
    db.add_parser("stop", help="stop the cluster").set_defaults(func=cmd_db_stop)
    status = db.add_parser("status", help="is it running, where, which version")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_db_status)
    url = db.add_parser("url", help="print the database URL (password hidden unless asked)")
    url.add_argument("--with-password", action="store_true")
    url.set_defaults(func=cmd_db_url)

    mig = sub.add_parser("migrate", help="schema migrations (alembic)")
    mig.add_argument("action", choices=["latest", "rollback", "status", "production"])
    mig.add_argument("--json", action="store_true")
    mig.set_defaults(func=cmd_migrate)
    prod = mig.add_argument_group("production (powrops migrate production)")
    prod.add_argument("--yes", action="store_true", help="confirm without a prompt")
    prod.add_argument("--take-backup", action="store_true", help="take and verify a full first")
    prod.add_argument("--max-backup-age", metavar="DURATION", help="default backup.schedule.full")
    prod.add_argument("--max-transaction-age", metavar="DURATION", default="1min")
    prod.add_argument("--lock-timeout", metavar="DURATION", default="5s")
    prod.add_argument("--statement-timeout", metavar="DURATION", help="default database's")

    seed = sub.add_parser("seed", help="load deterministic demo data")
    seed.add_argument("--users", type=int, default=50)
    seed.add_argument("--weeks", type=int, default=12)
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--defects", action="store_true", help="plant known integrity defects")
    seed.add_argument("--replace", action="store_true", help="replace existing POWR data")
    seed.add_argument("--json", action="store_true")
    seed.set_defaults(func=cmd_seed)

    rep = sub.add_parser("report", help="run and archive report notebooks").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    rep.add_parser("list", help="reports and runbooks with their parameters").set_defaults(
        func=cmd_report_list
    )
    run = rep.add_parser("run", help="execute a report into the archive")
    run.add_argument("name")
    run.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"))
    run.set_defaults(func=cmd_report_run)
    index = rep.add_parser("index", help="rebuild reports/index.html")
    index.add_argument(
        "--from-archive", action="store_true", help="download the archive's runs first"
    )
    index.add_argument("--to", metavar="DIR", help="build it in DIR (default: reports.dir)")
    index.set_defaults(func=cmd_report_index)
    sync = rep.add_parser("sync", help="copy runs to reports.archive_url, apply the retention")
    sync.add_argument("--dry-run", action="store_true")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(func=cmd_report_sync)

    _add_backup(sub)
    _add_wal(sub)
    from powrops.cli.registry import register_all

    register_all(sub)

    demo = sub.add_parser("demo", help="set up the embedded default and run every report")
    demo.add_argument("--users", type=int, default=50)
    demo.add_argument("--weeks", type=int, default=26)
    demo.set_defaults(func=cmd_demo)
    return parser


def _add_backup(sub: Any) -> None:
    backup = sub.add_parser("backup", help="base backups: take, list, show, expire, copy")
    actions = backup.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for kind in ("full", "incremental"):
        take = actions.add_parser(kind, help=f"take a {kind} backup (the strategy's procedure)")
        take.add_argument("--json", action="store_true")
        take.set_defaults(func=cmd_backup_take, kind=kind)
    listing = actions.add_parser("list", help="every backup with its chain, size and location")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_backup_list)
    show = actions.add_parser("show", help="one backup's metadata, files and steps")
    show.add_argument("label")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_backup_show)
    expire = actions.add_parser(
        "expire", help="apply backup.retention (never breaks restorability)"
    )
    expire.add_argument("--dry-run", action="store_true")
    expire.add_argument("--json", action="store_true")
    expire.set_defaults(func=cmd_backup_expire)
    actions.add_parser("copy", help="copy what the secondary lacks").set_defaults(
        func=cmd_backup_copy
    )


def _add_wal(sub: Any) -> None:
    wal = sub.add_parser("wal", help="WAL archiving (archive_command / restore_command)")
    actions = wal.add_subparsers(dest="action", required=True, parser_class=_Parser)
    push = actions.add_parser("push", help="archive one WAL file (archive_command = '... %%p')")
    push.add_argument("path")
    push.add_argument("--spec", help="archive spec written by powrops (fast start)")
    push.add_argument("-v", "--verbose", action="store_true")
    push.set_defaults(func=cmd_wal_push)
    fetch = actions.add_parser(
        "fetch", help="restore one WAL file (restore_command = '... %%f %%p'); exit 1 if absent"
    )
    fetch.add_argument("name")
    fetch.add_argument("dest")
    fetch.add_argument("--spec", help="archive spec written by powrops (fast start)")
    fetch.set_defaults(func=cmd_wal_fetch)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    func: Handler = args.func
    try:
        return func(args)
    except PowropsError as exc:
        print(f"powrops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("powrops: interrupted", file=sys.stderr)
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
