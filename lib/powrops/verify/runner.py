"""``verify()``: every check in order, over one listing of each repository.

1. the catalog: no ok backup, broken chains, incomplete runs;
2. repository checksums of the objects today's plan reads (:mod:`powrops.verify.state`: what is
   new, what is due, a rotating share; everything for one backup or ``everything``), primary
   then secondary; reading a backup's data object also checks its content against its
   ``backup_manifest`` (:mod:`powrops.verify.content`), and at its first content check parses
   the WAL of its range with ``pg_waldump`` (:mod:`powrops.verify.walparse`), as
   ``pg_verifybackup`` does;
3. WAL continuity per timeline, timeline histories, each backup's recoverability window, from
   the listings (no WAL needs reading for that);
4. ``pg_verifybackup`` on one reconstructed data directory: the chain of the backup asked for,
   else of the newest backup when it has not been verified yet; a chain that passed before,
   every member of which was read back today with the same SHA-256 as then, is not combined
   again (but with ``content`` or ``everything``);
5. freshness against the schedule, ``pg_stat_archiver`` and failed runs (whole repository only);
6. optionally a test restore, through the function the caller hands in (the command line
   and the verification report hand in :func:`powrops.restore.test_restore`);
7. what was read back intact in this run, and only that, is recorded in each repository's
   verification state.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import TimeoutExpired
from typing import Any

from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.expiry import broken_link, chain
from powrops.backup.lock import is_stale, read_lock, reading, repository_lock
from powrops.backup.model import (
    BACKUPS_PREFIX,
    DATA_FILE,
    LOCK_KEY,
    RECORD_FILE,
    WAL_PREFIX,
    BackupRecord,
    backup_key,
    wal_name_of,
)
from powrops.backup.reconstruct import reconstruct, verify_directory
from powrops.backup.wal.positions import kind_of, parse_segment
from powrops.config import Settings
from powrops.errors import (
    BackupError,
    DatabaseError,
    LockError,
    ParameterError,
    PowropsError,
    StorageError,
)
from powrops.findings import Severity, overall
from powrops.format import Echo
from powrops.pg.binaries import PgBinaries, find_binaries
from powrops.storage.base import ObjectInfo, Repository
from powrops.verify import checksums, freshness, recoverability, walparse
from powrops.verify import state as state_mod
from powrops.verify.checksums import ObjectCheck
from powrops.verify.content import ContentCheck
from powrops.verify.report import BackupRow, RecoveryWindow, VerificationReport
from powrops.verify.scratch import scratch_dir


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

    def files_of(self, records: Sequence[BackupRecord]) -> list[ObjectInfo]:
        """The listed objects that ``records`` name as their files: what a check reads (not
        ``backup.json``, which the catalog reads whole at every run, nor stray objects)."""
        named = {backup_key(r.label, f.name) for r in records for f in r.files}
        return [o for r in records for o in self.backups.get(r.label, []) if o.key in named]


def recovery_windows(settings: Settings, now: datetime | None = None) -> dict[str, RecoveryWindow]:
    """Each backup's recovery window from one listing of the primary repository (no object is
    read but the backup records): what ``backup list`` shows beside each backup."""
    primary = repos.primary(settings)
    records, _ = Catalog(primary).scan()
    listing = Listing.of(primary)
    return recoverability.listed_windows(records, listing.wal, now or datetime.now(UTC))


#: A test restore (``powrops.restore.test_restore``): restores backup ``label`` into a scratch
#: cluster, queries it and returns what it found. The caller hands it in, so that
#: verification needs nothing from the restore package (which itself checks the schema through
#: ``migrate``, which verifies a backup before a production migration).
TestRestore = Callable[..., Mapping[str, Any]]


def verify(
    settings: Settings,
    label: str | None = None,
    *,
    restore: TestRestore | None = None,
    now: datetime | None = None,
    pg_verifybackup: bool = True,
    everything: bool = False,
    content: bool = False,
    echo: Echo | None = None,
) -> VerificationReport:
    """Verify the backups of the configured repositories (or backup ``label`` and its chain).

    Without ``label``, only what today's plan chooses is read (``everything`` reads it all);
    with one, every object of its chain and the WAL from its start are read. A backup's
    content is checked against its manifest once, the first time its data object is read;
    later reads check that the stored bytes are still those (SHA-256). ``content`` (implied
    by ``everything``) checks the content of every backup read again.

    The run marks itself as a reader of the primary repository (:func:`reading`): expiry
    deletes nothing while it reads, and an expiry already deleting is waited for first (at most
    ``READER_WAIT_S``), so that nothing retention removes on purpose is reported as missing.
    An empty repository (none created yet) holds nothing expiry could delete: it gets no
    mark, which would create it.

    Raises a PowropsError (exit code 3) only when verification cannot run at all: the primary
    repository cannot be listed, ``label`` is not in it, or an expiry kept deleting longer than
    verification waits. Everything else is a finding.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ParameterError("verify needs an aware 'now' (UTC), not a naive datetime")
    primary = repos.primary(settings)
    with _reader_mark(primary):
        return _verify(settings, primary, label, restore, now, pg_verifybackup, everything,
                       content, echo)  # fmt: skip


