"""``powrops alerts [--json] [--no-record]``: the strategy's thresholds, for cron or a monitor.

Evaluates disk usage, dead tuples, query time (statements and running queries), failed
backups, table and index sizes; prints the findings worst first (``--json``: the whole
evaluation). Each evaluation is recorded in ``ops.check_runs`` (kind ``alerts``) unless
``--no-record``. Exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a check could not judge,
or the evaluation could not run: bad configuration, unreachable database).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of
from powrops.findings import Finding, Severity


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "alerts", help="evaluate the alert thresholds (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
    )
    parser.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    parser.add_argument(
        "--no-record", action="store_true", help="do not record the run in ops.check_runs"
    )
    parser.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> Severity:
    from powrops.monitoring.alerts import evaluate

    settings = settings_of(args)
    report = evaluate(settings, record=not args.no_record)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(render_text(report.findings))
        print(f"\n{report.status.name}: {report.counts()['alerts']} alert(s)")
    return report.status


def render_text(findings: list[Finding]) -> str:
    rows = sorted(findings, key=lambda f: -f.severity.rank)
    check_w = max([len(f.check) for f in rows] + [5])
    obj_w = min(max([len(f.object or "-") for f in rows] + [6]), 40)
    lines = [f"{'SEVERITY':8}  {'CHECK':{check_w}}  {'OBJECT':{obj_w}}  MESSAGE"]
    for f in rows:
        lines.append(
            f"{f.severity.name:8}  {f.check:{check_w}}  {f.object or '-':{obj_w}}  {f.message}"
        )
    return "\n".join(lines)
