"""Choosing the backup a restore starts from: the newest restorable one that ends before
the recovery target, or the one named, checked against it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from powrops.backup.model import BackupRecord
from powrops.backup.wal.positions import parse_lsn
from powrops.errors import ParameterError
from powrops.format import human_time
from powrops.restore.errors import RestoreFailed
from powrops.restore.target import RecoveryTarget

if TYPE_CHECKING:
    from powrops.backup.catalog import Catalog


def restorable(records: Sequence[BackupRecord]) -> list[BackupRecord]:
    """The ok backups whose whole chain is present and ok, oldest first."""
    by_label = {r.label: r for r in records}
    usable = []
    for record in records:
        member: BackupRecord | None = record
        while member is not None and member.ok and member.parent:
            member = by_label.get(member.parent)
        if member is not None and member.ok:
            usable.append(record)
    return sorted(usable, key=lambda r: r.label)


def _reaches(record: BackupRecord, target: RecoveryTarget) -> bool:
    if target.kind == "time":
        return record.stop_time is not None and record.stop_time <= target.time
    if target.kind == "lsn":
        return record.stop_lsn is not None and parse_lsn(record.stop_lsn) <= target.lsn
    return True


def choose_backup(records: Sequence[BackupRecord], target: RecoveryTarget) -> BackupRecord:
    """The newest restorable backup that ends before ``target`` (the newest for other kinds)."""
    usable = restorable(records)
    candidates = [r for r in usable if _reaches(r, target)]
    if candidates:
        return candidates[-1]
    if not usable:
        raise RestoreFailed(
            f"no backup can reach {target.describe()}: the repository holds no successful backup"
        )
    listing = "; ".join(
        f"{r.label} ended {human_time(r.stop_time)} at LSN {r.stop_lsn}" for r in usable
    )
    raise RestoreFailed(
        f"no backup can reach {target.describe()}: every backup ends after it "
        f"(the oldest restorable backup, {usable[0].label}, ends at "
        f"{human_time(usable[0].stop_time)} / LSN {usable[0].stop_lsn}). Backups: {listing}"
    )


def _pick(catalog: Catalog, label: str | None, target: RecoveryTarget) -> BackupRecord:
    records = catalog.records()
    if label is None:
        return choose_backup(records, target)
    found = [r for r in records if r.label == label]
    if not found:
        known = ", ".join(r.label for r in records) or "none"
        raise ParameterError(f"no backup {label!r} in {catalog.repo.url} (backups: {known})")
    record = found[0]
    if not record.ok:
        raise ParameterError(f"backup {label} failed ({record.error}); it cannot be restored")
    if not _reaches(record, target):
        raise RestoreFailed(
            f"backup {label} ends at {human_time(record.stop_time)} / LSN {record.stop_lsn}, after "
            f"{target.describe()}: choose an older backup, or omit the label to let powrops choose"
        )
    return record
