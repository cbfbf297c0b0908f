"""The WAL of a backup's range parsed as ``pg_verifybackup`` parses it.

``pg_verifybackup`` ends by running ``pg_waldump`` over the WAL the backup needs to become
consistent, the ``WAL-Ranges`` of its ``backup_manifest`` (start LSN to end LSN on each
timeline): every record between them is read, its CRC and its link to the previous record
checked. powrops does the same at a backup's first content check, over the copies a restore
reads, the archive's: each segment of the range is fetched from ``wal/``, decompressed into a
scratch folder (in memory, ``/dev/shm``, when it fits: a few segments), and
``pg_waldump --quiet --path DIR --timeline T --start S --end E`` of the backup's major version
runs over them. A segment missing from the archive, one that does not decompress or has the
wrong size, and a record that does not parse are problems naming their segment.

The parse runs beside the read of the backup's data object; when its outcome can no longer
count (the read stopped: an interrupt, the object missing or its bytes changed), ``cancel`` is
set and the parse stops within ``POLL_S``: between chunks of a segment, or by killing
``pg_waldump``.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from powrops.backup.model import BackupRecord, wal_key
from powrops.backup.wal.positions import Segment, parse_lsn, segment_of, segment_range
from powrops.errors import ObjectNotFound, PowropsError, StorageError
from powrops.pg.binaries import PgBinaries
from powrops.storage.base import Repository

CHUNK = 1 << 20
TIMEOUT_S = 300.0
POLL_S = 0.1  # how soon a cancelled parse stops pg_waldump
_RECORD_AT = re.compile(r"at ([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})")

#: (timeline, start LSN, end LSN), as the manifest's ``WAL-Ranges`` give them.
WalRange = tuple[int, str, str]


@dataclass
class WalParse:
    """What parsing the WAL of one backup's range showed."""

    status: str = "ok"  # ok / failed / not run
    segments: list[str] = field(default_factory=list)  # the segments of the range, in order
    problems: list[tuple[str, str]] = field(default_factory=list)  # (segment, what is wrong)
    reason: str | None = None  # why it did not run
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fail(self, segment: str, problem: str) -> None:
        self.status = "failed"
        self.problems.append((segment, problem))


#: Parses the WAL of a backup's range: (its record, the manifest's ranges, the segment size,
#: the event that stops it). The verification builds one from the settings (which
#: ``pg_waldump``, which scratch folder).
WalParser = Callable[[BackupRecord, Sequence[WalRange], int, threading.Event], WalParse]


class _Cancelled(Exception):
    """The parse was told to stop; its outcome no longer counts."""


def range_segments(wal_range: WalRange, segment_size: int) -> list[Segment]:
    """The segments holding ``wal_range``, first to last."""
    timeline, start, end = wal_range
    first = segment_of(parse_lsn(start), timeline, segment_size)
    last = segment_of(max(parse_lsn(end) - 1, parse_lsn(start)), timeline, segment_size)
    return list(segment_range(first, last))


def waldump_args(path: Path, wal_range: WalRange) -> list[str]:
    """``pg_waldump``'s arguments for one range, as ``pg_verifybackup`` passes them."""
    timeline, start, end = wal_range
    return ["--quiet", f"--path={path}", f"--timeline={timeline}", f"--start={start}",
            f"--end={end}"]  # fmt: skip


def parse(
    repo: Repository,
    ranges: Sequence[WalRange],
    segment_size: int,
    tools: PgBinaries | PowropsError,
    scratch: Callable[[int], str | None],
    cancel: threading.Event | None = None,
) -> WalParse:
    """Fetch the segments of ``ranges`` from ``repo``'s archive and parse them with
    ``pg_waldump`` (``tools``, or why there are none); ``scratch(bytes)`` says where to put
    them. Once ``cancel`` is set, the parse stops soon and says it did not run."""
    mark = time.monotonic()
    result = WalParse()
    spans = [(r, range_segments(r, segment_size)) for r in ranges]
    result.segments = [s.name for _, segments in spans for s in segments]
    if isinstance(tools, PowropsError):
        result.status, result.reason = "not run", f"no pg_waldump: {tools}"
        return result
    need = segment_size * max((len(segments) for _, segments in spans), default=0)
    stop = cancel or threading.Event()
    try:
        with tempfile.TemporaryDirectory(prefix="powrops-wal-", dir=scratch(need)) as tmp:
            _parse_ranges(repo, spans, segment_size, tools, Path(tmp), result, stop)
    except _Cancelled:
        result.status, result.reason = "not run", "stopped before it finished"
    result.seconds = round(time.monotonic() - mark, 3)
    return result


