"""``powrops alerts [--format text|json|openmetrics] [--textfile DIR] [--no-record]``.

The strategy's thresholds and the server checks a DBA expects, for cron or a monitor. Prints
the findings worst first (``--format json`` or ``--json``: the whole evaluation;
``--format openmetrics``: every finding and key figure as metrics, and the recorded evidence
of recoverability (the last drill's RTO and RPO, the last successful test restore, the end of
the verified recovery window), ending in ``# EOF``; a database it cannot reach is one UNKNOWN
``database`` finding there and in the textfile).
``--textfile DIR`` also writes ``DIR/powrops.prom`` (``DIR/powrops_<server>.prom`` for a named
server; Prometheus text format, every sample labelled ``server``, through a temporary file and
a rename) for node_exporter's textfile collector. Each evaluation is
recorded in ``ops.check_runs`` (kind ``alerts``) unless ``--no-record``. Exit code, whatever
the format: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a check could not judge, or the
evaluation could not run: bad configuration, unreachable database).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from powrops.cli.common import settings_of
from powrops.findings import Finding, Severity


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "alerts", help="evaluate the alert thresholds (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "openmetrics"),
        default=None,
        help="how to print the evaluation (default text)",
    )
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.add_argument(
        "--textfile",
        metavar="DIR",
        type=Path,
        help="also write DIR/powrops.prom (powrops_<server>.prom for a named server) for "
        "node_exporter's textfile collector",
    )
    parser.add_argument(
        "--notify",
        action="store_true",
        help="send what changed since the previous --notify run through notify.channels",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not record the run in ops.check_runs"
    )
    parser.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> Severity:
    from powrops.alerts import evaluate, openmetrics, unreachable, write_textfile
    from powrops.errors import DatabaseError, ParameterError
    from powrops.growth.forecast import growth_rate

    if args.json and args.format not in (None, "json"):
        raise ParameterError(f"--json and --format {args.format} contradict each other")
    fmt = "json" if args.json else args.format or "text"
    if args.textfile is not None and not args.textfile.is_dir():
        raise ParameterError(f"--textfile {args.textfile}: not a directory")
    settings = settings_of(args)
    try:
        report = evaluate(
            settings,
            record=not args.no_record,
            send=args.notify,
            growth=growth_rate(settings.server),
        )
    except DatabaseError as exc:  # the metrics say so at once, not the last all-clear
        if args.textfile is not None:
            write_textfile(unreachable(settings, exc), args.textfile)
        if fmt == "openmetrics":  # a scraper of stdout reads UNKNOWN, not nothing
            print(openmetrics(unreachable(settings, exc)), end="")
        raise
    if args.textfile is not None:
        write_textfile(report, args.textfile)
    if fmt == "json":
        print(json.dumps(report.to_dict(), indent=2, default=str))
    elif fmt == "openmetrics":
        print(openmetrics(report), end="")
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
