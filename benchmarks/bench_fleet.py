"""What one server costs a scheduler: every scheduled job run once, as the schedule runs it.

Builds a site (the embedded cluster, migrated, with the demo data: 50 users, 26 weeks), runs
each job of the job table once through the ``powrops`` command with the job's environment, and
prints per job: wall time, exit code, runs per day at the configured cadence and worker-seconds
per day; then the repository bytes a day adds (one full, the incrementals, the WAL segments
that ``archive_timeout`` forces at most) and how many servers one Airflow worker slot carries.

Usage: ``.venv/bin/python benchmarks/bench_fleet.py [--keep]``. Informational: no target.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _site import Site, machine

from powrops.format import human_bytes
from powrops.schedule import job_environment, jobs, paths

DAY = 86400.0
SKIP = {"backup-copy"}  # no secondary repository on this site


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    exe = str(Path(sys.executable).parent / "powrops")
    site = Site.create(
        "fleet",
        {"schedule": {"executable": exe, "run_as_roles": False},
         "backup": {"storage": {"secondary": None}}},
    )  # fmt: skip
    try:
        env = site.powrops_env()
        for step in (("migrate", "latest"), ("seed", "--users", "50", "--weeks", "26")):
            subprocess.run([exe, *step], env=env, check=True, capture_output=True)
        settings = site.settings
        where = paths(settings, site.config)
        rows = []
        for job in jobs(settings):
            if job.name in SKIP:
                continue
            started = time.monotonic()
            done = subprocess.run(
                [where.executable, *job.args],
                env={**env, **job_environment(settings, job, where)},
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            took = time.monotonic() - started
            per_day = DAY / float(job.every.seconds or DAY)
            rows.append((job.name, took, done.returncode, per_day, took * per_day))
        print(f"\n{'job':24} {'wall s':>8} {'exit':>4} {'runs/day':>9} {'s/day':>9}")
        for name, took, code, per_day, busy in rows:
            print(f"{name:24} {took:8.1f} {code:4d} {per_day:9.2f} {busy:9.1f}")
        runs = sum(r[3] for r in rows)
        busy = sum(r[4] for r in rows)
        print(f"{'total':24} {'':8} {'':4} {runs:9.1f} {busy:9.1f}")

        listed = subprocess.run([exe, "backup", "list", "--json"], env=env, check=True,
                                capture_output=True, text=True)  # fmt: skip
        import json

        backups = json.loads(listed.stdout)
        size = {b["kind"]: b.get("stored_size") or 0 for b in backups}
        wal_dir = site.state / "backups"
        segments = [p for p in wal_dir.rglob("*") if p.is_file() and "wal" in p.as_posix()]
        seg = max((p.stat().st_size for p in segments), default=0)
        logs_s = float(settings.backup.schedule.logs.seconds or 900)
        incr_per_day = DAY / float(settings.backup.schedule.incremental.seconds or 3600)
        print(f"\nbackups: {backups and [(b['kind'], b.get('stored_size')) for b in backups]}")
        print(f"largest stored WAL segment: {human_bytes(seg)}; at most {DAY / logs_s:.0f} "
              "forced switches a day")  # fmt: skip
        print(f"repository bytes a day, idle server: full {human_bytes(size.get('full', 0))} + "
              f"{incr_per_day:.0f} incrementals x {human_bytes(size.get('incremental', 0))} + "
              f"WAL <= {human_bytes(seg * DAY / logs_s)}")  # fmt: skip
        print(f"one worker slot carries {DAY / busy:.0f} servers at 100 % busy, "
              f"{0.5 * DAY / busy:.0f} at 50 %")  # fmt: skip
    finally:
        print(f"machine at the end: {machine()}")
        site.finish(args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
