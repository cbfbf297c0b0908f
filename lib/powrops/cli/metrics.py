"""``powrops metrics snapshot [--json] [--no-store]`` and ``powrops metrics growth [--json]``.

``snapshot`` reads the strategy's data metrics from the catalog and statistics and stores them
in ``ops.metric_snapshots`` (the history the growth report fits); ``growth`` prints the growth
rate, its source and the days until the disk thresholds. Exit 0, or 3 when it could not run.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from powrops.cli.common import settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    parser = sub.add_parser("metrics", help="data metrics snapshots and growth forecast")
    actions = parser.add_subparsers(dest="metrics_action", required=True, metavar="ACTION")
    snap = actions.add_parser("snapshot", help="collect the data metrics and store them in ops")
    snap.add_argument("--json", action="store_true", help="print the metrics as JSON")
    snap.add_argument("--no-store", action="store_true", help="collect only, store nothing")
    snap.set_defaults(func=cmd_snapshot)
    grow = actions.add_parser("growth", help="growth rate, forecast and days to the thresholds")
    grow.add_argument("--json", action="store_true", help="print the growth as JSON")
    grow.set_defaults(func=cmd_growth)


def cmd_snapshot(args: argparse.Namespace) -> Severity:
    from powrops.format import human_bytes, human_count, human_ratio, human_time
    from powrops.metrics.snapshot import take_snapshot

    settings = settings_of(args)
    snap = take_snapshot(settings, save=not args.no_store)
    if args.json:
        print(json.dumps(snap.to_dict(), indent=2, default=str))
        return Severity.OK
    m = snap.metrics
    where = f"stored as snapshot {snap.id}" if snap.id is not None else "not stored"
    print(f"metrics at {human_time(snap.taken_at)} ({where})")
    print(f"  database size   {human_bytes(m['database']['total_bytes'])}")
    print(
        f"  dead tuples     {human_count(m['dead_tuples']['total'])} "
        f"({human_ratio(m['dead_tuples']['ratio'])})"
    )
    rate = m["cache"]["hit_rate"]
    print(f"  cache hit rate  {'-' if rate is None else human_ratio(rate)}")
    wal = m["wal"].get("since_previous_bytes")
    print(f"  WAL since last  {'-' if wal is None else human_bytes(wal)}")
    st = m["statements"]
    print(
        f"  statements      {len(st['slowest'])} slowest listed"
        if st["available"]
        else f"  statements      {st['note']}"
    )
    print("  largest tables:")
    for table in m["tables"][:5]:
        print(
            f"    {table['schema']}.{table['table']:24} "
            f"{human_bytes(table['total_bytes']):>10}  {human_count(table['rows'])} rows"
        )
    return Severity.OK


def cmd_growth(args: argparse.Namespace) -> Severity:
    from powrops.growth.gather import growth_for
    from powrops.growth.view import growth_lines

    settings = settings_of(args)
    growth = growth_for(settings)
    data = growth.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return Severity.OK
    print("\n".join(growth_lines(data)))
    return Severity.OK
