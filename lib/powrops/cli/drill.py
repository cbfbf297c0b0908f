"""``powrops drill``: the recovery plan as a measured drill against a scratch target."""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of, warn_archive_spec
from powrops.findings import Severity


def register(sub: Any) -> None:
    drill = sub.add_parser(
        "drill", help="run the recovery plan against a scratch target; measure RTO and RPO"
    )
    drill.add_argument("--target-time", help="recover to this time (default: now, with markers)")
    drill.add_argument("--keep", action="store_true", help="keep the restored cluster running")
    drill.add_argument("--json", action="store_true", help="print the result as JSON")
    drill.set_defaults(func=cmd_drill)


def cmd_drill(args: argparse.Namespace) -> Severity:
    from powrops.drill.run import run_drill
    from powrops.restore import RecoveryTarget

    settings = settings_of(args)
    warn_archive_spec(settings)
    target = RecoveryTarget("time", args.target_time).time if args.target_time else None
    result = run_drill(
        settings, target_time=target, echo=None if args.json else print, keep=args.keep
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        rto = f"{result.rto_s:.1f} s" if result.rto_s is not None else "not measured"
        rpo = f"{result.rpo_s:.1f} s" if result.rpo_s is not None else "not measured"
        print(
            f"drill {result.drill_id}: {result.status.name}; RTO {rto}, RPO {rpo} "
            f"(backup {result.label})"
        )
        for finding in result.findings:
            print(f"  {finding.severity.name:8} {finding.check:28} {finding.message}")
    return result.status
