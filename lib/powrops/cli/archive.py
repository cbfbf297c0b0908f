"""``powrops archive run|list|restore``: workouts and sets to validated, indexed archive files.

- ``archive run [--user ID] [--dry-run] [--json]``: archive every user due by the archival
  triggers (age since last activity, size), or one user on request. Exit 0 when done, 2 when an
  archive file failed validation (the run stopped; that user's rows stayed live), 3 when it
  could not run.
- ``archive list [--user ID] [--json]``: the archive index (ids, date ranges, rows, checksums).
- ``archive restore --user ID``: bring a user's archived rows back with their ids.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of, user_id
from powrops.findings import Severity


def register(sub: Any) -> None:
    parser = sub.add_parser("archive", help="archive workouts to validated files; list; restore")
    actions = parser.add_subparsers(dest="archive_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="archive the users due (or --user on request)")
    run.add_argument("--user", type=user_id, help="archive this user's workouts now (user request)")
    run.add_argument("--dry-run", action="store_true", help="show who is due; change nothing")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(func=cmd_run)
    listing = actions.add_parser("list", help="the archive index")
    listing.add_argument("--user", type=user_id, help="only this user's entries")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    listing.set_defaults(func=cmd_list)
    restore = actions.add_parser("restore", help="bring a user's archived rows back")
    restore.add_argument("--user", type=user_id, required=True, help="the user id")
    restore.add_argument("--json", action="store_true", help="print the result as JSON")
    restore.set_defaults(func=cmd_restore)


def _settings(args: argparse.Namespace) -> Any:

    return settings_of(args)


def cmd_run(args: argparse.Namespace) -> Severity:
    from powrops.retention.archival import run_archival
    from powrops.retention.render import table

    result = run_archival(_settings(args), dry_run=args.dry_run, user_id=args.user)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return Severity.OK
    print(f"archive repository: {result.repository}")
    due = [
        {"user": c.user_id, "trigger": c.trigger, "workouts": c.workouts, "sets": c.sets,
         "only before": c.before}
        for c in result.candidates
    ]  # fmt: skip
    print(table(due))
    if args.dry_run:
        print(f"dry run: {len(result.candidates)} users due, nothing archived")
    else:
        print(f"archived {result.rows} rows of {len(result.archived)} users "
              "(read back, checksums compared, indexed)")  # fmt: skip
    return Severity.OK


def cmd_list(args: argparse.Namespace) -> Severity:
    from powrops.retention import archival, journal
    from powrops.retention.render import table

    with journal.connect(_settings(args)) as conn:
        entries = list(archival.index_entries(conn, args.user))
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return Severity.OK
    print(table([_entry_row(e) for e in entries]))
    return Severity.OK


def _entry_row(entry: dict[str, Any]) -> dict[str, Any]:
    details = entry["details"]
    return {
        "id": entry["id"],
        "user": entry["user_id"],
        "from": entry["date_from"],
        "to": entry["date_to"],
        "rows": entry["rows"],
        "sha256": entry["sha256"][:12],
        "created": entry["created_at"].strftime("%Y-%m-%d %H:%M"),
        "trigger": details.get("trigger"),
        "restored": "yes" if details.get("restored_at") else "no",
        "key": details.get("key"),
    }


def cmd_restore(args: argparse.Namespace) -> Severity:
    from powrops.retention.unarchive import restore_user

    result = restore_user(_settings(args), args.user)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        rows = ", ".join(f"{n} {t}" for t, n in result.rows.items())
        print(f"restored {rows} of user {args.user} from {len(result.entries)} archive files")
    return Severity.OK
