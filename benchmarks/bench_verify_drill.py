"""Verification and drill RTO against the same steps done by hand with PostgreSQL's tools.

1. ``powrops verify LABEL --content`` of one ~1 GB full backup (``--content`` so that every
   round does what the backup's first read does) against the same work done by hand with the
   raw tools on the same stored objects (:func:`by_hand_script`). Both read each stored object
   once, computing its SHA-256 in the same pass as its decompression, and unpack nothing: the
   data object's files checked against ``backup_manifest`` (powrops in the decompressed
   stream; by hand ``pg_verifybackup --format=tar``, which reads a regular file only, so the
   decompressed tar is written to memory, ``/dev/shm``, first: the one step powrops does not
   take), the manifest hashed, every archived WAL object from the backup's start decompressed
   to the end (its zstd frame checksum), and the WAL of the backup's range decompressed into
   memory and parsed by ``pg_waldump`` with the arguments ``pg_verifybackup`` gives it (which
   cannot parse WAL for a tar-format backup itself). Target <= 1.3.
2. ``powrops drill`` RTO (restore start to the restored server accepting queries) against the
   raw steps: unpack the full and the incremental, ``pg_combinebackup``, write the recovery
   settings (``restore_command`` decompressing archived WAL with ``zstd``), start, replay to the
   target, promoted. Target <= 1.2.

Run with POWROPS_BENCH_QUICK=1 for a small database.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _site import QUICK, Site, Targets, machine, median, mib, table

from powrops.backup import repos


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5 if QUICK else 70, help="pgbench scale")
    parser.add_argument("--rounds", type=int, default=1 if QUICK else 2)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


def powrops_json(site: Site, *args: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    proc = subprocess.run(
        site.powrops_argv(*args, "--json"),
        env=site.powrops_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(
            f"powrops {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    return elapsed, json.loads(proc.stdout)


def repo_root(site: Site) -> Path:
    return Path(repos.primary_url(site.settings).removeprefix("file://"))


def by_hand_script(site: Site, label: str, range_segments: list[str], scratch: Path) -> str:
    """The work of ``powrops verify LABEL --content`` with the raw tools, as a bash script.

    Each stored object is read once, ``tee`` feeding ``sha256sum`` beside the decompression:
    the WAL objects ``verify LABEL`` reads (timeline histories, segments from the backup's
    start on) through ``zstd -t``; the segments of the backup's range decompressed into
    ``scratch`` and parsed by ``pg_waldump`` (the manifest's ``WAL-Ranges``, with the
    arguments ``pg_verifybackup`` gives it); the manifest hashed; the data object decompressed
    into ``scratch`` as ``base.tar`` (``pg_verifybackup`` reads no pipe), which
    ``pg_verifybackup --format=tar --no-parse-wal`` checks file by file against
    ``backup_manifest``. Nothing is unpacked or written to disk (``scratch`` is in memory, like
    powrops' scratch folder).
    """
    root = repo_root(site)
    folder = root / "backups" / label
    start = json.loads((folder / "backup.json").read_text())["start_wal"]
    wal = sorted(p for p in (root / "wal").rglob("*.zst")
                 if p.name.endswith(".history.zst") or p.name[:24] >= start)  # fmt: skip
    binaries = site.cluster.binaries
    manifest = json.loads((folder / "backup_manifest").read_text())
    lines = [f"mkdir {scratch}/backup {scratch}/wal",
             f"ln -s {folder / 'backup_manifest'} {scratch}/backup/backup_manifest"]  # fmt: skip
    lines += [f"tee >(sha256sum >/dev/null) < {path} | zstd -tq" for path in wal]
    for name in range_segments:
        stored = root / "wal" / name[:16] / f"{name}.zst"
        lines.append(f"zstd -dcq {stored} > {scratch}/wal/{name}")
    for wal_range in manifest["WAL-Ranges"]:
        lines.append(f"{binaries.path('pg_waldump')} --quiet --path={scratch}/wal "
                     f"--timeline={wal_range['Timeline']} --start={wal_range['Start-LSN']} "
                     f"--end={wal_range['End-LSN']}")  # fmt: skip
    lines.append(f"sha256sum {folder / 'backup_manifest'} > /dev/null")
    lines.append(f"tee >(sha256sum >/dev/null) < {folder / 'base.tar.zst'} "
                 f"| zstd -dcq > {scratch}/backup/base.tar")  # fmt: skip
    lines.append(f"{binaries.path('pg_verifybackup')} -q -F t -n {scratch}/backup")
    return "\n".join(["set -e -o pipefail", *lines])


def by_hand_verify(site: Site, label: str, range_segments: list[str]) -> float:
    """Seconds of :func:`by_hand_script` in a scratch folder in memory (``/dev/shm``)."""
    scratch = Path(tempfile.mkdtemp(prefix="powrops-byhand-", dir="/dev/shm"))
    try:
        script = by_hand_script(site, label, range_segments, scratch)
        started = time.perf_counter()
        subprocess.run(["bash", "-c", script], check=True)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def range_segments(report: dict[str, object], label: str) -> list[str]:
    """The WAL segments of ``label``'s range that powrops parsed (its content finding)."""
    findings = report["findings"]
    assert isinstance(findings, list)
    for found in findings:
        if found["check"] == "content" and found["object"] == label:
            return [str(name) for name in found["details"].get("wal_segments") or []]
    raise RuntimeError(f"powrops verify reported no content check of {label}")


def raw_restore(site: Site, chain: list[str], target_time: str, work: Path) -> float:
    """The drill's restore with the raw tools; seconds to a promoted server accepting queries."""
    cluster = site.cluster
    bins = cluster.binaries
    root = repo_root(site)
    base = work / "raw"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    base.chmod(0o755)
    user = cluster.os_user
    started = time.perf_counter()
    parts = []
    for label in chain:
        part = base / label
        part.mkdir()
        subprocess.run(
            [
                "bash",
                "-o",
                "pipefail",
                "-c",
                f"zstd -dc -q {root}/backups/{label}/base.tar.zst | tar -x -C {part}",
            ],
            check=True,
        )
        parts.append(str(part))
    data = base / "pgdata"
    if len(parts) > 1:
        subprocess.run([str(bins.path("pg_combinebackup")), *parts, "-o", str(data)], check=True)
    else:
        Path(parts[0]).rename(data)
    port = cluster.port + 1000 if cluster.port < 64000 else cluster.port - 1000
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            f"restore_command = 'f=$(ls {root}/wal/*/%f.zst 2>/dev/null) "
            f'&& zstd -dcq "$f" > %p\'\n'
            f"recovery_target_time = '{target_time}'\nrecovery_target_action = 'promote'\n"
            f"archive_mode = off\nport = {port}\n"
        )
    (data / "recovery.signal").touch()
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(base)], check=True)
    data.chmod(0o700)
    log = base / "log"
    subprocess.run(
        [
            "runuser",
            "-u",
            user.name,
            "--",
            str(bins.path("pg_ctl")),
            "start",
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "600",
        ],
        check=True,
        capture_output=True,
    )
    import psycopg

    while True:
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user="postgres",
                password=cluster.password,
                dbname="powr",
                connect_timeout=2,
            ) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                    break
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    subprocess.run(
        [
            "runuser",
            "-u",
            user.name,
            "--",
            str(bins.path("pg_ctl")),
            "stop",
            "-D",
            str(data),
            "-m",
            "immediate",
        ],
        check=False,
        capture_output=True,
    )
    shutil.rmtree(base, ignore_errors=True)
    return elapsed