def _reader_mark(repo: Repository) -> contextlib.AbstractContextManager[object]:
    """This run's mark as a reader of ``repo`` (:func:`reading`); none for an empty one."""
    if next(iter(repo.list()), None) is None:
        return contextlib.nullcontext()
    return reading(repo, "verification", wait=READER_WAIT_S)


def _verify(
    settings: Settings,
    primary: Repository,
    label: str | None,
    restore: TestRestore | None,
    now: datetime,
    pg_verifybackup: bool,
    everything: bool,
    content: bool,
    echo: Echo | None,
) -> VerificationReport:
    started = time.monotonic()
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
    wal_objects = _relevant_wal(listing, targets, label)
    full = everything or label is not None
    plan, state = _plan(report, settings, primary, listing, targets, wal_objects, now, full)
    content_of = {r.label for r in targets
                  if content or everything or not _content_stands(r, state)}  # fmt: skip
    damaged, contents, intact = checksums.primary_backups(
        report, primary, targets, echo, plan, content_of, _wal_parser(settings, primary)
    )
    known = {} if content or everything else {k: r.digest for k, r in state.objects.items()}
    wal_results = checksums.primary_wal(report, primary, wal_objects.values(), echo, plan, known)
    intact |= {r.key: r.sha256 for r in wal_results.values() if r.intact and r.sha256}
    seconds["checksums"] = round(time.monotonic() - mark, 3)
    mark = time.monotonic()
    second, second_wal = _secondary(report, settings, secondary, targets, damaged, wal_objects,
                                    wal_results, known, now, full, echo)  # fmt: skip
    seconds["secondary"] = round(time.monotonic() - mark, 3)

    archive = recoverability.build_archive(report, wal_objects, wal_results)
    continuity = recoverability.continuity(report, archive, targets, records, settings, second_wal)

    mark = time.monotonic()
    chosen = _verifybackup_targets(targets, by_label, label, everything)
    failed = {label: "content" for label, checked in contents.items() if not checked.ok}
    failed |= {label: "checksum" for label, checks in damaged.items() if checks}
    earlier = {} if content or everything else _chains_standing(state, chosen, by_label, intact)
    verified = _pg_verifybackup(report, settings, primary, targets, chosen, by_label, failed,
                                earlier, pg_verifybackup, echo)  # fmt: skip
    seconds["pg_verifybackup"] = round(time.monotonic() - mark, 3)
    combined = _chains_combined(verified, by_label, intact, now)
    if label is None:
        _freshness(report, settings, records, listing, now)
    if restore:
        mark = time.monotonic()
        _test_restore(report, settings, label, targets, by_label, restore, echo)
        seconds["test_restore"] = round(time.monotonic() - mark, 3)
    report.backups = _rows(report, records if label is None else targets, by_label, damaged,
                           second, verified, continuity, secondary is not None)  # fmt: skip
    _content_rows(report.backups, contents, state)
    _mark_verified(report, primary, targets)
    _save_state(report, primary, intact, damaged, contents, wal_results, combined, now)
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def _mark_verified(
    report: VerificationReport, repo: Repository, targets: Sequence[BackupRecord]
) -> None:
    """Write ``verified_at`` into the record of each backup whose content was checked against
    its manifest today with no critical finding of its own (expiry and migrations rely on it)."""
    catalog = Catalog(repo)
    by_label = {r.label: r for r in targets}
    for row in report.backups:
        record = by_label.get(row.label)
        passed = row.checksums == "ok" and row.content == "ok" and row.pg_verifybackup != "failed"
        if record is None or not passed or row.severity in (Severity.CRITICAL, Severity.UNKNOWN):
            continue
        if record.verified_at is not None and row.pg_verifybackup != "ok":
            continue
        try:
            catalog.write(replace(record, verified_at=report.now))
        except StorageError as exc:
            report.add("backups", Severity.WARNING,
                       f"backup {row.label} verified but its record cannot be updated: {exc}",
                       row.label, label=row.label)  # fmt: skip


