"""Turning stored backups back into a data directory: extract, combine a chain, verify.

A full backup is one zstd-compressed tar stream (since their sizes are recorded, a sequence of
independent zstd frames, which a zstd reader reads as one stream); an incremental chain is
combined with PostgreSQL's ``pg_combinebackup`` after each member is extracted.
``pg_verifybackup`` then checks the result against PostgreSQL's own manifest (every file's size
and CRC32C, and the WAL needed to reach consistency).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from powrops import threads
from powrops.backup.basebackup import widen_pipe
from powrops.backup.catalog import Catalog
from powrops.backup.model import DATA_FILE, BackupRecord, backup_key
from powrops.errors import BackupError
from powrops.pg.binaries import PgBinaries
from powrops.storage.base import Repository

CHUNK = 1 << 20
Stop = Callable[[], bool]


def _safe_members(archive: tarfile.TarFile, dest: Path) -> Iterator[tarfile.TarInfo]:
    """Members that stay inside ``dest``: no absolute paths, no '..', no links or devices."""
    for member in archive:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise BackupError(f"backup archive holds an unsafe path {member.name!r}")
        if not (member.isfile() or member.isdir()):
            raise BackupError(
                f"backup archive holds {member.name!r}, which is not a regular file or directory "
                "(tablespaces are not supported)"
            )
        member.mode = 0o700 if member.isdir() else 0o600
        yield member


def extract(repo: Repository, label: str, dest: Path, stop: Stop | None = None) -> Path:
    """Decompress and unpack backup ``label`` into the empty directory ``dest``; ``stop``
    returning true ends it early (BackupError)."""
    import zstandard

    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: refusing to extract a backup over it")
    dest.chmod(0o700)
    tar = shutil.which("tar")
    try:
        with repo.open_read(backup_key(label, DATA_FILE)) as stored:
            reader = zstandard.ZstdDecompressor().stream_reader(stored, read_across_frames=True)
            if tar:
                _untar(tar, reader, dest, stop)
            else:
                with tarfile.open(fileobj=reader, mode="r|", copybufsize=CHUNK) as archive:  # type: ignore[call-overload]
                    archive.extractall(dest, members=_safe_members(archive, dest))
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise BackupError(f"backup {label} cannot be unpacked: {exc}") from exc
    return dest


def _untar(tar: str, reader: Any, dest: Path, stop: Stop | None = None) -> None:
    """Unpack a tar stream with the system's tar, fed from Python (much faster per file).

    GNU tar refuses members with '..' and strips leading '/', so nothing lands outside
    ``dest``; ownership is not restored from the archive.
    """
    proc = subprocess.Popen(
        [tar, "-x", "-f", "-", "-C", str(dest), "--no-same-owner"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    widen_pipe(proc.stdin)
    try:
        while chunk := reader.read(CHUNK):
            proc.stdin.write(chunk)
            if stop is not None and stop():
                raise BackupError(f"unpacking into {dest} was stopped")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    error = proc.stderr.read().decode("utf-8", "replace")
    if proc.wait() != 0:
        raise BackupError(f"tar could not unpack the backup into {dest}: {error.strip()[-1000:]}")


def chain_of(catalog: Catalog, record: BackupRecord) -> list[BackupRecord]:
    """The backups to combine for ``record``: its full first, ``record`` last."""
    chain = [record]
    while chain[0].parent:
        try:
            parent = catalog.get(chain[0].parent)
        except BackupError:
            raise BackupError(
                f"backup {record.label} needs {chain[0].parent}, which is not in {catalog.repo.url}"
            ) from None
        if not parent.ok:
            raise BackupError(f"backup {record.label} depends on failed backup {parent.label}")
        chain.insert(0, parent)
    return chain


@dataclass(frozen=True)
class Reconstructed:
    path: Path
    chain: tuple[str, ...]


def reconstruct(
    catalog: Catalog, label: str, dest: Path, binaries: PgBinaries, stop: Stop | None = None
) -> Reconstructed:
    """The data directory of ``label`` in ``dest`` (its chain combined when incremental);
    ``stop`` returning true ends the unpacking early."""
    record = catalog.get(label)
    chain = chain_of(catalog, record)
    if len(chain) == 1:
        extract(catalog.repo, label, dest, stop)
        return Reconstructed(dest, (label,))
    work = dest.parent / f".{dest.name}.chain"
    if work.exists():
        shutil.rmtree(work)
    try:
        parts = _extract_all(catalog.repo, [member.label for member in chain], work, stop)
        # --no-sync: the combined directory is a scratch copy for verification, or a restore
        # that PostgreSQL makes durable itself before recovery starts (a backup_label means
        # crash recovery, which syncs the data directory first)
        run(binaries, "pg_combinebackup", [*map(str, parts), "--no-sync", "--output", str(dest)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Reconstructed(dest, tuple(m.label for m in chain))


EXTRACT_THREADS = 4


def _extract_all(
    repo: Repository, labels: list[str], work: Path, stop: Stop | None = None
) -> list[Path]:
    """Unpack the members of a chain side by side (each a decompressing thread and a tar);
    interrupted, every unpacking stops before the interrupt goes on."""
    cancelled = threading.Event()

    def stopped() -> bool:
        return cancelled.is_set() or (stop is not None and stop())

    outcomes = threads.each(lambda label: extract(repo, label, work / label, stopped), labels,
                            EXTRACT_THREADS, cancel=cancelled)  # fmt: skip
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [work / label for label in labels]


def run(binaries: PgBinaries, program: str, args: list[str], timeout: float = 3600) -> str:
    """Run a PostgreSQL client program; BackupError with its own message when it fails."""
    proc = subprocess.run(
        [str(binaries.path(program)), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BackupError(
            f"{program} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return proc.stdout + proc.stderr


def verify_directory(binaries: PgBinaries, path: Path) -> str:
    """``pg_verifybackup`` on a reconstructed data directory; its report."""
    return run(binaries, "pg_verifybackup", [str(path)])
