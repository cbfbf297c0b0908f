"""``powrops retention plan|apply``: the strategy's retention policies.

- ``retention plan [--json]``: per policy, its action (keep, erase, anonymize, archive,
  delete), period, cutoff and how many rows are due, and why. Changes nothing.
- ``retention apply [--dry-run] [--json]``: carry every policy out, in order: erase deleted
  accounts past 30 days, anonymize accounts inactive for 2 years, purge workouts deleted over
  90 days ago and archived workouts past 5 years, archive inactive users' workouts (validated
  before any row leaves), delete system logs past their category's period. ``--dry-run``
  plans and records the run without changing anything.

Exit codes: 0 done, 1 some batch failed (e.g. a lock timeout; the rest was applied - run it
again), 2 an archive file failed validation (the run stopped, nothing of that user removed),
3 could not run (bad configuration, unreachable database).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    parser = sub.add_parser("retention", help="plan or apply the retention policies")
    actions = parser.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    plan = actions.add_parser("plan", help="what each policy has due, and why")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=cmd_plan)
    apply = actions.add_parser("apply", help="carry the policies out")
    apply.add_argument("--dry-run", action="store_true", help="plan and record; change nothing")
    apply.add_argument("--json", action="store_true", help="print the result as JSON")
    apply.set_defaults(func=cmd_apply)


def _settings(args: argparse.Namespace) -> Any:

    return settings_of(args)


def cmd_plan(args: argparse.Namespace) -> Severity:
    from powrops.retention import run
    from powrops.retention.render import table

    result = run.plan(_settings(args))
    if args.json:
        print(json.dumps([p.row() for p in result.plans()], indent=2))
    else:
        print(table([p.row() for p in result.plans()]))
    return Severity.OK


def cmd_apply(args: argparse.Namespace) -> Severity:
    from powrops.retention import run
    from powrops.retention.render import table

    result = run.apply(_settings(args), dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        rows = [{k: r[k] for k in ("policy", "action", "due", "done", "errors")}
                for r in result.rows()]  # fmt: skip
        print(table(rows))
        if result.dry_run:
            print("dry run: nothing changed")
    return Severity.WARNING if result.errors else Severity.OK
