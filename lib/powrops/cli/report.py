"""``powrops report list | run NAME [-p KEY VALUE ...] | index | sync``: the report archive."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from powrops.cli.common import (
    Parser,
    add_parameter_option,
    check_parameters,
    print_json,
    settings_of,
    warn_archive_spec,
)
from powrops.findings import Severity


def register(sub: Any) -> None:
    rep = sub.add_parser("report", help="run and archive report notebooks").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    rep.add_parser("list", help="reports and runbooks with their parameters").set_defaults(
        func=cmd_report_list
    )
    run = rep.add_parser(
        "run",
        help="execute a report into the archive",
        description="Execute report NAME into the archive; -p KEY VALUE sets one of its "
        "parameters (repeat -p for more).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.format_help = _with_catalog(run.format_help)
    run.add_argument("name", help="the report or runbook to run (listed below)")
    add_parameter_option(run)
    run.set_defaults(func=cmd_report_run)
    index = rep.add_parser("index", help="rebuild reports/index.html")
    index.add_argument(
        "--from-archive", action="store_true", help="download the archive's runs first"
    )
    index.add_argument("--to", metavar="DIR", help="build it in DIR (default: reports.dir)")
    index.set_defaults(func=cmd_report_index)
    sync = rep.add_parser("sync", help="copy runs to reports.archive_url, apply the retention")
    sync.add_argument(
        "--dry-run", action="store_true", help="show what would be copied, copy nothing"
    )
    sync.add_argument("--json", action="store_true", help="print the result as JSON")
    sync.set_defaults(func=cmd_report_sync)


def _parameters(pairs: Sequence[Sequence[str]] | None) -> dict[str, str]:
    return {key: value for key, value in (pairs or [])}


def cmd_report_list(args: argparse.Namespace) -> Severity:
    print("\n".join(catalog_lines()))
    return Severity.OK


def catalog_lines() -> list[str]:
    """Every report and runbook with its parameters, their types and defaults: what
    ``report list`` prints and ``report run --help`` ends with."""
    from powrops.reports.spec import discover

    lines = []
    for spec in discover().values():
        lines.append(f"{spec.name:28} {spec.kind:9} {spec.description}")
        for p in spec.parameters.values():
            about = f"  {p.help}" if p.help else ""
            lines.append(f"    -p {p.name:20} {p.type_name:4} default {p.default_source}{about}")
    return lines


def _with_catalog(format_help: Callable[[], str]) -> Callable[[], str]:
    """``format_help`` followed by the catalog of reports (read only when help is asked for)."""

    def formatted() -> str:
        try:
            catalog = "\n".join(catalog_lines())
        except Exception as exc:  # help still prints when the project cannot be read
            catalog = f"(reports cannot be listed: {exc})"
        return f"{format_help()}\nreports and runbooks:\n{catalog}\n"

    return formatted


def cmd_report_run(args: argparse.Namespace) -> Severity:
    from powrops.config import handoff_env
    from powrops.db import identity, secrets
    from powrops.reports.remote import ReportArchive
    from powrops.reports.runner import error_text, run_report
    from powrops.schedule import report_intervals

    loaded = settings_of(args)
    # The database the run acts on; fails fast, before a kernel starts, when it is unreachable.
    acting_on = identity(loaded)
    print(f"{args.name}: database {acting_on.describe()}", file=sys.stderr)
    warn_archive_spec(loaded)
    result = run_report(
        args.name,
        _parameters(args.parameter),
        reports_dir=loaded.reports_dir,
        env=handoff_env(loaded),  # the kernel loads this configuration, never another
        timeout=loaded.reports.timeout.timedelta.total_seconds(),
        secrets=secrets(loaded),
        remote=ReportArchive.from_settings(loaded),
        target=acting_on.to_dict(),
        server=loaded.server,
        every_s=report_intervals(loaded).get(args.name),
        check=partial(check_parameters, loaded=loaded),
    )
    print(f"{args.name}: {result.status.name} -> {result.path / 'report.html'}")
    if result.result.get("error"):
        print(f"  error: {error_text(result.result['error'])}", file=sys.stderr)
    return Severity(int(result.exit_code))


def cmd_report_index(args: argparse.Namespace) -> Severity:
    from powrops.reports.index import build_index
    from powrops.reports.remote import ReportArchive

    loaded = settings_of(args)
    if args.from_archive:
        archive = ReportArchive.from_settings(loaded)
        index, result = archive.rebuild_from_archive(Path(args.to) if args.to else None)
        print(f"{len(result.downloaded)} runs downloaded from {archive.url}", file=sys.stderr)
        print(index)
        return Severity.OK
    print(build_index(Path(args.to) if args.to else loaded.reports_dir))
    return Severity.OK


def cmd_report_sync(args: argparse.Namespace) -> Severity:
    from powrops.reports.remote import ReportArchive

    result = ReportArchive.from_settings(settings_of(args)).sync(dry_run=args.dry_run)
    if args.json:
        print_json(result.to_dict())
    else:
        for run in result.uploaded:
            print(f"upload  {run}")
        for run in result.expired_remote:
            print(f"expire  {run} (archive)")
        for run in result.expired_local:
            print(f"expire  {run} (local)")
        print(result.summary())
    return Severity.OK
