"""WAL continuity, timeline histories and recoverability windows, as findings.

Built on the WAL objects that decompressed cleanly (a damaged one is as good as missing to a
recovery). A gap is CRITICAL unless it lies wholly before the *horizon*, the start WAL of the
backup from which expiry keeps point-in-time recovery continuous (the oldest restorable backup
that stopped within ``backup.retention.logs``, else the newest): WAL before it is expired on
purpose, and the older backups' windows simply end there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime

from powrops.backup.expiry import broken_link
from powrops.backup.model import BackupRecord, wal_key
from powrops.backup.wal.positions import (
    DEFAULT_SEGMENT_SIZE,
    format_lsn,
    kind_of,
    parse_lsn,
    parse_segment,
)
from powrops.config import Settings
from powrops.findings import Severity
from powrops.format import human_time
from powrops.storage.base import ObjectInfo
from powrops.verify.checksums import ObjectCheck
from powrops.verify.continuity import (
    Gap,
    Range,
    WalArchive,
    coverage,
    history_problems,
    parse_history,
    recovery_path,
    walk,
)
from powrops.verify.report import RecoveryWindow, VerificationReport

#: How a window bound without a known time reads.
UNKNOWN_TIME = "unknown time"


def segment_size(results: Mapping[str, ObjectCheck], default: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The WAL segment size: what most archived segments decompress to."""
    sizes = Counter(
        r.raw_size
        for name, r in results.items()
        if r.ok and r.raw_size and kind_of(name) == "segment"
    )
    return sizes.most_common(1)[0][0] if sizes else default


def build_archive(
    report: VerificationReport,
    objects: Mapping[str, ObjectInfo],
    results: Mapping[str, ObjectCheck],
) -> WalArchive:
    """The readable WAL per timeline; timeline history findings."""
    size = segment_size(results)
    report.figures["segment_size"] = size
    archive = WalArchive(segment_size=size)
    problems: dict[int, str] = {}
    for name, result in sorted(results.items()):
        kind = kind_of(name)
        if kind == "segment":
            segment = parse_segment(name, size)
            key = (segment.timeline, segment.number)
            if result.ok and result.raw_size is not None and result.raw_size != size:
                report.add(
                    "checksums",
                    Severity.CRITICAL,
                    f"archived WAL {name} decompresses to {result.raw_size} bytes, not the "
                    f"segment size {size}",
                    name,
                    segment=name,
                    status="wrong size",
                )
                archive.damaged.add(key)
            elif result.ok:
                archive.segments.setdefault(segment.timeline, {})[segment.number] = (
                    objects[name].mtime or report.now
                )
            else:
                archive.damaged.add(key)
        elif kind == "history" and result.ok:
            timeline = int(name[:8], 16)
            try:
                text = (result.content or b"").decode("utf-8")
                archive.histories[timeline] = parse_history(text, timeline)
            except ValueError as exc:
                problems[timeline] = f"unreadable: {exc}"
    _history_findings(report, archive, problems)
    report.timelines = coverage(archive, problems)
    return archive


def _history_findings(
    report: VerificationReport, archive: WalArchive, problems: Mapping[int, str]
) -> None:
    check = "timeline_history"
    found = 0
    for timeline in sorted(t for t in archive.segments if t > 1):
        if timeline in archive.histories:
            continue
        name = f"{timeline:08X}.history"
        numbers = archive.numbers(timeline)
        what = problems.get(timeline, "missing")
        found += 1
        report.add(
            check,
            Severity.WARNING,
            f"timeline {timeline} has archived WAL ({archive.name(timeline, numbers[0])} .. "
            f"{archive.name(timeline, numbers[-1])}) but its history file {name} is {what}: "
            "recovery cannot follow the switch to this timeline",
            name,
            advice="copy the history file from the server's pg_wal into the archive "
            "(`powrops wal push`)",
            timeline=timeline,
        )
    for timeline, problem in history_problems(archive):
        found += 1
        report.add(check, Severity.WARNING, problem, f"{timeline:08X}.history", timeline=timeline)
    later = sorted(t for t in archive.histories if t > 1)
    if later and not found:
        report.add(
            check,
            Severity.OK,
            "timelines " + ", ".join(map(str, later)) + " have history files that parse and "
            "match the archived WAL",
        )


# --- continuity and windows ----------------------------------------------------------------


@dataclass
class _GapUse:
    gap: Gap
    on_path_of: list[str] = field(default_factory=list)
    stops: list[RecoveryWindow] = field(default_factory=list)


