"""``powrops check integrity [--repair] [--dry-run] [--full] [--json]``.

Runs every validation rule, consistency check and physical check in one read-only snapshot and
stores the run in ``ops.check_runs``: incrementally (each check over what changed since the last
stored run) unless ``--full``, a first run or ``consistency.full_every`` asks for a full one.
``--repair`` then applies the known fixes (quarantine
orphans, recompute total_volume and user totals; audited) and checks again; with ``--dry-run``
it only says what they would change, and nothing is stored or changed. The exit code is the
final status: 0 OK, 1 WARNING, 2 CRITICAL (or a repair that failed), 3 could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from powrops.cli.common import settings_of
from powrops.findings import Severity

if TYPE_CHECKING:
    from powrops.integrity import IntegrityReport


def register(sub: Any) -> None:
    """Add ``check integrity`` to the ``powrops`` parser's subparsers."""
    parser = sub.add_parser("check", help="data checks (powrops check integrity)")
    kinds = parser.add_subparsers(dest="check_kind", metavar="KIND", required=True)
    integrity = kinds.add_parser(
        "integrity",
        help="validation rules, referential integrity, calculated fields, user totals, amcheck, "
        "checksums; optional audited repair",
    )
    integrity.add_argument(
        "--repair", action="store_true", help="apply the known fixes, then check again"
    )
    integrity.add_argument(
        "--dry-run",
        action="store_true",
        help="with --repair: show what would change, change nothing",
    )
    integrity.add_argument(
        "--full",
        action="store_true",
        help="read everything: no incremental check over what changed since the last run "
        "(a full check also runs every consistency.full_every, default 7 days)",
    )
    integrity.add_argument("--json", action="store_true", help="print the outcome as JSON")
    integrity.set_defaults(func=cmd_check_integrity)


def cmd_check_integrity(args: argparse.Namespace) -> Severity:
    from powrops.errors import ParameterError
    from powrops.integrity import check

    if args.dry_run and not args.repair:
        raise ParameterError("--dry-run only applies to --repair")
    settings = settings_of(args)
    outcome = check(settings, repair=args.repair, dry_run=args.dry_run, full=args.full)
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2, default=str))
        return outcome.status
    print(render_text(outcome.before))
    if outcome.repair is not None:
        print()
        print(outcome.repair.describe())
        for problem in outcome.repair.notification_problems:
            print(f"warning: {problem}", file=sys.stderr)
    if outcome.after is not None:
        print()
        print("after the repair:")
        print(render_text(outcome.after))
    return outcome.status


def render_text(report: IntegrityReport) -> str:
    """One line per check: severity, name, count, scope, message; the notes about the run
    itself (e.g. that it could not be recorded); then the summary and why checks of an
    incremental run read everything."""
    name_w = max([len(r.name) for r in report.results] + [len(n.check) for n in report.notes])
    lines = [f"{'SEVERITY':8}  {'CHECK':{name_w}}  {'ROWS':>7}  {'SCOPE':11}  MESSAGE"]
    for r in report.results:
        count = "-" if r.count is None else f"{r.count:,}"
        scope = report.scopes.get(r.name, {}).get("scope", "-")
        lines.append(f"{r.severity.name:8}  {r.name:{name_w}}  {count:>7}  {scope:11}  {r.message}")
    for note in report.notes:
        advice = f" ({note.advice})" if note.advice else ""
        lines.append(f"{note.severity.name:8}  {note.check:{name_w}}  {'-':>7}  {'-':11}  "
                     f"{note.message}{advice}")  # fmt: skip
    lines.append(report.summary())
    lines += [f"  {name} ran in full: {why}" for name, why in report.in_full().items()]
    return "\n".join(lines)