# --- what to read, and what was read -------------------------------------------------------

STATE_WAIT_S = 60.0  # how long to wait for a running backup's lock before leaving the state
READER_WAIT_S = 300.0  # how long verification waits for an expiry that is deleting


def _load_state(
    report: VerificationReport, repo: Repository, which: str
) -> state_mod.VerificationState:
    loaded, problem = state_mod.VerificationState.load(repo)
    if problem:
        report.add("verification_state", Severity.WARNING, f"{which}: {problem}",
                   state_mod.STATE_KEY)  # fmt: skip
    return loaded


def _plan(
    report: VerificationReport,
    settings: Settings,
    repo: Repository,
    listing: Listing,
    targets: Sequence[BackupRecord],
    wal_objects: dict[str, ObjectInfo],
    now: datetime,
    full: bool,
) -> tuple[state_mod.Plan, state_mod.VerificationState]:
    """Today's reads in the primary: history files and unchecked backup content always."""
    state = _load_state(report, repo, "primary")
    objects = listing.files_of(targets)
    always = {info.key: "history" for name, info in wal_objects.items()
              if kind_of(name) == "history"}  # fmt: skip
    for record in targets:
        if not _content_stands(record, state):
            always[backup_key(record.label, DATA_FILE)] = "content"
    every = settings.verification.reread_every.timedelta
    objects += wal_objects.values()
    plan = state_mod.plan(objects, state, now, every, everything=full, always=always)
    report.figures["plan"] = {
        "reread_every": settings.verification.reread_every.text,
        "reasons": plan.counts(),
        "bytes_to_read": plan.bytes_to_read,
        "bytes_skipped": plan.bytes_skipped,
        "objects_skipped": len(plan.skipped),
        "oldest_skipped_read": min((t.isoformat() for t in plan.skipped.values()), default=None),
    }
    return plan, state


def _named_in(key: str, names: set[str | None]) -> bool:
    if key.startswith(BACKUPS_PREFIX):
        return key[len(BACKUPS_PREFIX) :] in names
    return wal_name_of(key) in names


def _data_digest(record: BackupRecord) -> str | None:
    return next((f.sha256 for f in record.files if f.name == DATA_FILE), None)


def _content_stands(record: BackupRecord, state: state_mod.VerificationState) -> bool:
    """Whether the content check recorded for ``record`` was of the bytes its record names:
    then reading them intact (SHA-256) is enough, and decompressing them again proves nothing
    more."""
    read = state.objects.get(backup_key(record.label, DATA_FILE))
    digest = _data_digest(record)
    return record.label in state.content and read is not None and digest == read.digest


