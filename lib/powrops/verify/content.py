"""A backup's content checked against its ``backup_manifest`` in one streaming pass.

The stored object is read once: its SHA-256 is compared with the backup's record, the zstd
stream is decompressed (which checks the frame checksum), and each member of the tar is checked
against PostgreSQL's manifest, the same test ``pg_verifybackup`` makes on a data directory:
every file's size and checksum in the manifest's algorithm (CRC32C by default), files the
manifest lists that are missing, and files that are there but not listed. The WAL the backup
needs to become consistent (the manifest's ``WAL-Ranges``) must be in its ``pg_wal/``, whole.
Nothing is written to disk. A backup written as independent zstd frames whose sizes its record
holds (:class:`~powrops.backup.model.Frames`) is decoded frame by frame on every core side by
side, the frames handed on in order to the tar walk and the checksums, with at most two frames
a core decoded ahead (memory: a few frames of 4 MiB, whatever the size of the backup); a backup
written before (one zstd stream) is decoded by one thread into three 2 MiB buffers while the
caller checks what was decoded before.

The last step of ``pg_verifybackup``, parsing that WAL record by record, is made by the parser
the caller hands in (:mod:`powrops.verify.walparse`: ``pg_waldump`` over the archive's copies
of the range), meanwhile, in a thread of its own; its outcome is part of the check once the
stored bytes are known intact.

An incremental backup is checked the same way against its own manifest: its ``INCREMENTAL.*``
files are listed there with their own sizes and checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import zstandard

from powrops import threads
from powrops.backup.model import (
    DATA_FILE,
    MANIFEST_FILE,
    BackupRecord,
    Frames,
    FrameSpan,
    StoredFile,
    backup_key,
)
from powrops.backup.wal.positions import DEFAULT_SEGMENT_SIZE, parse_lsn, segment_of, segment_range
from powrops.errors import ObjectNotFound, StorageError
from powrops.storage.base import Repository, read_up_to
from powrops.verify.walparse import WalParse, WalParser

CHUNK = 1 << 20
BUFFER = 1 << 21  # one decoded buffer: zstd decodes in long runs into it
BUFFERS = 3  # the one being checked, the one being decoded, one ready
AHEAD_PER_CORE = 2  # frames decoded (or being decoded) ahead of the check, per core
ZERO_BLOCK = bytes(512)
# What pg_verifybackup ignores by default: not in the manifest, or rewritten on purpose.
IGNORED = frozenset({MANIFEST_FILE, "postgresql.auto.conf", "recovery.signal", "standby.signal"})
MAX_LISTED = 20  # problems named one by one in a finding; the rest are counted


class _Crc32c:
    """CRC-32C, the manifests' default checksum. The ``crc32c`` package is loaded by the first
    content check, not with this module: its import reads its own version from the installed
    packages' metadata (``importlib.metadata``: about 10 ms of every command that loads the
    verification, where a daily verify decodes no content)."""

    def __init__(self) -> None:
        from crc32c import crc32c

        self._update = crc32c
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = self._update(data, self.value)

    def hexdigest(self) -> str:
        # PostgreSQL writes the CRC's bytes as they lie in memory: little-endian.
        return self.value.to_bytes(4, "little").hex()


class _NoChecksum:
    def update(self, data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "CRC32C": _Crc32c,
    "SHA224": hashlib.sha224,
    "SHA256": hashlib.sha256,
    "SHA384": hashlib.sha384,
    "SHA512": hashlib.sha512,
    "NONE": _NoChecksum,
}


@dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    algorithm: str
    checksum: str


@dataclass(frozen=True)
class Manifest:
    files: dict[str, ManifestFile]
    wal_ranges: tuple[tuple[int, str, str], ...]  # (timeline, start LSN, end LSN)

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """The manifest's files and WAL ranges; ValueError when it is not one, or altered."""
        _check_own_checksum(raw)
        data = json.loads(raw)
        files = {}
        for entry in data["Files"]:
            path = entry.get("Path")
            if path is None:
                path = bytes.fromhex(entry["Encoded-Path"]).decode("utf-8", "surrogateescape")
            algorithm = str(entry.get("Checksum-Algorithm", "NONE")).upper()
            if algorithm not in _ALGORITHMS:
                raise ValueError(f"unknown checksum algorithm {algorithm!r} for {path}")
            files[path] = ManifestFile(path, int(entry["Size"]), algorithm,
                                       str(entry.get("Checksum", "")).lower())  # fmt: skip
        ranges = tuple(
            (int(r["Timeline"]), str(r["Start-LSN"]), str(r["End-LSN"]))
            for r in data.get("WAL-Ranges", [])
        )
        return cls(files, ranges)


