"""Report notebooks: what each report costs beyond its queries.

Every report of ``notebooks/`` is run as the scheduler runs it, ``powrops report run NAME``
(a new ``python -m powrops`` process: papermill, a real kernel, the executed notebook,
``report.html`` and ``result.json`` archived, the index rebuilt), on a benchmark site with
the demo data (50 users, 26 weeks, as ``make demo``; no backups, so the verification report
finds none and restores nothing). One untimed warm-up run of each report, then ``--rounds``
interleaved rounds; medians.

The query time of a run is measured on the server and charged generously to the report:
the execution and planning time of every top-level statement of the run (the sums of
``pg_stat_statements.total_exec_time`` and ``total_plan_time``, planning tracked for the
benchmark, the statistics reset before the run; nothing else runs on the site's cluster),
plus one client round trip per statement (the median ``SELECT 1`` round trip of this
machine times the statements' ``calls``) and one connection set-up per session the run
opened (the median ``psycopg.connect`` time times the growth of ``pg_stat_database.sessions``).
Everything else is overhead: ``overhead = wall time - query time``, which counts the Python
work around the queries, the plots and the tables as overhead too. ``cpu`` is the CPU time
(user + system) of the command and its kernel: the machine's other load stretches the wall
time, not this.

Where the rest goes, from the archive's own timestamps (papermill's in the executed
notebook): ``start`` (process start to papermill's start: interpreter, imports, settings,
the database's identity, the notebook and its parameters), ``kernel`` (to the first cell:
kernel launch and handshake), ``cells`` (the cells' own durations, queries included),
``between`` (papermill's work between cells), ``end`` (last cell to papermill's end: kernel
shut down) and ``archive`` (to the process's exit: HTML, files, index).

Target, per report: median overhead <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from _data import seed_demo
from _site import Reads, Site, Targets, machine, median, run_counted, table

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
TAG = "/* bench_reports */"
#: ``powrops report run`` exits 1 (WARNING) or 2 (CRITICAL) for what a report found on the
#: demo data; only 3 (could not run) or worse is a failure of the run.
ACCEPT_FINDINGS = '"$@"; rc=$?; [ "$rc" -le 2 ] || exit "$rc"'
PHASES = ("start", "kernel", "cells", "between", "end", "archive")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", help="reports to run (default: all of notebooks/)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


@dataclass(frozen=True)
class Latency:
    """What one statement's round trip and one connection cost on this machine."""

    round_trip: float
    connect: float


@dataclass
class Run:
    """One ``powrops report run``: wall time, query time and where the rest went."""

    wall: float
    cpu: float
    db: float
    statements: int
    sessions: int
    latency: Latency
    reads: Reads
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def query(self) -> float:
        lat = self.latency
        return self.db + self.statements * lat.round_trip + self.sessions * lat.connect

    @property
    def overhead(self) -> float:
        return self.wall - self.query


def report_names(chosen: list[str]) -> list[str]:
    return chosen or sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))


