"""WAL archiving: ``powrops wal push`` (archive_command) and ``wal fetch`` (restore_command).

Both run once per WAL file, started by the PostgreSQL server, so this module imports only what
it needs: no pandas, SQLAlchemy, matplotlib or settings on this path.

push: compressed (zstd), atomic (the repository's create-if-absent write), idempotent: the same
content already archived is success; different content under the same name is a loud failure,
because it means two servers (or two timelines) archive into one repository.

fetch: exit 0 when the file was restored, 1 when the archive does not have it (recovery then
ends cleanly at the end of the archive), and 128 on any real error, which PostgreSQL treats as
fatal: a recovery must stop rather than silently end early with less data than exists.

PostgreSQL starts the restore command once per segment. With a spool directory, a fetch also
brings the next segments of the timeline into the spool, several at a time, so that most calls
only move a local file (the restore command tries the spool from the shell before starting
Python at all). A spooled file is complete or absent: it is written beside and renamed.

``warm`` fills a restore's spool before the server starts (while the backup is unpacked): the
first segment recovery asks for and the ones after it; in ``keep/``, a copy of the segment in
which the backup becomes consistent (PostgreSQL asks for it again when recovery ends there) and
the timeline history files, with a ``.missing`` marker for the first timeline the repository
does not have (PostgreSQL probes for it at the start and at the end of recovery). The restore
command answers all of these from the shell.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from powrops import threads
from powrops.backup.wal.names import SEGMENT_RE, kind_of, wal_key
from powrops.errors import (
    EXIT_WAL_FETCH_ERROR,
    BackupError,
    ObjectExists,
    ObjectNotFound,
    WalConflict,
)
from powrops.storage.base import Repository, refuse_ciphertext

FETCH_OK = 0
FETCH_MISSING = 1
FETCH_ERROR = EXIT_WAL_FETCH_ERROR
PREFETCH = 16  # segments brought into the spool ahead of the one asked for
PREFETCH_THREADS = 4
KEEP = "keep"  # in a spool: files served by copy, as often as asked
MISSING = ".missing"  # in keep/: a history file the repository did not have when warmed


def _compress(data: bytes) -> bytes:
    import zstandard

    # The frame checksum lets verification detect a damaged object without a separate record.
    return zstandard.ZstdCompressor(level=1, write_checksum=True, threads=-1).compress(data)


def _decompress(data: bytes) -> bytes:
    import zstandard

    try:
        return zstandard.ZstdDecompressor().decompress(data)
    except zstandard.ZstdError as exc:
        refuse_ciphertext(data, "archived WAL")
        raise BackupError(f"archived WAL is not valid zstd data: {exc}") from exc


def push(repo: Repository, path: str | Path) -> str:
    """Archive the WAL file at ``path``; returns 'archived' or 'already archived'."""
    source = Path(path)
    name = source.name
    if kind_of(name) == "unknown":
        raise BackupError(f"{name!r} is not a WAL file name (segment, .partial, .history, .backup)")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read {source}: {exc}") from exc
    key = wal_key(name)
    try:
        repo.put_bytes(key, _compress(data), if_absent=True)
        return "archived"
    except ObjectExists:
        pass
    stored = _decompress(repo.get_bytes(key))
    if hashlib.sha256(stored).digest() == hashlib.sha256(data).digest():
        return "already archived"
    raise WalConflict(
        f"{name} is already archived in {repo.url} with DIFFERENT content "
        f"(archived sha256 {hashlib.sha256(stored).hexdigest()[:16]}…, this file "
        f"{hashlib.sha256(data).hexdigest()[:16]}…): another server or timeline is archiving "
        "into this repository; refusing to overwrite"
    )


def fetch(
    repo: Repository, name: str, dest: str | Path, spool: Path | None = None,
    ahead: int = PREFETCH,
) -> int:  # fmt: skip
    """Restore archived WAL ``name`` to ``dest``; returns FETCH_OK or FETCH_MISSING.

    With ``spool``, a file already spooled is moved into place, and the ``ahead`` segments
    after ``name`` that are not spooled yet are fetched into it.
    """
    if kind_of(name) == "unknown":
        raise BackupError(f"{name!r} is not a WAL file name")
    target = Path(dest)
    if spool is not None and (spool / name).is_file():
        shutil.move(spool / name, target)
        return FETCH_OK
    try:
        data = _decompress(repo.get_bytes(wal_key(name)))
    except ObjectNotFound:
        return FETCH_MISSING
    _write(target, data, durable=True)
    if spool is not None and ahead > 0 and kind_of(name) == "segment":
        prefetch(repo, name, spool, ahead)
    return FETCH_OK


def _write(target: Path, data: bytes, *, durable: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def following(name: str, count: int, segment_size: int = 16 << 20) -> list[str]:
    """The ``count`` segment names after segment ``name`` on its timeline."""
    match = SEGMENT_RE.match(name)
    if not match:
        return []
    timeline, high, low = (int(g, 16) for g in match.groups())
    per = 0x100000000 // segment_size
    number = high * per + low
    after = range(number + 1, number + 1 + count)
    return [f"{timeline:08X}{n // per:08X}{n % per:08X}" for n in after]


def prefetch(repo: Repository, name: str, spool: Path, ahead: int = PREFETCH) -> list[str]:
    """Fetch the segments after ``name`` into ``spool`` (those not there yet); the names
    spooled. A segment the archive lacks, or cannot give, is simply not spooled."""
    spool.mkdir(parents=True, exist_ok=True)
    wanted = [n for n in following(name, ahead) if not (spool / n).exists()]

    def one(segment: str) -> str:
        _write(spool / segment, _decompress(repo.get_bytes(wal_key(segment))), durable=False)
        return segment

    # a segment the archive lacks or cannot give is not spooled: its real fetch reports it
    outcomes = threads.each(one, wanted, PREFETCH_THREADS)
    return sorted(name for name in outcomes if isinstance(name, str))


def warm(repo: Repository, spool: Path, first: str, last: str, ahead: int = PREFETCH) -> int:
    """Fill ``spool`` for a recovery that starts at segment ``first`` and becomes consistent in
    ``last``; FETCH_MISSING (and nothing spooled) when ``first`` is not archived."""
    if kind_of(first) != "segment" or kind_of(last) != "segment":
        raise BackupError(f"{first!r} and {last!r} must be WAL segment names")
    keep = spool / KEEP
    keep.mkdir(parents=True, exist_ok=True)
    try:
        _write(spool / first, _decompress(repo.get_bytes(wal_key(first))), durable=False)
    except ObjectNotFound:
        return FETCH_MISSING
    prefetch(repo, first, spool, ahead)
    kept = spool / last
    if kept.is_file():
        shutil.copyfile(kept, keep / f".{last}")
        os.replace(keep / f".{last}", keep / last)
    else:  # when the archive lacks it, recovery asks the repository, and says so
        with contextlib.suppress(ObjectNotFound):
            _write(keep / last, _decompress(repo.get_bytes(wal_key(last))), durable=False)
    _keep_histories(repo, keep, int(first[:8], 16))
    return FETCH_OK


def _keep_histories(repo: Repository, keep: Path, timeline: int) -> None:
    """The history files of ``timeline`` and the ones after it, up to the first the repository
    lacks, which is marked missing (the timeline a promoted copy will take)."""
    for number in range(max(timeline, 2), timeline + 1000):
        name = f"{number:08X}.history"
        try:
            data = _decompress(repo.get_bytes(wal_key(name)))
        except ObjectNotFound:
            if number > timeline:
                (keep / f"{name}{MISSING}").write_bytes(b"")
                return
            continue
        _write(keep / name, data, durable=False)
