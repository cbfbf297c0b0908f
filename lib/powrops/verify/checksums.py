"""Repository checksums: every stored backup file and archived WAL object read back.

Backup files are compared with the SHA-256 their ``backup.json`` recorded; WAL objects carry no
record, so each is decompressed to the end, which checks zstd's frame checksum and catches an
object cut short. Objects are read in chunks of 1 MiB: memory stays flat whatever their size.
The primary's problems are CRITICAL; a secondary's are WARNING (the primary copy still serves).

Each check returns what it read back intact in this run (key -> SHA-256 of the stored bytes):
only those objects are recorded as read in the verification state. An object a check did not
read (skipped by today's plan, a copy without its record, a read that failed) is never in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from powrops.backup.model import (
    DATA_FILE,
    RECORD_FILE,
    BackupRecord,
    StoredFile,
    backup_key,
    wal_name_of,
)
from powrops.backup.wal.positions import kind_of
from powrops.errors import ObjectNotFound, StorageError
from powrops.findings import Severity
from powrops.format import Echo
from powrops.storage.base import ObjectInfo, Repository
from powrops.verify import content
from powrops.verify.content import ContentCheck
from powrops.verify.report import VerificationReport
from powrops.verify.state import Plan
from powrops.verify.walparse import WalParse, WalParser

CHUNK = 1 << 20
HISTORY_LIMIT = 1 << 20  # history files are a few lines; keep at most this much of one


@dataclass(frozen=True)
class ObjectCheck:
    """What reading one object back showed; ``problem`` is None when it is intact."""

    key: str
    status: str  # ok / missing / differs / unreadable / damaged / truncated
    problem: str | None = None
    size: int = 0  # stored bytes read
    raw_size: int | None = None  # decompressed bytes (WAL)
    content: bytes | None = None  # the decompressed content of a history file
    sha256: str | None = None  # of the stored bytes (WAL), recorded for the next reads

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def intact(self) -> bool:
        """Read back in this run, every byte, and matched (not merely trusted from a last read)."""
        return self.problem is None and self.sha256 is not None


def check_file(repo: Repository, key: str, expected: StoredFile) -> ObjectCheck:
    """Read a backup file back and compare its SHA-256 with the record."""
    return _read_against(repo, key, expected.sha256, "its recorded SHA-256", expected.stored_size)


def _read_against(
    repo: Repository, key: str, sha256: str, what: str, recorded_size: int | None = None
) -> ObjectCheck:
    """Read a stored object back and compare the SHA-256 of its bytes with ``sha256``
    (``what`` names where that digest comes from, for the finding)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with repo.open_read(key) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except ObjectNotFound:
        return ObjectCheck(key, "missing", f"is missing from {repo.url}")
    except StorageError as exc:
        return ObjectCheck(key, "unreadable", f"cannot be read from {repo.url}: {exc}", size)
    got = digest.hexdigest()
    if got != sha256:
        sizes = f"{size} bytes read" + (
            f", {recorded_size} recorded" if recorded_size is not None else ""
        )
        return ObjectCheck(
            key,
            "differs",
            f"in {repo.url} does not match {what} (read {got[:12]}…, expected {sha256[:12]}…; "
            f"{sizes})",
            size,
        )
    return ObjectCheck(key, "ok", None, size, sha256=got)


def check_wal(
    repo: Repository, key: str, known: str | None = None, source: str = "its first read"
) -> ObjectCheck:
    """Read an archived WAL object back. Its first read decompresses it to the end (the zstd
    frame checksum) and records the SHA-256 of its stored bytes; with a digest ``known`` (from
    ``source``: that first read, or the primary's copy), a read compares the stored bytes'
    SHA-256 with it instead, as for backup files. A history file is always decompressed: its
    content is kept."""
    import zstandard

    keep = kind_of(wal_name_of(key)) == "history"
    if known is not None and not keep:
        return _read_against(repo, key, known, source)
    content = bytearray()
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    digest = hashlib.sha256()
    size = raw = 0
    try:
        with repo.open_read(key) as handle:
            while chunk := handle.read(CHUNK):
                size += len(chunk)
                digest.update(chunk)
                out = decompressor.decompress(chunk)
                raw += len(out)
                if keep and len(content) < HISTORY_LIMIT:
                    content += out
    except ObjectNotFound:
        return ObjectCheck(key, "missing", f"is missing from {repo.url}")
    except zstandard.ZstdError as exc:
        return ObjectCheck(key, "damaged", f"in {repo.url} is damaged: {exc}", size)
    except StorageError as exc:
        return ObjectCheck(key, "unreadable", f"cannot be read from {repo.url}: {exc}", size)
    if not decompressor.eof:
        return ObjectCheck(
            key,
            "truncated",
            f"in {repo.url} is truncated: its zstd frame ends early ({size} bytes stored, "
            f"{raw} bytes decompressed)",
            size,
            raw,
        )
    content_kept = bytes(content) if keep else None
    return ObjectCheck(key, "ok", None, size, raw, content_kept, digest.hexdigest())


