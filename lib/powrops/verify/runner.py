"""``verify()``: every check in order, over one listing of each repository.

1. the catalog: no ok backup, broken chains, incomplete runs;
2. repository checksums of every backup file and WAL object, primary then secondary;
3. WAL continuity per timeline, timeline histories, each backup's recoverability window;
4. ``pg_verifybackup`` on each backup's reconstructed data directory (chains combined);
5. freshness against the schedule, ``pg_stat_archiver`` and failed runs (whole repository only);
6. optionally a test restore through :func:`powrops.restore.test_restore`.
"""

from __future__ import annotations

import importlib
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import TimeoutExpired
from typing import Any

from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.expiry import broken_link, chain
from powrops.backup.lock import is_stale, read_lock
from powrops.backup.model import (
    BACKUPS_PREFIX,
    LOCK_KEY,
    RECORD_FILE,
    WAL_PREFIX,
    BackupRecord,
    wal_name_of,
)
from powrops.backup.reconstruct import reconstruct, verify_directory
from powrops.backup.wal import kind_of, parse_segment
from powrops.config import Settings
from powrops.errors import BackupError, DatabaseError, ParameterError, PowropsError, StorageError
from powrops.findings import Severity, overall
from powrops.format import Echo
from powrops.pg.binaries import PgBinaries, find_binaries
from powrops.storage.base import ObjectInfo, Repository
from powrops.verify import checksums, freshness, recoverability
from powrops.verify.checksums import ObjectCheck
from powrops.verify.report import BackupRow, RecoveryWindow, VerificationReport


@dataclass
class Listing:
    """One listing of a repository, grouped: backup objects by label, WAL objects by name."""

    backups: dict[str, list[ObjectInfo]] = field(default_factory=dict)
    wal: dict[str, ObjectInfo] = field(default_factory=dict)
    locked: bool = False

    @classmethod
    def of(cls, repo: Repository) -> Listing:
        listing = cls()
        for info in repo.list(""):
            if info.key.startswith(BACKUPS_PREFIX):
                label = info.key[len(BACKUPS_PREFIX) :].split("/", 1)[0]
                listing.backups.setdefault(label, []).append(info)
            elif info.key.startswith(WAL_PREFIX) and info.key.endswith(".zst"):
                listing.wal[wal_name_of(info.key)] = info
            elif info.key == LOCK_KEY:
                listing.locked = True
        return listing

    def has_record(self, label: str) -> bool:
        return any(o.key.endswith("/" + RECORD_FILE) for o in self.backups.get(label, []))

    def keys(self) -> set[str]:
        return {o.key for objects in self.backups.values() for o in objects}


def recovery_windows(settings: Settings, now: datetime | None = None) -> dict[str, RecoveryWindow]:
    """Each backup's recovery window from one listing of the primary repository (no object is
    read but the backup records): what ``backup list`` shows beside each backup."""
    primary = repos.primary(settings)
    records, _ = Catalog(primary).scan()
    listing = Listing.of(primary)
    return recoverability.listed_windows(records, listing.wal, now or datetime.now(UTC))


