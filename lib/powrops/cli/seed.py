"""``powrops seed``: deterministic demo data, optionally with planted defects."""

from __future__ import annotations

import argparse
from typing import Any

from powrops.cli.common import print_json, settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    seed = sub.add_parser("seed", help="load deterministic demo data")
    seed.add_argument("--users", type=int, default=50, help="users to generate (50)")
    seed.add_argument("--weeks", type=int, default=12, help="weeks of workouts (12)")
    seed.add_argument("--seed", type=int, default=42, help="random seed: same seed, same rows (42)")
    seed.add_argument("--defects", action="store_true", help="plant known integrity defects")
    seed.add_argument("--replace", action="store_true", help="replace existing POWR data")
    seed.add_argument("--json", action="store_true", help="print the result as JSON")
    seed.set_defaults(func=cmd_seed)


def cmd_seed(args: argparse.Namespace) -> Severity:
    from powrops.db import engine
    from powrops.demo import data as demo_data

    eng = engine(settings_of(args))
    dataset = demo_data.generate(
        users=args.users, weeks=args.weeks, seed=args.seed, defects=args.defects
    )
    report = demo_data.load(eng, dataset, replace=args.replace)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.describe())
    return Severity.OK