def _horizon(records: Sequence[BackupRecord], settings: Settings, now: datetime) -> BackupRecord:
    by_label = {r.label: r for r in records}
    ok = [r for r in records if r.ok and r.start_wal]
    restorable = [r for r in ok if broken_link(r, by_label) is None] or ok
    logs = settings.backup.retention.logs
    limit = logs.seconds
    young = [
        r
        for r in restorable
        if limit is None or (now - (r.stop_time or r.start_time)).total_seconds() <= limit
    ]
    if young:
        return min(young, key=lambda r: (r.stop_time or r.start_time, r.label))
    return max(restorable, key=lambda r: (r.stop_time or r.start_time, r.label))


#: WAL segment sizes initdb accepts (--wal-segsize, 1 MiB to 1 GiB).
_SEGMENT_SIZES = tuple(1 << n for n in range(20, 31))


def record_segment_size(record: BackupRecord) -> int:
    """The WAL segment size a backup's record implies: the size at which its start WAL file is
    the segment holding its start LSN (16 MiB when the record cannot tell)."""
    if record.start_wal and record.start_lsn:
        lsn = parse_lsn(record.start_lsn)
        for size in _SEGMENT_SIZES:
            if parse_segment(record.start_wal, size).number == lsn // size:
                return size
    return DEFAULT_SEGMENT_SIZE


def listed_windows(
    records: Sequence[BackupRecord], wal: Mapping[str, ObjectInfo], now: datetime
) -> dict[str, RecoveryWindow]:
    """Each complete backup's recovery window from a listing of the WAL archive alone.

    Quicker than verification and trusting it more: an archived segment that is listed counts as
    readable (``powrops verify`` decompresses and checks each), and recovery follows the
    backup's own timeline. For ``backup list``, as pgBackRest's ``info`` shows WAL ranges.
    """
    windows: dict[str, RecoveryWindow] = {}
    for record in records:
        if not (record.ok and record.timeline and record.start_wal and record.stop_lsn):
            continue
        size = record_segment_size(record)
        archive = WalArchive(segment_size=size)
        for name, info in wal.items():
            if kind_of(name) == "segment":
                segment = parse_segment(name, size)
                archive.segments.setdefault(segment.timeline, {})[segment.number] = (
                    info.mtime or now
                )
        start = parse_segment(record.start_wal, size).number
        result = walk(archive, [Range(record.timeline, start, None)])
        first_gap = result.gaps[0] if result.gaps else None
        windows[record.label] = _window(record, archive, result.reached, first_gap)
    return windows


def _window(record: BackupRecord, archive: WalArchive, reached: tuple[int, int] | None,
            first_gap: Gap | None) -> RecoveryWindow:  # fmt: skip
    stop_lsn = parse_lsn(record.stop_lsn or "0/0")
    if reached is not None and archive.end_lsn(reached[1]) > stop_lsn:
        timeline, number = reached
        return RecoveryWindow(
            record.label, record.timeline, record.stop_lsn, record.stop_time,
            format_lsn(archive.end_lsn(number)), archive.segments[timeline][number],
            archive.name(timeline, number), first_gap.span if first_gap else None,
        )  # fmt: skip
    return RecoveryWindow(
        record.label, record.timeline, record.stop_lsn, record.stop_time,
        record.stop_lsn, record.stop_time, record.stop_wal, first_gap.span if first_gap else None,
    )  # fmt: skip