def verify(
    settings: Settings,
    label: str | None = None,
    *,
    restore: bool = False,
    now: datetime | None = None,
    pg_verifybackup: bool = True,
    echo: Echo | None = None,
) -> VerificationReport:
    """Verify the backups of the configured repositories (or backup ``label`` and its chain).

    Raises a PowropsError (exit code 3) only when verification cannot run at all: the primary
    repository cannot be listed, or ``label`` is not in it. Everything else is a finding.
    """
    started = time.monotonic()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ParameterError("verify needs an aware 'now' (UTC), not a naive datetime")
    primary = repos.primary(settings)
    secondary = repos.secondary(settings)
    report = VerificationReport(primary.url, secondary.url if secondary else None, label, now)
    seconds: dict[str, float] = {}
    report.figures["seconds"] = seconds
    listing = Listing.of(primary)
    records = _records(report, primary, listing)
    targets = _targets(report, records, label)
    report.figures["backups_checked"] = len(targets)
    if label is None:
        _catalog(report, primary, listing, records)
    by_label = {r.label: r for r in records}
    for record in targets:
        broken = broken_link(record, by_label)
        if broken is not None:
            report.add(
                "backups", Severity.CRITICAL, f"backup {record.label} is not restorable: {broken}",
                record.label, label=record.label,
            )  # fmt: skip

    mark = time.monotonic()
    damaged = checksums.primary_backups(report, primary, targets, echo)
    wal_objects = _relevant_wal(listing, targets, label)
    wal_results = checksums.primary_wal(report, primary, wal_objects.values(), echo)
    seconds["checksums"] = round(time.monotonic() - mark, 3)
    mark = time.monotonic()
    second, second_wal = _secondary(
        report, secondary, targets, damaged, wal_objects, wal_results, echo
    )
    seconds["secondary"] = round(time.monotonic() - mark, 3)

    archive = recoverability.build_archive(report, wal_objects, wal_results)
    continuity = recoverability.continuity(report, archive, targets, records, settings, second_wal)

    mark = time.monotonic()
    verified = _pg_verifybackup(report, settings, primary, targets, by_label, damaged,
                                pg_verifybackup, echo)  # fmt: skip
    seconds["pg_verifybackup"] = round(time.monotonic() - mark, 3)
    if label is None:
        _freshness(report, settings, records, listing, now)
    if restore:
        mark = time.monotonic()
        _test_restore(report, settings, label, targets, by_label, echo)
        seconds["test_restore"] = round(time.monotonic() - mark, 3)
    report.backups = _rows(report, records if label is None else targets, by_label, damaged,
                           second, verified, continuity, secondary is not None)  # fmt: skip
    _mark_verified(report, primary, targets)
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def _mark_verified(
    report: VerificationReport, repo: Repository, targets: Sequence[BackupRecord]
) -> None:
    """Write ``verified_at`` into the record of each backup that passed checksums and
    pg_verifybackup with no critical finding of its own (expiry and migrations rely on it)."""
    catalog = Catalog(repo)
    by_label = {r.label: r for r in targets}
    for row in report.backups:
        record = by_label.get(row.label)
        passed = row.checksums == "ok" and row.pg_verifybackup == "ok"
        if record is None or not passed or row.severity in (Severity.CRITICAL, Severity.UNKNOWN):
            continue
        try:
            catalog.write(replace(record, verified_at=report.now))
        except StorageError as exc:
            report.add("backups", Severity.WARNING,
                       f"backup {row.label} verified but its record cannot be updated: {exc}",
                       row.label, label=row.label)  # fmt: skip


# --- catalog -------------------------------------------------------------------------------


def _records(report: VerificationReport, repo: Repository, listing: Listing) -> list[BackupRecord]:
    catalog = Catalog(repo)
    records = []
    for label in sorted(listing.backups):
        if not listing.has_record(label):
            continue
        try:
            records.append(catalog.get(label))
        except BackupError as exc:
            report.add("backups", Severity.CRITICAL, str(exc), label, label=label)
    return records


def _targets(
    report: VerificationReport, records: Sequence[BackupRecord], label: str | None
) -> list[BackupRecord]:
    """The ok backups to verify: all, or ``label`` and the chain it needs (full first)."""
    if label is None:
        return [r for r in records if r.ok]
    by_label = {r.label: r for r in records}
    if label not in by_label:
        raise BackupError(f"no backup {label!r} in {report.repository}")
    record = by_label[label]
    if not record.ok:
        report.add(
            "backups", Severity.CRITICAL,
            f"backup {label} is a failed run ({record.error or 'no error recorded'}): "
            "there is nothing to restore",
            label, label=label,
        )  # fmt: skip
        return []
    return [r for r in reversed(chain(record, by_label)) if r.ok]


def _catalog(
    report: VerificationReport, repo: Repository, listing: Listing,
    records: Sequence[BackupRecord],
) -> None:  # fmt: skip
    if not any(r.ok for r in records):
        report.add(
            "backups", Severity.CRITICAL, f"no successful backup in {repo.url}",
            advice="take one: `powrops backup full`",
        )  # fmt: skip
    holder = read_lock(repo) if listing.locked else None
    running = holder is not None and is_stale(holder, timedelta(minutes=10)) is None
    for label in sorted(listing.backups):
        if listing.has_record(label):
            continue
        objects = listing.backups[label]
        if running and holder is not None and label in str(holder.get("purpose", "")):
            report.add("backups", Severity.OK, f"backup {label} is in progress", label,
                       label=label)  # fmt: skip
            continue
        report.add(
            "backups", Severity.WARNING,
            f"incomplete backup {label}: {len(objects)} objects without a backup.json "
            "(a run that was killed); it claims nothing and expiry removes it",
            label, advice="`powrops backup expire` removes it after a day", label=label,
        )  # fmt: skip


