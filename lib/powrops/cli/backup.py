"""``powrops backup full | incremental | list | show | expire | copy``: base backups."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from powrops.cli.common import Parser, print_json, settings_of
from powrops.findings import Severity, worst


def register(sub: Any) -> None:
    backup = sub.add_parser("backup", help="base backups: take, list, show, expire, copy")
    actions = backup.add_subparsers(dest="action", required=True, parser_class=Parser)
    for kind, article in (("full", "a"), ("incremental", "an")):
        take = actions.add_parser(
            kind, help=f"take {article} {kind} backup (the strategy's procedure)"
        )
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


#: Severity of a backup procedure step's status; the worst step is the command's outcome.
STEP_SEVERITY = {
    "ok": Severity.OK,
    "skipped": Severity.OK,
    "warning": Severity.WARNING,
    "failed": Severity.CRITICAL,
}


def cmd_backup_take(args: argparse.Namespace) -> Severity:
    from powrops.backup.run import take_backup

    echo = None if args.json else print
    outcome = take_backup(settings_of(args), args.kind, echo=echo)
    record = outcome.record
    if args.json:
        print_json({**record.to_dict(), "expired": outcome.expired, "copied": outcome.copied})
    else:
        print(
            f"backup {record.label} ({record.kind}) OK: {record.raw_size / 2**20:.1f} MiB -> "
            f"{record.stored_size / 2**20:.1f} MiB stored, {record.duration_s:.1f} s"
        )
    return worst(STEP_SEVERITY.get(step.status, Severity.OK) for step in outcome.steps)


def cmd_backup_list(args: argparse.Namespace) -> Severity:
    from powrops.backup.manage import backup_rows

    rows = backup_rows(settings_of(args))
    damaged = [r for r in rows if r["status"] == "damaged"]
    outcome = Severity.CRITICAL if damaged else Severity.OK
    if args.json:
        print_json(rows)
        return outcome
    if not rows:
        print("no backups")
    for r in damaged:
        print(f"powrops: error: {r['error']}", file=sys.stderr)
    for r in rows:
        chain = " <- ".join([r["label"], *r["chain"]]) if r["chain"] else "-"
        size = f"{(r.get('stored_size') or 0) / 2**20:9.1f} MiB"
        print(
            f"{r['label']}  {r['kind']:11} {r['status']:10} {size}  "
            f"{','.join(r['where']):17} chain {chain}"
        )
    return outcome


def cmd_backup_show(args: argparse.Namespace) -> Severity:
    from powrops.backup import repos
    from powrops.backup.catalog import Catalog

    record = Catalog(repos.primary(settings_of(args))).get(args.label)
    data = record.to_dict()
    if args.json:
        print_json(data)
        return Severity.OK
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
    return Severity.OK


def cmd_backup_expire(args: argparse.Namespace) -> Severity:
    from powrops.backup.manage import expire

    plan = expire(settings_of(args), dry_run=args.dry_run)
    if args.json:
        print_json({"dry_run": args.dry_run, **plan.to_dict()})
    else:
        print(("would do (dry run):\n" if args.dry_run else "") + plan.describe())
    return Severity.OK


def cmd_backup_copy(args: argparse.Namespace) -> Severity:
    from powrops.backup.manage import copy_to_secondary

    print(copy_to_secondary(settings_of(args)).summary())
    return Severity.OK
