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

from _site import QUICK, Site, machine, median, mib, table, verdict

from powrops import migrate
from powrops.config import Settings
from powrops.db import engine
from powrops.demo.data import generate, load
from powrops.monitoring import gather, metrics
from powrops.reports.runner import run_report

REPO = Path(__file__).resolve().parents[1]

GROW_SQL = """
WITH b AS (SELECT min(id) AS lo, max(id) AS hi FROM workouts),
     e AS (SELECT min(id) AS id FROM exercises)
INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps, created_at)
SELECT b.lo + g % (b.hi - b.lo + 1), e.id, 1 + g % 5, 20 + g % 160, 1 + g % 12,
       now() - (g % 730) * interval '1 day'
FROM generate_series(1, {rows}) g, b, e
"""


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


def grow(site: Site, target: int) -> float:
    have = int(site.sql("SELECT count(*) FROM workout_sets")[0][0])
    started = time.perf_counter()
    with site.connect() as conn:
        # foreign keys are not checked row by row for the bulk load (ids are in range)
        conn.execute("SET session_replication_role = replica")
        conn.execute(GROW_SQL.format(rows=max(target - have, 0)))  # type: ignore[arg-type]
        conn.execute("SET session_replication_role = origin")
        conn.execute("VACUUM ANALYZE workout_sets")
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    print(f"machine: {machine()}")
    site = Site.create("bench-metrics")
    try:
        settings = site.settings
        eng = engine(settings)
        migrate.upgrade(eng, "head")
        load(eng, generate(users=50, weeks=26, seed=42))
        eng.dispose()
        site.sql("VACUUM ANALYZE")
        small_sets = int(site.sql("SELECT count(*) FROM workout_sets")[0][0])
        small_size = int(site.sql("SELECT pg_database_size('powr')")[0][0])
        small = measure(site, settings, args.rounds)
        print(f"small: {small_sets:,} sets, {mib(small_size)}: {small}")
        load_s = grow(site, args.sets)
        large_sets = int(site.sql("SELECT reltuples::bigint FROM pg_class "
                                  "WHERE relname = 'workout_sets'")[0][0])  # fmt: skip
        large_size = int(site.sql("SELECT pg_database_size('powr')")[0][0])
        print(f"grown to {large_sets:,} sets ({mib(large_size)}) in {load_s:.0f} s")
        large = measure(site, settings, args.rounds)
        rows = [
            [name, f"{small[key]:.3f}", f"{large[key]:.3f}", f"{large[key] / small[key]:.2f}",
             verdict(large[key] / small[key] < 2) if key != "notebook" else "(informational)"]
            for key, name in (("snapshot", "A metrics snapshot"), ("build", "B growth report data"),
                              ("notebook", "C growth_report notebook"))
        ]  # fmt: skip
        print()
        print(f"data: {small_sets:,} -> {large_sets:,} sets ({large_sets / small_sets:.0f}x), "
              f"{mib(small_size)} -> {mib(large_size)}")  # fmt: skip
        print(table(["measure", "small s", "large s", "ratio", "target < 2x"], rows))
        print(f"machine: {machine()}")
    finally:
        if args.keep:
            print(f"kept {site.root}")
        else:
            site.destroy()


if __name__ == "__main__":
    main()
