"""``powrops demo``: the embedded default, the POWR schema, demo data and every report."""

from __future__ import annotations

import argparse
from typing import Any

from powrops.cli.common import settings_of


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="set up the embedded default and run every report")
    demo.add_argument("--users", type=int, default=50, help="users to generate (50)")
    demo.add_argument("--weeks", type=int, default=26, help="weeks of workouts (26)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from powrops.demo.run import run_demo

    return run_demo(settings_of(args), users=args.users, weeks=args.weeks)
