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
3. The daily check: on ``large``, a full check stored (the watermark), then about 10,000 rows
   changed by DML (set updates, inserts and deletes, the workouts and user totals the
   application would recompute, edits of workouts and users; the audit trail on, as
   migrated) with five defects planted among them (a bad weight, an orphan set inserted with
   ``session_replication_role = replica``, a wrong total_volume, a wrong user total, a set
   deleted behind its workout's volume and its user's total). Then interleaved rounds of the
   incremental check (``integrity.run(full=False)``, store off, so each round starts from the
   same watermark) and the full check, each in a child process; both must find every planted
   defect and agree on every data check. Target: median(incremental) / median(full) <= 0.1 at
   10 million sets or more (printed, not checked, at a smaller ``--sets`` such as quick mode).
   What each read: the server's blocks (``pg_stat_database`` blks_hit + blks_read deltas, 8 kB
   each), rows (tup_returned + tup_fetched) and relations touched (``pg_statio_*``), and the
   child's own reads (``run_counted``).

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

import psycopg
from _site import QUICK, Site, Targets, machine, median, mib, run_counted, table

SMALL = 100_000
CHILD = r"""
import json, resource, sys, time
import psycopg
from powrops import integrity
from powrops.config import validate

url, record = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "plain"
statements = []

class Recording(psycopg.Connection):
    def execute(self, query, params=None, **kwargs):
        if record:
            statements.append(psycopg.ClientCursor(self).mogrify(query, params))
        return super().execute(query, params, **kwargs)

settings = validate({"database": {"url": url}})
started = time.perf_counter()
with Recording.connect(url, autocommit=True) as conn:
    if mode == "plain":
        report = integrity.run(conn, settings, store=False, full=True)
    else:  # baseline (full, stored), full or incremental (store off)
        report = integrity.run(conn, settings, store=mode == "baseline", full=mode != "incremental")
elapsed = time.perf_counter() - started
if record:
    with open(record, "w") as f:
        json.dump(statements, f)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
kept = {r.name: list(r.kept_ids) for r in report.results}
print(json.dumps({"seconds": elapsed, "counts": report.counts(), "peak_rss": peak,
                  "mode": report.mode, "why": report.why, "kept": kept, "scopes": report.scopes}))
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


DAILY_DML = """
-- a day's writes: sets of workouts 1..500 changed (updates, deletes, inserts)
UPDATE workout_sets SET weight = weight + 2.5 WHERE id <= 5000 AND id % 10 BETWEEN 1 AND 6;
DELETE FROM workout_sets WHERE id <= 5000 AND id % 10 = 0;
INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps)
    SELECT 1 + (g - 1) % 500, 1 + g % 20, 11 + (g - 1) / 500, 40, 5
    FROM generate_series(1, 1500) g;
-- planted: a bad weight (its workout's volume is recomputed below, as the application would)
UPDATE workout_sets SET weight = 2000 WHERE id = 4999;
-- what the application recomputes: those workouts' volumes and their users' totals
UPDATE workouts w SET total_volume = s.v
    FROM (SELECT workout_id, COALESCE(sum(weight * reps), 0) v FROM workout_sets
          WHERE workout_id BETWEEN 1 AND 500 GROUP BY 1) s
    WHERE w.id = s.workout_id AND w.total_volume IS DISTINCT FROM s.v;
UPDATE user_totals t SET workout_count = l.c, total_volume = l.v
    FROM (SELECT w.user_id, count(*)::int c, COALESCE(sum(s.v), 0) v FROM workouts w
          LEFT JOIN (SELECT workout_id, sum(weight * reps) v FROM workout_sets
                     WHERE workout_id IN (SELECT id FROM workouts WHERE user_id <= 500)
                     GROUP BY 1) s ON s.workout_id = w.id
          WHERE w.user_id <= 500 AND w.deleted_at IS NULL GROUP BY 1) l
    WHERE t.user_id = l.user_id AND (t.workout_count, t.total_volume) IS DISTINCT FROM (l.c, l.v);
-- edits elsewhere: workout notes, users' last activity
UPDATE workouts SET notes = 'edited' WHERE id BETWEEN {half} AND {half} + 1999;
UPDATE users SET last_active_at = now() WHERE id > 500 AND id <= 500 + {users_edited};
-- planted: an orphan set (foreign keys bypassed), a wrong volume, a wrong user total, and a set
-- deleted behind its workout's volume and its user's total
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps)
    VALUES ({orphan_parent}, 1, 1, 50, 5);
