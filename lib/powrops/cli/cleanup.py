"""``powrops cleanup [--dry-run] [--json]``: the strategy's weekly data cleanup.

Deletes temp data older than 24 h, cache entries past their TTL and expired sessions unused for
14 days, in short batches (see :mod:`powrops.retention.cleanup`). Prints one line per target
(rows due, deleted, bytes reclaimed, errors). Exit code: 0 when every target was cleaned,
1 (WARNING) when a batch failed (e.g. a lock timeout; run again later), 3 when cleanup could
not run at all (bad configuration, unreachable database).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "cleanup", help="delete expired temp data, cache entries and sessions in short batches"
    )
    parser.add_argument("--dry-run", action="store_true", help="count what is due; delete nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=cmd_cleanup)


def cmd_cleanup(args: argparse.Namespace) -> Severity:
    from powrops.retention.cleanup import run_cleanup
    from powrops.retention.render import table

    settings = settings_of(args)
    result = run_cleanup(settings, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(table(result.rows()))
        verb, count = ("deleted", result.deleted)
        if result.dry_run:
            verb, count = ("would delete", result.due)
        from powrops.format import human_bytes, human_count

        print(
            f"cleanup: {verb} {human_count(count)} rows, {human_bytes(result.bytes)}, "
            f"{len(result.errors)} errors"
        )
    return Severity.WARNING if result.errors else Severity.OK
