"""Streaming a base backup from ``pg_basebackup`` into a repository object.

``pg_basebackup -D - -Ft -X fetch`` writes one tar stream to stdout: the data directory, the
WAL needed to make it consistent, and PostgreSQL's ``backup_manifest`` at the end. powrops
compresses that stream with zstandard as it arrives, computes SHA-256 of the stored bytes, and
picks ``backup_manifest`` and ``backup_label`` out of the tar headers on the way, without
unpacking anything to disk.

The stream is cut into pieces of :data:`FRAME_SIZE` bytes, each compressed on its own into one
zstd frame (with its content size and a checksum over its content), on every core side by side
and written in order. Concatenated frames are one valid zstd stream (``zstd -dc`` and a restore
read them as one); the compressed size of each frame is recorded (:class:`Frames`), so that a
reader can find each frame and decode them side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from powrops import threads
from powrops.backup.model import Frames
from powrops.errors import INTERRUPTED_CHILD, BackupError, Interrupted
from powrops.pg.binaries import PgBinaries

CHUNK = 1 << 20
BLOCK = 512
#: a piece of the stream, compressed into one frame
Piece = bytes | memoryview
#: the stream's bytes in one zstd frame: a few MiB, enough for level 1 to compress as well as
#: one long frame, few enough that a reader finds work for every core in a small backup
FRAME_SIZE = 4 << 20
CAPTURE = ("backup_manifest", "backup_label")


@dataclass
class PgBaseBackup:
    """The ``pg_basebackup`` command line for one streamed backup."""

    binaries: PgBinaries
    host: str
    port: int
    user: str
    label: str
    dbname: str | None = None
    incremental_manifest: Path | None = None
    fast_checkpoint: bool = True
    verify_checksums: bool = True
    max_rate: str | None = None

    def argv(self) -> list[str]:
        conn = f"host={self.host} port={self.port} user={self.user}"
        if self.dbname:
            conn += f" dbname={self.dbname}"
        args = [
            str(self.binaries.path("pg_basebackup")),
            "--dbname", conn,
            "--pgdata", "-",
            "--format", "tar",
            "--wal-method", "fetch",
            "--manifest-checksums", "CRC32C",
            "--label", self.label,
            "--no-password",
            "--checkpoint", "fast" if self.fast_checkpoint else "spread",
        ]  # fmt: skip
        if not self.verify_checksums:
            args.append("--no-verify-checksums")
        if self.max_rate:
            args += ["--max-rate", self.max_rate]
        if self.incremental_manifest is not None:
            args += ["--incremental", str(self.incremental_manifest)]
        return args


@dataclass
class TarSniffer:
    """Follows a tar stream's headers and keeps the content of a few small members."""

    wanted: tuple[str, ...] = CAPTURE
    captured: dict[str, bytes] = field(default_factory=dict)
    members: int = 0
    _header: bytearray = field(default_factory=bytearray)
    _skip: int = 0
    _keep: str | None = None
    _keep_left: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _ended: bool = False

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view and not self._ended:
            if self._keep_left:
                take = min(self._keep_left, len(view))
                self._buffer += view[:take]
                self._keep_left -= take
                self._skip -= take
                view = view[take:]
                if not self._keep_left and self._keep is not None:
                    self.captured[self._keep] = bytes(self._buffer)
                    self._keep = None
                continue
            if self._skip:
                take = min(self._skip, len(view))
                self._skip -= take
                view = view[take:]
                continue
            take = min(BLOCK - len(self._header), len(view))
            self._header += view[:take]
            view = view[take:]
            if len(self._header) == BLOCK:
                self._on_header(bytes(self._header))
                self._header.clear()

    def _on_header(self, header: bytes) -> None:
        if header == b"\0" * BLOCK:
            self._ended = True
            return
        name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
        if prefix and header[257:262] == b"ustar":
            name = f"{prefix}/{name}"
        size = _tar_size(header[124:136])
        self.members += 1
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        self._skip = padded
        name = name.removeprefix("./")
        if name in self.wanted and header[156:157] in (b"0", b"\0"):
            self._keep, self._keep_left = name, size
            self._buffer = bytearray()
            if size == 0:
                self.captured[name] = b""
                self._keep = None


def _tar_size(field_bytes: bytes) -> int:
    if field_bytes[0] & 0x80:  # base-256 for members of 8 GiB and more
        value = int.from_bytes(field_bytes[1:], "big")
        return value
    text = field_bytes.split(b"\0", 1)[0].strip() or b"0"
    return int(text, 8)


@dataclass
class StreamResult:
    """What came out of one pg_basebackup stream."""

    raw_size: int
    manifest: bytes
    label_file: str
    members: int
    stderr: str
    frames: Frames | None = None


