"""The first read of a new backup against ``pg_verifybackup`` of a plain copy of the same data.

On the embedded PostgreSQL 18 cluster, a pgbench database of ``--scale`` is backed up once by
``powrops backup full`` and copied once by ``pg_basebackup -Fp -X fetch`` (a plain data
directory with its manifest and the WAL of its range). Then ``--rounds`` interleaved rounds of:

A. ``powrops verify LABEL --content``: what the first verification of a new backup does (every
   round, ``--content``): the stored object read once, its SHA-256 computed, its zstd frames
   decoded side by side and every file checked against ``backup_manifest``, and the WAL of the
   backup's range parsed by ``pg_waldump`` (with the archived WAL it reads);
B. ``pg_verifybackup`` of the plain copy: every file's size and CRC32C against the manifest,
   then the WAL parsed; nothing to decompress.

Each tool's reads (files, bytes, from the kernel's I/O accounting) are printed beside its
time. Target: median(A) <= 1.5 x median(B). Run with POWROPS_BENCH_QUICK=1 for a small
database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _site import QUICK, Reads, Site, Targets, machine, median, mib, run_counted, table

TARGET = 1.5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5 if QUICK else 50,
                        help="pgbench scale (50: about 750 MB)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3 if QUICK else 5)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


def plain_copy(site: Site, work: Path) -> tuple[Path, int, int]:
    """A plain copy of the data by ``pg_basebackup -Fp -X fetch``; its files and bytes."""
    plain = work / "plain"
    run_counted(site.client_argv("pg_basebackup", "-D", str(plain), "-Fp", "-X", "fetch",
                                 "-c", "fast", "--manifest-checksums=CRC32C"),
                site.client_env())  # fmt: skip
    files = [f for f in plain.rglob("*") if f.is_file()]
    return plain, len(files), sum(f.stat().st_size for f in files)


def first_read(site: Site, label: str) -> tuple[float, Reads, dict[str, object]]:
    """``powrops verify LABEL --content``: (seconds, what it read, its figures)."""
    took, result, reads = run_counted(site.powrops_argv("verify", label, "--content", "--json"),
                                      site.powrops_env())  # fmt: skip
    report = json.loads(result.stdout)
    row = next(r for r in report["backups"] if r["label"] == label)
    if row["content"] != "ok":
        raise RuntimeError(f"powrops verify {label}: content {row['content']}")
    figures = dict(report["figures"])
    files = int(figures.get("files_checked", 0)) + int(figures.get("wal_checked", 0))
    return took, Reads(reads.chars, reads.disk, reads.calls, files), figures


def verifybackup(site: Site, plain: Path, files: int) -> tuple[float, Reads]:
    """``pg_verifybackup`` of the plain copy, its WAL parse included."""
    program = str(site.cluster.binaries.path("pg_verifybackup"))
    took, _, reads = run_counted([program, "-q", str(plain)], site.client_env(), files=files)
    return took, reads


def main() -> int:
    args = parse_args()
    targets = Targets()
    print(f"machine: {machine()}", flush=True)
    site = Site.create("bench-first-read")
    work = site.root / "work"
    work.mkdir()
    try:
        print(f"building the database: pgbench -i -s {args.scale} ...", flush=True)
        site.pgbench("-i", "-s", str(args.scale), "-q")
        _, backup, _ = run_counted(site.powrops_argv("backup", "full", "--json"),
                                   site.powrops_env())  # fmt: skip
        record = json.loads(backup.stdout)
        record = record.get("record") or record
        label = str(record["label"])
        data = next(f for f in record["files"] if f["name"] == "base.tar.zst")
        frames = data.get("frames") or {}
        plain, files, size = plain_copy(site, work)
        print(f"backup {label}: {mib(int(record['raw_size']))} raw, {mib(int(data['stored_size']))}"
              f" stored in {len(frames.get('sizes', [])) or 1} zstd frames; plain copy: {files} "
              f"files, {mib(size)}; {os.cpu_count()} cores", flush=True)  # fmt: skip
        mine: list[float] = []
        inner: list[float] = []  # powrops' own timing of its reads (the process's start aside)
        theirs: list[float] = []
        reads: dict[str, Reads] = {}
        figures: dict[str, object] = {}
        for round_no in range(1, args.rounds + 1):
            order = ["A", "B"] if round_no % 2 else ["B", "A"]
            for which in order:
                os.sync()
                if which == "A":
                    took, reads["A"], figures = first_read(site, label)
                    mine.append(took)
                    inner.append(float(figures["seconds"]["checksums"]))  # type: ignore[index]
                else:
                    took, reads["B"] = verifybackup(site, plain, files)
                    theirs.append(took)
                print(f"  round {round_no} {which}: {took:.2f} s", flush=True)
        print()
        print(table(["first read of one full backup", "round times (s)", "median (s)", "read"], [
            ["A powrops verify LABEL --content", " ".join(f"{t:.2f}" for t in mine),
             f"{median(mine):.2f}", reads["A"].text()],
            ["B pg_verifybackup of a plain copy", " ".join(f"{t:.2f}" for t in theirs),
             f"{median(theirs):.2f}", reads["B"].text()],
        ]))  # fmt: skip
        print(f"powrops' own timings of its last round: {json.dumps(figures.get('seconds'))}, "
              f"WAL parse {json.dumps(figures.get('wal_parse'))}")  # fmt: skip
        print(f"powrops' reads by its own timing (the stored objects read, the content checked, "
              f"the WAL parsed; the command's start, configuration and reports aside): median "
              f"{median(inner):.2f} s, {median(inner) / median(theirs):.2f}x pg_verifybackup "
              "(informational)")  # fmt: skip
        ratio = median(mine) / median(theirs)
        verdict = targets.check(f"first read <= {TARGET}x pg_verifybackup", ratio <= TARGET)
        print(f"first read (content + WAL parse): {ratio:.2f}x pg_verifybackup of a plain copy "
              f"(target <= {TARGET}): {verdict}")  # fmt: skip
    finally:
        site.finish(args.keep)
        print(f"machine at the end: {machine()}", flush=True)
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
