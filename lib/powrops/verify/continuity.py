"""WAL continuity and recoverability windows: pure logic over what the archive holds.

The archive is described by :class:`WalArchive`: the readable segments per timeline with the
time each was archived, and the parsed timeline history files. From it:

- :func:`coverage` summarises each timeline (first and last segment, gaps, its history);
- :func:`recovery_path` is the sequence of (timeline, first, last) segment ranges that recovery
  from a backup replays to reach the newest archived WAL, following timeline switches the way
  PostgreSQL's ``recovery_target_timeline = 'latest'`` does;
- :func:`walk` finds the gaps along that path and the last segment reachable without one, which
  ends the backup's recoverability window.

A timeline history file (``0000000N.history``) has one line per ancestor timeline:
``parentTLI<TAB>switchpoint LSN<TAB>reason``, oldest first; blank lines and ``#`` comments are
ignored. Timeline N's WAL begins in the segment that holds the last switch point.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from powrops.backup.wal.positions import DEFAULT_SEGMENT_SIZE, Segment, format_lsn, parse_lsn


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a timeline history file: timeline ``parent`` ended at ``switchpoint``."""

    parent: int
    switchpoint: int
    reason: str = ""


def parse_history(text: str, timeline: int) -> tuple[HistoryEntry, ...]:
    """The entries of timeline ``timeline``'s history file; ValueError saying what is wrong."""
    entries: list[HistoryEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ValueError(f"line {number}: expected 'parentTLI<TAB>switchpoint<TAB>reason'")
        try:
            parent = int(parts[0])
            switchpoint = parse_lsn(parts[1])
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if entries and (parent <= entries[-1].parent or switchpoint < entries[-1].switchpoint):
            raise ValueError(f"line {number}: timelines and switch points must increase")
        if parent >= timeline:
            raise ValueError(f"line {number}: parent timeline {parent} is not before {timeline}")
        entries.append(HistoryEntry(parent, switchpoint, parts[2] if len(parts) > 2 else ""))
    if not entries:
        raise ValueError("no entries")
    return tuple(entries)


@dataclass
class WalArchive:
    """Readable archived segments per timeline, and the timeline histories that parsed."""

    segments: dict[int, dict[int, datetime]] = field(default_factory=dict)
    histories: dict[int, tuple[HistoryEntry, ...]] = field(default_factory=dict)
    damaged: set[tuple[int, int]] = field(default_factory=set)
    segment_size: int = DEFAULT_SEGMENT_SIZE
    _sorted: dict[int, list[int]] = field(default_factory=dict, repr=False)

    def numbers(self, timeline: int) -> list[int]:
        """Segment numbers present on ``timeline``, ascending."""
        if timeline not in self._sorted:
            self._sorted[timeline] = sorted(self.segments.get(timeline, {}))
        return self._sorted[timeline]

    def name(self, timeline: int, number: int) -> str:
        return Segment(timeline, number, self.segment_size).name

    def end_lsn(self, number: int) -> int:
        return (number + 1) * self.segment_size

    def segment_of(self, lsn: int) -> int:
        return lsn // self.segment_size


@dataclass(frozen=True)
class Gap:
    """Consecutive segments that a recovery needs and the archive lacks (or cannot read)."""

    timeline: int
    first: str
    last: str
    count: int
    damaged: tuple[str, ...] = ()

    @property
    def span(self) -> str:
        return self.first if self.count == 1 else f"{self.first}..{self.last}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "timeline": self.timeline,
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "damaged": list(self.damaged),
        }


@dataclass(frozen=True)
class TimelineCoverage:
    """What the archive holds of one timeline."""

    timeline: int
    first: str | None
    last: str | None
    segments: int
    first_archived_at: datetime | None
    last_archived_at: datetime | None
    gaps: tuple[Gap, ...]
    history: str  # "ok", "not needed" (timeline 1), "missing" or "unreadable: ..."
    parent: int | None = None
    switchpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "timeline": self.timeline,
            "first": self.first,
            "last": self.last,
            "segments": self.segments,
            "first_archived_at": _iso(self.first_archived_at),
            "last_archived_at": _iso(self.last_archived_at),
            "gaps": [g.to_dict() for g in self.gaps],
            "history": self.history,
            "parent": self.parent,
            "switchpoint": self.switchpoint,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def missing_runs(present: Sequence[int], first: int, last: int) -> list[tuple[int, int]]:
    """(first, last) of each run of numbers in first..last that ``present`` (sorted) lacks."""
    runs: list[tuple[int, int]] = []
    expected = first
    for number in present[bisect.bisect_left(present, first) : bisect.bisect_right(present, last)]:
        if number > expected:
            runs.append((expected, number - 1))
        expected = number + 1
    if expected <= last:
        runs.append((expected, last))
    return runs