def _save_state(
    report: VerificationReport,
    repo: Repository,
    intact: dict[str, str],
    damaged: dict[str, list[ObjectCheck]],
    contents: dict[str, ContentCheck],
    wal_results: dict[str, ObjectCheck],
    chains: dict[str, state_mod.ChainCheck],
    now: datetime,
) -> None:
    """Record every object read back intact in this run, with the SHA-256 it was read with,
    every backup whose content matched and every chain combined that passed
    ``pg_verifybackup``. Nothing else: an object the plan chose but no check read is not
    recorded, and is read again next time. A repository holding nothing gets no state (nor
    the folders it would go in): nothing was read there."""
    bad = {c.key for checks in damaged.values() for c in checks}
    bad |= {r.key for r in wal_results.values() if not r.ok}
    # content that failed its manifest: read and checked again every day, like damaged bytes
    bad |= {backup_key(label, DATA_FILE) for label, c in contents.items() if not c.ok}
    listing = Listing.of(repo)
    sizes = {o.key: o.size for objs in listing.backups.values() for o in objs}
    sizes |= {o.key: o.size for o in listing.wal.values()}
    if not sizes:
        return
    reads = {
        key: state_mod.ObjectRead(sizes[key], digest, now)
        for key, digest in intact.items() if key in sizes and key not in bad
    }  # fmt: skip
    content = {label: now for label, c in contents.items() if c.ok}
    newer = state_mod.VerificationState(reads, content, chains)
    _store(report, repo, newer, set(sizes), frozenset(bad))


def _store(
    report: VerificationReport, repo: Repository, newer: state_mod.VerificationState,
    present: set[str], damaged: frozenset[str] = frozenset(),
) -> None:  # fmt: skip
    """Merge ``newer`` into the repository's state under its lock; a busy lock is waited for."""
    deadline = time.monotonic() + STATE_WAIT_S
    while True:
        try:
            with repository_lock(repo, "verification state"):
                current, _ = state_mod.VerificationState.load(repo)
                merged = current.merge(newer, present, damaged)
                repo.put_bytes(state_mod.STATE_KEY, merged.to_bytes())
            return
        except LockError as exc:
            if time.monotonic() > deadline:
                report.add(
                    "verification_state", Severity.WARNING,
                    f"what was read in {repo.url} is not recorded: {exc}; the next run reads "
                    "it again", state_mod.STATE_KEY,
                )  # fmt: skip
                return
            time.sleep(2)
        except StorageError as exc:
            report.add("verification_state", Severity.WARNING,
                       f"what was read in {repo.url} is not recorded: {exc}",
                       state_mod.STATE_KEY)  # fmt: skip
            return


def _wal_parser(settings: Settings, repo: Repository) -> walparse.WalParser:
    """Parses the WAL of a backup's range from ``repo``'s archive with the ``pg_waldump`` of
    the backup's major version, in a scratch folder chosen by :func:`scratch_dir`."""
    tools: dict[int | None, PgBinaries | PowropsError] = {}

    def parse_wal(
        record: BackupRecord, ranges: Sequence[walparse.WalRange], segment_size: int,
        cancel: threading.Event,
    ) -> walparse.WalParse:  # fmt: skip
        major = _major(record.server_version)
        if major not in tools:
            try:
                tools[major] = find_binaries(major, settings.postgres.bin_dir)
            except PowropsError as exc:
                tools[major] = exc
        return walparse.parse(repo, ranges, segment_size, tools[major],
                              lambda need: scratch_dir(settings, need), cancel)  # fmt: skip

    return parse_wal


