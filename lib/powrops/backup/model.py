"""What the repository records about each backup: plain data, serialised as JSON.

A backup is *registered* when its ``backup.json`` exists with status ``ok``: that object is
written last, after every stored file was read back and its checksum compared. A run that
fails writes ``backup.json`` with status ``failed`` and the error (failed runs count towards
the failed-backup alerts); a run that was killed leaves no ``backup.json`` at all, and its
objects are an *incomplete* backup that expiry removes.

Repository layout::

    backups/<label>/base.tar.zst        the pg_basebackup tar stream, zstd-compressed
    backups/<label>/backup_manifest     PostgreSQL's manifest (incrementals are taken against it)
    backups/<label>/backup.json         this record, written last
    wal/<timeline><xlogid>/<name>.zst   archived WAL (segments, .partial, .history, .backup)
    locks/backup.lock                   one backup at a time per repository (and expiry)
    locks/readers/<host>-<pid>-<id>     a verification in progress: expiry waits for it
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from powrops.backup.wal.names import WAL_PREFIX as WAL_PREFIX
from powrops.backup.wal.names import wal_key as wal_key
from powrops.backup.wal.names import wal_name_of as wal_name_of

Kind = Literal["full", "incremental"]
Status = Literal["ok", "failed"]

BACKUPS_PREFIX = "backups/"
LOCK_KEY = "locks/backup.lock"
READERS_PREFIX = "locks/readers/"
RECORD_FILE = "backup.json"
DATA_FILE = "base.tar.zst"
MANIFEST_FILE = "backup_manifest"


def backup_key(label: str, name: str) -> str:
    return f"{BACKUPS_PREFIX}{label}/{name}"


def new_label(kind: Kind, when: datetime | None = None) -> str:
    """``20261126T061500F`` for a full, ``...I`` for an incremental (UTC, sortable)."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + ("F" if kind == "full" else "I")


@dataclass(frozen=True)
class Frames:
    """How a stored stream is cut into independent zstd frames (the backup stream since they
    were introduced): every frame holds ``frame_size`` bytes of the stream but the last, which
    holds the rest; ``sizes`` are the frames' compressed sizes, in order. Concatenated, the
    frames are the object, one valid zstd stream."""

    frame_size: int  # bytes of the stream in each frame (the last: what is left)
    sizes: tuple[int, ...]  # the stored size of each frame
    raw_size: int  # bytes of the stream in all

    def spans(self) -> list[FrameSpan]:
        """Where each frame lies in the object and in the stream."""
        spans, stored = [], 0
        for index, size in enumerate(self.sizes):
            raw_offset = index * self.frame_size
            raw = min(self.frame_size, self.raw_size - raw_offset)
            spans.append(FrameSpan(stored, size, raw_offset, raw))
            stored += size
        return spans

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Frames:
        return cls(int(data["frame_size"]), tuple(int(s) for s in data["sizes"]),
                   int(data["raw_size"]))  # fmt: skip


@dataclass(frozen=True)
class FrameSpan:
    """One frame: its offset and size in the stored object and in the stream."""

    stored_offset: int
    stored_size: int
    raw_offset: int
    raw_size: int


@dataclass(frozen=True)
class StoredFile:
    """One object of a backup in the repository, with the checksums read back."""

    name: str
    size: int  # bytes before compression
    stored_size: int  # bytes in the repository
    sha256: str  # of the stored bytes
    # SHA-256 of the content before compression, for small objects; None for the backup
    # stream, whose content is covered by the zstd frame checksum checked on every read.
    raw_sha256: str | None
    # the backup stream's frames, for a reader to decode them side by side; None: one stream
    # (backups written before frames were recorded), read from start to end
    frames: Frames | None = None


def _stored_file(data: dict[str, Any]) -> StoredFile:
    frames = data.get("frames")
    return StoredFile(**{**data, "frames": Frames.from_dict(frames) if frames else None})


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class BackupRecord:
    """Metadata of one backup run."""

    label: str
    kind: Kind
    status: Status
    start_time: datetime
    stop_time: datetime | None = None
    parent: str | None = None
    timeline: int | None = None
    start_lsn: str | None = None
    stop_lsn: str | None = None
    start_wal: str | None = None
    stop_wal: str | None = None
    raw_size: int = 0
    stored_size: int = 0
    files: tuple[StoredFile, ...] = ()
    server_version: str | None = None
    system_identifier: str | None = None
    tool_version: str | None = None
    database: str | None = None
    error: str | None = None
    verified_at: datetime | None = None
    steps: tuple[dict[str, Any], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def duration_s(self) -> float | None:
        if self.stop_time is None:
            return None
        return (self.stop_time - self.start_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("start_time", "stop_time", "verified_at"):
            value = getattr(self, key)
            data[key] = value.isoformat() if value else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        start = _time(values["start_time"])
        assert start is not None
        values["start_time"] = start
        values["stop_time"] = _time(values.get("stop_time"))
        values["verified_at"] = _time(values.get("verified_at"))
        values["files"] = tuple(_stored_file(f) for f in values.get("files", ()))
        values["steps"] = tuple(values.get("steps", ()))
        return cls(**values)
