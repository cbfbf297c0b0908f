"""Shared pieces of the powrops benchmarks: a benchmark site and small timing helpers.

A site is a directory under /tmp (mode 0755, so the PostgreSQL OS user can enter it) holding a
``powrops.toml`` and the embedded cluster that powrops starts under ``<site>/state``. powrops
configures that cluster to archive WAL through ``powrops wal push`` into the ``file://``
repository ``<site>/state/backups``.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from powrops.config import Settings, load_settings, merge, to_toml
from powrops.pg import embedded
from powrops.pg.cluster import LocalCluster
from powrops.pg.embedded import embedded_cluster

QUICK = os.environ.get("POWROPS_BENCH_QUICK", "") not in ("", "0")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without POWROPS_* and PG* variables, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POWROPS", "PG"))}
    return {**base, **extra}


@dataclass
class Site:
    """A directory with powrops.toml and the embedded cluster powrops runs there."""

    root: Path
    config: Path

    @classmethod
    def create(cls, prefix: str, overrides: Mapping[str, Any] | None = None) -> Site:
        root = Path(tempfile.mkdtemp(prefix=f"powrops-{prefix}-", dir="/tmp"))
        os.chmod(root, 0o755)
        data = merge(
            {
                "state": {"dir": str(root / "state")},
                "reports": {"dir": str(root / "reports")},
                "notify": {"channels": [{"kind": "log"}]},
            },
            overrides or {},
        )
        site = cls(root, root / "powrops.toml")
        site.config.write_text(to_toml(data))
        os.chmod(site.config, 0o644)
        embedded.start(site.settings)  # initdb + start, archiving through `powrops wal push`
        return site

    @property
    def settings(self) -> Settings:
        return load_settings(self.config, environ={})

    @property
    def cluster(self) -> LocalCluster:
        return embedded_cluster(self.settings)

    @property
    def state(self) -> Path:
        return self.root / "state"

    def connect(self, dbname: str = "powr") -> psycopg.Connection[Any]:
        return psycopg.connect(**self.cluster.conninfo(dbname), autocommit=True)

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def client_env(self) -> dict[str, str]:
        """Environment for the cluster's client programs (password from the cluster)."""
        return clean_env(PGPASSWORD=self.cluster.password, LC_ALL="C.UTF-8")

    def client_argv(self, program: str, *args: str) -> list[str]:
        """A client program of the cluster's own binaries, pointed at it over TCP."""
        cluster = self.cluster
        path = str(cluster.binaries.path(program))
        return [path, "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", *args]

    def powrops_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "powrops", *args]

    def powrops_env(self) -> dict[str, str]:
        return clean_env(POWROPS_CONFIG=str(self.config))

    def pgbench(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        argv = self.client_argv("pgbench", *args, "powr")
        result = subprocess.run(
            argv, env=self.client_env(), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"pgbench failed ({result.returncode}): {result.stderr[-2000:]}")
        return result

    def ready_count(self) -> int:
        """WAL files waiting for the archiver (``.ready`` in pg_wal/archive_status)."""
        rows = self.sql(
            "SELECT count(*) FROM pg_ls_dir('pg_wal/archive_status') f WHERE f LIKE '%.ready'"
        )
        return int(rows[0][0])

    def wait_archiver_idle(self, timeout: float = 600) -> float:
        """Wait until no WAL file waits for archiving; seconds waited."""
        started = time.monotonic()
        while self.ready_count() > 0 and time.monotonic() - started < timeout:
            time.sleep(0.5)
        return time.monotonic() - started

    def destroy(self) -> None:
        try:
            self.cluster.destroy()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def finish(self, keep: bool) -> None:
        """The end of a benchmark: with ``--keep`` the site stays (its cluster running) and
        where is printed; otherwise it is removed."""
        if keep:
            print(f"kept {self.root}; the cluster still runs (POWROPS_CONFIG={self.config})")
        else:
            self.destroy()


def run_timed(
    argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run a process to completion; (wall seconds, result). Raises when it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        list(argv), env=dict(env) if env else None, capture_output=True, **kwargs
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{Path(argv[0]).name} failed ({result.returncode}): {detail}")
    return elapsed, result


def machine() -> str:
    """The machine by name, its CPUs and load average: other work on it skews every figure,
    and a figure compares only with one taken on the same machine."""
    one, five, _ = os.getloadavg()
    return (
        f"machine {platform.node()} ({cpu_model()}, {os.cpu_count()} CPUs, {memory()}, "
        f"Linux {platform.release()}), load average {one:.2f} (1 min) {five:.2f} (5 min)"
    )


def cpu_model() -> str:
    for line in _read_lines("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def memory() -> str:
    for line in _read_lines("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.0f} GiB RAM"
    return "memory unknown"


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


@dataclass(frozen=True)
class Reads:
    """What one process tree read, from the kernel's I/O accounting (``/proc/PID/io`` of a
    shell that waited for it: a reaped child's counters are added to its parent's).
    ``chars`` counts every byte read by a system call (files, pipes, sockets; the page cache
    included), ``disk`` only what came from the block device; ``files`` what the caller
    knows the tool opened for its data (0 when not known)."""

    chars: int
    disk: int
    calls: int
    files: int = 0

    def text(self) -> str:
        files = f"{self.files:,} files, " if self.files else ""
        return f"{files}{mib(self.chars)} read ({mib(self.disk)} from disk, {self.calls:,} reads)"


_COUNT_READS = 'rc=0; "$@" || rc=$?; cat /proc/$$/io > "$POWROPS_BENCH_IO"; exit $rc'


def run_counted(
    argv: Sequence[str], env: Mapping[str, str] | None = None, files: int = 0, **kwargs: Any
) -> tuple[float, subprocess.CompletedProcess[bytes], Reads]:
    """``run_timed`` that also returns what the process and its children read."""
    with tempfile.NamedTemporaryFile(prefix="powrops-bench-io-") as counters:
        full_env = {**(dict(env) if env is not None else os.environ)}
        full_env["POWROPS_BENCH_IO"] = counters.name
        elapsed, result = run_timed(["sh", "-c", _COUNT_READS, "sh", *argv], full_env, **kwargs)
        fields = dict(line.split(": ") for line in Path(counters.name).read_text().splitlines())
    reads = Reads(int(fields["rchar"]), int(fields["read_bytes"]), int(fields["syscr"]), files)
    return elapsed, result, reads


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


@dataclass
class Targets:
    """The targets one run of a benchmark checks. ``check`` gives a target's verdict for the
    line that prints it and remembers a miss; ``exit_code`` is what the benchmark's ``main``
    returns: 1 when a target was missed (``make bench`` stops there), else 0. Each ``main``
    makes its own: nothing is kept between runs."""

    met: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool) -> str:
        (self.met if ok else self.missed).append(name)
        return "met" if ok else "TARGET MISSED"

    def exit_code(self) -> int:
        checked = len(self.met) + len(self.missed)
        if self.missed:
            print(f"{len(self.missed)} of {checked} targets missed: {'; '.join(self.missed)}")
            return 1
        print(f"all {checked} targets met")
        return 0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table with right-aligned columns after the first."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])