def _content_rows(
    rows: Sequence[BackupRow],
    contents: dict[str, ContentCheck],
    state: state_mod.VerificationState,
) -> None:
    for row in rows:
        checked = contents.get(row.label)
        if checked is not None:
            incomplete = checked.wal is not None and checked.wal.status == "not run"
            row.content = "ok" if checked.ok else "incomplete" if incomplete else "failed"
        elif row.label in state.content:
            row.content = f"ok at {state.content[row.label]:%Y-%m-%d %H:%M} UTC"
        if row.checksums == "not checked" and row.label in state.content:
            row.checksums = "ok as last read"


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
    settings: Settings,
    repo: Repository | None,
    targets: Sequence[BackupRecord],
    damaged: dict[str, list[ObjectCheck]],
    wal_objects: dict[str, ObjectInfo],
    wal_results: dict[str, ObjectCheck],
    digests: dict[str, str | None],
    now: datetime,
    full: bool,
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
    wal_there = {name: info for name, info in listing.wal.items() if name in wal_objects}
    copied = [r for r in targets if listing.has_record(r.label)]
    objects = listing.files_of(copied)
    state = _load_state(report, repo, "secondary")
    plan = (
        None if full
        else state_mod.plan([*objects, *wal_there.values()], state, now,
                            settings.verification.reread_every.timedelta)
    )  # fmt: skip
    statuses, intact = checksums.secondary_backups(report, repo, targets, listing.keys(),
                                                   damaged, echo, plan)  # fmt: skip
    until = max((r.stop_time for r in copied if r.stop_time), default=None)
    intact |= checksums.secondary_wal(report, repo, wal_objects, wal_results, wal_there, until,
                                      echo, plan, digests)  # fmt: skip
    sizes = {o.key: o.size for o in [*objects, *wal_there.values()]}
    bad = {f.object for f in report.findings
           if f.check == "secondary" and f.severity != Severity.OK}  # fmt: skip
    broken = frozenset(k for k in sizes if _named_in(k, bad))
    reads = {
        key: state_mod.ObjectRead(sizes[key], digest, now)
        for key, digest in intact.items() if key in sizes and key not in broken
    }  # fmt: skip
    newer = state_mod.VerificationState(reads)
    present = {o.key for objs in listing.backups.values() for o in objs}
    _store(report, repo, newer, present | {o.key for o in listing.wal.values()}, broken)
    return statuses, set(listing.wal)


# --- pg_verifybackup -----------------------------------------------------------------------


def _major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def _verifybackup_targets(
    targets: Sequence[BackupRecord],
    by_label: dict[str, BackupRecord],
    label: str | None,
    everything: bool,
) -> set[str]:
    """The incremental whose chain is combined for ``pg_verifybackup``: ``label``, else the
    newest restorable backup when it has not been verified yet (or ``everything`` is asked).

    A full backup is not unpacked for it: reading its stream checks every file against the
    manifest and the WAL it needs, which is what ``pg_verifybackup`` checks on a directory.
    An incremental needs its chain combined to show that the combination is whole.
    """
    if label is not None:
        chosen = by_label.get(label)
        return {label} if chosen is not None and chosen.parent else set()
    restorable = [r for r in targets if broken_link(r, by_label) is None]
    if not restorable:
        return set()
    newest = max(restorable, key=lambda r: (r.start_time, r.label))
    if not newest.parent:
        return set()
    return {newest.label} if everything or newest.verified_at is None else set()


def _chain_digests(
    members: Sequence[BackupRecord], intact: Mapping[str, str]
) -> dict[str, str] | None:
    """The SHA-256 of every stored object of ``members``, as read back intact in this run;
    None when one of them was not."""
    keys = [backup_key(m.label, f.name) for m in members for f in m.files]
    if not all(key in intact for key in keys):
        return None
    return {key: intact[key] for key in keys}


def _chains_standing(
    state: state_mod.VerificationState,
    chosen: set[str],
    by_label: dict[str, BackupRecord],
    intact: Mapping[str, str],
) -> dict[str, state_mod.ChainCheck]:
    """The chosen chains whose earlier combined check stands: of the same members, every
    stored object of which was read back intact today with the SHA-256 it had then."""
    standing = {}
    for label in sorted(chosen):
        earlier = state.chains.get(label)
        if earlier is None or broken_link(by_label[label], by_label) is not None:
            continue
        members = list(reversed(chain(by_label[label], by_label)))
        digests = _chain_digests(members, intact)
        if digests is not None and earlier.stands_for([m.label for m in members], digests):
            standing[label] = earlier
    return standing


