"""``powrops alerts``: database time of the checks on the demo data and on ~10 million sets
with 1,000 more tables.

Every check reads catalog views and statistics (no table is scanned) in one statement, so the
time of a run should follow neither the rows nor, beyond one pass over the catalogs, the
tables. The script seeds the demo data (50 users, 26 weeks), measures, grows ``workout_sets``
to ``--sets`` rows (as bench_metrics.py) and ``VACUUM ANALYZE``s, adds ``--tables`` tables
(schema ``extra``: a primary key, a text column, 20 to 120 rows each, some deleted, analyzed),
waits until the archiver has pushed the WAL of all that, and measures again.

Measured, median of ``--rounds`` runs each, a second apart (``pg_stat_statements``, reset
before each run, ``track_planning`` on; nothing else runs on the benchmark's cluster, but
what else runs on the machine counts: the load is printed before each size and at the end):
  A. ``alerts.evaluate`` in-process (every check, the run recorded), wall time
  B. the database time of the checks: execution + planning time of every statement of the
     run except its state and history writes (the INSERTs into ``ops.alert_state`` and
     ``ops.check_runs`` and their transactions), with the statements, round trips and
     buffers they read
  W. the same for the writes (informational)
  C. the OpenMetrics rendering of the same run (``alerts.openmetrics``, informational)
and, once per size, what a whole ``powrops alerts`` process read (``run_counted``).
Targets: B <= 50 ms at both sizes.
Run with POWROPS_BENCH_QUICK=1 for 1 million sets.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from _data import small_then_large
from _site import QUICK, Site, Targets, machine, median, mib, run_counted, table

from powrops import alerts

LIMIT_S = 0.050
PAUSE_S = 1.0
BLOCK = 8192
WRITES = ("INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

STATEMENTS_SQL = """
SELECT /* bench-alerts */ query, calls, total_exec_time, total_plan_time,
       shared_blks_hit, shared_blks_read
FROM pg_stat_statements
WHERE query NOT LIKE '%bench-alerts%' AND query NOT LIKE '%pg_stat_statements_reset%'
"""

EXTRA_TABLES_SQL = """
DO $$
BEGIN
  CREATE SCHEMA IF NOT EXISTS extra;
  FOR i IN 1..%s LOOP
    EXECUTE format('CREATE TABLE extra.t%%s (id bigint PRIMARY KEY, name text, '
                   'at timestamptz DEFAULT now())', i);
    EXECUTE format('INSERT INTO extra.t%%s (id, name) '
                   'SELECT g, md5(g::text) FROM generate_series(1, %%s) g', i, 20 + i %% 101);
    EXECUTE format('DELETE FROM extra.t%%s WHERE mod(id, 7) = 0', i);
    EXECUTE format('ANALYZE extra.t%%s', i);
  END LOOP;
END $$
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = 1_000_000 if QUICK else 10_000_000
    parser.add_argument("--sets", type=int, default=default, help="workout_sets rows to reach")
    parser.add_argument("--tables", type=int, default=1000, help="extra tables to add")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


@dataclass
class Share:
    """The statements of one part of a run, from pg_stat_statements."""

    statements: int = 0
    calls: int = 0
    exec_ms: float = 0.0
    plan_ms: float = 0.0
    hit: int = 0
    read: int = 0

    @property
    def seconds(self) -> float:
        return (self.exec_ms + self.plan_ms) / 1000

    def add(self, row: tuple[Any, ...]) -> None:
        self.statements += 1
        self.calls += int(row[1])
        self.exec_ms += float(row[2])
        self.plan_ms += float(row[3])
        self.hit += int(row[4])
        self.read += int(row[5])

    def text(self) -> str:
        return (f"{self.statements} statements, {self.calls} round trips, "
                f"{self.exec_ms:.1f} ms executing + {self.plan_ms:.1f} ms planning, "
                f"{mib((self.hit + self.read) * BLOCK)} of buffers read "
                f"({self.read} blocks from the OS)")  # fmt: skip


