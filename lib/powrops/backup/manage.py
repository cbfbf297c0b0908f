"""Catalog-level operations: list, show, expire, and copy to the secondary repository."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.expiry import ExpiryPlan, plan_expiry
from powrops.backup.lock import deleting, repository_lock
from powrops.backup.model import BACKUPS_PREFIX, RECORD_FILE, BackupRecord, backup_key, wal_key
from powrops.config import Settings
from powrops.errors import BackupError, Interrupted
from powrops.storage.base import Repository

EXPIRY_WAIT_S = 60.0  # how long expiry waits for a verification reading the repository


def expire(
    settings: Settings,
    *,
    dry_run: bool,
    repo: Repository | None = None,
    wait: float = EXPIRY_WAIT_S,
) -> ExpiryPlan:
    """Apply ``backup.retention`` to the primary repository (or only plan it).

    The real run plans and deletes under the repository's lock, marked as deleting, and only
    while no verification reads the repository: it waits for one at most ``wait`` seconds,
    then raises LockError (exit 3) naming it. The dry run reads only and waits for nothing.
    """
    repo = repo or repos.primary(settings)
    if dry_run:
        return _plan(settings, repo)
    with deleting(repo, "expiry", wait=wait):
        plan = _plan(settings, repo)
        catalog = Catalog(repo)
        for decision in plan.deletes():
            if decision.kind in ("backup", "incomplete"):
                catalog.delete_backup(decision.item)
            else:
                repo.delete(wal_key(decision.item))
    return plan


def _plan(settings: Settings, repo: Repository) -> ExpiryPlan:
    catalog = Catalog(repo)
    return plan_expiry(
        catalog.records(),
        catalog.wal(),
        settings.backup.retention,
        datetime.now(UTC),
        incomplete=[(i.label, i.first_seen) for i in catalog.incomplete()],
    )


@dataclass
class CopyResult:
    backups: list[str] = field(default_factory=list)
    wal: list[str] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0

    def summary(self) -> str:
        if not self.objects:
            return "nothing missing"
        return (
            f"copied {len(self.backups)} backups and {len(self.wal)} WAL files "
            f"({self.objects} objects, {self.bytes / 2**20:.1f} MiB), checksums read back"
        )


def _copy_object(source: Repository, target: Repository, key: str) -> int:
    """Stream one object across and compare SHA-256 of what the target returns."""
    sent = hashlib.sha256()
    size = 0
    with source.open_read(key) as reader, target.open_write(key) as writer:
        while chunk := reader.read(1 << 20):
            sent.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    got = hashlib.sha256()
    with target.open_read(key) as reader:
        while chunk := reader.read(1 << 20):
            got.update(chunk)
    if got.digest() != sent.digest():
        target.delete(key)
        raise BackupError(f"copy of {key} to {target.url} read back with a different checksum")
    return size


def copy_missing(source: Repository, target: Repository) -> CopyResult:
    """Copy every registered ok backup and every WAL file that ``target`` lacks.

    Each backup's record is copied last, so the secondary never holds a record whose data
    is missing; WAL files are copied before the backups that may need them.
    """
    result = CopyResult()
    have = {o.key for o in target.list()}
    for info in Catalog(source).repo.list("wal/"):
        if info.key not in have:
            result.bytes += _copy_object(source, target, info.key)
            result.objects += 1
            result.wal.append(info.key.rsplit("/", 1)[-1])
    for record in Catalog(source).records():
        if not record.ok or backup_key(record.label, RECORD_FILE) in have:
            continue
        for stored in record.files:
            key = backup_key(record.label, stored.name)
            result.bytes += _copy_object(source, target, key)
            result.objects += 1
        result.bytes += _copy_object(source, target, backup_key(record.label, RECORD_FILE))
        result.objects += 1
        result.backups.append(record.label)
    return result


def copy_to_secondary(settings: Settings) -> CopyResult:
    target = repos.secondary(settings)
    if target is None:
        raise BackupError("no secondary repository configured (backup.storage.secondary.url)")
    source = repos.primary(settings)
    with repository_lock(target, "copy from primary"):
        try:
            return copy_missing(source, target)
        except KeyboardInterrupt as exc:
            raise Interrupted.of(exc).leaving(
                f"copy to the secondary {target.url} stopped: what it copied stays (a backup "
                "whose record is not there yet is not registered there), its lock released; "
                "`powrops backup copy` copies the rest"
            ) from None


def backup_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every backup with its chain and where it is, for `powrops backup list`."""
    primary = Catalog(repos.primary(settings))
    records, damaged = primary.scan()
    second = repos.secondary(settings)
    in_secondary: set[str] = set()
    if second is not None:
        in_secondary = {
            o.key[len(BACKUPS_PREFIX) :].split("/", 1)[0]
            for o in second.list(BACKUPS_PREFIX)
            if o.key.endswith("/" + RECORD_FILE)
        }
    by_label = {r.label: r for r in records}
    rows = []
    for record in records:
        rows.append(_row(record, by_label, second is not None, record.label in in_secondary))
    for broken in damaged:
        rows.append({
            "label": broken.label, "kind": "?", "status": "damaged", "chain": [],
            "error": broken.error, "where": ["primary"],
        })  # fmt: skip
    for incomplete in primary.incomplete():
        rows.append({
            "label": incomplete.label, "kind": "?", "status": "incomplete", "chain": [],
            "start_time": incomplete.first_seen.isoformat(), "stored_size": incomplete.size,
            "where": ["primary"],
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["label"])


def _row(
    record: BackupRecord, by_label: dict[str, BackupRecord], has_secondary: bool, copied: bool
) -> dict[str, Any]:
    chain = []
    current: BackupRecord | None = record
    while current is not None and current.parent:
        chain.append(current.parent)
        current = by_label.get(current.parent)
    where = ["primary"] + (["secondary"] if copied else [])
    return {
        "label": record.label, "kind": record.kind, "status": record.status,
        "parent": record.parent, "chain": chain,
        "start_time": record.start_time.isoformat(),
        "stop_time": record.stop_time.isoformat() if record.stop_time else None,
        "duration_s": record.duration_s, "raw_size": record.raw_size,
        "stored_size": record.stored_size, "timeline": record.timeline,
        "start_lsn": record.start_lsn, "stop_lsn": record.stop_lsn,
        "start_wal": record.start_wal, "stop_wal": record.stop_wal,
        "server_version": record.server_version, "error": record.error,
        "verified_at": record.verified_at.isoformat() if record.verified_at else None,
        "where": where, "secondary_configured": has_secondary,
    }  # fmt: skip
