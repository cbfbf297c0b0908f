"""Archival: a user's workouts and sets to a compressed file, validated, indexed, then removed.

Per user, in one transaction that holds the rows it archives (``FOR UPDATE``):

1. PostgreSQL computes the row counts and a SHA-256 over the live rows' texts;
2. the rows are streamed into a file in the archive repository (:mod:`.archival_file`);
3. the file is read back from the repository and its counts and checksums compared with (1),
   and the stored bytes' SHA-256 with what was written; any difference stops the run;
4. only then the ``ops.archive_index`` entry is inserted, the rows deleted, ``user_totals``
   adjusted and one ``ARCHIVE`` audit record written - and the transaction commits.

A process killed before the commit leaves the rows live (the transaction rolls back) and at
most an unindexed file; killed after it, the rows are in a validated, indexed file. No row is
ever in neither place. Triggers (``archival.triggers``): ``age`` - users whose last activity is
older than ``age`` days; ``size`` - users with more than ``size`` live workout and set rows
have their workouts older than ``age`` days archived; ``request`` - one user, on request.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from powrops.config import Settings
from powrops.errors import ConfigError, Interrupted
from powrops.retention import archival_file, journal, liverows
from powrops.retention.archival_file import Digest
from powrops.retention.repository import open_archive, user_prefix
from powrops.storage.base import Repository

#: Test hook: the name of a stage at which the run pauses (and says so on stderr).
PAUSE_ENV = "POWROPS_ARCHIVE_PAUSE_AT"
AfterWrite = Callable[[Repository, str], None]


@dataclass(frozen=True)
class Candidate:
    """A user whose workouts are due for archival, and why."""

    user_id: int
    trigger: str
    workouts: int
    sets: int
    before: date | None = None  # only workouts dated before this (size trigger)


@dataclass
class UserArchive:
    user_id: int
    trigger: str
    key: str
    index_id: int
    workouts: int
    sets: int
    sha256: str
    bytes: int
    date_from: date | None
    date_to: date | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ArchivalResult:
    dry_run: bool
    repository: str
    candidates: list[Candidate] = field(default_factory=list)
    archived: list[UserArchive] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(a.workouts + a.sets for a in self.archived)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "repository": self.repository,
            "due": [asdict(c) for c in self.candidates],
            "archived": [a.to_dict() for a in self.archived],
            "rows": self.rows,
            "bytes": sum(a.bytes for a in self.archived),
            "errors": self.errors,
        }


def check_process(settings: Settings) -> None:
    """Archival never removes live rows unless the file is validated and indexed."""
    process = settings.archival.process
    if not (process.validate_ and process.index):
        raise ConfigError(
            "archival.process.validate and archival.process.index must be true: powrops "
            "removes live rows only after their archive file is read back and indexed"
        )


def candidates(
    conn: psycopg.Connection[Any], settings: Settings, now: datetime, user_id: int | None = None
) -> list[Candidate]:
    """Users due for archival by age and size (or the one user asked for), set-based."""
    triggers = settings.archival.triggers
    if user_id is not None:
        found = liverows.live_counts(conn, user_id)
        return [Candidate(user_id, "request", *found)] if found[0] else []
    cutoff = now - timedelta(days=triggers.age)
    params = {"cutoff": cutoff, "size": triggers.size, "before": cutoff.date()}
    rows = conn.execute(liverows.CANDIDATES_SQL, params).fetchall()
    return [Candidate(int(r[0]), r[1], int(r[2]), int(r[3]), r[4]) for r in rows]


def run_archival(
    settings: Settings,
    *,
    dry_run: bool,
    user_id: int | None = None,
    after_write: AfterWrite | None = None,
    record: bool = True,
) -> ArchivalResult:
    """Archive every due user (or ``user_id`` on request); stop at the first failure."""
    check_process(settings)
    repo = open_archive(settings)
    result = ArchivalResult(dry_run=dry_run, repository=repo.url)
    with journal.connect(settings) as conn:
        now = liverows.db_now(conn)
        result.candidates = candidates(conn, settings, now, user_id)
        conn.commit()
        try:
            for candidate in [] if dry_run else result.candidates:
                result.archived.append(archive_user(conn, settings, repo, candidate, after_write))
        except Exception as exc:
            result.errors.append(str(exc))
            raise
        except KeyboardInterrupt as exc:  # the run's event must not read as a finished one
            result.errors.append(f"interrupted by {Interrupted.of(exc).signal}")
            raise
        finally:
            if record:
                _record(settings, result)
    return result


def _pause(stage: str) -> None:
    if os.environ.get(PAUSE_ENV) == stage:
        print(f"archive: paused at {stage}", file=sys.stderr, flush=True)
        time.sleep(600)


def archive_user(
    conn: psycopg.Connection[Any],
    settings: Settings,
    repo: Repository,
    candidate: Candidate,
    after_write: AfterWrite | None = None,
) -> UserArchive:
    """Archive one user's due workouts and sets (the module's steps 1-4), all or nothing."""
    compress = settings.archival.process.compress
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key = f"{user_prefix(candidate.user_id)}{stamp}-{uuid.uuid4().hex[:8]}"
    key += archival_file.key_suffix(compress)
    try:
        with journal.bulk_transaction(conn, lock_timeout="10s", statement_timeout="30min"):
            ids = liverows.lock_workouts(conn, candidate.user_id, candidate.before)
            live = liverows.digest(conn, ids)
            span, volume = liverows.span_and_volume(conn, ids)
            header = {
                "user_id": candidate.user_id, "tables": live.rows, "trigger": candidate.trigger
            }  # fmt: skip
            sha, size = archival_file.write(
                repo, key, header, liverows.stream(conn, ids), compress=compress
            )
            _pause("written")
            if after_write is not None:
                after_write(repo, key)
            back = archival_file.read_back(repo, key, candidate.user_id)
            archival_file.compare(repo, key, live, back, sha)
            _pause("validated")
            stored = {"sha256": sha, "bytes": size, "volume": str(volume)}
            index_id = _index_and_remove(conn, repo, key, candidate, ids, live, span, stored)
    except KeyboardInterrupt as exc:  # rolled back: no index entry names the file
        repo.delete(key)
        raise Interrupted.of(exc).leaving(
            f"archive file {repo.describe(key)} removed before it was indexed; the rows of "
            f"user {candidate.user_id} stay live (run `powrops archive run` again)"
        ) from None
    _pause("committed")
    return UserArchive(
        candidate.user_id, candidate.trigger, key, index_id, live.rows["workouts"],
        live.rows["workout_sets"], sha, size, span[0], span[1],
    )  # fmt: skip


def _index_and_remove(
    conn: psycopg.Connection[Any],
    repo: Repository,
    key: str,
    candidate: Candidate,
    ids: list[int],
    live: Digest,
    span: tuple[date | None, date | None],
    stored: dict[str, Any],
) -> int:
    details = {
        "repository": repo.url, "key": key, "trigger": candidate.trigger,
        "format": archival_file.FORMAT, **live.to_dict(), "bytes": stored["bytes"],
        "volume": stored["volume"], "restored_at": None,
    }  # fmt: skip
    row = conn.execute(
        "INSERT INTO ops.archive_index (user_id, date_from, date_to, url, rows, sha256, details) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING id",
        (candidate.user_id, span[0], span[1], repo.describe(key), live.total, stored["sha256"],
         journal.dumps(details)),
    ).fetchone()  # fmt: skip
    assert row is not None
    liverows.remove(conn, candidate.user_id, ids, live, Decimal(stored["volume"]))
    journal.audit_summary(
        conn, "ARCHIVE",
        {"operation": "archive", "index_id": row[0], "trigger": candidate.trigger,
         "workouts": live.rows["workouts"], "workout_sets": live.rows["workout_sets"]},
        table_name="workouts",
    )  # fmt: skip
    return int(row[0])


def _record(settings: Settings, result: ArchivalResult) -> None:
    details = {
        "dry_run": result.dry_run,
        "due_users": len(result.candidates),
        "due_rows": sum(c.workouts + c.sets for c in result.candidates),
        "archived_users": len(result.archived),
        "rows": result.rows,
        "tables": {
            "workouts": sum(a.workouts for a in result.archived),
            "workout_sets": sum(a.sets for a in result.archived),
        },
        "bytes": sum(a.bytes for a in result.archived),
        "index_ids": [a.index_id for a in result.archived],
        "errors": result.errors,
    }
    journal.record_run(settings, "archive", details)


def index_entries(
    conn: psycopg.Connection[Any], user_id: int | None = None, *, include_restored: bool = True
) -> Iterator[dict[str, Any]]:
    """``ops.archive_index`` entries (oldest first), optionally of one user / not restored."""
    query = (
        "SELECT id, user_id, date_from, date_to, url, rows, sha256, created_at, details "
        "FROM ops.archive_index WHERE (%(user)s::bigint IS NULL OR user_id = %(user)s) "
        "AND (%(all)s OR details->>'restored_at' IS NULL) ORDER BY id"
    )
    names = ("id", "user_id", "date_from", "date_to", "url", "rows", "sha256", "created_at",
             "details")  # fmt: skip
    for row in conn.execute(query, {"user": user_id, "all": include_restored}):
        yield dict(zip(names, row, strict=True))
