"""The backup catalog: what a repository holds, read from the repository itself.

There is no separate registry to drift out of date: the catalog is the set of ``backup.json``
records under ``backups/`` plus the archived WAL under ``wal/``. A backup directory without a
record is an incomplete run (killed, or still in progress).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from powrops.backup.expiry import ArchivedWal
from powrops.backup.model import (
    BACKUPS_PREFIX,
    RECORD_FILE,
    WAL_PREFIX,
    BackupRecord,
    backup_key,
    wal_name_of,
)
from powrops.errors import BackupError, ObjectNotFound
from powrops.storage.base import ObjectInfo, Repository, refuse_ciphertext


@dataclass(frozen=True)
class Incomplete:
    """Objects of a backup run that never registered (no backup.json)."""

    label: str
    first_seen: datetime
    objects: int
    size: int


@dataclass(frozen=True)
class Damaged:
    """A backup whose record (backup.json) cannot be read."""

    label: str
    error: str


class Catalog:
    """Backups and WAL in one repository."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def _backup_objects(self) -> dict[str, list[ObjectInfo]]:
        by_label: dict[str, list[ObjectInfo]] = defaultdict(list)
        for info in self.repo.list(BACKUPS_PREFIX):
            label = info.key[len(BACKUPS_PREFIX) :].split("/", 1)[0]
            by_label[label].append(info)
        return by_label

    def labels(self) -> set[str]:
        """Every label with an object under ``backups/``, registered or not."""
        return set(self._backup_objects())

    def records(self) -> list[BackupRecord]:
        """Every registered backup (ok and failed), oldest first; BackupError on a damaged one."""
        found = []
        for label, objects in sorted(self._backup_objects().items()):
            if any(o.key.endswith("/" + RECORD_FILE) for o in objects):
                found.append(self.get(label))
        return found

    def scan(self) -> tuple[list[BackupRecord], list[Damaged]]:
        """Every readable backup record, oldest first, and the records that cannot be read.

        A damaged record is one finding, not the end of the listing: ``backup list`` shows
        the rest and marks it.
        """
        found: list[BackupRecord] = []
        damaged: list[Damaged] = []
        for label, objects in sorted(self._backup_objects().items()):
            if not any(o.key.endswith("/" + RECORD_FILE) for o in objects):
                continue
            try:
                found.append(self.get(label))
            except BackupError as exc:
                damaged.append(Damaged(label, str(exc)))
        return found, damaged

    def incomplete(self) -> list[Incomplete]:
        """Runs that never registered: their objects and unfinished uploads (a run cut off
        the network mid-upload may have left nothing else)."""
        result = []
        found = self._backup_objects()
        for info in self.repo.unfinished(BACKUPS_PREFIX):
            found[info.key[len(BACKUPS_PREFIX) :].split("/", 1)[0]].append(info)
        for label, objects in sorted(found.items()):
            if any(o.key.endswith("/" + RECORD_FILE) for o in objects):
                continue
            times = [o.mtime for o in objects if o.mtime is not None]
            result.append(
                Incomplete(
                    label,
                    min(times) if times else datetime.now(UTC),
                    len(objects),
                    sum(o.size for o in objects),
                )
            )
        return result

    def get(self, label: str) -> BackupRecord:
        key = backup_key(label, RECORD_FILE)
        try:
            raw = self.repo.get_bytes(key)
        except ObjectNotFound:
            raise BackupError(f"no backup {label!r} in {self.repo.url}") from None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            refuse_ciphertext(raw, self.repo.describe(key))
            raise BackupError(f"backup {label} has an unreadable record: {exc}") from exc
        try:
            return BackupRecord.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupError(
                f"backup {label} has a damaged record ({type(exc).__name__}: {exc})"
            ) from exc

    def find(self, label: str | None) -> BackupRecord:
        """A backup by label, or the newest ok backup when label is None."""
        if label is not None:
            return self.get(label)
        ok = [r for r in self.records() if r.ok]
        if not ok:
            raise BackupError(f"no successful backup in {self.repo.url}")
        return ok[-1]

    def write(self, record: BackupRecord) -> None:
        body = json.dumps(record.to_dict(), indent=2, sort_keys=True).encode()
        self.repo.put_bytes(backup_key(record.label, RECORD_FILE), body)

    def latest_ok(self, kind: str | None = None) -> BackupRecord | None:
        ok = [r for r in self.records() if r.ok and (kind is None or r.kind == kind)]
        return ok[-1] if ok else None

    def delete_backup(self, label: str) -> int:
        """Remove a backup: its record first, so that a half-deleted backup claims nothing."""
        objects = self._backup_objects().get(label, [])
        record = [o.key for o in objects if o.key.endswith("/" + RECORD_FILE)]
        self.repo.delete_many(record)
        self.repo.delete_many([o.key for o in objects if o.key not in record])
        return len(objects) + self.repo.abort_unfinished(f"{BACKUPS_PREFIX}{label}/")

    def wal(self) -> list[ArchivedWal]:
        """Archived WAL files, with the time each was archived."""
        return [
            ArchivedWal(wal_name_of(o.key), o.mtime or datetime.now(UTC))
            for o in self.repo.list(WAL_PREFIX)
            if o.key.endswith(".zst")
        ]

    def wal_objects(self) -> dict[str, ObjectInfo]:
        return {wal_name_of(o.key): o for o in self.repo.list(WAL_PREFIX) if o.key.endswith(".zst")}


def consecutive_failures(statuses: Sequence[str]) -> int:
    """Failed runs at the newest end of a list of run statuses ordered oldest first."""
    n = 0
    for status in reversed(statuses):
        if status == "ok":
            break
        n += 1
    return n