COMMIT;
UPDATE workouts SET total_volume = total_volume + 7 WHERE id = {wrong_volume};
UPDATE user_totals SET total_volume = total_volume + 7 WHERE user_id = {wrong_total};
DELETE FROM workout_sets WHERE id = {deleted_set};
"""

WRITES = """
SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables
WHERE schemaname = 'public' AND relname <> 'audit_log'
"""


def plant_daily(site: Site, dbname: str, sets: int) -> tuple[dict[str, set[str]], int]:
    """Run a day's DML on ``dbname``; the planted ids per check, and the rows written."""
    workouts = max(sets // 10, 10)
    users = max(workouts // 100, 10)
    deleted_set = sets - 5
    ids = {
        "half": workouts // 2,
        "users_edited": max(0, min(1995, users - 500)),
        "orphan_parent": workouts + 777,
        "wrong_volume": workouts // 2 + 3,
        "wrong_total": users - 1,
        "deleted_set": deleted_set,
    }
    before = int(query(site, dbname, WRITES)[0][0])
    psql(site, dbname, DAILY_DML.format(**ids))
    wait_idle(site, dbname)
    written = int(query(site, dbname, WRITES)[0][0]) - before
    deleted_workout = (deleted_set - 1) // 10 + 1
    orphan = query(
        site, dbname, f"SELECT max(id) FROM workout_sets WHERE workout_id = {ids['orphan_parent']}"
    )
    planted = {
        "weight_range": {"4999"},
        "orphan_workout_sets": {str(orphan[0][0])},
        "workout_total_volume": {str(ids["wrong_volume"]), str(deleted_workout)},
        "user_totals": {str(ids["wrong_total"]), str(1 + (deleted_workout - 1) % users)},
    }
    return planted, written


def query(site: Site, dbname: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**site.cluster.conninfo(dbname), autocommit=True) as conn:
        return conn.execute(text).fetchall()


def wait_idle(site: Site, dbname: str, timeout: float = 30) -> None:
    """Wait until no other session is connected to ``dbname``: their statistics are flushed."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        rows = query(
            site,
            dbname,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()",
        )
        if rows[0][0] == 0:
            return
        time.sleep(0.05)


SERVER_READS = """
SELECT d.blks_hit + d.blks_read, d.blks_read, d.tup_returned + d.tup_fetched,
       (SELECT json_object_agg(relid::text, COALESCE(heap_blks_read, 0) + COALESCE(heap_blks_hit, 0)
               + COALESCE(idx_blks_read, 0) + COALESCE(idx_blks_hit, 0)) FROM pg_statio_all_tables)
FROM pg_stat_database d WHERE d.datname = current_database()
"""


def server_counters(site: Site, dbname: str) -> tuple[int, int, int, dict[str, int]]:
    wait_idle(site, dbname)
    row = query(site, dbname, SERVER_READS)[0]
    return int(row[0]), int(row[1]), int(row[2]), {k: int(v or 0) for k, v in row[3].items()}


def server_delta(
    before: tuple[int, int, int, dict[str, int]], after: tuple[int, int, int, dict[str, int]]
) -> str:
    """What the server read between two counters: blocks (8 kB), rows and tables touched."""
    touched = sum(1 for k, v in after[3].items() if v != before[3].get(k, 0))
    blocks, disk, rows = after[0] - before[0], after[1] - before[1], after[2] - before[2]
    return (
        f"server: {touched} tables (with their indexes) touched, {mib(blocks * 8192)} in "
        f"{blocks:,} blocks ({mib(disk * 8192)} not in shared buffers), {rows:,} rows read"
    )


def daily_run(site: Site, dbname: str, mode: str) -> tuple[float, dict[str, Any], str]:
    """One check in a child process: (seconds in integrity.run, its output, what it read)."""
    url = site.cluster.url(dbname).replace("postgresql+psycopg://", "postgresql://")
    before = server_counters(site, dbname)
    _, result, reads = run_counted([sys.executable, "-c", CHILD, url, "", mode], site.powrops_env())
    after = server_counters(site, dbname)
    data = json.loads(result.stdout)
    return float(data["seconds"]), data, f"{server_delta(before, after)}; client: {reads.text()}"


PHYSICAL = ("amcheck", "checksum_failures", "data_checksums", "audit_trail")

TARGET_SETS = 10_000_000
"""The size the daily target is set at: below it, fixed costs (a child's first queries, the
physical checks) weigh more than the data and the ratio is printed for information."""


def found_planted(data: dict[str, Any], planted: dict[str, set[str]]) -> bool:
    return all(ids <= set(data["kept"][name]) for name, ids in planted.items())


def data_counts(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data["counts"].items() if k not in PHYSICAL}


def daily(site: Site, dbname: str, sets: int, rounds: int, targets: Targets) -> None:
    """The daily check after about 10,000 changed rows: incremental against full."""
    _, baseline, _ = daily_run(site, dbname, "baseline")
    print(f"daily: baseline full check stored ({baseline['seconds']:.2f} s)", flush=True)
    planted, written = plant_daily(site, dbname, sets)
    print(f"daily: {written:,} rows written by DML, planted {planted}", flush=True)
    times: dict[str, list[float]] = {"incremental": [], "full": []}
    reads: dict[str, str] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for mode in ("incremental", "full"):
            seconds, outputs[mode], reads[mode] = daily_run(site, dbname, mode)
            times[mode].append(seconds)
    inc, full = outputs["incremental"], outputs["full"]
    found = {m: found_planted(outputs[m], planted) for m in outputs}
    same = data_counts(inc) == data_counts(full)
    in_full = {n: s["why"] for n, s in inc["scopes"].items() if s["scope"] == "full"}
    print(f"daily: incremental mode {inc['mode']!r}; checks that read everything: {in_full}")
    failed = {k: v for k, v in data_counts(full).items() if v}
    print(f"daily: failed checks {failed}")
    rows = [
        [mode, " ".join(f"{t:.2f}" for t in times[mode]), f"{median(times[mode]):.2f}",
         "yes" if found[mode] else "NO", reads[mode]]
        for mode in ("incremental", "full")
    ]  # fmt: skip
    print(table(["check", "rounds s", "median s", "planted found", "read"], rows))
    ratio = median(times["incremental"]) / median(times["full"])
    verdict = f"informational below {TARGET_SETS:,} sets, where the target is set"
    if sets >= TARGET_SETS:
        verdict = targets.check("daily: incremental / full <= 0.1", ratio <= 0.1)
    print(
        f"daily incremental / full: {ratio:.3f} (target <= 0.1: {verdict}); "
        f"every planted defect found by both: "
        f"{targets.check('daily: planted defects found by both', all(found.values()))}; "
        f"same counts: {targets.check('daily: incremental counts = full counts', same)}"
    )


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
        daily(site, "large", args.sets, args.rounds, targets)
        print(f"end: {machine()}")
    finally:
        site.finish(args.keep)
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