@dataclass
class Measured:
    wall: list[float] = field(default_factory=list)
    checks: list[Share] = field(default_factory=list)
    writes: list[Share] = field(default_factory=list)
    render: list[float] = field(default_factory=list)
    process: str = ""

    def spread(self, key: str) -> str:
        shares: list[Share] = getattr(self, key)
        values = sorted(s.seconds * 1000 for s in shares)
        return f"{values[0]:.1f} .. {values[-1]:.1f} ms over {len(values)} runs"

    def median_of(self, key: str) -> float:
        if key in ("checks", "writes"):
            shares: list[Share] = getattr(self, key)
            return median([s.seconds for s in shares])
        return median(getattr(self, key))

    def typical(self, key: str) -> Share:
        """The run whose database time is the median's (the middle one)."""
        shares: list[Share] = getattr(self, key)
        return sorted(shares, key=lambda s: s.seconds)[len(shares) // 2]


def split(site: Site) -> tuple[Share, Share]:
    """(checks, writes) of the statements since the last reset."""
    checks, writes = Share(), Share()
    for row in site.sql(STATEMENTS_SQL):
        words = str(row[0]).lstrip().split(None, 1)
        first = words[0].upper() if words else ""
        (writes if first in WRITES else checks).add(row)
    return checks, writes


def measure(site: Site, rounds: int) -> Measured:
    """``rounds`` runs, PAUSE_S apart (a monitor runs alerts every minute or so, not back to
    back: spread out, the median is less at the mercy of one burst of other work)."""
    settings = site.settings
    found = Measured()
    print(f"measuring: {machine()}")
    alerts.evaluate(settings)  # the baseline the next runs compare against
    for _ in range(rounds):
        time.sleep(PAUSE_S)
        site.sql("SELECT pg_stat_statements_reset()")
        started = time.perf_counter()
        report = alerts.evaluate(settings)
        found.wall.append(time.perf_counter() - started)
        checks, writes = split(site)
        found.checks.append(checks)
        found.writes.append(writes)
        started = time.perf_counter()
        alerts.openmetrics(report)
        found.render.append(time.perf_counter() - started)
    found.process = process_reads(site)
    return found


def process_reads(site: Site) -> str:
    """What one whole ``powrops alerts`` process read (its exit code says what it found)."""
    argv = ["sh", "-c", '"$@"; test $? -le 2', "sh",
            *site.powrops_argv("alerts", "--no-record")]  # fmt: skip
    seconds, _, reads = run_counted(argv, site.powrops_env())
    return f"{seconds:.2f} s, {reads.text()}"


def add_tables(site: Site, count: int) -> float:
    started = time.perf_counter()
    site.sql(EXTRA_TABLES_SQL % count)
    return time.perf_counter() - started


def before_large(site: Site, tables: int) -> None:
    """Add the tables, then wait until the archiver has pushed the WAL of the growth (its
    ``powrops wal push`` processes would share the CPUs with the measured runs)."""
    print(f"added {tables:,} tables in {add_tables(site, tables):.0f} s")
    print(f"waited {site.wait_archiver_idle():.0f} s for the archiver to push the WAL")


def main() -> int:
    args = parse_args()
    targets = Targets()
    print(f"machine: {machine()}")
    site = Site.create("bench-alerts")
    try:
        site.sql("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
        site.sql("SELECT pg_reload_conf()")
        small, large, data = small_then_large(
            site,
            args.sets,
            lambda: measure(site, args.rounds),
            before_large=lambda: before_large(site, args.tables),
        )
        report(small, large, data, args, targets)
        print(f"machine: {machine()}")
    finally:
        site.finish(args.keep)
    return targets.exit_code()


def report(
    small: Measured, large: Measured, data: str, args: argparse.Namespace, targets: Targets
) -> None:
    rows = []
    for key, name in (("wall", "A alerts.evaluate"), ("checks", "B database time, checks"),
                      ("writes", "W database time, state and history writes"),
                      ("render", "C OpenMetrics rendering")):  # fmt: skip
        lo, hi = small.median_of(key), large.median_of(key)
        outcome = "(informational)"
        if key == "checks":
            outcome = "small " + targets.check("B <= 50 ms on the demo data", lo <= LIMIT_S)
            outcome += ", large " + targets.check(
                f"B <= 50 ms at {args.sets:,} sets and {args.tables:,} more tables", hi <= LIMIT_S
            )
        ratio = hi / lo if lo else 1.0
        rows.append([name, f"{lo * 1000:.1f}", f"{hi * 1000:.1f}", f"{ratio:.2f}", outcome])
    print()
    print(data + f", {args.tables:,} more tables")
    print(table(["measure", "small ms", "large ms", "ratio", "target"], rows))
    for label, measured in (("small", small), ("large", large)):
        print(f"{label}, checks of the median run: {measured.typical('checks').text()}; "
              f"B from {measured.spread('checks')}")  # fmt: skip
        print(f"{label}, writes of the median run: {measured.typical('writes').text()}")
        print(f"{label}, one `powrops alerts --no-record` process: {measured.process}")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