def _count(report: VerificationReport, files: int, size: int, wal: int = 0) -> None:
    figures = report.figures
    figures["files_checked"] = figures.get("files_checked", 0) + files
    figures["wal_checked"] = figures.get("wal_checked", 0) + wal
    figures["bytes_read"] = figures.get("bytes_read", 0) + size


def _check_stored(
    repo: Repository, record: BackupRecord, stored: StoredFile, with_content: bool,
    parse_wal: WalParser | None,
) -> tuple[ObjectCheck, ContentCheck | None]:  # fmt: skip
    """Read one backup file back; the data object's read also checks its content when
    ``with_content`` (else its SHA-256 alone: the bytes whose content matched, unchanged)."""
    key = backup_key(record.label, stored.name)
    if stored.name != DATA_FILE or not with_content:
        return check_file(repo, key, stored), None
    checked = content.check(repo, record, parse_wal)
    if not checked.sha256:  # no manifest to check against: the bytes are read all the same
        return check_file(repo, key, stored), checked
    if checked.stored_problem is None:  # intact bytes, whatever they hold
        return ObjectCheck(key, "ok", None, checked.stored_bytes, sha256=checked.sha256), checked
    return ObjectCheck(key, checked.status, checked.stored_problem, checked.stored_bytes), checked


def primary_backups(
    report: VerificationReport,
    repo: Repository,
    records: Sequence[BackupRecord],
    echo: Echo | None,
    plan: Plan | None = None,
    content_of: Container[str] | None = None,
    parse_wal: WalParser | None = None,
) -> tuple[dict[str, list[ObjectCheck]], dict[str, ContentCheck], dict[str, str]]:
    """Check the files of ``records`` in the primary that ``plan`` reads (all without one).

    Reading the data object of a backup in ``content_of`` (every backup without it) also
    checks its content against its manifest, and the WAL of its range with ``parse_wal``
    (:mod:`powrops.verify.walparse`). Returns the damaged files per label (an empty
    list: nothing damaged among those read), the content checks made, per label, and the
    files read back intact (key -> SHA-256).
    """
    damaged: dict[str, list[ObjectCheck]] = {}
    contents: dict[str, ContentCheck] = {}
    intact: dict[str, str] = {}
    for record in records:
        chosen = _chosen(record, plan)
        _count_skipped(report, len(record.files) - len(chosen),
                       sum(f.stored_size for f in record.files if f not in chosen))  # fmt: skip
        if not chosen:
            continue
        if echo:
            echo(f"checksums: backup {record.label} ({len(chosen)} of {len(record.files)} files)")
        bad = []
        for stored in chosen:
            with_content = content_of is None or record.label in content_of
            result, checked = _check_stored(repo, record, stored, with_content, parse_wal)
            _count(report, 1, result.size)
            if checked is not None:
                contents[record.label] = checked
                _content_finding(report, record, checked)
            if result.intact and result.sha256:
                intact[result.key] = result.sha256
            if not result.ok:
                bad.append(result)
                report.add(
                    "checksums",
                    Severity.CRITICAL,
                    f"backup {record.label}: {stored.name} {result.problem}",
                    f"{record.label}/{stored.name}",
                    advice="restore from the secondary copy if it is intact; take a new full "
                    "backup (`powrops backup full`)",
                    label=record.label,
                    file=stored.name,
                    status=result.status,
                )
        damaged[record.label] = bad
        if not bad:
            report.add(
                "checksums",
                Severity.OK,
                f"backup {record.label}: {len(chosen)} files read back from {repo.url}, "
                "SHA-256 match",
                record.label,
                label=record.label,
            )
    return damaged, contents, intact


