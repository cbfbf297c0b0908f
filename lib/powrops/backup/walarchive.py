"""WAL archiving: ``powrops wal push`` (archive_command) and ``wal fetch`` (restore_command).

Both run once per WAL file, started by the PostgreSQL server, so this module imports only what
it needs: no pandas, SQLAlchemy, matplotlib or pydantic on this path.

push: compressed (zstd), atomic (the repository's create-if-absent write), idempotent: the same
content already archived is success; different content under the same name is a loud failure,
because it means two servers (or two timelines) archive into one repository.

fetch: exit 0 when the file was restored, 1 when the archive does not have it (recovery then
ends cleanly at the end of the archive), and 128 on any real error, which PostgreSQL treats as
fatal: a recovery must stop rather than silently end early with less data than exists.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from powrops.backup.walnames import kind_of, wal_key
from powrops.errors import (
    EXIT_WAL_FETCH_ERROR,
    BackupError,
    ObjectExists,
    ObjectNotFound,
    WalConflict,
)
from powrops.storage.base import Repository

FETCH_OK = 0
FETCH_MISSING = 1
FETCH_ERROR = EXIT_WAL_FETCH_ERROR


def _compress(data: bytes) -> bytes:
    import zstandard

    # The frame checksum lets verification detect a damaged object without a separate record.
    return zstandard.ZstdCompressor(level=1, write_checksum=True, threads=-1).compress(data)


def _decompress(data: bytes) -> bytes:
    import zstandard

    try:
        return zstandard.ZstdDecompressor().decompress(data)
    except zstandard.ZstdError as exc:
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


def fetch(repo: Repository, name: str, dest: str | Path) -> int:
    """Restore archived WAL ``name`` to ``dest``; returns FETCH_OK or FETCH_MISSING."""
    if kind_of(name) == "unknown":
        raise BackupError(f"{name!r} is not a WAL file name")
    try:
        data = _decompress(repo.get_bytes(wal_key(name)))
    except ObjectNotFound:
        return FETCH_MISSING
    target = Path(dest)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return FETCH_OK
