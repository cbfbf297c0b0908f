"""Metrics snapshot and growth report: time on the small demo data and on ~10 million sets.

Both read catalog views and statistics (plus a bounded ``TABLESAMPLE`` for the creation-time
trend), so their time should barely move with the data. The script seeds the demo data
(50 users, 26 weeks, as ``make demo``), measures, then grows ``workout_sets`` to ``--sets`` rows
with one set-based ``INSERT ... SELECT generate_series`` (created_at spread over two years),
``VACUUM ANALYZE``s it and measures again.

Measured, median of ``--rounds`` in-process runs each:
  A. ``metrics.take_snapshot`` (collect + store in ops.metric_snapshots)
  B. ``gather.snapshot_and_report`` (what the growth report computes: snapshot, alerts,
     growth forecast, index checks, maintenance plans)
  C. one ``growth_report`` notebook run through the report runner (kernel start included)
Target: time on the large data / time on the small data < 2 for A and B.
Run with POWROPS_BENCH_QUICK=1 for 1 million sets.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from _data import small_then_large
from _site import QUICK, Site, Targets, machine, median, table

from powrops.config import Settings
from powrops.growth import gather, metrics
from powrops.reports.runner import run_report

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = 1_000_000 if QUICK else 10_000_000
    parser.add_argument("--sets", type=int, default=default, help="workout_sets rows to reach")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


def timed(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return median(times)


def notebook_seconds(site: Site) -> float:
    started = time.perf_counter()
    run = run_report("growth_report", {}, reports_dir=site.root / "reports", root=REPO,
                     timeout=600, env={"POWROPS_CONFIG": str(site.config)})  # fmt: skip
    elapsed = time.perf_counter() - started
    if run.result.get("failed"):
        raise RuntimeError(f"growth_report failed: {run.result.get('error')}")
    return elapsed


def measure(site: Site, settings: Settings, rounds: int) -> dict[str, float]:
    return {
        "snapshot": timed(lambda: metrics.take_snapshot(settings), rounds),
        "build": timed(lambda: gather.snapshot_and_report(settings), rounds),
        "notebook": notebook_seconds(site),
    }


def main() -> int:
    args = parse_args()
    targets = Targets()
    print(f"machine: {machine()}")
    site = Site.create("bench-metrics")
    try:
        settings = site.settings
        small, large, data = small_then_large(
            site, args.sets, lambda: measure(site, settings, args.rounds)
        )
        rows = [
            [name, f"{small[key]:.3f}", f"{large[key]:.3f}", f"{large[key] / small[key]:.2f}",
             targets.check(f"{name}: large / small < 2", large[key] / small[key] < 2)
             if key != "notebook" else "(informational)"]
            for key, name in (("snapshot", "A metrics snapshot"), ("build", "B growth report data"),
                              ("notebook", "C growth_report notebook"))
        ]  # fmt: skip
        print()
        print(data)
        print(table(["measure", "small s", "large s", "ratio", "target < 2x"], rows))
        print(f"machine: {machine()}")
    finally:
        site.finish(args.keep)
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
