"""``powrops maintenance vacuum | analyze | reindex [--dry-run] [--json]`` and
``powrops maintenance indexes [--json]``.

vacuum: tables over the dead-tuple threshold (or with dead rows and a vacuum older than
``maintenance.vacuum``); analyze: tables with stale statistics; reindex: ``REINDEX INDEX
CONCURRENTLY`` of invalid or bloated indexes. Each run (dry runs too) is recorded in
``ops.events`` (kind ``maintenance``). ``indexes`` checks the index strategy (the strategy's
indexes present and valid, unused indexes, foreign keys without an index).
Exit: 0 done (or nothing to do), 2 an action failed on some object, 3 could not run; for
``indexes`` the worst finding (0/1/2).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "maintenance", help="vacuum, analyze, reindex, rebuild; index strategy check"
    )
    actions = parser.add_subparsers(dest="maintenance_action", required=True, metavar="ACTION")
    helps = {
        "vacuum": "VACUUM (ANALYZE) tables over the dead-tuple threshold",
        "analyze": "ANALYZE tables with stale statistics",
        "reindex": "REINDEX CONCURRENTLY invalid or bloated indexes",
        "rebuild": "VACUUM FULL bloated tables (ACCESS EXCLUSIVE lock while each is copied)",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, help=text)
        action.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
        action.add_argument("--json", action="store_true", help="print the run as JSON")
        action.set_defaults(func=cmd_action, action_name=name)
    indexes = actions.add_parser("indexes", help="check the index strategy")
    indexes.add_argument("--json", action="store_true", help="print the findings as JSON")
    indexes.set_defaults(func=cmd_indexes)


def cmd_action(args: argparse.Namespace) -> Severity:
    from powrops import maintenance

    settings = settings_of(args)
    result = maintenance.run(settings, args.action_name, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        for row in result.rows():
            error = f"  ERROR {row['error']}" if row["error"] else ""
            print(f"  {row['object']:40} {row['reason']}{error}")
        print(result.summary())
    return result.status


def cmd_indexes(args: argparse.Namespace) -> Severity:
    from powrops import maintenance
    from powrops.cli.alerts import render_text
    from powrops.findings import overall

    findings = maintenance.index_checks(settings_of(args))
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=2, default=str))
    else:
        print(render_text(findings))
    return overall(findings)