def _check_own_checksum(raw: bytes) -> None:
    """The manifest ends with the SHA-256 of everything before its last line."""
    marker = raw.rfind(b'"Manifest-Checksum"')
    if marker < 0:
        raise ValueError("it has no Manifest-Checksum")
    start = raw.rfind(b"\n", 0, marker) + 1
    recorded = json.loads(b"{" + raw[start:].strip().rstrip(b"}").strip() + b"}")
    if hashlib.sha256(raw[:start]).hexdigest() != recorded["Manifest-Checksum"]:
        raise ValueError("its Manifest-Checksum does not match its content")


@dataclass
class ContentCheck:
    """What one pass over a backup's data object showed."""

    label: str
    stored_bytes: int = 0
    raw_bytes: int = 0
    files: int = 0
    sha256: str = ""
    status: str = "ok"  # ok / content, or what is wrong with the stored object itself:
    # differs / damaged / missing / unreadable
    stored_problem: str | None = None  # how the stored object is damaged, as a phrase
    wal_sizes: dict[str, int] = field(default_factory=dict)  # pg_wal/ members -> their sizes
    problems: list[str] = field(default_factory=list)  # its content against the manifest
    wal: WalParse | None = None  # the WAL of its range parsed, when a parser was handed in

    @property
    def ok(self) -> bool:
        wal_ok = self.wal is None or self.wal.ok
        return self.stored_problem is None and not self.problems and wal_ok

    def fail(self, status: str, problem: str) -> ContentCheck:
        if self.status == "ok":
            self.status = status
        self.problems.append(problem)
        return self

    def damaged(self, status: str, problem: str) -> ContentCheck:
        if self.stored_problem is None:
            self.status, self.stored_problem = status, problem
        return self

    def summary(self) -> str:
        shown = "; ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        return shown + (f"; and {more} more" if more > 0 else "")


class _Hashing:
    """A readable object that hashes what passes through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


class _Decoded:
    """The decompressed stream, in decoded buffers that the caller walks while threads decode
    the next ones (zstd and the checksums release the GIL, so they run on every core). No copy
    of the data it carries.

    ``chunks`` hands out views into a buffer, valid until the next read; the tar walk and the
    checksums consume each one at once. ``close`` stops the threads. A subclass says where the
    next buffer comes from (``_fetch``) and where a consumed one goes (``_release``).
    """

    def __init__(self) -> None:
        self._held: bytes | bytearray | None = None
        self._view = memoryview(b"")
        self._start = self._end = 0

    def _fetch(self) -> tuple[bytes | bytearray, int] | None:
        raise NotImplementedError

    def _release(self, buffer: bytes | bytearray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _next(self) -> bool:
        """Move to the next decoded buffer; False at the end of the stream."""
        if self._held is not None:
            self._release(self._held)
            self._held = None
        item = self._fetch()
        if item is None:
            return False
        buffer, filled = item
        self._held, self._view = buffer, memoryview(buffer)
        self._start, self._end = 0, filled
        return True

    def read_exact(self, size: int) -> bytes:
        if self._end - self._start >= size:
            data = bytes(self._view[self._start : self._start + size])
            self._start += size
            return data
        return b"".join(bytes(piece) for piece in self.chunks(size))

    def chunks(self, size: int) -> Iterator[memoryview]:
        """The next ``size`` bytes, as views valid until the next read."""
        while size > 0:
            if self._start == self._end and not self._next():
                raise EOFError(f"the stream ends {size} bytes early")
            piece = min(size, self._end - self._start)
            yield self._view[self._start : self._start + piece]
            self._start += piece
            size -= piece

    def drain(self) -> None:
        """Consume the rest (anything after the tar's end is read and hashed too)."""
        self._start = self._end
        while self._next():
            self._start = self._end


class _Decompressed(_Decoded):
    """One zstd stream read from start to end (a backup written before frames were recorded),
    decoded by a thread of its own into a few reused buffers."""

    def __init__(self, source: _Hashing) -> None:
        super().__init__()
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            source,  # type: ignore[arg-type]
            read_size=CHUNK, read_across_frames=True,
        )  # fmt: skip
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(BUFFERS):
            self._free.put(bytearray(BUFFER))
        self._ready: queue.SimpleQueue[tuple[bytearray, int] | BaseException] = queue.SimpleQueue()
        self._stopping = False
        self._thread = threading.Thread(target=self._decode, name="content-zstd", daemon=True)
        self._thread.start()

    def _decode(self) -> None:
        try:
            while True:
                buffer = self._free.get()
                if self._stopping:
                    return
                view, filled = memoryview(buffer), 0
                while filled < len(buffer) and (got := self._reader.readinto(view[filled:])):
                    filled += int(got)
                self._ready.put((buffer, filled))
                if not filled:
                    return
        except BaseException as exc:  # raised in the reading thread, where it is reported
            self._ready.put(exc)

    def _fetch(self) -> tuple[bytes | bytearray, int] | None:
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item
        if not item[1]:
            self._ready.put(item)  # the end stays the end
            return None
        return item

    def _release(self, buffer: bytes | bytearray) -> None:
        assert isinstance(buffer, bytearray)
        self._free.put(buffer)

    def close(self) -> None:
        """Stop the decoding thread (at once if it waits for a buffer) and wait for it."""
        self._stopping = True
        self._free.put(bytearray(0))
        self._thread.join()