def _chains_combined(
    verified: dict[str, tuple[str, float | None]],
    by_label: dict[str, BackupRecord],
    intact: Mapping[str, str],
    now: datetime,
) -> dict[str, state_mod.ChainCheck]:
    """The chains combined in this run that passed ``pg_verifybackup``, each with the
    SHA-256 its members' stored objects were read back with today (a chain a member of which
    was not read today is not recorded: there is no digest to rely on later)."""
    combined = {}
    for label, (status, _) in verified.items():
        if status != "ok":
            continue
        members = list(reversed(chain(by_label[label], by_label)))
        digests = _chain_digests(members, intact)
        if digests is not None:
            labels = tuple(m.label for m in members)
            combined[label] = state_mod.ChainCheck(labels, digests, now)
    return combined


def _why_not(record: BackupRecord, by_label: dict[str, BackupRecord]) -> str:
    if not record.parent:
        return (
            "a full backup's files are checked against its manifest in the stream, and the "
            "WAL of its range parsed with pg_waldump"
        )
    if record.verified_at:
        return "its chain was combined and verified before"
    return "only the newest chain is combined; its own files are checked against its manifest"


def _pg_verifybackup(
    report: VerificationReport,
    settings: Settings,
    repo: Repository,
    targets: Sequence[BackupRecord],
    chosen: set[str],
    by_label: dict[str, BackupRecord],
    failed: dict[str, str],
    earlier: Mapping[str, state_mod.ChainCheck],
    enabled: bool,
    echo: Echo | None,
) -> dict[str, tuple[str, float | None]]:
    """(status, seconds) per label; a chosen chain whose ``earlier`` check stands is not
    combined again."""

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
        bad = [m for m in members if m in failed]
        if bad:
            what = " and ".join(sorted({failed[m] for m in bad}))
            outcome[record.label] = (f"skipped: {what} failure in {', '.join(bad)}", None)
            continue
        if record.label not in chosen:
            outcome[record.label] = (f"not needed: {_why_not(record, by_label)}", None)
            continue
        if record.label in earlier:
            outcome[record.label] = _relied_on(report, record.label, earlier[record.label])
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
        scratch = scratch_dir(settings, 2 * sum(by_label[m].raw_size for m in members))
        try:
            with tempfile.TemporaryDirectory(prefix="powrops-verify-", dir=scratch) as tmp:
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


def _relied_on(
    report: VerificationReport, label: str, earlier: state_mod.ChainCheck
) -> tuple[str, None]:
    when = f"{earlier.checked_at:%Y-%m-%d %H:%M:%S} UTC"
    report.add(
        "pg_verifybackup", Severity.OK,
        f"backup {label}: relies on the check of {' + '.join(earlier.members)} combined "
        f"and verified at {when}: the stored bytes of every member, read back today, are the "
        "ones combined then (SHA-256); not combined again (`--content` combines it again)",
        label, label=label, chain=list(earlier.members),
        relied_on=earlier.checked_at.isoformat(),
    )  # fmt: skip
    return f"ok before: combined at {when}, the same stored bytes", None


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
    test_restore: TestRestore,
    echo: Echo | None,
) -> None:
    check = "test_restore"
    candidates = [r for r in targets if broken_link(r, by_label) is None]
    chosen = label if label is not None else (candidates[-1].label if candidates else None)
    if chosen is None or not candidates:
        report.add(check, Severity.UNKNOWN, "not run: no restorable backup")
        return
    if echo:
        echo(f"test restore: backup {chosen}")
    try:
        result: dict[str, Any] = dict(test_restore(settings, label=chosen, echo=echo))
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
