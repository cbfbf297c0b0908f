"""``powrops gdpr export|erase|consent-report``: data subject requests and consents.

- ``gdpr export USER_ID --to PATH``: everything held about the user (live and archived) as JSON
  files plus a manifest, in a new 0700 directory (an existing non-empty PATH is refused).
  Prints counts only.
- ``gdpr erase USER_ID [--yes]``: without ``--yes``, counts what would be erased and exits 1
  (nothing changed); with it, erases the user everywhere, archive files included, and prints
  the request id (the audit record holds it and counts, no personal data).
- ``gdpr consent-report [--json]``: consents granted and revoked per purpose.

Exit codes: 0 done, 1 erase not confirmed, 2 an archive file failed validation, 3 could not
run (bad arguments, refused path, unknown user, unreachable database).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from powrops.cli.common import settings_of, user_id
from powrops.findings import Severity


def register(sub: Any) -> None:
    parser = sub.add_parser("gdpr", help="GDPR export and erasure of a user; consent report")
    actions = parser.add_subparsers(dest="gdpr_command", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="export everything held about a user")
    export.add_argument("user_id", type=user_id)
    export.add_argument("--to", required=True, type=Path, help="a new or empty directory")
    export.add_argument("--json", action="store_true", help="print the counts as JSON")
    export.set_defaults(func=cmd_export)
    erase = actions.add_parser("erase", help="erase a user everywhere (archive files included)")
    erase.add_argument("user_id", type=user_id)
    erase.add_argument("--yes", action="store_true", help="really erase (default: show counts)")
    erase.add_argument("--json", action="store_true", help="print the result as JSON")
    erase.set_defaults(func=cmd_erase)
    consents = actions.add_parser("consent-report", help="consents per purpose")
    consents.add_argument("--json", action="store_true", help="print the totals as JSON")
    consents.set_defaults(func=cmd_consent_report)


def _settings(args: argparse.Namespace) -> Any:

    return settings_of(args)


def cmd_export(args: argparse.Namespace) -> Severity:
    from powrops.retention.gdpr import export_user

    result = export_user(_settings(args), args.user_id, args.to)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        counts = ", ".join(f"{n} {t}" for t, n in result.counts().items() if n)
        print(f"exported user {args.user_id}: {counts} ({len(result.files) + 1} files)")
    return Severity.OK


def cmd_erase(args: argparse.Namespace) -> Severity:
    from powrops.retention.erase import erase_user, nothing_held

    result = erase_user(_settings(args), args.user_id, dry_run=not args.yes)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        counts = ", ".join(f"{n} {t}" for t, n in result.rows.items() if n)
        files = f"{result.archive_files} archive files"
        if result.holds_nothing():
            print(nothing_held(args.user_id))
        elif result.dry_run:
            print(f"would erase user {args.user_id}: {counts}, {files}")
        else:
            print(f"erased user {args.user_id}: {counts}, {files}")
        if result.dry_run:
            print("nothing changed; run again with --yes to erase")
        else:
            print(f"request id {result.request_id} (recorded in audit_log and ops.events)")
    return Severity.WARNING if result.dry_run else Severity.OK


def cmd_consent_report(args: argparse.Namespace) -> Severity:
    from powrops.retention import consent, journal
    from powrops.retention.render import table

    with journal.connect(_settings(args)) as conn:
        totals = [t.to_dict() for t in consent.report(conn)]
    print(json.dumps(totals, indent=2) if args.json else table(totals))
    return Severity.OK