def main() -> int:
    args = parse_args()
    targets = Targets()
    site = Site.create("bench-verify")
    work = site.root / "work"
    work.mkdir()
    work.chmod(0o755)
    try:
        print(f"machine: {machine()}", flush=True)
        print(f"building the database: pgbench -i -s {args.scale} ...", flush=True)
        site.pgbench("-i", "-s", str(args.scale), "-q")
        from powrops import migrate

        migrate.upgrade(
            site.cluster.url()
        )  # the drill counts POWR tables and writes markers in ops
        _, full = powrops_json(site, "backup", "full")
        site.pgbench("-c", "2", "-T", "5" if QUICK else "20")
        _, inc = powrops_json(site, "backup", "incremental")
        print(
            f"full {full['label']}: {mib(int(full['raw_size']))} raw, "  # type: ignore[arg-type]
            f"{mib(int(full['stored_size']))} stored; incremental {inc['label']}",
            flush=True,
        )  # type: ignore[arg-type]
        from powrops import migrate

        migrate.upgrade(
            site.cluster.url()
        )  # the drill counts POWR tables and writes markers in ops
        mine, theirs = [], []
        for _ in range(args.rounds):
            seconds, report = powrops_json(site, "verify", str(full["label"]), "--content")
            mine.append(seconds)
            segments = range_segments(report, str(full["label"]))
            theirs.append(by_hand_verify(site, str(full["label"]), segments))
        print()
        print(
            table(
                ["verify of one full backup", "round times (s)", "median (s)"],
                [
                    [
                        "powrops verify LABEL --content",
                        " ".join(f"{t:.2f}" for t in mine),
                        f"{median(mine):.2f}",
                    ],
                    [
                        "by hand: tee | sha256sum, zstd -d | pg_verifybackup -F t, pg_waldump",
                        " ".join(f"{t:.2f}" for t in theirs),
                        f"{median(theirs):.2f}",
                    ],
                ],
            )
        )
        ratio = median(mine) / median(theirs)
        verdict = targets.check("verify <= 1.3x by hand", ratio <= 1.3)
        print(f"ratio {ratio:.2f} (target <= 1.3): {verdict}", flush=True)

        rto, raw = [], []
        for _ in range(args.rounds):
            _, drill = powrops_json(site, "drill")
            rto.append(float(drill["rto_s"]))  # type: ignore[arg-type]
            chain = [str(c) for c in drill["chain"]]  # type: ignore[union-attr]
            raw.append(raw_restore(site, chain, str(drill["target"]["value"]), work))  # type: ignore[index]
        print()
        print(
            table(
                ["drill RTO (restore start to accepting queries)", "round times (s)", "median (s)"],
                [
                    ["powrops drill", " ".join(f"{t:.2f}" for t in rto), f"{median(rto):.2f}"],
                    [
                        "raw: zstd -d | tar x, pg_combinebackup, start, replay",
                        " ".join(f"{t:.2f}" for t in raw),
                        f"{median(raw):.2f}",
                    ],
                ],
            )
        )
        ratio = median(rto) / median(raw)
        verdict = targets.check("drill RTO <= 1.2x raw", ratio <= 1.2)
        print(f"ratio {ratio:.2f} (target <= 1.2): {verdict}")
    finally:
        site.finish(args.keep)
    print(f"machine at the end: {machine()}")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
