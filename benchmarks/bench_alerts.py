"""``powrops alerts``: time on the demo data and on ~10 million sets.

Every check reads catalog views and statistics (no table is scanned), so the time of a run
should barely move with the data. The script seeds the demo data (50 users, 26 weeks), measures,
grows ``workout_sets`` to ``--sets`` rows (as bench_metrics.py), ``VACUUM ANALYZE``s and
measures again.

Measured, median of ``--rounds`` runs each:
  A. ``alerts.evaluate`` in-process (metrics collected, every check, the run recorded)
  B. the database time of one run: the sum of ``pg_stat_statements.total_exec_time`` over the
     run (the statistics reset before it; nothing else runs on the benchmark's cluster)
  C. the OpenMetrics rendering of the same run (``alerts.openmetrics``)
Targets: B < 1 s; large / small < 1.5 for A and B.
Run with POWROPS_BENCH_QUICK=1 for 1 million sets.
"""

from __future__ import annotations

import argparse
import time

from _data import small_then_large
from _site import QUICK, Site, Targets, machine, median, table

from powrops import alerts
from powrops.config import Settings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = 1_000_000 if QUICK else 10_000_000
    parser.add_argument("--sets", type=int, default=default, help="workout_sets rows to reach")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


def measure(site: Site, settings: Settings, rounds: int) -> dict[str, float]:
    wall, db, render = [], [], []
    alerts.evaluate(settings)  # the baseline the next runs compare against
    for _ in range(rounds):
        site.sql("SELECT pg_stat_statements_reset()")
        started = time.perf_counter()
        report = alerts.evaluate(settings)
        wall.append(time.perf_counter() - started)
        ms = site.sql("SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
                      "WHERE query NOT LIKE '%pg_stat_statements_reset%'")[0][0]  # fmt: skip
        db.append(float(ms) / 1000)
        started = time.perf_counter()
        alerts.openmetrics(report)
        render.append(time.perf_counter() - started)
    return {"wall": median(wall), "db": median(db), "render": median(render)}


def main() -> int:
    args = parse_args()
    targets = Targets()
    print(f"machine: {machine()}")
    site = Site.create("bench-alerts")
    try:
        settings = site.settings
        small, large, data = small_then_large(
            site, args.sets, lambda: measure(site, settings, args.rounds)
        )
        rows = []
        for key, name in (("wall", "A alerts.evaluate"), ("db", "B database time"),
                          ("render", "C OpenMetrics rendering")):  # fmt: skip
            ratio = large[key] / small[key] if small[key] else 1.0
            outcome = "(informational)"
            if key != "render":
                ok = ratio < 1.5 and (key != "db" or large[key] < 1.0)
                limit = "large / small < 1.5" + (", large < 1 s" if key == "db" else "")
                outcome = targets.check(f"{name}: {limit}", ok)
            rows.append([name, f"{small[key]:.4f}", f"{large[key]:.4f}", f"{ratio:.2f}",
                         outcome])  # fmt: skip
        print()
        print(data)
        print(table(["measure", "small s", "large s", "ratio", "target"], rows))
        print(f"machine: {machine()}")
    finally:
        site.finish(args.keep)
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
