"""The archive file format: JSON Lines of live rows, exactly as PostgreSQL renders them.

A file holds one user's workouts and their sets::

    {"format": "powrops-archive/1", "user_id": 7, "tables": {"workouts": 12, ...}, ...}
    workouts<TAB>{"id": 81, "date": "2023-04-02", ...}
    ...
    workout_sets<TAB>{"id": 950, "reps": 5, ...}

Each row line carries ``to_jsonb(row)::text`` verbatim, so the SHA-256 over the row texts (each
followed by a newline, per table in id order) can be computed by PostgreSQL over the live rows
and by this module over the file, independently, and compared. Files are gzip-compressed when
``archival.process.compress`` is on. The file's own SHA-256 (of the stored bytes) goes into
``ops.archive_index``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from powrops.errors import StorageError
from powrops.retention.errors import ArchiveValidationError
from powrops.storage.base import Repository

FORMAT = "powrops-archive/1"
TABLES = ("workouts", "workout_sets")


@dataclass
class Digest:
    """Rows per table and the SHA-256 over their texts: what live rows and a file must share."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {"rows": dict(self.rows), "sha256": dict(self.sha256)}


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``inner``."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.hash.update(chunk)
        self.size += len(chunk)
        self.inner.write(chunk)
        return len(chunk)


def key_suffix(compress: bool) -> str:
    return ".jsonl.gz" if compress else ".jsonl"


def write(
    repo: Repository,
    key: str,
    header: dict[str, Any],
    rows: Iterable[tuple[str, str]],
    *,
    compress: bool,
) -> tuple[str, int]:
    """Stream ``(table, row_text)`` pairs into ``key``; the stored bytes' SHA-256 and size."""
    with repo.open_write(key) as target:
        counted = _HashingWriter(target)
        sink: IO[bytes] = (
            gzip.GzipFile(fileobj=counted, mode="wb", mtime=0) if compress else counted  # type: ignore[assignment]
        )
        sink.write((json.dumps({"format": FORMAT, **header}, sort_keys=True) + "\n").encode())
        for table, text in rows:
            sink.write(f"{table}\t{text}\n".encode())
        if compress:
            sink.close()
    return counted.hash.hexdigest(), counted.size


class _HashingReader(io.RawIOBase):
    """A read-only stream that hands every byte read from ``inner`` to ``seen``."""

    def __init__(self, inner: BinaryIO, seen: Callable[[bytes], None] | None) -> None:
        self.inner = inner
        self.seen = seen

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.inner.read(len(buffer))
        if self.seen is not None and chunk:
            self.seen(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def read_rows(
    repo: Repository, key: str, *, on_bytes: Callable[[bytes], None] | None = None
) -> Iterator[tuple[str, str]]:
    """The header (as table ``""``) and then every ``(table, row_text)`` of a stored file.

    Streams: memory stays flat however large the file. ``on_bytes`` sees every stored byte.
    """
    try:
        with repo.open_read(key) as stream:
            buffered = io.BufferedReader(_HashingReader(stream, on_bytes))
            gz = key.endswith(".gz")
            lines: Iterable[bytes] = gzip.GzipFile(fileobj=buffered) if gz else buffered
            yield from _parse(repo, key, lines)
            while buffered.read(1 << 16):  # the whole object passes through on_bytes
                pass
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile, StorageError) as exc:
        raise ArchiveValidationError(f"{repo.describe(key)} cannot be read: {exc}") from exc


def _parse(repo: Repository, key: str, lines: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    first = True
    for line in lines:
        text = line.decode("utf-8").rstrip("\n")
        if first:
            first = False
            yield "", text
            continue
        table, sep, row = text.partition("\t")
        if not sep or table not in TABLES:
            raise ArchiveValidationError(f"{repo.describe(key)}: malformed line")
        yield table, row


@dataclass
class ReadBack:
    """What reading a stored file found."""

    header: dict[str, Any]
    digest: Digest
    file_sha256: str
    workout_ids: list[int]


def read_back(repo: Repository, key: str, user_id: int | None = None) -> ReadBack:
    """Read a stored archive file completely, checking its structure; its digest."""
    hashes = {t: hashlib.sha256() for t in TABLES}
    digest = Digest()
    file_hash = hashlib.sha256()
    header: dict[str, Any] = {}
    workout_ids: list[int] = []
    for table, text in read_rows(repo, key, on_bytes=file_hash.update):
        if not table:
            header = _header(repo, key, text)
            continue
        row = _row(repo, key, text)
        if table == "workouts":
            workout_ids.append(int(row["id"]))
            if user_id is not None and row.get("user_id") != user_id:
                raise ArchiveValidationError(f"{repo.describe(key)}: a row of another user")
        hashes[table].update(text.encode() + b"\n")
        digest.rows[table] += 1
    if not header:
        raise ArchiveValidationError(f"{repo.describe(key)} is empty")
    digest.sha256 = {t: h.hexdigest() for t, h in hashes.items()}
    return ReadBack(header, digest, file_hash.hexdigest(), workout_ids)


def rows_of(repo: Repository, key: str, table: str) -> Iterator[dict[str, Any]]:
    """The rows of one table in a stored file, as dicts."""
    for name, text in read_rows(repo, key):
        if name == table:
            yield _row(repo, key, text)


def _header(repo: Repository, key: str, text: str) -> dict[str, Any]:
    header = _row(repo, key, text)
    if header.get("format") != FORMAT:
        raise ArchiveValidationError(f"{repo.describe(key)}: not a {FORMAT} file")
    return header


def _row(repo: Repository, key: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchiveValidationError(f"{repo.describe(key)}: a row is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ArchiveValidationError(f"{repo.describe(key)}: a row is not a JSON object")
    return value


def compare(repo: Repository, key: str, live: Digest, back: ReadBack, file_sha256: str) -> None:
    """Raise ArchiveValidationError unless the file read back matches what was written."""
    problems = []
    if back.file_sha256 != file_sha256:
        problems.append("the stored bytes' SHA-256 differs from what was written")
    for table in TABLES:
        if back.digest.rows[table] != live.rows[table]:
            problems.append(
                f"{table}: {back.digest.rows[table]} rows in the file, {live.rows[table]} live"
            )
        elif back.digest.sha256.get(table) != live.sha256.get(table):
            problems.append(f"{table}: checksum of the rows differs from the live rows'")
    if problems:
        raise ArchiveValidationError(
            f"archive file {repo.describe(key)} failed validation: " + "; ".join(problems),
            problems=problems,
        )
