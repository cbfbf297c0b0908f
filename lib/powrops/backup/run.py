"""``powrops backup full | incremental``: the strategy's backup procedure, step by step.

pre:    disk space, connections and server settings, notify the team
during: stream pg_basebackup into the repository with progress, checksums, metadata
post:   read every stored object back and compare checksums, register the backup (its
        backup.json is written last), expire old backups, copy to the secondary

A run that fails after it started writes a ``failed`` record with the error and removes what it
had stored; so does a run interrupted by SIGINT or SIGTERM, which then says so in one line; a
run that is killed leaves objects without a record, which claim nothing and which expiry
removes. One backup runs at a time per repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from powrops import __version__
from powrops.backup import repos
from powrops.backup.basebackup import PgBaseBackup, manifest_facts, stream_to
from powrops.backup.catalog import Catalog
from powrops.backup.lock import repository_lock
from powrops.backup.manage import copy_missing, expire
from powrops.backup.model import (
    DATA_FILE,
    MANIFEST_FILE,
    BackupRecord,
    Kind,
    StoredFile,
    backup_key,
    new_label,
)
from powrops.backup.steps import Procedure, Step, StepFailed
from powrops.backup.wal.positions import parse_lsn, segment_of
from powrops.config import Settings
from powrops.db import connect, reachable_target
from powrops.errors import (
    BackupError,
    BackupFailed,
    BackupUnsupported,
    DatabaseError,
    Interrupted,
    LockError,
    PowropsError,
    StorageError,
    one_line,
)
from powrops.format import human_bytes
from powrops.notify import Event, notify
from powrops.pg import control
from powrops.pg.binaries import find_binaries
from powrops.storage.base import Repository


@dataclass(frozen=True)
class ServerFacts:
    version_num: int
    version: str
    wal_level: str
    archive_mode: str
    summarize_wal: str | None
    max_wal_senders: int
    wal_senders_used: int
    max_connections: int
    connections: int
    size: int
    system_identifier: str
    database: str


@dataclass
class BackupOutcome:
    record: BackupRecord
    steps: list[Step]
    expired: list[str]
    copied: bool


def _connection(settings: Settings) -> dict[str, Any]:

    parts = urlsplit(reachable_target(settings).libpq_url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
        "dbname": parts.path.lstrip("/") or "postgres",
    }


#: What a backup checks of the server before it starts, in one round trip (the system
#: identifier and the database are read apart: :func:`server_facts`).
FACTS_SQL = """
SELECT current_setting('server_version_num')::int, current_setting('server_version'),
       current_setting('wal_level'), current_setting('archive_mode'),
       current_setting('summarize_wal', true),
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_stat_replication)::int,
       current_setting('max_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
       (SELECT sum(pg_database_size(oid)) FROM pg_database)::bigint,
       current_database()
"""
FACTS = [f.name for f in fields(ServerFacts) if f.name != "system_identifier"]


def server_facts(settings: Settings) -> ServerFacts:
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(FACTS_SQL).fetchone()
        identifier = control.system_identifier(conn)
    assert row is not None
    known = dict(zip(FACTS, row, strict=True))
    return ServerFacts(**known, system_identifier=identifier or _identify_system(settings))


def _identify_system(settings: Settings) -> str:
    """The system identifier for a role without EXECUTE on ``pg_control_system()``: asked
    on a replication connection, as ``pg_basebackup`` will (a backup's role has REPLICATION;
    StepFailed naming both ways when it has neither)."""
    try:
        with connect(settings, autocommit=True, replication="database") as conn:
            return control.replication_identifier(conn)
    except (DatabaseError, RuntimeError) as exc:
        said = one_line(str(exc))
        raise StepFailed(
            "the cluster's system identifier cannot be read: the role may not execute "
            f"pg_control_system() and its replication connection failed ({said})"
        ) from exc


def _check_settings(kind: Kind, facts: ServerFacts, step: Step) -> None:
    if facts.wal_level not in ("replica", "logical"):
        raise StepFailed(f"wal_level is {facts.wal_level}: base backups need replica")
    if kind == "incremental" and facts.version_num < 170000:
        raise BackupUnsupported(
            f"incremental backups need PostgreSQL 17 or newer and this server is {facts.version}: "
            "take full backups (`powrops backup full`) and rely on WAL archiving between them"
        )
    if kind == "incremental" and facts.summarize_wal != "on":
        raise StepFailed(
            "summarize_wal is off: incremental backups need it "
            "(ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf()), then a new full backup"
        )
    problems = []
    if facts.archive_mode not in ("on", "always"):
        problems.append(
            f"archive_mode is {facts.archive_mode}: no point-in-time recovery past this backup"
        )
    step.message = f"PostgreSQL {facts.version}, wal_level {facts.wal_level}"
    if problems:
        step.status = "warning"
        step.message += "; " + "; ".join(problems)


def _check_disk(repo_url: str, facts: ServerFacts, last: BackupRecord | None, step: Step) -> None:
    if not repo_url.startswith("file://"):
        step.status = "skipped"
        step.message = "not measurable for an object store"
        return
    path = Path(urlsplit(repo_url).path)
    while not path.exists():
        path = path.parent
    free = shutil.disk_usage(path).free
    estimate = last.stored_size if last and last.stored_size else facts.size // 3
    step.details = {"free": free, "estimate": estimate}
    step.message = f"{human_bytes(free)} free, backup estimated at {human_bytes(estimate)}"
    if free < estimate:
        raise StepFailed(step.message + ": not enough space")
    if free < 2 * estimate:
        step.status = "warning"


def _check_connections(facts: ServerFacts, step: Step) -> None:
    if facts.wal_senders_used >= facts.max_wal_senders:
        raise StepFailed(
            f"all {facts.max_wal_senders} WAL senders are in use: pg_basebackup cannot connect"
        )
    step.message = (
        f"{facts.connections}/{facts.max_connections} connections, "
        f"{facts.wal_senders_used}/{facts.max_wal_senders} WAL senders in use"
    )
    if facts.connections >= facts.max_connections * 0.9:
        step.status = "warning"


def _progress(total: int, echo: Callable[[str], None] | None) -> Callable[[int], None]:
    interactive = sys.stderr.isatty()
    started = time.monotonic()
    last = [0.0]

    def update(done: int) -> None:
        now = time.monotonic()
        if now - last[0] < (0.5 if interactive else 10.0):
            return
        last[0] = now
        rate = done / max(now - started, 1e-6) / 2**20
        pct = f"{min(done / total, 1.0):5.1%}" if total else "  ?  "
        line = (
            f"  streamed {done / 2**20:8.1f} MiB ({pct} of ~{total / 2**20:.0f} MiB) "
            f"{rate:6.1f} MiB/s"
        )
        if interactive:
            sys.stderr.write("\r" + line)
            sys.stderr.flush()
        elif echo:
            echo(line)

    return update


def _read_back(repo: Repository, key: str, expected: str) -> None:
    digest = hashlib.sha256()
    with repo.open_read(key) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise BackupError(
            f"read-back checksum of {key} differs: stored {digest.hexdigest()[:16]}…, "
            f"written {expected[:16]}…"
        )


class BackupRun:
    """One run of the backup procedure."""

    def __init__(
        self, settings: Settings, kind: Kind, echo: Callable[[str], None] | None = print
    ) -> None:
        self.settings = settings
        self.kind = kind
        self.echo = echo
        self.proc = Procedure(echo=echo)
        self.repo = repos.primary(settings)
        self.catalog = Catalog(self.repo)
        self.label = new_label(kind)
        self.started = datetime.now(UTC)
        # False until the repository lock is held: a repository that cannot even be locked
        # (a file system not mounted, a bucket unreachable) fails no backup, it stops the run.
        self.started_run = False

    def _claim_label(self) -> None:
        """Start the run in a second no other backup of this repository is labelled with.

        Labels are to the second; two runs within one second (a failed run and its retry)
        would otherwise share a directory and the second would replace the first's record.
        Called under the repository lock, so no other run can take the same label meanwhile.
        """
        taken_seconds = {label[:-1] for label in self.catalog.labels()}
        while True:
            now = datetime.now(UTC)
            label = new_label(self.kind, now)
            if label[:-1] not in taken_seconds:
                self.label, self.started = label, now
                return
            time.sleep(1 - now.microsecond / 1e6)

    def _notify(self, event: Event) -> list[str]:
        return notify(self.settings.notify.channels, event)

    def run(self) -> BackupOutcome:
        with repository_lock(self.repo, f"{self.kind} backup"):
            self.started_run = True
            self._claim_label()
            facts: ServerFacts | None = None
            parent: BackupRecord | None = None
            try:
                facts, parent = self._pre()
                record = self._during(facts, parent)
                record = self._post_verify(record)
            except BackupUnsupported:
                raise
            except KeyboardInterrupt as exc:
                self._fail(exc, facts, parent)
                raise Interrupted.of(exc).leaving(
                    f"{self.kind} backup {self.label} stopped: recorded as failed, what it had "
                    f"stored removed, the lock of {self.repo.url} released"
                ) from None
            except BaseException as exc:
                self._fail(exc, facts, parent)
                raise
        try:
            expired = self._post_expire()
            copied = self._post_copy(record)
        except KeyboardInterrupt as exc:
            raise Interrupted.of(exc).leaving(
                f"{self.kind} backup {self.label} is registered and read back; its expiry or "
                "secondary copy was cut short (`powrops backup expire`, `backup copy` catch up)"
            ) from None
        return BackupOutcome(record, self.proc.steps, expired, copied)

    # -- pre --------------------------------------------------------------------------------

    def _pre(self) -> tuple[ServerFacts, BackupRecord | None]:
        pre = self.settings.backup.procedure.pre
        with self.proc.step("pre", "server settings") as step:
            facts = server_facts(self.settings)
            _check_settings(self.kind, facts, step)
        parent = self._parent(facts) if self.kind == "incremental" else None
        if pre.check_disk_space:
            with self.proc.step("pre", "disk space") as step:
                _check_disk(repos.primary_url(self.settings), facts, self._size_basis(), step)
        else:
            self.proc.skip("pre", "disk space", "backup.procedure.pre.check_disk_space is off")
        if pre.check_connections:
            with self.proc.step("pre", "connections") as step:
                _check_connections(facts, step)
        else:
            self.proc.skip("pre", "connections", "backup.procedure.pre.check_connections is off")
        if pre.notify_team:
            with self.proc.step("pre", "notify") as step:
                problems = self._notify(
                    Event("backup_started", f"{self.kind} backup {self.label} starting")
                )
                step.status, step.message = (
                    ("warning", "; ".join(problems)) if problems else ("ok", "team notified")
                )
        else:
            self.proc.skip("pre", "notify", "backup.procedure.pre.notify_team is off")
        return facts, parent

    def _size_basis(self) -> BackupRecord | None:
        """The backup this one's size is estimated from: the newest successful one of the same
        kind (a full is sized from the last full, not from the small incremental after it); for
        a first incremental, the newest of any kind (its parent full: an upper bound)."""
        same = self.catalog.latest_ok(self.kind)
        if same is None and self.kind == "incremental":
            return self.catalog.latest_ok()
        return same

    def _parent(self, facts: ServerFacts) -> BackupRecord:
        with self.proc.step("pre", "parent backup") as step:
            candidates = [
                r for r in self.catalog.records()
                if r.ok and r.system_identifier == facts.system_identifier
            ]  # fmt: skip
            if not candidates:
                raise StepFailed(
                    "no successful backup of this server to base an incremental on: "
                    "take a full backup first (`powrops backup full`)"
                )
            parent = candidates[-1]
            step.message = f"incremental on {parent.label} ({parent.kind})"
            return parent

    # -- during -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _parent_manifest(self, parent: BackupRecord | None) -> Iterator[Path | None]:
        """The parent's manifest in a temporary file for ``pg_basebackup --incremental``,
        removed afterwards; None for a full backup, which writes nothing outside the
        repository (a run killed outright leaves no folder behind)."""
        if parent is None:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="powrops-backup-") as tmp:
            path = Path(tmp) / "parent_manifest"
            path.write_bytes(self.repo.get_bytes(backup_key(parent.label, MANIFEST_FILE)))
            yield path

    def _during(self, facts: ServerFacts, parent: BackupRecord | None) -> BackupRecord:
        conn = _connection(self.settings)
        with self._parent_manifest(parent) as manifest_path:
            binaries = find_binaries(facts.version_num // 10000, self.settings.postgres.bin_dir)
            command = PgBaseBackup(
                binaries, conn["host"], conn["port"], conn["user"], self.label,
                incremental_manifest=manifest_path,
                verify_checksums=self.settings.backup.procedure.during.check_integrity,
            )  # fmt: skip
            with self.proc.step("during", "stream") as step:
                monitor = self.settings.backup.procedure.during.monitor_progress
                progress = _progress(facts.size, self.echo) if monitor else None
                with self.repo.open_write(backup_key(self.label, DATA_FILE)) as out:
                    result, sha, stored = stream_to(
                        command, out, password=conn["password"], progress=progress
                    )
                if progress and sys.stderr.isatty():
                    sys.stderr.write("\n")
                ratio = result.raw_size / stored if stored else 0
                step.message = (
                    f"{result.raw_size / 2**20:.1f} MiB streamed, {stored / 2**20:.1f} MiB stored "
                    f"({ratio:.1f}x), {result.members} files"
                )
                if result.stderr.strip():
                    step.details["pg_basebackup"] = result.stderr.strip()[-2000:]
                    if "checksum" in result.stderr.lower():
                        step.status = "warning"
                        step.message += "; pg_basebackup reported checksum problems"
            with self.proc.step("during", "metadata") as step:
                manifest_sha = hashlib.sha256(result.manifest).hexdigest()
                self.repo.put_bytes(backup_key(self.label, MANIFEST_FILE), result.manifest)
                record = self._record(facts, parent, result, sha, stored, manifest_sha)
                step.message = (
                    f"timeline {record.timeline}, LSN {record.start_lsn} - {record.stop_lsn}"
                )
        return record

    def _record(
        self,
        facts: ServerFacts,
        parent: BackupRecord | None,
        result: Any,
        sha: str,
        stored: int,
        manifest_sha: str,
    ) -> BackupRecord:
        info = manifest_facts(result.manifest)
        tli = int(info["timeline"])
        start, stop = info["start_lsn"], info["stop_lsn"]
        files = (
            StoredFile(DATA_FILE, result.raw_size, stored, sha, None, result.frames),
            StoredFile(
                MANIFEST_FILE,
                len(result.manifest),
                len(result.manifest),
                manifest_sha,
                manifest_sha,
            ),
        )
        return BackupRecord(
            label=self.label, kind=self.kind, status="ok", start_time=self.started,
            stop_time=datetime.now(UTC), parent=parent.label if parent else None, timeline=tli,
            start_lsn=start, stop_lsn=stop,
            start_wal=segment_of(parse_lsn(start), tli).name,
            stop_wal=segment_of(parse_lsn(stop), tli).name,
            raw_size=result.raw_size, stored_size=stored + len(result.manifest), files=files,
            server_version=facts.version,
            system_identifier=info.get("system_identifier", facts.system_identifier),
            tool_version=__version__, database=facts.database,
            steps=(),
        )  # fmt: skip

    # -- post -------------------------------------------------------------------------------

    def _post_verify(self, record: BackupRecord) -> BackupRecord:
        post = self.settings.backup.procedure.post
        if post.verify_backup:
            with self.proc.step("post", "verify") as step:
                for stored in record.files:
                    _read_back(self.repo, backup_key(record.label, stored.name), stored.sha256)
                step.message = f"{len(record.files)} objects read back, SHA-256 match"
        else:
            self.proc.skip("post", "verify", "backup.procedure.post.verify_backup is off")
        with self.proc.step("post", "register") as step:
            record = replace(
                record,
                stop_time=record.stop_time,
                steps=tuple(s.to_dict() for s in self.proc.steps),
            )
            self.catalog.write(record)
            step.message = f"registered {record.label} in {self.repo.url}"
        return record

    def _post_expire(self) -> list[str]:
        if not self.settings.backup.procedure.post.cleanup_old:
            self.proc.skip("post", "expire", "backup.procedure.post.cleanup_old is off")
            return []

        with self.proc.step("post", "expire") as step:
            try:
                plan = expire(self.settings, dry_run=False, repo=self.repo)
            except LockError as exc:  # a verification reads the repository: expire next time
                step.status = "skipped"
                step.message = f"{exc}; the next backup or `powrops backup expire` expires"
                return []
            removed = [d.item for d in plan.deletes()]
            step.message = f"{len(removed)} expired" if removed else "nothing to expire"
            return removed

    def _post_copy(self, record: BackupRecord) -> bool:
        target = repos.secondary(self.settings)
        if target is None:
            self.proc.skip("post", "secondary copy", "no secondary repository configured")
            return False

        with self.proc.step("post", "secondary copy") as step:
            try:
                copied = copy_missing(self.repo, target)
            except PowropsError as exc:
                step.status = "warning"
                step.message = (
                    f"copy to {target.url} failed: {exc}; `powrops backup copy` catches up"
                )
                return False
            step.message = f"{copied.summary()} to {target.url}"
            return True

    # -- failure ----------------------------------------------------------------------------

    def _fail(
        self, exc: BaseException, facts: ServerFacts | None, parent: BackupRecord | None
    ) -> None:
        for key in (backup_key(self.label, DATA_FILE), backup_key(self.label, MANIFEST_FILE)):
            with contextlib.suppress(PowropsError):
                self.repo.delete(key)
        record = BackupRecord(
            label=self.label, kind=self.kind, status="failed", start_time=self.started,
            stop_time=datetime.now(UTC), parent=parent.label if parent else None,
            server_version=facts.version if facts else None,
            system_identifier=facts.system_identifier if facts else None,
            tool_version=__version__, database=facts.database if facts else None,
            error=str(Interrupted.of(exc)) if isinstance(exc, KeyboardInterrupt)
            else str(exc) or type(exc).__name__,
            steps=tuple(s.to_dict() for s in self.proc.steps),
        )  # fmt: skip
        with contextlib.suppress(PowropsError):
            self.catalog.write(record)
        self._notify(
            Event("backup_failed", f"{self.kind} backup {self.label} failed: {exc}", "CRITICAL")
        )


def take_backup(
    settings: Settings, kind: Kind, echo: Callable[[str], None] | None = print
) -> BackupOutcome:
    """Run the backup procedure; raises BackupError (after recording the failure) when it fails,
    StorageError (nothing recorded) when the repository cannot be locked to start it."""
    run = BackupRun(settings, kind, echo)
    try:
        return run.run()
    except (LockError, BackupUnsupported):
        raise
    except (StepFailed, PowropsError, OSError) as exc:
        if isinstance(exc, StorageError) and not run.started_run:
            raise  # exit 3, nothing recorded: the repository is not there to record in
        raise BackupFailed(f"{kind} backup {run.label} failed: {exc}") from exc
