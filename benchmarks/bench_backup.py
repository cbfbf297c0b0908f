"""Full backup: ``powrops backup full`` against the raw pg_basebackup | zstd pipeline.

Builds a pgbench database (scale 70, about 1 GB) in a benchmark site's embedded cluster, then
runs, interleaved round by round:

A  ``powrops backup full`` as a whole CLI process into the site's ``file://`` repository
   (stream, zstd, SHA-256, read-back verification, registration);
B  the baseline ``pg_basebackup -D - -Ft -X fetch --manifest-checksums=CRC32C -c fast |
   zstd -1 -T0 > file`` (only when the zstd CLI is installed);
C  pg_basebackup's stdout compressed by python-zstandard at level 1 with all threads, written
   to a file: the same compressor powrops uses, without anything else powrops does.

Target: median(A) / median(B) <= 1.3 (median(A) / median(C) when the zstd CLI is missing).

Usage: bench_backup.py [--scale N] [--rounds N] [--keep]; POWROPS_BENCH_QUICK=1 shrinks it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _site import QUICK, Site, Targets, machine, median, mib, run_timed, table

TARGET_RATIO = 1.3
CHUNK = 1 << 20


@dataclass(frozen=True)
class Measure:
    """One round of one variant."""

    seconds: float
    stored: int
    raw: int = 0
    steps: dict[str, float] = field(default_factory=dict)


Round = Callable[[int], Measure]


@dataclass
class Variant:
    """One way of taking a full backup, and what its rounds measured."""

    key: str
    title: str
    run: Round
    measures: list[Measure] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [m.seconds for m in self.measures]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5 if QUICK else 70, help="pgbench scale")
    parser.add_argument("--rounds", type=int, default=1 if QUICK else 3, help="rounds per variant")
    parser.add_argument("--keep", action="store_true", help="keep the site directory")
    return parser.parse_args()


def basebackup_argv(site: Site) -> list[str]:
    return site.client_argv(
        "pg_basebackup",
        "-D", "-", "-Ft", "-X", "fetch", "--manifest-checksums=CRC32C", "-c", "fast", "-w",
    )  # fmt: skip


def powrops_round(site: Site) -> Round:
    def run(_: int) -> Measure:
        argv = site.powrops_argv("backup", "full", "--json")
        started = time.perf_counter()
        result = subprocess.run(argv, env=site.powrops_env(), capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if result.returncode not in (0, 1):  # 1: a step warned (e.g. disk space)
            raise RuntimeError(f"powrops backup full failed ({result.returncode}): {result.stderr}")
        record: dict[str, Any] = json.loads(result.stdout)
        steps = {f"{s['phase']} {s['name']}": float(s["seconds"]) for s in record["steps"]}
        return Measure(elapsed, int(record["stored_size"]), int(record["raw_size"]), steps)

    return run


def zstd_cli_round(site: Site, out_dir: Path) -> Round:
    def run(index: int) -> Measure:
        out = out_dir / f"cli-{index}.tar.zst"
        pipeline = " ".join(basebackup_argv(site)) + f" | zstd -1 -T0 -q > {out}"
        elapsed, _ = run_timed(["bash", "-o", "pipefail", "-c", pipeline], env=site.client_env())
        return Measure(elapsed, out.stat().st_size)

    return run


def zstandard_round(site: Site, out_dir: Path) -> Round:
    def run(index: int) -> Measure:
        import zstandard

        out = out_dir / f"py-{index}.tar.zst"
        started = time.perf_counter()
        proc = subprocess.Popen(
            basebackup_argv(site), stdout=subprocess.PIPE, env=site.client_env()
        )
        assert proc.stdout is not None
        compressor = zstandard.ZstdCompressor(level=1, threads=-1)
        with out.open("wb") as handle, compressor.stream_writer(handle, closefd=False) as zstd:
            while chunk := proc.stdout.read(CHUNK):
                zstd.write(chunk)
        if proc.wait() != 0:
            raise RuntimeError(f"pg_basebackup failed ({proc.returncode})")
        return Measure(time.perf_counter() - started, out.stat().st_size)

    return run


def build_database(site: Site, scale: int) -> None:
    print(f"building the database: pgbench -i -s {scale} ...", flush=True)
    started = time.perf_counter()
    site.pgbench("-i", "-s", str(scale), "-q")
    print(f"  pgbench -i took {time.perf_counter() - started:.1f} s", flush=True)
    site.sql("CHECKPOINT")
    site.sql("SELECT pg_switch_wal()")
    waited = site.wait_archiver_idle()
    print(f"  archiver backlog drained in {waited:.1f} s", flush=True)
    size = site.sql("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0]
    print(f"  databases: {mib(int(size))}", flush=True)


def run_rounds(variants: list[Variant], rounds: int) -> None:
    for index in range(1, rounds + 1):
        for variant in variants:
            measure = variant.run(index)
            variant.measures.append(measure)
            print(
                f"  round {index} {variant.key}: {measure.seconds:6.2f} s, {mib(measure.stored)}",
                flush=True,
            )


def report_rounds(variants: list[Variant], rounds: int) -> None:
    headers = ["variant", *(f"round {i}" for i in range(1, rounds + 1)), "median", "stored"]
    rows = [
        [
            f"{v.key} {v.title}",
            *(f"{s:.2f} s" for s in v.seconds),
            f"{median(v.seconds):.2f} s",
            mib(median([float(m.stored) for m in v.measures])),
        ]
        for v in variants
    ]
    print()
    print(table(headers, rows))


def report_steps(powrops: Variant) -> None:
    """Where a powrops run spends its time: its own step timings vs the whole process."""
    rows = []
    for name in powrops.measures[0].steps:
        values = [m.steps.get(name, 0.0) for m in powrops.measures]
        rows.append([name, f"{median(values):.2f} s"])
    other = [m.seconds - sum(m.steps.values()) for m in powrops.measures]
    rows.append(["outside the steps (start-up, config, lock, ...)", f"{median(other):.2f} s"])
    rows.append(["whole process", f"{median(powrops.seconds):.2f} s"])
    print()
    print("powrops backup full, median per step (from the backup record):")
    print(table(["step", "median"], rows))
    last = powrops.measures[-1]
    ratio = last.raw / max(last.stored, 1)
    print(
        f"raw size (tar stream) {mib(last.raw)}, stored {mib(last.stored)} ({ratio:.1f}x smaller)"
    )


def report_ratios(
    powrops: Variant, baselines: list[Variant], target_key: str, targets: Targets
) -> None:
    print()
    for base in baselines:
        ratio = median(powrops.seconds) / median(base.seconds)
        line = f"ratio median({powrops.key}) / median({base.key}) = {ratio:.2f}"
        if base.key == target_key:
            name = f"median({powrops.key}) / median({base.key}) <= {TARGET_RATIO}"
            line += f"   target <= {TARGET_RATIO}: {targets.check(name, ratio <= TARGET_RATIO)}"
        else:
            line += "   (informational)"
        print(line)


def baselines_for(site: Site, out_dir: Path) -> list[Variant]:
    """B when the zstd CLI is installed (the target's baseline), and C always."""
    found = []
    if shutil.which("zstd"):
        found.append(Variant("B", "pg_basebackup | zstd -1 -T0", zstd_cli_round(site, out_dir)))
    else:
        print("zstd CLI not found: `apt-get install zstd` gives the target's baseline (B);")
        print("comparing against python-zstandard (C) instead")
    title = "pg_basebackup -> python zstandard(1, threads=-1)"
    found.append(Variant("C", title, zstandard_round(site, out_dir)))
    return found


def benchmark(site: Site, scale: int, rounds: int, targets: Targets) -> None:
    build_database(site, scale)
    out_dir = site.root / "baseline"
    out_dir.mkdir()
    powrops = Variant("A", "powrops backup full (CLI, file://)", powrops_round(site))
    baselines = baselines_for(site, out_dir)
    variants = [powrops, *baselines]
    print(f"running {rounds} interleaved rounds of {' '.join(v.key for v in variants)}")
    run_rounds(variants, rounds)
    report_rounds(variants, rounds)
    report_steps(powrops)
    report_ratios(powrops, baselines, baselines[0].key, targets)
    print(f"at the end: {machine()}")


def main() -> int:
    args = parse_args()
    targets = Targets()
    site = Site.create("bench-backup", {"backup": {"procedure": {"post": {"cleanup_old": False}}}})
    print(f"site: {site.root}; {machine()}")
    try:
        benchmark(site, args.scale, args.rounds, targets)
    finally:
        site.finish(args.keep)
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
