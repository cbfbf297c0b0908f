"""``powrops verify [LABEL | --all] [--content] [--restore] [--skip-pg-verifybackup] [--json]``.

Prints the findings as a table (worst first), then a summary line; ``--json`` prints the whole
report instead. The exit code is the overall severity: 0 OK, 1 WARNING, 2 CRITICAL, 3 when
verification could not run (bad configuration, an unreachable repository, an unknown label) or a
check could not judge.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from powrops.cli.common import settings_of, warn_archive_spec
from powrops.findings import Severity

if TYPE_CHECKING:
    from powrops.verify import VerificationReport
    from powrops.verify.runner import TestRestore


def register(sub: Any) -> None:
    """Add the ``verify`` subcommand to the ``powrops`` parser's subparsers."""
    parser = sub.add_parser(
        "verify",
        help="verify backups: checksums, pg_verifybackup, WAL continuity, freshness, "
        "recoverability windows, optional test restore",
    )
    parser.add_argument(
        "label", nargs="?",
        help="check this backup and its chain in full; default: the daily check (what is new, "
        "what is due and a share of the rest, see verification.reread_every)",
    )  # fmt: skip
    parser.add_argument(
        "--all", dest="everything", action="store_true",
        help="read back and check every backup and WAL file in full (implies --content)",
    )  # fmt: skip
    parser.add_argument(
        "--content", action="store_true",
        help="decompress each backup read and check it against its backup_manifest again, "
        "even when these stored bytes were checked before (a backup's first read always does)",
    )  # fmt: skip
    parser.add_argument(
        "--restore", action="store_true", help="also restore into a scratch cluster and query it"
    )
    parser.add_argument(
        "--skip-pg-verifybackup",
        action="store_true",
        help="do not reconstruct data directories for pg_verifybackup",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> Severity:
    from powrops.verify import verify

    settings = settings_of(args)
    warn_archive_spec(settings)

    def progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr)

    report = verify(
        settings,
        args.label,
        restore=_test_restore() if args.restore else None,
        pg_verifybackup=not args.skip_pg_verifybackup,
        everything=args.everything,
        content=args.content,
        echo=None if args.json else progress,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(render_text(report))
    return report.status


def _test_restore() -> TestRestore:
    """The test restore, imported only for ``--restore``: it brings the PostgreSQL driver,
    which reading back stored bytes does not need (a third of the command's start)."""
    from powrops.restore import test_restore

    return test_restore


def render_text(report: VerificationReport, width: int = 100) -> str:
    """The findings as a table, worst first, then the backups and their windows."""
    findings = sorted(report.findings, key=lambda f: -f.severity.rank)
    check_w = max([len(f.check) for f in findings] + [5])
    object_w = min(max([len(f.object or "-") for f in findings] + [6]), 36)
    indent = 8 + 2 + check_w + 2 + object_w + 2
    lines = [f"{'SEVERITY':8}  {'CHECK':{check_w}}  {'OBJECT':{object_w}}  MESSAGE"]
    for finding in findings:
        message = textwrap.wrap(finding.message, max(width - indent, 40)) or [""]
        obj = finding.object or "-"
        lines.append(
            f"{finding.severity.name:8}  {finding.check:{check_w}}  {obj:{object_w}}  {message[0]}"
        )
        lines.extend(" " * indent + more for more in message[1:])
        if finding.advice and finding.severity.name != "OK":
            advice = textwrap.wrap(f"→ {finding.advice}", max(width - indent, 40))
            lines.extend(" " * indent + part for part in advice)
    if report.backups:
        lines.append("")
        lines.append(
            f"{'BACKUP':17} {'KIND':11} {'STATUS':7} {'CHECKSUMS':9} {'SECONDARY':14} "
            f"{'PG_VERIFYBACKUP':15} WINDOW"
        )
        for row in report.backups:
            window = f"{row.window.start_lsn} .. {row.window.end_lsn}" if row.window else "-"
            lines.append(
                f"{row.label:17} {row.kind:11} {row.status:7} {row.checksums:9} "
                f"{row.secondary:14} {row.pg_verifybackup.split(':')[0]:15} {window}"
            )
    lines.append("")
    lines.append(report.summary())
    return "\n".join(lines)