def _decode_frame(decompressor: zstandard.ZstdDecompressor, frame: bytes, size: int) -> bytes:
    """One zstd frame decoded whole, its content checksum checked: ``decompress`` runs without
    the GIL (a stream reader's ``readinto`` holds it), so frames decode on every core at once.
    ZstdError when the bytes hold anything after the frame or it decodes to more than ``size``."""
    return decompressor.decompress(frame, max_output_size=size, allow_extra_data=False)


class _FrameDecoded(_Decoded):
    """An object written as independent zstd frames (:class:`Frames`): the stored bytes read
    in order, frame by frame (and hashed on the way), each frame decoded on one of ``cores``
    threads, the decoded frames handed on in order; at most ``AHEAD_PER_CORE`` frames a core
    decoded ahead of the caller, so memory stays bounded."""

    def __init__(self, source: _Hashing, frames: Frames, cores: int) -> None:
        super().__init__()
        self._local = threading.local()
        spans = iter(frames.spans())
        self._decoded = threads.ordered(
            self._decode, self._stored(source, spans), cores, AHEAD_PER_CORE * cores
        )

    @staticmethod
    def _stored(source: _Hashing, spans: Iterator[FrameSpan]) -> Iterator[tuple[bytes, FrameSpan]]:
        for span in spans:
            data = read_up_to(source, span.stored_size)
            if len(data) < span.stored_size:
                raise EOFError(f"the object ends inside its frame at byte {span.stored_offset}")
            yield data, span

    def _decode(self, item: tuple[bytes, FrameSpan]) -> tuple[bytes, int]:
        data, span = item
        if not hasattr(self._local, "decompressor"):
            self._local.decompressor = zstandard.ZstdDecompressor()
        try:
            decoded = _decode_frame(self._local.decompressor, data, span.raw_size)
        except zstandard.ZstdError as exc:
            raise zstandard.ZstdError(
                f"its frame at byte {span.stored_offset} does not decode ({exc})"
            ) from exc
        if len(decoded) != span.raw_size:
            raise zstandard.ZstdError(
                f"its frame at byte {span.stored_offset} holds other than the {span.raw_size} "
                "bytes recorded"
            )
        return decoded, len(decoded)

    def _fetch(self) -> tuple[bytes, int] | None:
        return next(self._decoded, None)

    def _release(self, buffer: bytes | bytearray) -> None:
        pass  # each frame decodes into a new buffer, freed once checked

    def close(self) -> None:
        """Stop the decoding threads and wait for them."""
        self._decoded.close()


