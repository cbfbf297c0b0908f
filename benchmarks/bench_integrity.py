"""The whole integrity check through powrops against the same SQL run directly by psql.

Two databases in the benchmark's own cluster, filled with set-based SQL (``generate_series``,
triggers and foreign keys off while loading): ``small`` with 100 thousand workout sets and
``large`` with ``--sets`` (default 10 million), 10 sets a workout, 100 workouts a user, a few
planted defects. Then:

1. ``integrity.run`` (store off) in a child process against the same statements, recorded from
   a previous run of the library and executed by ``psql -f`` in one REPEATABLE READ READ ONLY
   transaction. Target: median(powrops) / median(psql) <= 1.5.
2. Peak RSS (the child's own ``ru_maxrss``) of that child at 100 thousand and at ``--sets`` sets.
   Target: large / small <= 1.2 (memory stays flat as data grows).

Run with POWROPS_BENCH_QUICK=1 (1 million sets) for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _site import QUICK, Site, Targets, machine, median, table

SMALL = 100_000
CHILD = r"""
import json, resource, sys, time
import psycopg
from powrops import integrity
from powrops.config import validate

url, record = sys.argv[1], sys.argv[2]
statements = []

class Recording(psycopg.Connection):
    def execute(self, query, params=None, **kwargs):
        if record:
            statements.append(psycopg.ClientCursor(self).mogrify(query, params))
        return super().execute(query, params, **kwargs)

settings = validate({"database": {"url": url}})
started = time.perf_counter()
with Recording.connect(url, autocommit=True) as conn:
    report = integrity.run(conn, settings, store=False)
elapsed = time.perf_counter() - started
if record:
    with open(record, "w") as f:
        json.dump(statements, f)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "counts": report.counts(), "peak_rss": peak}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=1_000_000 if QUICK else 10_000_000)
    parser.add_argument("--rounds", type=int, default=1 if QUICK else 3)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


SEED = """
SET session_replication_role = replica;
INSERT INTO users (id, email, created_at)
    SELECT g, 'user' || g || '@example.org', now() - interval '400 days'
    FROM generate_series(1, {users}) g;
INSERT INTO exercises (id, name, muscle_group) SELECT g, 'exercise ' || g, 'legs'
    FROM generate_series(1, 20) g;
INSERT INTO workouts (id, user_id, date)
    SELECT g, 1 + (g - 1) % {users}, date '2024-01-01' + (g % 600)
    FROM generate_series(1, {workouts}) g;
INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps)
    SELECT 1 + (g - 1) / 10, 1 + g % 20, 1 + (g - 1) % 10, 20 + (g % 50) * 2.5, 1 + g % 12
    FROM generate_series(1, {sets}) g;
UPDATE workouts w SET total_volume = s.v FROM (SELECT workout_id, sum(weight * reps) v
    FROM workout_sets GROUP BY workout_id) s WHERE s.workout_id = w.id;
INSERT INTO user_totals (user_id, workout_count, total_volume)
    SELECT w.user_id, count(*), COALESCE(sum(w.total_volume), 0) FROM workouts w GROUP BY 1;
UPDATE workout_sets SET weight = 1500 WHERE id IN (7, 700, 7000);
UPDATE workout_sets SET workout_id = {workouts} + 10 WHERE id IN (11, 1100);
UPDATE workouts SET total_volume = total_volume + 1 WHERE id IN (3, 33);
SET session_replication_role = origin;
ANALYZE;
"""


def seed(site: Site, dbname: str, sets: int) -> float:
    from powrops import migrate

    site.sql(f'CREATE DATABASE "{dbname}"')
    migrate.upgrade(site.cluster.url(dbname))
    workouts = max(sets // 10, 10)
    users = max(workouts // 100, 10)
    script = SEED.format(users=users, workouts=workouts, sets=sets)
    started = time.perf_counter()
    psql(site, dbname, script)
    return time.perf_counter() - started


def psql(site: Site, dbname: str, script: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    try:
        argv = site.client_argv("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", os.devnull)
        started = time.perf_counter()
        proc = subprocess.run(
            [*argv, "-d", dbname, "-f", f.name], env=site.client_env(), capture_output=True
        )
        elapsed = time.perf_counter() - started
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RuntimeError(f"psql failed: {proc.stderr.decode()[-2000:]}")
    return elapsed


def library(site: Site, dbname: str, record: str = "") -> tuple[float, float, int, dict[str, Any]]:
    """(seconds in integrity.run, process wall seconds, peak RSS bytes, output) of one child."""
    url = site.cluster.url(dbname).replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, record],
        capture_output=True,
        env=site.powrops_env(),
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"integrity check failed: {proc.stderr.decode()[-2000:]}")
    data = json.loads(proc.stdout)
    return float(data["seconds"]), wall, int(data["peak_rss"]), data


def statements_script(path: Path) -> str:
    """The recorded statements as one psql script in the same kind of snapshot."""
    statements = json.loads(path.read_text())
    body = ";\n".join(s for s in statements if not s.lstrip().upper().startswith("SET TRANSACTION"))
    return f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n{body};\nCOMMIT;\n"


def main() -> int:
    args = parse_args()
    targets = Targets()
    print(f"bench_integrity: {args.sets:,} sets; {machine()}")
    site = Site.create("integrity")
    try:
        for name, sets in (("small", SMALL), ("large", args.sets)):
            print(f"seeding {name}: {sets:,} sets in {seed(site, name, sets):.1f} s", flush=True)
        rows = []
        peaks: dict[str, int] = {}
        for name in ("small", "large"):
            record = Path(site.root / f"{name}.json")
            _, _, _, data = library(site, name, str(record))
            failed = {k: v for k, v in data["counts"].items() if v}
            script = statements_script(record)
            lib_s, walls, raw_s, rss = [], [], [], []
            for _ in range(args.rounds):
                inside, wall, peak, _ = library(site, name)
                lib_s.append(inside)
                walls.append(wall)
                rss.append(peak)
                raw_s.append(psql(site, name, script))
            peaks[name] = max(rss)
            ratio = median(lib_s) / median(raw_s)
            rows.append(
                [
                    name,
                    f"{median(lib_s):.2f}",
                    f"{median(walls):.2f}",
                    f"{median(raw_s):.2f}",
                    f"{ratio:.2f}",
                    targets.check(f"{name}: powrops / psql <= 1.5", ratio <= 1.5),
                    f"{peaks[name] / 2**20:.1f}",
                ]
            )
            print(f"{name}: failed checks {failed}", flush=True)
        headers = ["db", "powrops s", "process s", "psql s", "ratio", "<= 1.5", "peak RSS MiB"]
        print(table(headers, rows))
        growth = peaks["large"] / peaks["small"]
        print(
            f"peak RSS {args.sets:,} sets / {SMALL:,} sets: {growth:.2f} "
            f"(target <= 1.2: {targets.check('peak RSS large / small <= 1.2', growth <= 1.2)})"
        )
        print(f"end: {machine()}")
    finally:
        site.finish(args.keep)
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
