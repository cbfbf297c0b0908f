"""``powrops maintenance vacuum | analyze [--dry-run] [--json]``, ``powrops maintenance reindex |
rebuild [--dry-run] [--yes] [--json]`` and ``powrops maintenance indexes [--json]``.

vacuum: tables over the dead-tuple threshold (or with dead rows and a vacuum older than
``maintenance.vacuum``); analyze: tables with stale statistics; reindex: ``REINDEX INDEX
CONCURRENTLY`` of invalid or bloated indexes; rebuild: ``VACUUM FULL`` of bloated tables.
reindex and rebuild show their plan and ask first, as other destructive commands do: ``--yes``,
or the database's name typed at a terminal; they then act only on what the plan listed.
Each run (dry runs too) is recorded in
``ops.events`` (kind ``maintenance``). ``indexes`` checks the index strategy (the strategy's
indexes present and valid, unused indexes, foreign keys without an index).
Exit: 0 done (or nothing to do), 2 an action failed on some object, 3 could not run or was
not confirmed; for
``indexes`` the worst finding (0/1/2).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from powrops.cli.common import settings_of
from powrops.findings import Severity

if TYPE_CHECKING:
    from powrops.config import Settings
    from powrops.maintenance import MaintenanceRun

#: The actions that ask before they run, and what a person should know before answering.
CONFIRMED = {
    "reindex": "REINDEX CONCURRENTLY: builds a copy of each index, briefly locks it to swap",
    "rebuild": "VACUUM FULL: an ACCESS EXCLUSIVE lock on each table while it is copied",
}


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
        if name in CONFIRMED:
            action.add_argument("--yes", action="store_true", help="do not ask; act on the plan")
        action.set_defaults(func=cmd_action, action_name=name)
    indexes = actions.add_parser("indexes", help="check the index strategy")
    indexes.add_argument("--json", action="store_true", help="print the findings as JSON")
    indexes.set_defaults(func=cmd_indexes)


def cmd_action(args: argparse.Namespace) -> Severity:
    from powrops import maintenance

    settings = settings_of(args)
    if args.action_name in CONFIRMED and not args.dry_run:
        return _confirmed(args, settings)
    result = maintenance.run(settings, args.action_name, dry_run=args.dry_run)
    _show(args, result)
    return result.status


def _confirmed(args: argparse.Namespace, settings: Settings) -> Severity:
    """The plan shown, the database's name typed (or ``--yes``), then only the plan done."""
    from powrops import maintenance
    from powrops.db import identity
    from powrops.gate import confirm_at_terminal

    plan = maintenance.run(settings, args.action_name, dry_run=True)
    if not plan.targets:
        _show(args, plan)
        return plan.status
    if not args.json:
        _show(args, plan)
        print(f"  ({CONFIRMED[args.action_name]})")
    target = identity(settings)

    def confirm(what: str) -> bool:
        return confirm_at_terminal(what, target, yes=args.yes)

    result = maintenance.run_confirmed(settings, args.action_name, plan, confirm, echo=print)
    if result is None:
        print(f"Not confirmed: nothing was changed ({args.action_name} not run)")
        return Severity.UNKNOWN
    _show(args, result)
    return result.status


def _show(args: argparse.Namespace, result: MaintenanceRun) -> None:
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    for row in result.rows():
        error = f"  ERROR {row['error']}" if row["error"] else ""
        print(f"  {row['object']:40} {row['reason']}{error}")
    print(result.summary())


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