def _content_finding(
    report: VerificationReport, record: BackupRecord, checked: ContentCheck
) -> None:
    if checked.stored_problem is None and checked.wal is not None:
        _wal_findings(report, record, checked.wal)
    if checked.status == "content":
        report.add(
            "content",
            Severity.CRITICAL,
            f"backup {record.label} does not match its backup_manifest: {checked.summary()}",
            record.label,
            advice="the backup cannot be trusted: take a new full backup (`powrops backup full`)",
            label=record.label,
            problems=checked.problems[:100],
        )
    elif checked.ok:
        wal = checked.wal
        parsed = (
            f"; the WAL of its range ({_segments(wal.segments)}) parses with pg_waldump"
            if wal is not None
            else ""
        )
        report.add(
            "content",
            Severity.OK,
            f"backup {record.label}: {checked.files} files ({checked.raw_bytes} bytes) match "
            f"their size and checksum in backup_manifest{parsed}",
            record.label,
            label=record.label,
            files=checked.files,
            wal_segments=wal.segments if wal is not None else None,
        )
    # a damaged object (differs, truncated, unreadable) is reported by checksums


def _segments(names: Sequence[str]) -> str:
    if len(names) == 1:
        return f"segment {names[0]}"
    return f"{len(names)} segments, {names[0]} to {names[-1]}" if names else "no segment"


def _wal_findings(report: VerificationReport, record: BackupRecord, wal: WalParse) -> None:
    """The WAL of the backup's range: each segment that is missing, damaged or does not parse
    (CRITICAL: the backup cannot become consistent), or why it was not parsed (UNKNOWN)."""
    figures = report.figures.setdefault("wal_parse", {"backups": 0, "segments": 0, "seconds": 0.0})
    figures["backups"] += 1
    figures["segments"] += len(wal.segments)
    figures["seconds"] = round(figures["seconds"] + wal.seconds, 3)
    for segment, problem in wal.problems:
        report.add(
            "content",
            Severity.CRITICAL,
            f"backup {record.label}: WAL {segment}, in the range it needs to become consistent, "
            f"{problem}",
            segment,
            advice="the backup cannot be restored without this WAL: take a new full backup "
            "(`powrops backup full`); the secondary may hold an intact copy of the segment",
            label=record.label,
            segment=segment,
        )
    if wal.status == "not run":
        report.add(
            "content",
            Severity.UNKNOWN,
            f"backup {record.label}: the WAL of its range was not parsed ({wal.reason}); its "
            "content check is incomplete and is made again at the next read",
            record.label,
            label=record.label,
        )


def _chosen(record: BackupRecord, plan: Plan | None) -> list[StoredFile]:
    return [f for f in record.files
            if plan is None or plan.reads(backup_key(record.label, f.name))]  # fmt: skip


def _count_skipped(report: VerificationReport, objects: int, size: int = 0) -> None:
    figures = report.figures
    figures["objects_skipped"] = figures.get("objects_skipped", 0) + objects
    if size:
        figures["bytes_skipped"] = figures.get("bytes_skipped", 0) + size