def continuity(
    report: VerificationReport,
    archive: WalArchive,
    targets: Sequence[BackupRecord],
    records: Sequence[BackupRecord],
    settings: Settings,
    in_secondary: Set[str] = frozenset(),
) -> dict[str, tuple[str, RecoveryWindow | None]]:
    """Gaps and windows of each restorable target; (wal status, window) per label."""
    by_label = {r.label: r for r in records}
    outcome: dict[str, tuple[str, RecoveryWindow | None]] = {}
    uses: dict[tuple[int, str], _GapUse] = {}
    starts: list[tuple[int, int]] = []
    newest: tuple[int, int] | None = None
    for record in targets:
        if broken_link(record, by_label) is not None:
            continue
        if not (record.timeline and record.start_wal and record.stop_lsn):
            report.add(
                "wal_continuity",
                Severity.UNKNOWN,
                f"backup {record.label} records no WAL range: its continuity cannot be judged",
                record.label,
                label=record.label,
            )
            continue
        start = parse_segment(record.start_wal, archive.segment_size).number
        starts.append((record.timeline, start))
        path = recovery_path(archive, record.timeline, start, parse_lsn(record.stop_lsn))
        result = walk(archive, path)
        newest = max(filter(None, [newest, result.newest]), default=None)
        window = _window(record, archive, result.reached, result.gaps[0] if result.gaps else None)
        report.windows.append(window)
        for index, gap in enumerate(result.gaps):
            use = uses.setdefault((gap.timeline, gap.first), _GapUse(gap))
            use.on_path_of.append(record.label)
            if index == 0:
                use.stops.append(window)
        status = f"gap at {result.gaps[0].span}" if result.gaps else "continuous"
        outcome[record.label] = (status, window)
        _window_finding(report, window)
    if not targets or not starts:
        return outcome
    horizon = _horizon(records, settings, report.now)
    h_start = parse_segment(horizon.start_wal or "", archive.segment_size).number
    critical = 0
    for (timeline, _), use in sorted(uses.items()):
        last = parse_segment(use.gap.last, archive.segment_size).number
        if timeline <= (horizon.timeline or 1) and last < h_start:
            report.figures.setdefault("expired_gaps", []).append(use.gap.to_dict())
            continue
        critical += 1
        _gap_finding(report, use, starts, archive, in_secondary)
    if not critical and newest is not None:
        name = archive.name(*newest)
        report.add(
            "wal_continuity",
            Severity.OK,
            f"WAL is continuous from each backup's start to the newest archived segment {name}",
            name,
            segment=name,
        )
    return outcome


def _gap_finding(
    report: VerificationReport, use: _GapUse, starts: Sequence[tuple[int, int]],
    archive: WalArchive, in_secondary: Set[str],
) -> None:  # fmt: skip
    gap = use.gap
    last = parse_segment(gap.last, archive.segment_size).number
    what = "missing or damaged" if gap.damaged else "missing"
    parts = [
        f"WAL gap on timeline {gap.timeline}: {gap.span} {what} "
        f"({gap.count} segment{'s' if gap.count != 1 else ''})"
    ]
    for window in use.stops:
        if window.end_lsn == window.start_lsn:
            parts.append(
                f"backup {window.label} can recover only to its consistency point "
                f"{window.start_lsn} ({human_time(window.start_time, UNKNOWN_TIME)})"
            )
        else:
            parts.append(
                f"backup {window.label} can recover only to {window.end_lsn} "
                f"(end of {window.end_segment}, "
                f"archived {human_time(window.end_time, UNKNOWN_TIME)})"
            )
    if not any(tli > gap.timeline or (tli == gap.timeline and n > last) for tli, n in starts):
        parts.append("no backup starts after it: nothing written after the gap can be recovered")
    first = parse_segment(gap.first, archive.segment_size)
    names = [archive.name(gap.timeline, first.number + i) for i in range(gap.count)]
    spare = [n for n in names if n in in_secondary]
    advice = (
        "take a new full backup (`powrops backup full`) so that recovery need not cross the "
        "gap; find out why the segments are missing (archive_command failures, deletes)"
    )
    if spare and len(spare) == len(names):
        keys = wal_key(gap.first) + ("" if len(names) == 1 else f" .. {wal_key(gap.last)}")
        advice = (
            f"the secondary still holds the missing WAL: copy {keys} from the secondary into "
            "the primary to close the gap"
        )
    elif spare:
        advice = f"the secondary still holds {', '.join(spare)}; " + advice
    report.add(
        "wal_continuity",
        Severity.CRITICAL,
        "; ".join(parts),
        gap.span,
        advice=advice,
        segment=gap.first,
        last=gap.last,
        damaged=list(gap.damaged) or None,
        labels=use.on_path_of,
    )


def _window_finding(report: VerificationReport, window: RecoveryWindow) -> None:
    if window.end_lsn == window.start_lsn:
        reason = f" (archived WAL stops at {window.stopped_by})" if window.stopped_by else ""
        message = (
            f"backup {window.label} can recover only to its consistency point "
            f"{window.start_lsn} ({human_time(window.start_time, UNKNOWN_TIME)}){reason}"
        )
    else:
        message = (
            f"backup {window.label} can recover to any point between {window.start_lsn} "
            f"({human_time(window.start_time, UNKNOWN_TIME)}) and {window.end_lsn} "
            f"({human_time(window.end_time, UNKNOWN_TIME)}, "
            f"end of {window.end_segment})"
        )
    report.add(
        "recoverability",
        Severity.OK,
        message,
        window.label,
        label=window.label,
        start_lsn=window.start_lsn,
        end_lsn=window.end_lsn,
        end_segment=window.end_segment,
    )
