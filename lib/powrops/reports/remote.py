"""The remote report archive: run directories copied to ``reports.archive_url``, with retention.

Layout in the archive (any repository URL: ``s3://bucket/prefix``, ``file:///path``)::

    <report name>/<run id>/notebook.ipynb
    <report name>/<run id>/report.html
    <report name>/<run id>/result.json     written last: a run is archived once it is there
    index.html, catalog.json               the index of the archive, rebuilt after each change

The archive is complete on its own: :meth:`ReportArchive.pull` copies every run it holds into a
directory (a fresh one, or the local reports directory) and the index is rebuilt from those
files alone, so a lost reports directory can be recovered from the archive.

Retention (``reports.retention``, default indefinite) applies to both copies: a run older than
the retention is deleted from the archive and from the local reports directory, except the
newest run of each report, which is always kept (a quarterly review needs at least one piece
of evidence per report). Runs are dated by their run id (``20261126T061500Z``); a run whose id
is not a timestamp is never deleted.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from powrops.backup.repos import connection_for
from powrops.durations import Duration
from powrops.errors import PowropsError, ReportError
from powrops.reports.catalog import RESULT_FILE, read_run, run_dirs
from powrops.reports.index import CATALOG_FILE, INDEX_FILE, build_index
from powrops.storage.registry import open_repository

if TYPE_CHECKING:
    from powrops.config import Settings
    from powrops.storage.base import Repository

RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass
class SyncResult:
    """What one archive operation did (run paths are ``<name>/<run id>``)."""

    archive: str | None
    uploaded: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    expired_remote: list[str] = field(default_factory=list)
    expired_local: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        where = self.archive or "no archive_url configured (local retention only)"
        verb = "would " if self.dry_run else ""
        return (
            f"archive {where}: {len(self.uploaded)} runs uploaded, "
            f"{len(self.downloaded)} downloaded, {verb}expire {len(self.expired_remote)} in the "
            f"archive and {len(self.expired_local)} locally, "
            f"{len(self.skipped)} unfinished runs left local"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "archive": self.archive,
            "uploaded": self.uploaded,
            "downloaded": self.downloaded,
            "expired_remote": self.expired_remote,
            "expired_local": self.expired_local,
            "skipped": self.skipped,
            "dry_run": self.dry_run,
        }


def run_time(run_id: str) -> datetime | None:
    """The UTC start second encoded in a run id, or None when it is not a timestamp."""
    try:
        return datetime.strptime(run_id.partition("-")[0], RUN_ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def expired_runs(runs: Iterable[str], retention: Duration, now: datetime) -> list[str]:
    """Which of ``runs`` (``[server/]name/run_id``) are past ``retention``; the newest per
    report (and server) stays."""
    if retention.indefinite:
        return []
    by_report: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for run in runs:
        name, _, run_id = run.rpartition("/")
        when = run_time(run_id)
        if when is not None:
            by_report[name].append((when, run))
    cutoff = now - retention.timedelta
    old: list[str] = []
    for dated in by_report.values():
        dated.sort()
        old.extend(run for when, run in dated[:-1] if when < cutoff)
    return sorted(old)


#: Seconds of silence from the archive's object store after which the copy after a run gives
#: up (a silent service held a finished run four minutes a call).
AFTER_RUN_SILENCE = 15.0


class ReportArchive:
    """The local reports directory and, when configured, its remote copy."""

    def __init__(self, reports_dir: Path, repo: Repository | None, retention: Duration) -> None:
        self.reports_dir = reports_dir
        self.repo = repo
        self.retention = retention

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportArchive:
        repo = None
        url = settings.reports.archive_url
        if url is not None and url.get_secret_value():
            where = url.get_secret_value()
            repo = open_repository(
                where, connection_for(settings, where, settings.reports.archive_storage)
            )
        return cls(settings.reports_dir, repo, settings.reports.retention)

    @property
    def url(self) -> str | None:
        return self.repo.url if self.repo is not None else None

    # -- what is where ---------------------------------------------------------------------

    def local_runs(self) -> dict[str, Path]:
        return {d.relative_to(self.reports_dir).as_posix(): d for d in run_dirs(self.reports_dir)}

    def remote_runs(self) -> dict[str, set[str]]:
        """Runs in the archive (``[server/]name/run_id`` -> file names), complete or not."""
        found: dict[str, set[str]] = defaultdict(set)
        if self.repo is None:
            return found
        for info in self.repo.list(""):
            parts = info.key.split("/")
            if len(parts) in (3, 4):
                found["/".join(parts[:-1])].add(parts[-1])
        return found

    # -- operations ------------------------------------------------------------------------

    def upload_run(self, run_dir: Path) -> int:
        """Copy one run directory to the archive, ``result.json`` last; return files copied."""
        if self.repo is None:
            return 0
        prefix = run_dir.resolve().relative_to(self.reports_dir.resolve()).as_posix() + "/"
        files = sorted(p for p in run_dir.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
        files.sort(key=lambda p: p.name == RESULT_FILE)
        for path in files:
            self.repo.put_bytes(prefix + path.name, path.read_bytes())
        return len(files)

    def push(self, result: SyncResult) -> None:
        """Upload every finished local run the archive lacks (or holds without result.json)."""
        remote = self.remote_runs()
        for run, path in sorted(self.local_runs().items()):
            if RESULT_FILE in remote.get(run, set()):
                continue
            if _incomplete(path):
                result.skipped.append(run)
                continue
            if not result.dry_run:
                self.upload_run(path)
            result.uploaded.append(run)

    def pull(self, dest: Path, result: SyncResult) -> None:
        """Copy every complete run of the archive that ``dest`` lacks into ``dest``."""
        if self.repo is None:
            return
        for run, names in sorted(self.remote_runs().items()):
            target = dest / run
            if RESULT_FILE not in names or (target / RESULT_FILE).exists():
                continue
            target.mkdir(parents=True, exist_ok=True)
            for name in sorted(names, key=lambda n: n == RESULT_FILE):
                tmp = target / (name + ".tmp")
                tmp.write_bytes(self.repo.get_bytes(f"{run}/{name}"))
                tmp.replace(target / name)
            result.downloaded.append(run)

    def expire(self, result: SyncResult, now: datetime | None = None) -> None:
        """Apply the retention to the archive and to the local directory."""
        moment = now or datetime.now(UTC)
        remote = self.remote_runs()
        local = self.local_runs()
        for run in expired_runs(remote, self.retention, moment):
            if not result.dry_run and self.repo is not None:
                names = sorted(remote[run], key=lambda n: n != RESULT_FILE)  # result.json first
                self.repo.delete_many(f"{run}/{name}" for name in names)
            result.expired_remote.append(run)
        for run in expired_runs(local, self.retention, moment):
            if not result.dry_run:
                shutil.rmtree(local[run])
                _remove_if_empty(local[run].parent)
            result.expired_local.append(run)

    def publish_index(self) -> Path:
        """Rebuild the local index and copy it (and catalog.json) to the archive root."""
        index = build_index(self.reports_dir)
        if self.repo is not None:
            self.repo.put_bytes(CATALOG_FILE, (self.reports_dir / CATALOG_FILE).read_bytes())
            self.repo.put_bytes(INDEX_FILE, index.read_bytes())
        return index

    def sync(self, *, dry_run: bool = False, now: datetime | None = None) -> SyncResult:
        """Upload what the archive lacks, apply the retention, republish the index."""
        result = SyncResult(self.url, dry_run=dry_run)
        self.push(result)
        self.expire(result, now)
        if not dry_run:
            self.publish_index()
        return result

    def rebuild_from_archive(self, dest: Path | None = None) -> tuple[Path, SyncResult]:
        """Download the archive's runs into ``dest`` (default: the reports directory) and
        build the index there from those files."""
        if self.repo is None:
            raise ReportError("no report archive configured: set reports.archive_url")
        target = dest or self.reports_dir
        result = SyncResult(self.url)
        self.pull(target, result)
        return build_index(target), result

    def after_run(self, run_dir: Path) -> None:
        """What the runner calls once a run is archived locally: upload, expire, re-index.

        A failure here does not fail the report (it is archived locally and ``powrops report
        sync`` uploads it later); it is printed on stderr, where a scheduler's log shows it.
        """

        archive = self._failing_fast()
        try:
            if archive.repo is not None:
                archive.upload_run(run_dir)
            result = SyncResult(self.url)
            archive.expire(result)
            if archive.repo is not None or result.expired_local:
                archive.publish_index()
        except PowropsError as exc:
            print(f"powrops: warning: report archive {self.url}: {exc}", file=sys.stderr)

    def _failing_fast(self) -> ReportArchive:
        """This archive, giving up on a silent object store after :data:`AFTER_RUN_SILENCE`
        seconds, without retries: ``report sync`` copies later what the run could not."""
        if self.repo is None:
            return self
        repo = self.repo.failing_fast(AFTER_RUN_SILENCE)
        return ReportArchive(self.reports_dir, repo, self.retention)


def _incomplete(run_dir: Path) -> bool:
    return bool(read_run(run_dir, run_dir.parent.parent).get("incomplete"))


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()