def secondary_backups(
    report: VerificationReport,
    repo: Repository,
    records: Sequence[BackupRecord],
    keys: set[str],
    primary_damaged: Mapping[str, list[ObjectCheck]],
    echo: Echo | None,
    plan: Plan | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Check the secondary's copy of each backup: its status per label, and the files read back
    intact (key -> SHA-256). A copy without its ``backup.json`` is reported and not read."""
    statuses: dict[str, str] = {}
    intact: dict[str, str] = {}
    for record in records:
        if backup_key(record.label, RECORD_FILE) not in keys:
            statuses[record.label] = "missing"
            report.add(
                "secondary",
                Severity.WARNING,
                f"backup {record.label} is not in the secondary {repo.url}",
                record.label,
                advice="`powrops backup copy` copies what the secondary lacks",
                label=record.label,
            )
            continue
        chosen = _chosen(record, plan)
        _count_skipped(report, len(record.files) - len(chosen),
                       sum(f.stored_size for f in record.files if f not in chosen))  # fmt: skip
        if not chosen:
            statuses[record.label] = "ok"
            continue
        if echo:
            echo(f"checksums: backup {record.label} in the secondary")
        bad_in_primary = {c.key for c in primary_damaged.get(record.label, [])}
        bad = 0
        for stored in chosen:
            key = backup_key(record.label, stored.name)
            result = check_file(repo, key, stored)
            _count(report, 1, result.size)
            if result.intact and result.sha256:
                intact[key] = result.sha256
            if result.ok:
                continue
            bad += 1
            primary = (
                "the primary copy is damaged too"
                if key in bad_in_primary
                else "the primary copy is fine"
            )
            report.add(
                "secondary",
                Severity.WARNING,
                f"backup {record.label}: {stored.name} {result.problem} (secondary); {primary}",
                f"{record.label}/{stored.name}",
                advice=f"delete backups/{record.label}/ from the secondary, then run "
                "`powrops backup copy`",
                label=record.label,
                file=stored.name,
                status=result.status,
            )
        statuses[record.label] = "damaged" if bad else "ok"
        if not bad:
            report.add(
                "secondary",
                Severity.OK,
                f"backup {record.label}: {len(chosen)} files in the secondary {repo.url} match",
                record.label,
                label=record.label,
            )
    return statuses, intact


def primary_wal(
    report: VerificationReport,
    repo: Repository,
    objects: Iterable[ObjectInfo],
    echo: Echo | None,
    plan: Plan | None = None,
    digests: Mapping[str, str | None] | None = None,
) -> dict[str, ObjectCheck]:
    """Read back the WAL objects ``plan`` reads (all without one): decompressed, or compared
    with the digest ``digests`` holds from their first read; results by WAL file name
    (damaged ones are CRITICAL). An object not read today counts as intact, as last read."""
    results: dict[str, ObjectCheck] = {}
    for info in objects:
        name = wal_name_of(info.key)
        if plan is not None and not plan.reads(info.key):
            results[name] = ObjectCheck(info.key, "ok")
            _count_skipped(report, 1, info.size)
            continue
        result = check_wal(repo, info.key, (digests or {}).get(info.key))
        results[name] = result
        _count(report, 0, result.size, 1)
        if not result.ok:
            report.add(
                "checksums",
                Severity.CRITICAL,
                f"archived WAL {name} {result.problem}",
                name,
                advice="recovery stops before this file; take a new full backup "
                "(`powrops backup full`) so that recovery need not cross it",
                segment=name,
                status=result.status,
            )
    if echo:
        echo(f"checksums: {len(results)} archived WAL files")
    good = sum(1 for r in results.values() if r.ok)
    unpacked = sum(1 for r in results.values() if r.raw_size is not None)
    compared = sum(1 for r in results.values() if r.size and r.raw_size is None)
    if results and good == len(results):
        report.add(
            "checksums",
            Severity.OK,
            f"{len(results)} archived WAL files in {repo.url} intact: {unpacked} decompressed "
            f"today (zstd frame checksums match), {compared} read back against the SHA-256 of "
            "their first read; the others as last read",
            "wal",
        )
    return results


def secondary_wal(
    report: VerificationReport,
    repo: Repository,
    primary: Mapping[str, ObjectInfo],
    primary_results: Mapping[str, ObjectCheck],
    secondary: Mapping[str, ObjectInfo],
    copied_until: datetime | None,
    echo: Echo | None,
    plan: Plan | None = None,
    digests: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """Check the secondary's WAL: each copy is the primary's bytes (their SHA-256, when the
    primary's is known from ``digests`` or today's read), else decompresses; none archived
    before the last copy is missing. WAL archived after the newest backup reached the secondary
    is not expected yet. Returns the copies read back intact (key -> SHA-256).
    """
    intact: dict[str, str] = {}
    late = 0
    checked = 0
    problems = 0
    for name, info in primary.items():
        copy = secondary.get(name)
        if copy is None:
            archived = info.mtime
            if copied_until is not None and archived is not None and archived < copied_until:
                problems += 1
                fine = name in primary_results and primary_results[name].ok
                report.add(
                    "secondary",
                    Severity.WARNING,
                    f"archived WAL {name} is missing from the secondary {repo.url}; the "
                    f"primary copy is {'fine' if fine else 'damaged too'}",
                    name,
                    advice="`powrops backup copy` copies what the secondary lacks",
                    segment=name,
                    status="missing",
                )
            else:
                late += 1
            continue
        if plan is not None and not plan.reads(copy.key):
            _count_skipped(report, 1, copy.size)
            continue
        ours = primary_results.get(name)
        known = (ours.sha256 if ours is not None else None) or (digests or {}).get(info.key)
        result = check_wal(repo, copy.key, known, "the primary's copy")
        checked += 1
        _count(report, 0, result.size, 1)
        if result.intact and result.sha256:
            intact[copy.key] = result.sha256
        if not result.ok:
            problems += 1
            fine = name in primary_results and primary_results[name].ok
            report.add(
                "secondary",
                Severity.WARNING,
                f"archived WAL {name} {result.problem} (secondary); the primary copy is "
                + ("fine" if fine else "damaged too"),
                name,
                advice=f"delete {copy.key} from the secondary, then run `powrops backup copy`",
                segment=name,
                status=result.status,
            )
    if echo:
        echo(f"checksums: {checked} archived WAL files read back in the secondary")
    if not problems:
        note = f"; {late} archived since the last copy are not there yet" if late else ""
        report.add(
            "secondary",
            Severity.OK,
            f"{checked} archived WAL files in the secondary {repo.url} read back intact (the "
            f"primary's SHA-256, else decompressed){note}",
            "wal",
        )
    return intact