def _octal(field: bytes) -> int:
    if field[:1] == b"\x80":  # GNU base-256 for sizes of 8 GiB and more
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _members(stream: _Decoded) -> Iterator[tuple[str, int, bytes]]:
    """(name, size, type flag) of each tar member; the caller consumes its data."""
    long_name: str | None = None
    while True:
        header = stream.read_exact(512)
        if header == ZERO_BLOCK:
            return
        stored = _octal(header[148:156])
        if stored != sum(header[:148]) + 256 + sum(header[156:]):
            raise tarfile.HeaderError("a tar header's checksum does not match")
        size, flag = _octal(header[124:136]), header[156:157]
        name = header[:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
            name = header[345:500].split(b"\0", 1)[0] + b"/" + name
        padded = -size % 512
        if flag in (b"L", b"x", b"g"):
            data = stream.read_exact(size + padded)[:size]
            if flag == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif flag == b"x":
                long_name = _pax_path(data) or long_name
            continue
        text = long_name or name.decode("utf-8", "surrogateescape")
        long_name = None
        yield text, size, flag
        stream.read_exact(padded)


def _pax_path(data: bytes) -> str | None:
    for record in data.split(b"\n"):
        _, _, keyword_value = record.partition(b" ")
        keyword, _, value = keyword_value.partition(b"=")
        if keyword == b"path":
            return value.decode("utf-8", "surrogateescape")
    return None


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _ignored(path: str) -> bool:
    return path in IGNORED or path == "pg_wal" or path.startswith("pg_wal/")


def check(
    repo: Repository, record: BackupRecord, parse_wal: WalParser | None = None
) -> ContentCheck:
    """Read backup ``record``'s data object once and check it against its manifest; with
    ``parse_wal``, parse the WAL of the manifest's ranges meanwhile (its outcome kept when
    the bytes are intact)."""
    result = ContentCheck(record.label)
    try:
        manifest = Manifest.parse(repo.get_bytes(backup_key(record.label, MANIFEST_FILE)))
    except ObjectNotFound:
        return result.fail("content", f"{MANIFEST_FILE} is missing from {repo.url}")
    except StorageError as exc:
        return result.fail("content", f"{MANIFEST_FILE} cannot be read: {exc}")
    except (ValueError, KeyError, TypeError) as exc:
        return result.fail("content", f"{MANIFEST_FILE} is not a valid manifest: {exc}")
    with _WalBeside(parse_wal, record, manifest) as wal:
        _read(repo, record, manifest, result)
        if parse_wal is not None and result.stored_problem is None:
            result.wal = wal.parsed(_segment_size(result.wal_sizes))
    return result


class _WalBeside:
    """The WAL of the backup's range parsed while its data object is read (``pg_waldump`` on
    a core the decoding leaves, its segments read from the archive), assuming PostgreSQL's
    default segment size; parsed again once the read says the size is another. Its outcome
    counts only when the stored bytes prove intact: otherwise (the object missing or changed,
    an interrupt) the parse is cancelled on leaving. The thread never outlives the check."""

    def __init__(self, parse_wal: WalParser | None, record: BackupRecord, manifest: Manifest):
        self._parse = parse_wal
        self._args = (record, manifest.wal_ranges)
        self._outcome: WalParse | BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="content-wal", daemon=True)

    def _run(self) -> None:
        assert self._parse is not None
        try:
            self._outcome = self._parse(*self._args, DEFAULT_SEGMENT_SIZE, self._cancel)
        except BaseException as exc:  # raised in the caller's thread by parsed()
            self._outcome = exc

    def __enter__(self) -> _WalBeside:
        if self._parse is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():  # its outcome was not asked for: it no longer counts
            self._cancel.set()
            self._thread.join()

    def parsed(self, segment_size: int) -> WalParse:
        assert self._parse is not None
        self._thread.join()
        if segment_size != DEFAULT_SEGMENT_SIZE:
            return self._parse(*self._args, segment_size, threading.Event())
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        assert self._outcome is not None
        return self._outcome


def _read(repo: Repository, record: BackupRecord, manifest: Manifest, result: ContentCheck) -> None:
    """Read the data object once: its content checked, its SHA-256 against its record's."""
    hashing: _Hashing | None = None
    try:
        with repo.open_read(backup_key(record.label, DATA_FILE)) as stored:
            hashing = _Hashing(stored)
            _walk(_decoder(hashing, _data_file(record)), manifest, result)
            while hashing.read(CHUNK):  # anything after the tar's end still counts
                pass
    except ObjectNotFound:
        result.damaged("missing", f"is missing from {repo.url}")
        return
    except StorageError as exc:
        result.damaged("unreadable", f"cannot be read from {repo.url}: {exc}")
        return
    result.stored_bytes, result.sha256 = hashing.size, hashing.digest.hexdigest()
    expected = _data_file(record)
    if expected is not None and expected.sha256 != result.sha256:
        # the bytes changed since they were written: that explains any content problem
        result.problems.clear()
        result.stored_problem = None
        read, recorded = result.sha256[:12], expected.sha256[:12]
        result.damaged(
            "differs",
            f"in {repo.url} does not match its recorded SHA-256 (read {read}…, recorded "
            f"{recorded}…; {result.stored_bytes} bytes read, {expected.stored_size} recorded)",
        )