def _gap(archive: WalArchive, timeline: int, first: int, last: int) -> Gap:
    damaged = tuple(
        archive.name(timeline, n)
        for tli, n in sorted(archive.damaged)
        if tli == timeline and first <= n <= last
    )
    return Gap(
        timeline,
        archive.name(timeline, first),
        archive.name(timeline, last),
        last - first + 1,
        damaged,
    )


def coverage(
    archive: WalArchive, history_problems: Mapping[int, str] | None = None
) -> list[TimelineCoverage]:
    """One summary per timeline with archived segments (or a history file), ascending."""
    problems = history_problems or {}
    timelines = sorted(set(archive.segments) | set(archive.histories) | set(problems))
    result = []
    for timeline in timelines:
        numbers = archive.numbers(timeline)
        times = archive.segments.get(timeline, {})
        entries = archive.histories.get(timeline)
        if timeline == 1:
            history = "not needed"
        elif entries is not None:
            history = "ok"
        else:
            history = problems.get(timeline, "missing")
        gaps = [
            _gap(archive, timeline, a, b)
            for a, b in (missing_runs(numbers, numbers[0], numbers[-1]) if numbers else [])
        ]
        result.append(
            TimelineCoverage(
                timeline=timeline,
                first=archive.name(timeline, numbers[0]) if numbers else None,
                last=archive.name(timeline, numbers[-1]) if numbers else None,
                segments=len(numbers),
                first_archived_at=min(times.values()) if times else None,
                last_archived_at=max(times.values()) if times else None,
                gaps=tuple(gaps),
                history=history,
                parent=entries[-1].parent if entries else None,
                switchpoint=format_lsn(entries[-1].switchpoint) if entries else None,
            )
        )
    return result


def history_problems(archive: WalArchive) -> list[tuple[int, str]]:
    """(timeline, problem) for timelines whose WAL does not start at their switch point."""
    found = []
    for timeline, entries in sorted(archive.histories.items()):
        numbers = archive.numbers(timeline)
        switch = archive.segment_of(entries[-1].switchpoint)
        if numbers and numbers[0] < switch:
            first = archive.name(timeline, numbers[0])
            point = format_lsn(entries[-1].switchpoint)
            problem = (
                f"timeline {timeline} has archived segment {first} before its switch point "
                f"{point} (segment {archive.name(timeline, switch)}): "
                "the history file does not match the archived WAL"
            )
            found.append((timeline, problem))
    return found


# --- a backup's path through the archive ---------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Segments ``first``..``last`` of ``timeline`` (``last`` None: to the newest archived)."""

    timeline: int
    first: int
    last: int | None


def target_timeline(archive: WalArchive, timeline: int, stop_lsn: int) -> int:
    """The newest timeline recovery from a backup on ``timeline`` can follow.

    A later timeline qualifies when its history descends from ``timeline`` at a switch point at
    or after the backup's consistency point and the archive holds some of its segments.
    """
    best = timeline
    for candidate, entries in archive.histories.items():
        if candidate <= best or not archive.numbers(candidate):
            continue
        if any(e.parent == timeline and e.switchpoint >= stop_lsn for e in entries):
            best = candidate
    return best


def recovery_path(archive: WalArchive, timeline: int, start: int, stop_lsn: int) -> list[Range]:
    """The segment ranges recovery replays from segment ``start`` of ``timeline`` onwards."""
    target = target_timeline(archive, timeline, stop_lsn)
    if target == timeline:
        return [Range(timeline, start, None)]
    entries = archive.histories[target]
    index = next(i for i, e in enumerate(entries) if e.parent == timeline)
    ranges = []
    first = start
    for entry in entries[index:]:
        switch = archive.segment_of(entry.switchpoint)
        ranges.append(Range(entry.parent, first, switch - 1))
        first = switch
    ranges.append(Range(target, first, None))
    return ranges


@dataclass(frozen=True)
class Walk:
    """The result of following a path: gaps met, and the last segment reached without one."""

    gaps: tuple[Gap, ...]
    reached: tuple[int, int] | None  # (timeline, number) of the last contiguous segment
    newest: tuple[int, int] | None  # (timeline, number) of the newest segment on the path


def walk(archive: WalArchive, path: Iterable[Range]) -> Walk:
    gaps: list[Gap] = []
    reached: tuple[int, int] | None = None
    newest: tuple[int, int] | None = None
    broken = False
    for part in path:
        numbers = archive.numbers(part.timeline)
        last = part.last
        if last is None:
            last = numbers[-1] if numbers and numbers[-1] >= part.first else part.first - 1
        if last < part.first:
            continue
        runs = missing_runs(numbers, part.first, last)
        gaps.extend(_gap(archive, part.timeline, a, b) for a, b in runs)
        if not broken:
            end = runs[0][0] - 1 if runs else last
            if end >= part.first:
                reached = (part.timeline, end)
            broken = bool(runs)
        present = numbers[
            bisect.bisect_left(numbers, part.first) : bisect.bisect_right(numbers, last)
        ]
        if present:
            newest = (part.timeline, present[-1])
    return Walk(tuple(gaps), reached, newest)
