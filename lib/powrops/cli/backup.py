"""``powrops backup full | incremental | list | show | expire | copy``: base backups."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from powrops.cli.common import Parser, print_json, settings_of, warn_archive_spec
from powrops.findings import Severity, worst


def register(sub: Any) -> None:
    backup = sub.add_parser("backup", help="base backups: take, list, show, expire, copy")
    actions = backup.add_subparsers(dest="action", required=True, parser_class=Parser)
    for kind, article in (("full", "a"), ("incremental", "an")):
        take = actions.add_parser(
            kind, help=f"take {article} {kind} backup (the strategy's procedure)"
        )
        take.add_argument("--json", action="store_true", help="print the result as JSON")
        take.set_defaults(func=cmd_backup_take, kind=kind)
    listing = actions.add_parser(
        "list", help="every backup: type, times, sizes, WAL range, recovery window, chain, location"
    )
    listing.add_argument("--json", action="store_true", help="print the result as JSON")
    listing.set_defaults(func=cmd_backup_list)
    show = actions.add_parser("show", help="one backup's metadata, files and steps")
    show.add_argument("label")
    show.add_argument("--json", action="store_true", help="print the result as JSON")
    show.set_defaults(func=cmd_backup_show)
    expire = actions.add_parser(
        "expire", help="apply backup.retention (never breaks restorability)"
    )
    expire.add_argument("--dry-run", action="store_true", help="show what would go, delete nothing")
    expire.add_argument("--json", action="store_true", help="print the result as JSON")
    expire.add_argument(
        "--wait", type=float, default=60.0, metavar="SECONDS",
        help="how long to wait for a verification reading the repository (or a backup holding "
        "its lock) before giving up with exit 3 (default 60)",
    )  # fmt: skip
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
    settings = settings_of(args)
    warn_archive_spec(settings)
    outcome = take_backup(settings, args.kind, echo=echo)
    record = outcome.record
    if args.json:
        print_json({**record.to_dict(), "expired": outcome.expired, "copied": outcome.copied})
    else:
        from powrops.format import human_bytes, human_seconds

        print(
            f"backup {record.label} ({record.kind}) OK: {human_bytes(record.raw_size)} -> "
            f"{human_bytes(record.stored_size)} stored, "
            f"{human_seconds(record.duration_s or 0)}"
        )
    return worst(STEP_SEVERITY.get(step.status, Severity.OK) for step in outcome.steps)


def cmd_backup_list(args: argparse.Namespace) -> Severity:
    from datetime import UTC, datetime

    from powrops.backup.manage import backup_rows
    from powrops.verify.runner import recovery_windows

    settings = settings_of(args)
    now = datetime.now(UTC)
    rows = backup_rows(settings)
    windows = recovery_windows(settings, now)
    for row in rows:
        start = row.get("start_time")
        row["age_s"] = (now - datetime.fromisoformat(start)).total_seconds() if start else None
        window = windows.get(row["label"])
        row["recovery_window"] = window.to_dict() if window else None
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
        print("\n".join(_backup_lines(r)))
    return outcome


def _backup_lines(row: dict[str, Any]) -> list[str]:
    """One backup as ``backup list`` prints it: a heading line, then indented details."""
    from datetime import datetime

    from powrops.format import human_bytes, human_duration, human_time

    where = ", ".join(row.get("where") or [])
    lines = [f"{row['label']}  {row['kind']}  {row['status']}  in {where}"]
    if row["status"] == "damaged":
        return lines
    start = row.get("start_time")
    if start:
        age = human_duration(row["age_s"] or 0)
        took = row.get("duration_s")
        lines.append(
            f"    started {human_time(datetime.fromisoformat(start))} ({age} ago)"
            + (f", took {human_duration(took)}" if took is not None else "")
        )
    if row.get("raw_size"):
        lines.append(
            f"    size {human_bytes(row['raw_size'])}, "
            f"stored {human_bytes(row.get('stored_size') or 0)}"
        )
    elif row.get("stored_size"):
        lines.append(f"    stored {human_bytes(row['stored_size'])} so far")
    if row.get("start_wal"):
        lines.append(f"    WAL {row['start_wal']} .. {row.get('stop_wal') or '?'}")
    if row.get("chain"):
        lines.append(f"    depends on {' <- '.join(row['chain'])}")
    window = row.get("recovery_window")
    if window:
        lines.append(f"    recovery window {_window_text(window)}")
    elif row["status"] == "ok":
        lines.append("    recovery window unknown: the record names no WAL range")
    return lines


def _window_text(window: dict[str, Any]) -> str:
    from datetime import datetime

    from powrops.format import human_duration, human_time

    def when(value: str | None) -> str:
        return human_time(datetime.fromisoformat(value)) if value else "an unknown time"

    span = window.get("seconds")
    length = f" ({human_duration(span)})" if span else ""
    text = f"{when(window.get('start_time'))} to {when(window.get('end_time'))}{length}"
    if window.get("stopped_by"):
        return f"{text}, ended by a WAL gap at {window['stopped_by']}"
    if span == 0:
        return f"{text}: only the backup's own consistency point, no WAL archived after it yet"
    return f"{text}, to the newest archived WAL"


def cmd_backup_show(args: argparse.Namespace) -> Severity:
    from powrops.backup import repos
    from powrops.backup.catalog import Catalog

    record = Catalog(repos.primary(settings_of(args))).get(args.label)
    data = record.to_dict()
    if args.json:
        print_json(data)
        return Severity.OK
    from powrops.format import human_bytes, human_seconds, human_value

    for key, value in data.items():
        if key in ("files", "steps"):
            continue
        shown = human_bytes(value) if key.endswith("_size") else human_value(key, value)
        print(f"{key:18} {shown}")
    for stored in record.files:
        print(
            f"file {stored.name:14} {human_bytes(stored.size):>10} raw  "
            f"{human_bytes(stored.stored_size):>10} stored  sha256 {stored.sha256}"
        )
    for step in record.steps:
        print(
            f"step {step['phase']:6} {step['name']:18} {step['status']:8} "
            f"{human_seconds(step['seconds']):>8}  {step['message']}"
        )
    return Severity.OK


def cmd_backup_expire(args: argparse.Namespace) -> Severity:
    from powrops.backup.manage import expire

    plan = expire(settings_of(args), dry_run=args.dry_run, wait=args.wait)
    if args.json:
        print_json({"dry_run": args.dry_run, **plan.to_dict()})
    else:
        print(("would do (dry run):\n" if args.dry_run else "") + plan.describe())
    return Severity.OK


def cmd_backup_copy(args: argparse.Namespace) -> Severity:
    from powrops.backup.manage import copy_to_secondary

    print(copy_to_secondary(settings_of(args)).summary())
    return Severity.OK