def _relevant_wal(
    listing: Listing, targets: Sequence[BackupRecord], label: str | None
) -> dict[str, ObjectInfo]:
    """Every WAL object; for one backup, history files and WAL from its chain's start on."""
    if label is None:
        return dict(listing.wal)
    starts = [parse_segment(r.start_wal).number for r in targets if r.start_wal]
    first = min(starts, default=0)
    chosen = {}
    for name, info in listing.wal.items():
        kind = kind_of(name)
        if kind == "history" or (kind != "unknown" and parse_segment(name[:24]).number >= first):
            chosen[name] = info
    return chosen


# --- secondary -----------------------------------------------------------------------------


def _secondary(
    report: VerificationReport,
    repo: Repository | None,
    targets: Sequence[BackupRecord],
    damaged: dict[str, list[ObjectCheck]],
    wal_objects: dict[str, ObjectInfo],
    wal_results: dict[str, ObjectCheck],
    echo: Echo | None,
) -> tuple[dict[str, str], set[str]]:
    """Status of each backup's copy in the secondary, and the WAL names the secondary holds."""
    if repo is None:
        return {}, set()
    try:
        listing = Listing.of(repo)
    except StorageError as exc:
        report.add(
            "secondary", Severity.WARNING,
            f"the secondary {repo.url} cannot be listed: {exc}; the primary is unaffected",
        )  # fmt: skip
        return {r.label: "not checked" for r in targets}, set()
    statuses = checksums.secondary_backups(report, repo, targets, listing.keys(), damaged, echo)
    copied = [r.stop_time for r in targets if listing.has_record(r.label) and r.stop_time]
    wal_there = {name: info for name, info in listing.wal.items() if name in wal_objects}
    checksums.secondary_wal(report, repo, wal_objects, wal_results, wal_there,
                            max(copied, default=None), echo)  # fmt: skip
    return statuses, set(listing.wal)


# --- pg_verifybackup -----------------------------------------------------------------------


def _major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def _pg_verifybackup(
    report: VerificationReport,
    settings: Settings,
    repo: Repository,
    targets: Sequence[BackupRecord],
    by_label: dict[str, BackupRecord],
    damaged: dict[str, list[ObjectCheck]],
    enabled: bool,
    echo: Echo | None,
) -> dict[str, tuple[str, float | None]]:
    """(status, seconds) per label."""

    if not enabled:
        return {r.label: ("skipped: not requested", None) for r in targets}
    outcome: dict[str, tuple[str, float | None]] = {}
    binaries: dict[int | None, PgBinaries | PowropsError] = {}
    catalog = Catalog(repo)
    for record in targets:
        if broken_link(record, by_label) is not None:
            outcome[record.label] = ("skipped: chain broken", None)
            continue
        members = [m.label for m in reversed(chain(record, by_label))]
        bad = [m for m in members if damaged.get(m)]
        if bad:
            outcome[record.label] = (f"skipped: checksum failure in {', '.join(bad)}", None)
            continue
        major = _major(record.server_version)
        if major not in binaries:
            try:
                binaries[major] = find_binaries(major, settings.postgres.bin_dir)
            except PowropsError as exc:
                binaries[major] = exc
                report.add("pg_verifybackup", Severity.UNKNOWN, f"cannot run: {exc}")
        tools = binaries[major]
        if isinstance(tools, PowropsError):
            outcome[record.label] = ("not run: no PostgreSQL programs", None)
            continue
        if echo:
            echo(f"pg_verifybackup: backup {record.label} (chain {' + '.join(members)})")
        mark = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="powrops-verify-") as tmp:
                reconstruct(catalog, record.label, Path(tmp) / "data", tools)
                verify_directory(tools, Path(tmp) / "data")
        except (BackupError, StorageError, OSError, TimeoutExpired) as exc:
            took = round(time.monotonic() - mark, 3)
            outcome[record.label] = ("failed", took)
            report.add(
                "pg_verifybackup", Severity.CRITICAL, f"backup {record.label}: {exc}",
                record.label, label=record.label, chain=members,
            )  # fmt: skip
            continue
        took = round(time.monotonic() - mark, 3)
        outcome[record.label] = ("ok", took)
        report.add(
            "pg_verifybackup", Severity.OK,
            f"backup {record.label}: the data directory reconstructed from "
            f"{' + '.join(members)} was successfully verified ({took:.1f} s)",
            record.label, label=record.label, chain=members, seconds=took,
        )  # fmt: skip
    return outcome


# --- freshness -----------------------------------------------------------------------------