def _parse_ranges(
    repo: Repository, spans: Sequence[tuple[WalRange, list[Segment]]], segment_size: int,
    tools: PgBinaries, folder: Path, result: WalParse, cancel: threading.Event,
) -> None:  # fmt: skip
    for wal_range, segments in spans:
        if _fetch(repo, segments, segment_size, folder, result, cancel):
            _waldump(tools, folder, wal_range, segments, result, cancel)
        for path in folder.iterdir():
            path.unlink()


def _fetch(
    repo: Repository, segments: Sequence[Segment], segment_size: int, folder: Path,
    result: WalParse, cancel: threading.Event,
) -> bool:  # fmt: skip
    """Decompress each segment into ``folder``; False when one cannot be (named in result)."""
    whole = True
    for segment in segments:
        problem = _fetch_one(repo, segment.name, segment_size, folder / segment.name, cancel)
        if problem is not None:
            result.fail(segment.name, problem)
            whole = False
    return whole


def _fetch_one(
    repo: Repository, name: str, segment_size: int, target: Path, cancel: threading.Event
) -> str | None:
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    size = 0
    try:
        with repo.open_read(wal_key(name)) as stored, target.open("wb") as out:
            while chunk := stored.read(CHUNK):
                if cancel.is_set():
                    raise _Cancelled
                data = decompressor.decompress(chunk)
                size += len(data)
                out.write(data)
    except ObjectNotFound:
        return f"is missing from the archive {repo.url}"
    except StorageError as exc:
        return f"cannot be read from the archive {repo.url}: {exc}"
    except zstandard.ZstdError as exc:
        return f"in the archive {repo.url} does not decompress: {exc}"
    if not decompressor.eof:
        return f"in the archive {repo.url} is truncated: its zstd frame ends early"
    if size != segment_size:
        return f"in the archive {repo.url} is {size} bytes, not {segment_size}"
    return None


def _waldump(
    tools: PgBinaries, folder: Path, wal_range: WalRange, segments: Sequence[Segment],
    result: WalParse, cancel: threading.Event,
) -> None:  # fmt: skip
    try:
        returncode, said = _run([str(tools.path("pg_waldump")), *waldump_args(folder, wal_range)],
                                cancel)  # fmt: skip
    except (PowropsError, OSError, subprocess.TimeoutExpired) as exc:
        result.status, result.reason = "not run", f"pg_waldump cannot run: {exc}"
        return
    if returncode == 0:
        return
    result.fail(_segment_named(said, wal_range, segments),
                f"does not parse with pg_waldump: {said[-500:]}")  # fmt: skip


def _run(argv: list[str], cancel: threading.Event) -> tuple[int, str]:
    """``argv``'s exit status and what it said; killed after ``TIMEOUT_S`` (TimeoutExpired)
    or within ``POLL_S`` of ``cancel`` (_Cancelled)."""
    deadline = time.monotonic() + TIMEOUT_S
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:  # fmt: skip
        while True:
            try:
                out, err = proc.communicate(timeout=POLL_S)
                return proc.returncode, (err or out).strip()
            except subprocess.TimeoutExpired:
                if not cancel.is_set() and time.monotonic() < deadline:
                    continue
                proc.kill()
                proc.communicate()
                if cancel.is_set():
                    raise _Cancelled from None
                raise subprocess.TimeoutExpired(argv, TIMEOUT_S) from None


def _segment_named(said: str, wal_range: WalRange, segments: Sequence[Segment]) -> str:
    """The segment of the record pg_waldump complains about, else the first of the range."""
    match = _RECORD_AT.search(said)
    if match is not None:
        lsn = parse_lsn(match.group(1))
        for segment in segments:
            if segment.start_lsn <= lsn < segment.start_lsn + segment.segment_size:
                return segment.name
    return segments[0].name