class _Tee:
    """A writable that hashes and counts what passes through to the repository."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def stream_to(
    backup: PgBaseBackup,
    out: IO[bytes],
    *,
    password: str | None,
    progress: Callable[[int], None] | None = None,
    level: int = 1,
) -> tuple[StreamResult, str, int]:
    """Run pg_basebackup, compress its tar stream into ``out``, frame by frame.

    Returns the stream result (with the frames written) plus the SHA-256 and size of the stored
    (compressed) bytes. Raises BackupError with pg_basebackup's own message when it fails; the
    caller's repository writer then discards the partial object.
    """
    env = _client_env(password)
    tee = _Tee(out)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            backup.argv(), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        assert proc.stdout is not None
        widen_pipe(proc.stdout)
        try:
            reading = _Pieces(proc.stdout, progress)
            frames = compress_frames(reading, tee, level, abort=proc.kill,
                                     release=reading.release)  # fmt: skip
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        stderr = err.read()
    if code in INTERRUPTED_CHILD:  # the same Ctrl-C or SIGTERM as ours: not its failure
        raise Interrupted("SIGINT" if code in (-2, 130) else "SIGTERM")
    if code != 0:
        raise BackupError(f"pg_basebackup failed ({code}): {stderr.strip()[-2000:]}")
    sniffer = reading.sniffer
    if "backup_manifest" not in sniffer.captured:
        raise BackupError("the backup stream ended without a backup_manifest: incomplete backup")
    result = StreamResult(
        raw_size=reading.raw_size,
        manifest=sniffer.captured["backup_manifest"],
        label_file=sniffer.captured.get("backup_label", b"").decode("utf-8", "replace"),
        members=sniffer.members,
        stderr=stderr,
        frames=frames,
    )
    return result, tee.hash.hexdigest(), tee.size


class _Pieces:
    """The stream read in pieces of one frame's size into a few reused buffers (``release``
    hands one back once compressed), its tar headers followed on the way."""

    def __init__(self, stream: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self.stream = stream
        self.progress = progress
        self.sniffer = TarSniffer()
        self.raw_size = 0
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()

    def __iter__(self) -> Iterator[memoryview]:
        while piece := self._piece():
            self.raw_size += len(piece)
            self.sniffer.feed(piece)
            if self.progress:
                self.progress(self.raw_size)
            yield piece

    def _piece(self) -> memoryview:
        """The next FRAME_SIZE bytes (fewer at the end): every frame but the last holds as
        many, which is what lets a reader place each frame in the stream."""
        try:
            buffer = self._free.get_nowait()
        except queue.Empty:
            buffer = bytearray(FRAME_SIZE)
        view, filled = memoryview(buffer), 0
        while filled < FRAME_SIZE and (got := self.stream.readinto(view[filled:])):  # type: ignore[attr-defined]
            filled += int(got)
        return view[:filled]

    def release(self, piece: memoryview) -> None:
        self._free.put(piece.obj)  # type: ignore[arg-type]


def compress_frames(
    pieces: Iterable[Piece], out: IO[bytes] | _Tee, level: int = 1, frame_size: int = FRAME_SIZE,
    abort: Callable[[], object] | None = None, release: Callable[[Any], None] | None = None,
) -> Frames:  # fmt: skip
    """Each piece (``frame_size`` bytes, the last fewer) compressed into one zstd frame, on
    every core side by side, written to ``out`` in order; the frames written. ``release``
    receives each piece once compressed (its buffer can be read into again). When writing
    fails or is interrupted, wherever the interrupt lands, ``abort`` stops the pieces' source
    first (a thread drawing the next piece from a pipe is not left waiting for it), then the
    threads are stopped."""
    import zstandard

    local = threading.local()

    def compress(piece: Piece) -> tuple[int, bytes]:
        if not hasattr(local, "compressor"):
            local.compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        size, frame = len(piece), local.compressor.compress(piece)
        if release is not None:
            release(piece)
        return size, frame

    # one thread more than cores: the one drawing the next piece waits on the pipe most of
    # the time, and the source never waits for a core to come free before it is read
    workers = (os.cpu_count() or 1) + 1
    sizes: list[int] = []
    raw = 0
    compressed = threads.ordered(compress, iter(pieces), workers, 2 * workers, stop=abort)
    try:
        for raw_size, frame in compressed:
            if raw != len(sizes) * frame_size:  # the spans recorded would be wrong
                last = raw - (len(sizes) - 1) * frame_size
                raise ValueError(
                    f"piece {len(sizes) - 1} holds {last} bytes, not the {frame_size} of every "
                    "piece but the last"
                )
            out.write(frame)
            sizes.append(len(frame))
            raw += raw_size
    finally:
        compressed.close()
    return Frames(frame_size, tuple(sizes), raw)


PIPE_SIZE = 1 << 20


def widen_pipe(pipe: IO[bytes]) -> None:
    """A 1 MiB pipe instead of 64 KiB: the writer goes on while the reader works on a chunk,
    and both sides wake up sixteen times less often (a stream of a backup in or out)."""
    with contextlib.suppress(OSError, AttributeError):  # a smaller limit: the default stays
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


#: libpq variables a client keeps: how to authenticate and encrypt (a job role's password in
#: a pgpass file, client certificates). Others (PGHOST, PGDATABASE, ...) could only confuse.
_CLIENT_AUTH_ENV = ("PGPASSFILE", "PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT",
                    "PGSSLKEY", "PGSSLCRL", "PGGSSENCMODE", "PGKRBSRVNAME")  # fmt: skip


def _client_env(password: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k in _CLIENT_AUTH_ENV}
    env["LC_ALL"] = "C.UTF-8"
    if password:
        env["PGPASSWORD"] = password
    return env


def manifest_facts(manifest: bytes) -> dict[str, Any]:
    """Timeline, start and end LSN, system identifier from a backup_manifest."""
    data: Mapping[str, Any] = json.loads(manifest)
    ranges = data.get("WAL-Ranges") or []
    if not ranges:
        raise BackupError("backup_manifest has no WAL-Ranges")
    last = ranges[-1]
    first = ranges[0]
    facts: dict[str, Any] = {
        "timeline": int(last["Timeline"]),
        "start_lsn": str(first["Start-LSN"]),
        "stop_lsn": str(last["End-LSN"]),
        "files": len(data.get("Files", [])),
        "manifest_version": data.get("PostgreSQL-Backup-Manifest-Version"),
    }
    if "System-Identifier" in data:
        facts["system_identifier"] = str(data["System-Identifier"])
    return facts


def label_facts(label_file: str) -> dict[str, str]:
    """Key/value pairs of a backup_label ("START WAL LOCATION: 0/2000028 (file ...)")."""
    facts: dict[str, str] = {}
    for line in label_file.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            facts[key.strip()] = value.strip()
    return facts