def _freshness(
    report: VerificationReport,
    settings: Settings,
    records: Sequence[BackupRecord],
    listing: Listing,
    now: datetime,
) -> None:
    state: freshness.ArchiverState | DatabaseError
    try:
        state = freshness.read_archiver(settings)
    except DatabaseError as exc:
        state = exc
    except PowropsError as exc:
        state = DatabaseError(str(exc))
    ok = [r for r in records if r.ok]
    major = (
        state.version_num // 10000
        if isinstance(state, freshness.ArchiverState)
        else _major(max(ok, key=lambda r: r.start_time).server_version if ok else None)
    )
    freshness.backups(report, ok, settings, now, major)
    newest = max(
        ((name, info.mtime) for name, info in listing.wal.items() if info.mtime),
        key=lambda item: item[1],
        default=None,
    )
    archiver = state if isinstance(state, freshness.ArchiverState) else None
    freshness.wal(report, newest, settings, now, archiver)
    idents = {r.system_identifier for r in ok if r.system_identifier}
    freshness.archiver_findings(report, settings, now, state, idents)
    freshness.failed_runs(report, records, settings)


# --- test restore --------------------------------------------------------------------------


def _test_restore(
    report: VerificationReport,
    settings: Settings,
    label: str | None,
    targets: Sequence[BackupRecord],
    by_label: dict[str, BackupRecord],
    echo: Echo | None,
) -> None:
    check = "test_restore"
    candidates = [r for r in targets if broken_link(r, by_label) is None]
    chosen = label if label is not None else (candidates[-1].label if candidates else None)
    if chosen is None or not candidates:
        report.add(check, Severity.UNKNOWN, "not run: no restorable backup")
        return
    try:
        module = importlib.import_module("powrops.restore")
    except ModuleNotFoundError as exc:
        if exc.name != "powrops.restore":
            raise
        report.add(check, Severity.UNKNOWN, "not run: powrops.restore is not available")
        return
    if echo:
        echo(f"test restore: backup {chosen}")
    try:
        result: dict[str, Any] = dict(module.test_restore(settings, label=chosen, echo=echo))
    except Exception as exc:  # a test restore that crashes is a failed test restore
        report.test_restore = {"label": chosen, "ok": False, "error": f"{exc}"}
        report.add(check, Severity.CRITICAL, f"test restore of backup {chosen} failed: {exc}",
                   chosen, label=chosen)  # fmt: skip
        return
    report.test_restore = result
    timings = result.get("timings") or {}
    if not result.get("ok"):
        queries = result.get("queries") or []
        failed = [f"{q.get('sql')}: {q['error']}" for q in queries if "error" in q]
        error = result.get("error") or "; ".join(failed) or "no error reported"
        report.add(check, Severity.CRITICAL, f"test restore of backup {chosen} failed: {error}",
                   chosen, label=chosen, timings=timings)  # fmt: skip
        return
    queries = result.get("queries") or []
    total = timings.get("total_s") or sum(v for v in timings.values() if isinstance(v, int | float))
    report.add(
        check, Severity.OK,
        f"backup {chosen} (chain {' + '.join(result.get('chain') or [chosen])}) restored into a "
        f"scratch cluster and answered {len(queries)} smoke queries ({total:.1f} s)",
        chosen, label=chosen, timings=timings,
    )  # fmt: skip


# --- rows ----------------------------------------------------------------------------------


def _rows(
    report: VerificationReport,
    records: Sequence[BackupRecord],
    by_label: dict[str, BackupRecord],
    damaged: dict[str, list[ObjectCheck]],
    secondary: dict[str, str],
    verified: dict[str, tuple[str, float | None]],
    continuity: dict[str, tuple[str, Any]],
    has_secondary: bool,
) -> list[BackupRow]:
    rows = []
    for record in records:
        members = [m.label for m in reversed(chain(record, by_label))]
        row = BackupRow(
            label=record.label, kind=record.kind, status=record.status, parent=record.parent,
            chain=members, timeline=record.timeline, start_lsn=record.start_lsn,
            stop_lsn=record.stop_lsn, start_time=record.start_time, stop_time=record.stop_time,
            stored_size=record.stored_size, server_version=record.server_version,
        )  # fmt: skip
        if record.label in damaged:
            row.checksums = "failed" if damaged[record.label] else "ok"
        if has_secondary:
            row.secondary = secondary.get(record.label, "not checked")
        if record.label in verified:
            row.pg_verifybackup, row.pg_verifybackup_s = verified[record.label]
        if record.label in continuity:
            row.wal, row.window = continuity[record.label]
        mine = [
            f
            for f in report.findings
            if f.details.get("label") == record.label
            or record.label in (f.details.get("labels") or [])
        ]
        row.severity = overall(mine)
        rows.append(row)
    return rows
