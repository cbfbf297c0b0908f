"""WAL archiving: ``powrops wal push`` per segment, and the archiver under pgbench load.

(a) Whole-process time of ``python -m powrops wal push --spec <state>/archive.json SEG``
    for a fresh 16 MiB segment copied (under a new timeline-9 name each run) from real WAL
    that pgbench wrote, run as the server's OS user like the archiver runs it. Target: median
    <= 150 ms. Shown beside it: ``cp``, ``zstd -1`` of the same file, interpreter start-up,
    the import of ``powrops.cli`` and of everything the push path imports, the push alone
    in-process, and the push with its bytecode cached under ``PYTHONPYCACHEPREFIX`` (the
    archiver's user cannot write ``__pycache__`` beside the sources of a root-owned checkout).
(b) ``pgbench -c 4 -j 2 -T 60`` on the cluster that archives through ``powrops wal push``,
    sampling ``pg_stat_archiver`` and the ``.ready`` files every second. Targets:
    failed_count 0; the ``.ready`` backlog back to <= 1 within 5 s after pgbench stops.
(c) The same sampling under 4 clients of bulk INSERTs (as much WAL as the machine writes), to
    show how the archiver copes when WAL comes faster than TPC-B-like load produces it.
    Informational: failed_count must still be 0.

Usage: bench_wal_push.py [--runs N] [--duration S] [--bulk-duration S] [--scale N] [--keep];
POWROPS_BENCH_QUICK=1 shrinks it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _site import QUICK, Site, Targets, machine, median, mib, percentile, table

SEGMENT = 16 * 2**20
TARGET_MEDIAN_MS = 150.0
DRAIN_TARGET_S = 5.0
PUSH_IMPORTS = (
    "powrops.__main__, powrops.backup.wal.entry, powrops.backup.wal.archive, "
    "powrops.storage.spec, "
    "powrops.storage.local, zstandard"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5 if QUICK else 20, help="wal push runs")
    parser.add_argument("--duration", type=int, default=10 if QUICK else 60, help="pgbench -T")
    parser.add_argument(
        "--bulk-duration", type=int, default=5 if QUICK else 30, help="bulk-insert load, s"
    )
    parser.add_argument("--scale", type=int, default=2 if QUICK else 20, help="pgbench scale")
    parser.add_argument("--keep", action="store_true", help="keep the site directory")
    return parser.parse_args()


# --- running as the server's OS user ---------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """Runs short processes as the cluster's OS user, in the environment the archiver has."""

    site: Site

    def kwargs(self, env: Mapping[str, str] | None) -> dict[str, Any]:
        user = self.site.cluster.os_user
        base = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.site.root),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
        }
        extra: dict[str, Any] = {"env": {**base, **(env or {})}, "cwd": str(self.site.root)}
        if not user.is_current:
            extra |= {"user": user.uid, "group": user.gid, "extra_groups": []}
        return extra

    def timed(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> float:
        started = time.perf_counter()
        result = subprocess.run(list(argv), capture_output=True, check=False, **self.kwargs(env))
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({result.returncode}): {detail}")
        return elapsed

    def give(self, path: Path) -> None:
        user = self.site.cluster.os_user
        if not user.is_current:
            os.chown(path, user.uid, user.gid)


# --- (a) one segment -------------------------------------------------------------------------


def real_segment(site: Site, seconds: int) -> bytes:
    """A complete 16 MiB WAL segment written while pgbench ran (read as superuser)."""
    start = site.sql("SELECT pg_current_wal_lsn()")[0][0]
    while True:
        site.pgbench("-n", "-c", "2", "-j", "2", "-T", str(seconds))
        rows = site.sql(
            "SELECT pg_walfile_name(pg_current_wal_lsn() - %s::numeric), "
            "pg_current_wal_lsn() - %s::numeric >= %s::pg_lsn + %s::numeric",
            (SEGMENT, SEGMENT, start, SEGMENT),
        )
        name, full = rows[0]
        if full:
            break
    data: bytes = site.sql("SELECT pg_read_binary_file('pg_wal/' || %s)", (name,))[0][0]
    if len(data) != SEGMENT:
        raise RuntimeError(f"segment {name} has {len(data)} bytes, expected {SEGMENT}")
    return data


@dataclass
class Series:
    """Timings of one command, in seconds."""

    title: str
    run: Callable[[int], float]
    seconds: list[float] = field(default_factory=list)

    def row(self) -> list[str]:
        ms = [s * 1000 for s in self.seconds]
        cells = [min(ms), median(ms), percentile(ms, 0.9), max(ms)]
        return [self.title, *(f"{v:.1f}" for v in cells)]


def segment_name(index: int) -> str:
    """A valid segment name on timeline 9 (which the cluster never uses), one per index."""
    return f"00000009{index // 256:08X}{index % 256:08X}"


def push_series(site: Site, runner: Runner, source: Path, work: Path) -> list[Series]:
    spec = str(site.state / "archive.json")
    python = sys.executable

    def fresh(index: int) -> Path:
        path = work / segment_name(index)
        shutil.copyfile(source, path)
        runner.give(path)
        return path

    def push(index: int) -> float:
        argv = [python, "-m", "powrops", "wal", "push", "--spec", spec, str(fresh(index))]
        return runner.timed(argv)

    cache = work / "pycache"
    cache.mkdir(mode=0o755)
    runner.give(cache)
    cached = {"PYTHONPYCACHEPREFIX": str(cache)}

    def push_cached(index: int) -> float:
        seg = str(fresh(40_000 + index))
        argv = [python, "-m", "powrops", "wal", "push", "--spec", spec, seg]
        return runner.timed(argv, cached)

    def zstd(index: int) -> float:
        seg = fresh(10_000 + index)
        return runner.timed(["zstd", "-1", "-q", "-f", str(seg), "-o", f"{seg}.zst"])

    def cp(index: int) -> float:
        seg = fresh(20_000 + index)
        return runner.timed(["cp", str(seg), f"{seg}.copy"])

    push_cached(-1)  # writes the bytecode cache
    series = [
        Series("powrops wal push (whole process)", push),
        Series("  the same, bytecode cached (PYTHONPYCACHEPREFIX)", push_cached),
    ]
    if shutil.which("zstd"):
        series.append(Series("zstd -1 SEG -o SEG.zst (no fsync)", zstd))
    else:
        print("zstd CLI not found (`apt-get install zstd`); its baseline row is left out")

    def python_c(code: str) -> Callable[[int], float]:
        return lambda _: runner.timed([python, "-c", code])

    series += [
        Series("cp SEG COPY (no fsync)", cp),
        Series("python -c pass", python_c("pass")),
        Series("python -c 'import powrops.cli' (full CLI)", python_c("import powrops.cli")),
        Series("python: import the push path", python_c(f"import {PUSH_IMPORTS}")),
    ]
    return series


def in_process_push(site: Site, source: Path, work: Path, runs: int) -> list[float]:
    """The push itself (read, compress, atomic durable write), without process start-up."""
    from powrops.backup.wal.archive import push
    from powrops.storage.spec import open_from_spec

    repo = open_from_spec(site.state / "archive.json")
    seconds = []
    for index in range(runs):
        path = work / segment_name(30_000 + index)
        shutil.copyfile(source, path)
        started = time.perf_counter()
        push(repo, path)
        seconds.append(time.perf_counter() - started)
    return seconds


def bench_segment(site: Site, runner: Runner, runs: int, seconds: int, targets: Targets) -> None:
    import zstandard

    print("(a) writing real WAL with pgbench for a source segment ...", flush=True)
    data = real_segment(site, seconds)
    ratio = len(data) / len(zstandard.ZstdCompressor(level=1).compress(data))
    zeros = data.count(0) / len(data)
    work = site.root / "walbench"
    work.mkdir(mode=0o755)
    runner.give(work)
    source = work / "source-segment"
    source.write_bytes(data)
    print(f"    source segment: 16 MiB, {zeros:.0%} zero bytes, zstd -1 ratio {ratio:.1f}x")
    series = push_series(site, runner, source, work)
    for index in range(runs):  # interleaved, so drift hits every series alike
        for one in series:
            one.seconds.append(one.run(index))
    local = Series("push() in-process (no start-up; root)", lambda _: 0.0)
    local.seconds = in_process_push(site, source, work, runs)
    series.insert(2, local)
    print()
    print(f"(a) wal push of one 16 MiB segment, {runs} runs as the server's OS user, ms")
    print(table(["command", "min", "median", "p90", "max"], [s.row() for s in series]))
    push_median = median(series[0].seconds) * 1000
    print(
        f"powrops wal push median {push_median:.1f} ms, target <= {TARGET_MEDIAN_MS:.0f} ms: "
        f"{targets.check('(a) wal push median', push_median <= TARGET_MEDIAN_MS)}"
    )
    if len(series) > 3 and series[3].title.startswith("zstd"):
        ratio = push_median / (median(series[3].seconds) * 1000)
        print(f"ratio median(wal push) / median(zstd -1): {ratio:.2f}")


# --- (b) the archiver under load --------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    lsn_bytes: int
    archived: int
    failed: int
    ready: int
    last: str  # last_archived_wal


SAMPLE_SQL = """
SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, archived_count, failed_count,
       (SELECT count(*) FROM pg_ls_dir('pg_wal/archive_status') f WHERE f LIKE '%.ready'),
       coalesce(last_archived_wal, '')
FROM pg_stat_archiver
"""


def sample(conn: Any, started: float) -> Sample:
    lsn, archived, failed, ready, last = conn.execute(SAMPLE_SQL).fetchone()
    at = time.monotonic() - started
    return Sample(at, int(lsn), int(archived), int(failed), int(ready), str(last))


def sample_until(
    conn: Any,
    started: float,
    done: Callable[[Sample], bool],
    limit: float,
    interval: float = 1.0,
) -> list[Sample]:
    samples = []
    deadline = time.monotonic() + limit
    while True:
        tick = time.monotonic()
        samples.append(sample(conn, started))
        if done(samples[-1]) or time.monotonic() > deadline:
            return samples
        time.sleep(max(0.0, interval - (time.monotonic() - tick)))


@dataclass(frozen=True)
class Load:
    """A write load on the archiving cluster and how its result is judged."""

    title: str
    argv: list[str]
    env: dict[str, str]
    duration: int
    judged: bool = True  # False: informational, no target


@dataclass(frozen=True)
class LoadRun:
    during: list[Sample]
    after: list[Sample]
    ran: float
    tps: str
    stored: int  # segments the repository gained
    switched: str  # the segment pg_switch_wal() finished after pgbench stopped
    padding: int  # bytes the switch skipped to the end of that segment

    def first_after(self, condition: Callable[[Sample], bool]) -> float | None:
        """Seconds after pgbench stopped until ``condition`` first held."""
        hit = next((s for s in self.after if condition(s)), None)
        return None if hit is None else max(0.0, hit.at - self.ran)


def switch_wal(conn: Any) -> tuple[str, int]:
    """pg_switch_wal(): the segment it finished and the bytes it skipped."""
    row = conn.execute(
        "SELECT pg_walfile_name(lsn), pg_current_wal_lsn() - lsn "
        "FROM (SELECT pg_switch_wal() AS lsn) s"
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def run_load(site: Site, load: Load) -> LoadRun:
    """Run the load, sampling every second until it ends and the backlog drains."""
    stored_before = repository_segments(site)
    with site.connect() as conn:
        conn.execute("SELECT pg_stat_reset_shared('archiver')")
        started = time.monotonic()
        pipe = subprocess.PIPE
        bench = subprocess.Popen(load.argv, env=load.env, stdout=pipe, stderr=pipe, text=True)
        during = sample_until(
            conn, started, lambda _: bench.poll() is not None, load.duration + 120
        )
        out, err = bench.communicate()
        ran = time.monotonic() - started
        if bench.returncode != 0:
            raise RuntimeError(f"pgbench failed ({bench.returncode}): {err[-2000:]}")
        switched, padding = switch_wal(conn)
        after = sample_until(
            conn, started, lambda s: s.ready <= 1 and s.last >= switched, 120, interval=0.5
        )
    tps = next((line for line in out.splitlines() if line.startswith("tps")), "tps ?")
    stored = repository_segments(site) - stored_before
    return LoadRun(during, after, ran, tps, stored, switched, padding)


def repository_segments(site: Site) -> int:
    """WAL segments of the cluster in the repository (not the timeline-9 copies of (a))."""
    root = site.state / "backups" / "wal"
    return sum(
        1 for p in root.rglob("*.zst") if len(p.name) == 28 and not p.name.startswith("00000009")
    )


def print_timeline(run: LoadRun) -> None:
    every = max(1, len(run.during) // 12)
    base = run.during[0].lsn_bytes
    shown = run.during[::every]
    if shown[-1] is not run.during[-1]:
        shown.append(run.during[-1])
    phases = [("load", s, 0) for s in shown] + [("after", s, run.padding) for s in run.after]
    rows = [
        [f"{s.at:5.1f}", phase, mib(s.lsn_bytes - base - skip), s.archived, s.failed, s.ready]
        for phase, s, skip in phases
    ]
    print(table(["t (s)", "phase", "WAL since start", "archived", "failed", ".ready"], rows))


def report_load(load: Load, run: LoadRun, judge: Callable[[str, bool], str]) -> None:
    """The archiver's figures under ``load``; ``judge(name, ok)`` gives each target's
    verdict."""
    print_timeline(run)
    last = run.after[-1]
    wal = last.lsn_bytes - run.during[0].lsn_bytes
    wal -= run.padding
    late = last.lsn_bytes - run.during[-1].lsn_bytes - run.padding
    drain = run.first_after(lambda s: s.ready <= 1)
    switch = run.first_after(lambda s: s.last >= run.switched)
    max_ready = max(s.ready for s in [*run.during, *run.after])
    label = "target" if load.judged else "informational, target"
    print(f"pgbench ran {run.ran:.1f} s, {run.tps}")
    rate = wal / run.ran / 2**20
    print(f"WAL generated: {mib(wal)} ({wal / SEGMENT:.1f} segments, {rate:.1f} MiB/s)")
    print(f"  of which after pgbench stopped (autovacuum, checkpoint): {mib(late)}")
    print(f"archived_count: {last.archived} (the repository gained {run.stored} segments)")
    print(f"failed_count: {last.failed}   target 0: {judge('failed_count 0', last.failed == 0)}")
    stop = run.during[-1].ready
    print(f".ready backlog: max {max_ready}, when pgbench stopped {stop}, final {last.ready}")
    ok = drain is not None and drain <= DRAIN_TARGET_S
    target = f"{label} <= {DRAIN_TARGET_S:.0f} s"
    verdict = judge(f"backlog <= 1 within {DRAIN_TARGET_S:.0f} s", ok)
    print(f"backlog <= 1 {seconds(drain)} after pgbench stopped, {target}: {verdict}")
    print(f"pg_switch_wal() at the stop: {run.switched} archived {seconds(switch)} later")
    print(f"(WAL figures leave out the {mib(run.padding)} the switch skipped)")


def seconds(value: float | None) -> str:
    return "never (within 120 s)" if value is None else f"{value:.1f} s"


BULK_SCRIPT = (
    "INSERT INTO bench_bulk SELECT g, md5(random()::text) || md5(g::text) "
    "FROM generate_series(1, 2000) g;\n"
)


def bulk_load(site: Site, duration: int) -> Load:
    """Bulk inserts from 4 clients: as much WAL as this machine can write."""
    site.sql("CREATE TABLE IF NOT EXISTS bench_bulk (id int, payload text)")
    script = site.root / "bulk.sql"
    script.write_text(BULK_SCRIPT)
    argv = site.client_argv(
        "pgbench", "-n", "-c", "4", "-j", "2", "-T", str(duration), "-f", str(script), "powr"
    )
    title = f"bulk INSERTs, pgbench -c 4 -j 2 -T {duration} -f bulk.sql (stress, informational)"
    return Load(title, argv, site.client_env(), duration, judged=False)


def tpcb_load(site: Site, duration: int) -> Load:
    argv = site.client_argv("pgbench", "-n", "-c", "4", "-j", "2", "-T", str(duration), "powr")
    return Load(f"pgbench -c 4 -j 2 -T {duration}", argv, site.client_env(), duration)


def bench_load(site: Site, part: str, load: Load, targets: Targets) -> None:
    """The archiver under ``load``; its targets count only when the load is judged (the bulk
    INSERTs are an informational stress)."""

    def judge(name: str, ok: bool) -> str:
        if load.judged:
            return targets.check(f"({part}) {name}", ok)
        return "met" if ok else "not met (informational)"

    print()
    print(f"({part}) archiver under {load.title} ...", flush=True)
    site.wait_archiver_idle()
    report_load(load, run_load(site, load), judge)


def main() -> int:
    args = parse_args()
    targets = Targets()
    site = Site.create("bench-wal")
    print(f"site: {site.root}; {machine()}")
    try:
        print(f"pgbench -i -s {args.scale} ...", flush=True)
        site.pgbench("-i", "-s", str(args.scale), "-q")
        runner = Runner(site)
        bench_segment(site, runner, args.runs, 3 if QUICK else 10, targets)
        bench_load(site, "b", tpcb_load(site, args.duration), targets)
        bench_load(site, "c", bulk_load(site, args.bulk_duration), targets)
        print(f"\nat the end: {machine()}")
    finally:
        site.finish(args.keep)
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
