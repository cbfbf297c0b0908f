"""powrops beside pgBackRest and the raw PostgreSQL tools, on the same PostgreSQL 15 cluster.

One cluster (Debian's PostgreSQL 15, a pgbench database of ``--scale``) archives every WAL file
to both tools through one ``archive_command`` (a small script calling ``powrops wal push`` and
``pgbackrest archive-push``). Then ``--rounds`` interleaved rounds (each round starts with
another tool, and what an operation wrote is flushed before the next one is timed) of:

1. a full backup: A ``powrops backup full``, B ``pgbackrest backup --type=full``, C
   ``pg_basebackup -Ft -X fetch -D - | zstd -1 -T0 > file``;
2. verification of one full backup: A ``powrops verify LABEL``, B ``pgbackrest verify`` (the
   stanza keeps one full, ``repo1-retention-full=1``, so it checks one backup and its WAL), C
   ``pg_verifybackup`` of a plain copy made once by ``pg_basebackup -Fp``; with the files and
   bytes each tool's verification read, so that the comparison is of the same work.
   pgBackRest 2.45 verifies each file against its repository checksum (``rck`` in its
   manifest: SHA-1 of the stored, compressed bytes) and decompresses nothing; powrops' like
   work is ``verify LABEL`` of a backup whose content was checked once already (it reads every
   stored object of the backup and its WAL and checks their SHA-256). The first verification
   of a new backup, which also decodes its zstd frames side by side, checks every file against
   ``backup_manifest`` and parses the WAL of its range, is timed on its own line against
   ``pg_verifybackup`` of the plain copy (which parses the WAL too, and has nothing to
   decompress), with what each read (pgBackRest's verify has no such step);
3. a restore until the server accepts writes: A ``powrops restore LABEL --immediate --start``,
   B ``pgbackrest restore --type=immediate --target-action=promote`` then ``pg_ctl start`` and
   wait for the end of recovery, C ``zstd -dc file | tar -x`` then ``pg_ctl start``.

pgBackRest is configured like powrops' repository: zstd level 1 (``compress-type=zst``,
``compress-level=1``), a local ``repo1-path``, and as many processes as powrops uses cores
(``process-max`` = ``os.cpu_count()``: powrops compresses with zstd on every core,
``threads=-1``). pgBackRest is installed from Debian
(``apt-get install pgbackrest``) when missing. Each round also measures the fixed cost of
``powrops verify`` (the interpreter's start, the command's imports, its settings), printed beside
its time. Targets: verify at most 0.8x pgBackRest's in every round; restore no slower than
pgBackRest; the full backup within 1.05x of the raw tools and ahead of pgBackRest; powrops'
first read of a new backup within 1.5x ``pg_verifybackup`` of a plain copy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from _site import QUICK, Reads, Site, Targets, machine, median, mib, run_counted, run_timed, table

from powrops.pg.cluster import LocalCluster, free_port

DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")
T = TypeVar("T")
STANZA = "bench"
#: pgBackRest's processes: the cores powrops' zstd compression uses (``threads=-1``: all)
PROCESS_MAX = os.cpu_count() or 1
QUIET_S = 30.0  # the longest wait for the archivers before a measurement
#: powrops' first read of a new backup against pg_verifybackup of a plain copy, at most
FIRST_READ = 1.5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5 if QUICK else 65,
                        help="pgbench scale (65: about 1 GB)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1 if QUICK else 3)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


def ensure_tools() -> str:
    """pgbackrest's path; Debian's package and postgresql-15 are installed when missing."""
    wanted = {
        "pgbackrest": shutil.which("pgbackrest") is not None,
        "postgresql-15": DEBIAN_15.exists(),
        "zstd": shutil.which("zstd") is not None,
    }
    missing = [package for package, there in wanted.items() if not there]
    if missing:
        print(f"installing {', '.join(missing)} from Debian ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    path = shutil.which("pgbackrest")
    if path is None:
        sys.exit("pgbackrest is not installed and could not be installed")
    return path


class Bench:
    def __init__(self, scale: int) -> None:
        self.site = Site.create("pgbackrest", {"postgres": {"bin_dir": str(DEBIAN_15)}})
        self.cluster: LocalCluster = self.site.cluster
        self.user = self.cluster.os_user
        self.work = self.site.root / "work"
        self.work.mkdir()
        os.chown(self.work, self.user.uid, self.user.gid)  # restored servers' logs go here
        self.pgbr = self.site.root / "pgbackrest"
        self.socket = self.site.root / "socket"
        for folder in (self.pgbr, self.socket, self.pgbr / "repo", self.pgbr / "log",
                       self.pgbr / "lock", self.pgbr / "spool"):  # fmt: skip
            folder.mkdir(exist_ok=True)
            os.chown(folder, self.user.uid, self.user.gid)
        self.conf = self.pgbr / "pgbackrest.conf"
        self.scale = scale
        self.restore_steps: list[dict[str, float]] = []  # powrops' own timings of each restore

    # -- set-up --------------------------------------------------------------------------------

    def setup(self) -> None:
        data = self.cluster.data_dir
        self.conf.write_text(
            "[global]\n"
            f"repo1-path={self.pgbr / 'repo'}\nrepo1-retention-full=1\n"
            f"log-path={self.pgbr / 'log'}\nlock-path={self.pgbr / 'lock'}\n"
            f"spool-path={self.pgbr / 'spool'}\n"
            f"compress-type=zst\ncompress-level=1\nprocess-max={PROCESS_MAX}\nstart-fast=y\n"
            "log-level-console=warn\nlog-level-file=off\n"
            f"[{STANZA}]\npg1-path={data}\npg1-port={self.cluster.port}\n"
            f"pg1-socket-path={self.socket}\npg1-user=postgres\n"
        )
        os.chmod(self.conf, 0o644)
        # pgBackRest connects over the Unix socket; trust it there (this benchmark's cluster only)
        hba = data / "pg_hba.conf"
        hba.write_text("local all all trust\n" + hba.read_text())
        powrops_push = self.site.sql("SHOW archive_command")[0][0]
        script = self.site.root / "archive.sh"
        script.write_text(
            "#!/bin/sh\nset -e\n"
            + powrops_push.replace("%p", '"$1"') + "\n"
            + f'pgbackrest --config={self.conf} --stanza={STANZA} archive-push "$1"\n'
        )  # fmt: skip
        os.chmod(script, 0o755)
        self.site.sql(f"ALTER SYSTEM SET unix_socket_directories = '{self.socket}'")
        self.site.sql(f"ALTER SYSTEM SET archive_command = '{script} %p'")
        self.cluster.stop()
        self.cluster.start()
        self.pgbackrest("stanza-create")
        print(f"pgbench -i -s {self.scale} ...", flush=True)
        self.site.pgbench("-i", "-s", str(self.scale), "-q")
        self.site.sql("CHECKPOINT")
        self.pgbackrest("check")
        size = self.site.sql("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0]
        print(f"cluster: PostgreSQL 15, {mib(size)} in its databases; pgBackRest "
              f"process-max={PROCESS_MAX}, powrops compresses on {os.cpu_count()} cores",
              flush=True)  # fmt: skip

    def pgbackrest(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return self.cluster.run(["pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}",
                                 *args], timeout=timeout, what=f"pgbackrest {args[0]}")  # fmt: skip

    def powrops(self, *args: str) -> dict[str, object]:
        proc = subprocess.run(self.site.powrops_argv(*args, "--json"), env=self.site.powrops_env(),
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"powrops {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr[-2000:]}{proc.stdout[-2000:]}")  # fmt: skip
        return dict(json.loads(proc.stdout))

    def client(self, program: str) -> str:
        return str(self.cluster.binaries.path(program))

    # -- the operations ------------------------------------------------------------------------

    def backup_powrops(self) -> tuple[float, str]:
        started = time.perf_counter()
        out = self.powrops("backup", "full")
        took = time.perf_counter() - started
        record = out.get("record") or out
        return took, str(record["label"])  # type: ignore[index]

    def backup_pgbackrest(self) -> float:
        started = time.perf_counter()
        self.pgbackrest("backup", "--type=full")
        return time.perf_counter() - started

    def backup_raw(self) -> float:
        out = self.work / "raw.tar.zst"
        script = (
            f"{self.client('pg_basebackup')} -h 127.0.0.1 -p {self.cluster.port} -U postgres "
            f"-D - -Ft -X fetch --manifest-checksums=CRC32C -c fast | zstd -1 -T0 -q -f -o {out}"
        )
        started = time.perf_counter()
        subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True,
                       env=self.site.client_env())  # fmt: skip
        return time.perf_counter() - started

    def verify_powrops(self, label: str) -> tuple[float, str]:
        """``powrops verify LABEL``; what it read, and whether it decompressed the backup."""
        started = time.perf_counter()
        out = self.powrops("verify", label)
        took = time.perf_counter() - started
        figures = out["figures"]
        assert isinstance(figures, dict)
        rows = out["backups"]
        assert isinstance(rows, list)
        content = next(r["content"] for r in rows if r["label"] == label)
        how = ("decompressed and every file checked against backup_manifest" if content == "ok"
               else f"SHA-256 of the stored bytes (content {content})")  # fmt: skip
        read = (f"{figures.get('files_checked', 0)} files + {figures.get('wal_checked', 0)} WAL, "
                f"{mib(figures.get('bytes_read', 0))} stored; {how}")  # fmt: skip
        return took, read

    def quiet(self) -> float:
        """Wait until the server has archived every finished WAL segment (both archivers run
        from one archive_command after each backup's segment switch), at most ``QUIET_S``: a
        measurement that overlaps them measures them too, whichever tool it is. The seconds
        waited."""
        started = time.monotonic()
        while time.monotonic() - started < QUIET_S:
            pending = self.site.sql(
                "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
            )[0][0]
            if not pending:
                break
            time.sleep(0.05)
        return time.monotonic() - started

    def fixed_cost(self) -> dict[str, float]:
        """What ``powrops verify`` costs before it reads a byte, as the benchmark starts it
        (``python -m powrops``): the interpreter's start, then the imports the command makes,
        then its settings loaded, each the difference of two child processes."""
        steps = {
            "start": "pass",
            "imports": "import powrops.__main__, powrops.cli.main, powrops.cli.verify, "
            "powrops.verify",
            "settings": "import powrops.__main__, powrops.cli.main, powrops.cli.verify, "
            "powrops.verify; from powrops.config import load_settings; load_settings()",
        }
        env = self.site.powrops_env()
        took = {
            name: run_timed([sys.executable, "-c", code], env)[0] for name, code in steps.items()
        }
        return {
            "start": took["start"],
            "imports": max(0.0, took["imports"] - took["start"]),
            "settings": max(0.0, took["settings"] - took["imports"]),
        }

    def first_read_powrops(self, label: str) -> tuple[float, Reads]:
        """``powrops verify LABEL`` of a new backup: its first read (the data object decoded
        and checked against backup_manifest, the WAL of its range parsed); what it read."""
        took, result, reads = run_counted(self.site.powrops_argv("verify", label, "--json"),
                                          self.site.powrops_env())  # fmt: skip
        out = json.loads(result.stdout)
        content = next(r["content"] for r in out["backups"] if r["label"] == label)
        if content != "ok":
            raise RuntimeError(f"powrops verify {label}: not a first read (content {content})")
        figures = out["figures"]
        files = int(figures.get("files_checked", 0)) + int(figures.get("wal_checked", 0))
        return took, Reads(reads.chars, reads.disk, reads.calls, files)

    def first_read_raw(self) -> tuple[float, Reads]:
        """``pg_verifybackup`` of the plain copy (its WAL parse included); what it read."""
        plain = self.plain_copy()
        files = sum(1 for f in plain.rglob("*") if f.is_file())
        took, _, reads = run_counted([self.client("pg_verifybackup"), "-q", str(plain)],
                                     files=files)  # fmt: skip
        return took, reads

    def verify_pgbackrest(self) -> tuple[float, str]:
        started = time.perf_counter()
        proc = self.pgbackrest("verify", "--verbose", "--log-level-console=info")
        took = time.perf_counter() - started
        text = proc.stdout + proc.stderr
        files = re.findall(r"checked: (\d+)", text)
        wal = re.search(r"total WAL checked: (\d+)", text)
        files_text = f"{files[-1]} files" if files else "files: see its log"
        stored = sum(f.stat().st_size for f in (self.pgbr / "repo").rglob("*") if f.is_file())
        return took, (f"{files_text} + {wal.group(1) if wal else '?'} WAL, {mib(stored)} stored; "
                      f"{self.repo_checksums()}")  # fmt: skip

    def repo_checksums(self) -> str:
        """How pgBackRest's verify checks the files of its newest backup: against the checksum
        of the stored bytes (``rck``), without decompressing, or by decompressing them."""
        backups = sorted((self.pgbr / "repo" / "backup" / STANZA).glob("*F"))
        manifest = (backups[-1] / "backup.manifest").read_text()
        entries = re.findall(r"^pg_data/\S+=\{.*\}$", manifest, flags=re.MULTILINE)
        stored = sum('"rck":' in entry for entry in entries)
        return (f"{stored} of {len(entries)} files checked against the SHA-1 of their stored "
                "bytes (rck), without decompressing; the others decompressed")  # fmt: skip

    def decompress_pgbackrest(self) -> float:
        """``zstd -dc`` of every file of pgBackRest's newest backup: the least a check of the
        decompressed content costs, to set beside its ``verify``."""
        backups = sorted((self.pgbr / "repo" / "backup" / STANZA).glob("*F"))
        files = [str(f) for f in backups[-1].rglob("*.zst")]
        started = time.perf_counter()
        with subprocess.Popen(["zstd", "-dc", "-q"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL) as unzstd:  # fmt: skip
            assert unzstd.stdin is not None
            for name in files:
                unzstd.stdin.write(Path(name).read_bytes())
            unzstd.stdin.close()
        return time.perf_counter() - started

    def plain_copy(self) -> Path:
        plain = self.work / "plain"
        if not plain.exists():
            subprocess.run([self.client("pg_basebackup"), "-h", "127.0.0.1", "-p",
                            str(self.cluster.port), "-U", "postgres", "-D", str(plain), "-Fp",
                            "-X", "fetch", "-c", "fast"], check=True,
                           env=self.site.client_env())  # fmt: skip
        return plain

    def verify_raw(self) -> tuple[float, str]:
        """``pg_verifybackup`` of the plain copy, as its first-read line runs it."""
        took, reads = self.first_read_raw()
        return took, reads.text()

    def _start_and_wait(self, data: Path) -> None:
        """Start a restored data directory and wait until it accepts writes (it keeps running
        until ``_remove``)."""
        port = free_port()
        opts = (f"-p {port} -c unix_socket_directories={self.socket} -c archive_mode=off "
                "-c listen_addresses=''")  # fmt: skip
        self.cluster.run([self.client("pg_ctl"), "-D", str(data), "-o", opts, "-w", "-t", "600",
                          "-l", str(data.parent / f"{data.name}.log"), "start"],
                         timeout=900, what="pg_ctl start")  # fmt: skip
        psql = [self.client("psql"), "-h", str(self.socket), "-p", str(port), "-U", "postgres",
                "-d", "postgres", "-Atc", "SELECT pg_is_in_recovery()"]  # fmt: skip
        while self.cluster.run(psql, check=False).stdout.strip() != "f":
            time.sleep(0.05)

    def _fresh(self, name: str) -> Path:
        self._remove(name)  # left by a failed round only: normally removed after the timing
        data = self.work / name
        data.mkdir(mode=0o700)
        os.chown(data, self.user.uid, self.user.gid)
        return data

    def _remove(self, *names: str) -> None:
        """Stop a restored server and remove what its restore wrote: after the timing, so that
        the deletion is flushed before the next operation (``timed``), not during it."""
        for name in names:
            data = self.work / name
            if (data / "postmaster.pid").exists():
                self.cluster.run([self.client("pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "stop"], check=False)  # fmt: skip
            shutil.rmtree(data, ignore_errors=True)

    def restore_powrops(self, label: str) -> float:
        data = self.work / "restored-powrops"
        self._remove(data.name, f"{data.name}.powrops")  # left by a failed round only
        started = time.perf_counter()
        out = self.powrops("restore", label, "--to", str(data), "--immediate", "--start")
        took = time.perf_counter() - started
        self.restore_steps.append(dict(out.get("timings") or {}))  # type: ignore[arg-type]
        self._remove(data.name, f"{data.name}.powrops")
        return took

    def restore_pgbackrest(self) -> float:
        data = self._fresh("restored-pgbackrest")
        started = time.perf_counter()
        self.pgbackrest("restore", f"--pg1-path={data}", "--type=immediate",
                        "--target-action=promote", "--archive-mode=off")  # fmt: skip
        self._start_and_wait(data)
        took = time.perf_counter() - started
        self._remove(data.name)
        return took

    def restore_raw(self) -> float:
        data = self._fresh("restored-raw")
        stored = self.work / "raw.tar.zst"
        started = time.perf_counter()
        self.cluster.run(["bash", "-o", "pipefail", "-c",
                          f"zstd -dc -q {stored} | tar -x -C {data}"], timeout=900)  # fmt: skip
        self._start_and_wait(data)
        took = time.perf_counter() - started
        self._remove(data.name)
        return took

    def destroy(self) -> None:
        self._remove("restored-powrops", "restored-pgbackrest", "restored-raw")
        self.site.destroy()


def _rotate(round_no: int, items: list[T]) -> list[T]:
    """``items`` starting at the round's turn: round 1 as given, round 2 from the second..."""
    turn = (round_no - 1) % len(items)
    return items[turn:] + items[:turn]


def main() -> int:
    args = parse_args()
    targets = Targets()
    ensure_tools()
    print(f"machine: {machine()}", flush=True)
    bench = Bench(args.scale)
    times: dict[str, list[float]] = {}
    reads: dict[str, str] = {}

    def note(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)
        print(f"  {key}: {seconds:.2f} s", flush=True)

    def timed(key: str, operation: Callable[[], float]) -> None:
        bench.quiet()  # the previous operation's WAL is not archived during this one
        os.sync()  # nor what it wrote flushed
        note(key, operation())

    newest = {"label": ""}  # powrops' backup of the current round

    def backup_powrops() -> float:
        took, newest["label"] = bench.backup_powrops()
        return took

    def verify(key: str, run: Callable[[], tuple[float, str]]) -> Callable[[], float]:
        def measure() -> float:
            took, reads[key] = run()
            return took

        return measure

    verify_powrops = verify("powrops", lambda: bench.verify_powrops(newest["label"]))
    steps = [
        [
            ("backup/powrops", backup_powrops),
            ("backup/pgbackrest", bench.backup_pgbackrest),
            ("backup/raw", bench.backup_raw),
        ],
        [
            ("verify/powrops", verify_powrops),
            ("verify/pgbackrest", verify("pgbackrest", bench.verify_pgbackrest)),
            ("verify/raw", verify("raw", bench.verify_raw)),
        ],
        [
            ("restore/powrops", lambda: bench.restore_powrops(newest["label"])),
            ("restore/pgbackrest", bench.restore_pgbackrest),
            ("restore/raw", bench.restore_raw),
        ],
    ]
    first_reads: dict[str, Reads] = {}

    def first_read(tool: str, run: Callable[[], tuple[float, Reads]]) -> Callable[[], float]:
        def measure() -> float:
            took, first_reads[tool] = run()
            return took

        return measure

    first = [
        (
            "first read/powrops",
            first_read("powrops", lambda: bench.first_read_powrops(newest["label"])),
        ),
        ("first read/raw", first_read("pg_verifybackup", bench.first_read_raw)),
    ]
    try:
        bench.setup()
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}", flush=True)
            # each round starts with another tool: none always runs first, or after a restore
            for index, operations in enumerate(steps):
                if index == 1:  # powrops' first read of its new backup checks the content
                    for key, operation in _rotate(round_no, first):
                        timed(key, operation)
                for key, operation in _rotate(round_no, operations):
                    timed(key, operation)
            timed("decompress/pgbackrest", bench.decompress_pgbackrest)
            for part, seconds in bench.fixed_cost().items():
                times.setdefault(f"fixed/{part}", []).append(seconds)
    finally:
        if args.keep:
            print(f"kept: {bench.site.root}")
        else:
            bench.destroy()

    med = {key: median(values) for key, values in times.items()}
    rows = []
    for op in ("backup", "verify", "restore"):
        p, b, r = med[f"{op}/powrops"], med[f"{op}/pgbackrest"], med[f"{op}/raw"]
        rows.append([op, f"{r:.2f} s", f"{b:.2f} s ({b / r:.2f}x raw)",
                     f"{p:.2f} s", f"{p / r:.2f}x", f"{p / b:.2f}x"])  # fmt: skip
    print()
    print(f"medians of {args.rounds} interleaved rounds, pgbench scale {args.scale}, PostgreSQL 15")
    print(table(["operation", "raw tools", "pgBackRest", "powrops", "powrops/raw",
                 "powrops/pgBackRest"], rows))  # fmt: skip
    print()
    print("what each verification read:")
    for tool, text in reads.items():
        print(f"  {tool}: {text}")
    unzstd = med["decompress/pgbackrest"]
    print(f"  zstd -dc of the files of pgBackRest's backup alone: {unzstd:.2f} s "
          f"(its verify: {med['verify/pgbackrest']:.2f} s)")  # fmt: skip
    fixed = {part: med[f"fixed/{part}"] for part in ("start", "imports", "settings")}
    print(
        f"  the fixed cost of powrops' verify (before it reads a byte): "
        f"{sum(fixed.values()):.2f} s of its {med['verify/powrops']:.2f} s: "
        + ", ".join(f"{part} {seconds * 1000:.0f} ms" for part, seconds in fixed.items())
    )
    ratios = [
        p / b for p, b in zip(times["verify/powrops"], times["verify/pgbackrest"], strict=True)
    ]
    print("  verify powrops/pgBackRest per round: " + ", ".join(f"{r:.2f}x" for r in ratios))
    first, plain = med["first read/powrops"], med["first read/raw"]
    verdict = targets.check(f"first read <= {FIRST_READ}x pg_verifybackup",
                            first <= FIRST_READ * plain)  # fmt: skip
    print(f"  powrops' first verification of each new backup (its frames decoded side by side "
          f"and its content checked against backup_manifest, the WAL of its range parsed; once "
          f"per backup): {first:.2f} s, {first / plain:.2f}x pg_verifybackup of a plain copy "
          f"({plain:.2f} s, its WAL parse included), target <= {FIRST_READ}x: "
          f"{verdict}")  # fmt: skip
    for tool, counted in first_reads.items():
        print(f"    {tool} read: {counted.text()}")
    print()
    checks = [
        ("verify <= 0.8x pgBackRest in every round", max(ratios) <= 0.8),
        ("restore <= pgBackRest", med["restore/powrops"] <= med["restore/pgbackrest"]),
        ("backup <= 1.05x raw", med["backup/powrops"] <= 1.05 * med["backup/raw"]),
        ("backup ahead of pgBackRest", med["backup/powrops"] < med["backup/pgbackrest"]),
    ]
    for name, ok in checks:
        print(f"  {name}: {targets.check(name, ok)}")
    print("powrops' restore steps per round (its own timings, seconds):")
    for steps in bench.restore_steps:
        print("  " + ", ".join(f"{key.removesuffix('_s')} {value:.2f}"
                               for key, value in steps.items()))  # fmt: skip
    print(f"machine at the end: {machine()}")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