def prepare(site: Site) -> None:
    """Demo data, and planning time tracked by pg_stat_statements."""
    seed_demo(site)
    site.sql("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
    site.sql("SELECT pg_reload_conf()")


def latency(site: Site) -> Latency:
    conninfo = site.cluster.conninfo("powr")
    trips, connects = [], []
    with site.connect() as conn:
        for _ in range(300):
            started = time.perf_counter()
            conn.execute(f"SELECT 1 {TAG}").fetchall()
            trips.append(time.perf_counter() - started)
    for _ in range(20):
        started = time.perf_counter()
        psycopg.connect(**conninfo).close()
        connects.append(time.perf_counter() - started)
    return Latency(median(trips), median(connects))


def sessions(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(f"SELECT sum(sessions) FROM pg_stat_database {TAG}").fetchone()
    return int(row[0]) if row else 0


def statements(conn: psycopg.Connection[Any]) -> tuple[float, int]:
    """Seconds of execution and planning, and calls, of the top-level statements since the
    reset (the benchmark's own, tagged, left out)."""
    row = conn.execute(
        "SELECT coalesce(sum(total_exec_time + total_plan_time), 0), coalesce(sum(calls), 0) "
        f"FROM pg_stat_statements WHERE toplevel AND query NOT LIKE '%bench_reports%' {TAG}"
    ).fetchone()
    return (float(row[0]) / 1000, int(row[1])) if row else (0.0, 0)


def wait_for_disconnects(conn: psycopg.Connection[Any], timeout: float = 10) -> None:
    """Until the run's server processes have exited (their statistics are then counted)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
        f"AND pid <> pg_backend_pid() {TAG}"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(query).fetchone()
        if row and int(row[0]) == 0:
            return
        time.sleep(0.02)


def run_once(site: Site, name: str, lat: Latency) -> Run:
    argv = ["sh", "-c", ACCEPT_FINDINGS, "sh", *site.powrops_argv("report", "run", name)]
    with site.connect() as conn:
        before = sessions(conn)
        conn.execute(f"SELECT pg_stat_statements_reset() {TAG}")
        started, cpu = time.time(), children_cpu()
        wall, result, reads = run_counted(argv, site.powrops_env())
        ended, cpu = time.time(), children_cpu() - cpu
        wait_for_disconnects(conn)
        db, calls = statements(conn)
        opened = sessions(conn) - before
    run_dir = archived(result.stdout.decode("utf-8", "replace"), name)
    run = Run(wall, cpu, db, calls, opened, lat, reads)
    run.phases = phases(run_dir, started, ended)
    return run


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far: the command and
    its kernel (the command waits for its kernel, so the kernel's time is counted too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def archived(stdout: str, name: str) -> Path:
    """The run's folder, from the command's ``NAME: STATUS -> .../report.html`` line; a run
    the report itself marked failed stops the benchmark."""
    lines = [line for line in stdout.splitlines() if line.startswith(f"{name}: ")]
    if not lines or " -> " not in lines[-1]:
        raise RuntimeError(f"{name}: no archived run in the output: {stdout[-500:]!r}")
    run_dir = Path(lines[-1].split(" -> ", 1)[1]).parent
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    if result.get("failed"):
        raise RuntimeError(f"{name} failed: {result.get('error')}")
    return run_dir


def _moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def phases(run_dir: Path, started: float, ended: float) -> dict[str, float]:
    """Where the wall time went, from papermill's timestamps in the executed notebook."""
    nb = json.loads((run_dir / "notebook.ipynb").read_text(encoding="utf-8"))
    pm = nb["metadata"]["papermill"]
    cells = [
        c["metadata"]["papermill"]
        for c in nb["cells"]
        if c["cell_type"] == "code" and c["metadata"].get("papermill", {}).get("start_time")
    ]
    first, last = _moment(cells[0]["start_time"]), _moment(cells[-1]["end_time"])
    own = sum(float(c["duration"]) for c in cells)
    return {
        "start": _moment(pm["start_time"]) - started,
        "kernel": first - _moment(pm["start_time"]),
        "cells": own,
        "between": last - first - own,
        "end": _moment(pm["end_time"]) - last,
        "archive": ended - _moment(pm["end_time"]),
    }


def summary(runs: list[Run]) -> dict[str, float]:
    keys = {"wall": "wall", "cpu": "cpu", "query": "query", "db": "db", "overhead": "overhead"}
    out = {k: median([float(getattr(r, attr)) for r in runs]) for k, attr in keys.items()}
    out["statements"] = median([r.statements for r in runs])
    out["sessions"] = median([r.sessions for r in runs])
    for phase in PHASES:
        out[phase] = median([r.phases[phase] for r in runs])
    return out


def report_rows(names: list[str], runs: dict[str, list[Run]], targets: Targets) -> list[list[str]]:
    rows = []
    for name in names:
        s = summary(runs[name])
        verdict = targets.check(f"{name}: overhead <= {TARGET_S:g} s", s["overhead"] <= TARGET_S)
        rows.append([name, f"{s['wall']:.2f}", f"{s['cpu']:.2f}", f"{s['db']:.3f}",
                     f"{s['statements']:.0f}", f"{s['sessions']:.0f}", f"{s['query']:.2f}",
                     f"{s['overhead']:.2f}",
                     f"{statistics.pstdev([r.overhead for r in runs[name]]):.2f}",
                     verdict])  # fmt: skip
    return rows


def phase_rows(names: list[str], runs: dict[str, list[Run]]) -> list[list[str]]:
    return [[name, *(f"{summary(runs[name])[p]:.2f}" for p in PHASES)] for name in names]


def main() -> int:
    args = parse_args()
    targets = Targets()
    print(f"machine: {machine()}")
    names = report_names(args.reports)
    site = Site.create("bench-reports")
    try:
        prepare(site)
        lat = latency(site)
        print(f"round trip {lat.round_trip * 1e3:.3f} ms, connection {lat.connect * 1e3:.1f} ms")
        for name in names:  # warm-up: bytecode compiled, caches filled, first snapshot taken
            warm = run_once(site, name, lat)
            print(f"warm-up {name}: wall {warm.wall:.2f} s, overhead {warm.overhead:.2f} s")
        runs: dict[str, list[Run]] = {name: [] for name in names}
        for round_no in range(1, args.rounds + 1):
            for name in names:
                run = run_once(site, name, lat)
                runs[name].append(run)
                print(f"round {round_no} {name}: wall {run.wall:.2f} s (cpu {run.cpu:.2f} s), "
                      f"query {run.query:.3f} s, overhead {run.overhead:.2f} s; "
                      f"{run.reads.text()}")  # fmt: skip
        print()
        print(f"medians of {args.rounds} rounds (seconds)")
        headers = ["report", "wall", "cpu", "db", "statements", "sessions", "query", "overhead",
                   "stdev", f"overhead <= {TARGET_S:g} s"]  # fmt: skip
        print(table(headers, report_rows(names, runs, targets)))
        print()
        print("where the wall time went (medians, seconds)")
        print(table(["report", *PHASES], phase_rows(names, runs)))
        print(f"machine: {machine()}")
    finally:
        site.finish(args.keep)
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