def _data_file(record: BackupRecord) -> StoredFile | None:
    return next((f for f in record.files if f.name == DATA_FILE), None)


def _decoder(stream: _Hashing, stored: StoredFile | None) -> Callable[[], _Decoded]:
    """How the object is decoded: its recorded frames side by side on every core, else (a
    backup written before frames were recorded) as one stream."""
    frames = stored.frames if stored is not None else None
    if frames is None:
        return lambda: _Decompressed(stream)
    return lambda: _FrameDecoded(stream, frames, os.cpu_count() or 1)


def _walk(decoder: Callable[[], _Decoded], manifest: Manifest, result: ContentCheck) -> None:
    seen: set[str] = set()
    wal = result.wal_sizes
    decompressed = decoder()
    try:
        _walk_members(decompressed, manifest, result, seen, wal)
    except (tarfile.TarError, zstandard.ZstdError, EOFError, ValueError) as exc:
        result.damaged("damaged", f"cannot be decompressed and unpacked: {exc}")
        return
    finally:
        decompressed.close()
    for path in sorted(p for p in set(manifest.files) - seen if not _ignored(p)):
        result.fail("content", f"{path} is in the manifest but not in the backup")
    _check_wal(manifest, wal, result)


def _walk_members(
    decompressed: _Decoded, manifest: Manifest, result: ContentCheck, seen: set[str],
    wal: dict[str, int],
) -> None:  # fmt: skip
    for raw_name, size, flag in _members(decompressed):
        if flag not in (b"0", b"\0", b"7"):  # directories, links: no content to check
            decompressed.read_exact(size)
            continue
        name = _member_name(raw_name)
        pieces = decompressed.chunks(size)
        if name.startswith("pg_wal/") and "/" not in name[len("pg_wal/") :]:
            wal[name[len("pg_wal/") :]] = size
        if _ignored(name):
            for _ in pieces:
                pass
            continue
        seen.add(name)
        result.files += 1
        result.raw_bytes += size
        _check_member(name, size, pieces, manifest.files.get(name), result)
    decompressed.drain()


def _segment_size(wal: dict[str, int]) -> int:
    """The segment size of the backup's pg_wal/ members (PostgreSQL's default when unclear)."""
    sizes = set(wal.values())
    segment_size = sizes.pop() if len(sizes) == 1 else DEFAULT_SEGMENT_SIZE
    if segment_size & (segment_size - 1) or not 1 << 20 <= segment_size <= 1 << 30:
        segment_size = DEFAULT_SEGMENT_SIZE
    return segment_size


def _check_wal(manifest: Manifest, wal: dict[str, int], result: ContentCheck) -> None:
    """Every segment of the manifest's WAL ranges is in pg_wal/, whole."""
    segment_size = _segment_size(wal)
    for timeline, start, end in manifest.wal_ranges:
        first = segment_of(parse_lsn(start), timeline, segment_size)
        last = segment_of(max(parse_lsn(end) - 1, parse_lsn(start)), timeline, segment_size)
        for segment in segment_range(first, last):
            size = wal.get(segment.name)
            if size is None:
                result.fail("content", f"WAL {segment.name}, needed for consistency, is not in "
                            "pg_wal/")  # fmt: skip
            elif size != segment_size:
                result.fail("content", f"WAL {segment.name} in pg_wal/ is {size} bytes, not "
                            f"{segment_size}")  # fmt: skip


def _check_member(
    name: str, size: int, pieces: Iterator[memoryview], entry: ManifestFile | None,
    result: ContentCheck,
) -> None:  # fmt: skip
    if entry is None:
        for _ in pieces:
            pass
        result.fail("content", f"{name} is in the backup but not in the manifest")
        return
    digest = _ALGORITHMS[entry.algorithm]()
    for piece in pieces:
        digest.update(piece)
    if size != entry.size:
        result.fail("content", f"{name} is {size} bytes, the manifest says {entry.size}")
    elif entry.algorithm != "NONE" and digest.hexdigest() != entry.checksum:
        result.fail("content", f"{name} does not match its {entry.algorithm} in the manifest "
                    f"(read {digest.hexdigest()}, manifest {entry.checksum})")  # fmt: skip
