"""Expiry: which backups, WAL files and incomplete backups may go, and why. Pure logic, no I/O.

``plan_expiry`` (or ``RetentionPolicy.plan``) looks at what the repository holds and returns an
``ExpiryPlan``: one ``Decision`` per item, keep or delete, each with a reason a DBA can read.
The same plan serves ``powrops backup expire --dry-run`` (printed) and the real run (executed),
so the dry run shows exactly what the real run would do.

Rules, in the order they are applied:

Backups
    1. Age: a full backup expires when its stop time (start time if it never stopped) is older
       than ``backup.retention.full``; an incremental when older than
       ``backup.retention.incremental``. Failed backups follow the same age rule for their kind:
       while young they are the failed-backup history. An "indefinite" retention never expires.
    2. Newest fulls: the newest ok full is never deleted, nor is the newest verified ok full
       (``verified_at`` set); when no full is verified the reason says so.
    3. Broken chains: an ok incremental whose chain does not reach a full (a parent missing,
       failed, unrecorded, or a loop) is not restorable; it is kept with "chain broken: ..." so
       that verification flags it. Expiry does not make a damaged history worse.
    4. Chains: every backup in the chain of a kept ok incremental (its parent, the parent's
       parent, ... back to the full) is kept.

WAL (archived segments, ``.partial`` and ``.backup`` files; positions compare by timeline and
segment number, ``.partial``/``.backup`` files by the segment they name)
    5. ``.history`` files are always kept (tiny, needed to follow timelines); files whose names
       are not WAL names are kept and reported.
    6. A file archived within ``backup.retention.logs`` is kept.
    7. A file inside the start..stop WAL range of any kept ok backup is kept: each kept backup
       can still reach consistency. If a kept ok backup records no usable WAL range, no WAL is
       deleted at all (what it needs is unknown).
    8. The *horizon* is the start WAL of the oldest kept restorable backup (an ok backup whose
       chain reaches an ok full; any kept ok backup if none is restorable) that stopped within
       the logs window or, when none is that young, of the newest such backup. Only files
       before the horizon (lower segment number, on the horizon's timeline or an earlier one)
       may be deleted, so point-in-time recovery stays continuous from the horizon backup to
       the newest archived WAL. Without any kept ok backup, no WAL is deleted.
    A WAL file is deleted only when none of 5-8 keeps it.

Incomplete backups (objects without ``backup.json`` from a run that was killed)
    9. Deleted once first seen more than ``RetentionPolicy.incomplete`` (1 day) ago; younger
       ones may belong to a run still in progress.

Decisions are ordered backups, incomplete backups, WAL; each group by label or name.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from powrops.backup.model import BackupRecord
from powrops.backup.wal.positions import (
    BACKUP_LABEL_RE,
    DEFAULT_SEGMENT_SIZE,
    PARTIAL_RE,
    SEGMENT_RE,
    kind_of,
    parse_segment,
    segment_range,
)
from powrops.config import BackupRetention
from powrops.durations import Duration
from powrops.format import human_time

ItemKind = Literal["backup", "wal", "incomplete"]
Action = Literal["keep", "delete"]
_KIND_ORDER: dict[str, int] = {"backup": 0, "incomplete": 1, "wal": 2}
INCOMPLETE_GRACE = Duration.parse("1d")  # a killed run's objects are removed after this


@dataclass(frozen=True)
class ArchivedWal:
    """One archived WAL file: its name as archived and when it was archived."""

    name: str  # segment, X.partial, TTTTTTTT.history or X.Y.backup
    archived_at: datetime


@dataclass(frozen=True)
class Decision:
    """What expiry does with one item, and why."""

    item: str
    kind: ItemKind
    action: Action
    reason: str


@dataclass(frozen=True)
class ExpiryPlan:
    """Every decision of one expiry run; the dry run prints it, the real run executes it."""

    decisions: tuple[Decision, ...]

    def deletes(self, kind: ItemKind | None = None) -> tuple[Decision, ...]:
        return self._select("delete", kind)

    def keeps(self, kind: ItemKind | None = None) -> tuple[Decision, ...]:
        return self._select("keep", kind)

    def _select(self, action: Action, kind: ItemKind | None) -> tuple[Decision, ...]:
        return tuple(
            d for d in self.decisions if d.action == action and (kind is None or d.kind == kind)
        )

    def counts(self) -> dict[str, dict[str, int]]:
        result = {kind: {"keep": 0, "delete": 0} for kind in _KIND_ORDER}
        for decision in self.decisions:
            result[decision.kind][decision.action] += 1
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"decisions": [asdict(d) for d in self.decisions], "counts": self.counts()}

    def describe(self, keeps: bool = True) -> str:
        """One line per decision (``keeps=False``: deletions only), then a summary line."""
        lines = [
            f"{d.action} {d.kind} {d.item}: {d.reason}"
            for d in self.decisions
            if keeps or d.action == "delete"
        ]
        counts = self.counts()
        summary = ", ".join(
            f"{kind} {c['delete']} to delete / {c['keep']} kept" for kind, c in counts.items()
        )
        lines.append(f"expiry: {summary}")
        return "\n".join(lines)


# --- chains and WAL ranges ----------------------------------------------------------------


def chain(backup: BackupRecord, by_label: Mapping[str, BackupRecord]) -> list[BackupRecord]:
    """The backup and its recorded ancestors, newest first, back to the full.

    Parent links are followed through ``by_label``; the list stops early where the chain is
    broken (a parent missing or no parent recorded); ``broken_link`` says why.
    """
    members = [backup]
    seen = {backup.label}
    current = backup
    while current.kind == "incremental" and current.parent is not None:
        parent = by_label.get(current.parent)
        if parent is None or parent.label in seen:
            break
        members.append(parent)
        seen.add(parent.label)
        current = parent
    return members


def broken_link(backup: BackupRecord, by_label: Mapping[str, BackupRecord]) -> str | None:
    """Why the chain of ``backup`` cannot be restored, or None when it reaches an ok full."""
    members = chain(backup, by_label)
    oldest = members[-1]
    for member in members[1:]:
        if not member.ok:
            return f"chain broken: parent {member.label} failed"
    if oldest.kind == "full":
        return None
    if oldest.parent is None:
        return f"chain broken: incremental {oldest.label} records no parent"
    if oldest.parent in by_label:
        return f"chain broken: parent links of {oldest.label} loop"
    return f"chain broken: parent {oldest.parent} missing"


def needed_wal(backup: BackupRecord, segment_size: int = DEFAULT_SEGMENT_SIZE) -> list[str]:
    """Segment names from the backup's start WAL to its stop WAL inclusive (one timeline).

    A backup that recorded no WAL range yields an empty list; a range over two timelines is a
    ``ValueError``.
    """
    if backup.start_wal is None or backup.stop_wal is None:
        return []
    first = parse_segment(backup.start_wal, segment_size)
    last = parse_segment(backup.stop_wal, segment_size)
    return [segment.name for segment in segment_range(first, last)]


def _position(name: str) -> tuple[int, int] | None:
    """(timeline, segment number) of a segment, ``.partial`` or ``.backup`` file name."""
    for pattern in (SEGMENT_RE, PARTIAL_RE, BACKUP_LABEL_RE):
        match = pattern.match(name)
        if match:
            segment = parse_segment(match.group(0)[:24])
            return segment.timeline, segment.number
    return None


def _ranges(backup: BackupRecord) -> list[tuple[int, int, int]] | None:
    """(timeline, first, last) ranges of WAL the backup needs; None when unknown."""
    if backup.start_wal is None or backup.stop_wal is None:
        return None
    start, stop = _position(backup.start_wal), _position(backup.stop_wal)
    if start is None or stop is None or stop[1] < start[1]:
        return None
    timelines = sorted({start[0], stop[0]})
    return [(timeline, start[1], stop[1]) for timeline in timelines]


# --- the policy ---------------------------------------------------------------------------


def _older(moment: datetime, now: datetime, span: Duration) -> bool:
    return not span.indefinite and now - moment > span.timedelta


def _reference_time(backup: BackupRecord) -> datetime:
    return backup.stop_time or backup.start_time


def _newest(backups: Iterable[BackupRecord]) -> BackupRecord | None:
    return max(backups, key=lambda b: (_reference_time(b), b.label), default=None)


def _names(labels: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(sorted(labels)[:limit])
    more = len(labels) - limit
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class RetentionPolicy:
    """Retention periods from ``backup.retention``, and the rules that apply them."""

    full: Duration
    incremental: Duration
    logs: Duration
    incomplete: Duration = INCOMPLETE_GRACE

    @classmethod
    def from_config(cls, retention: BackupRetention) -> RetentionPolicy:
        return cls(full=retention.full, incremental=retention.incremental, logs=retention.logs)

    def plan(
        self,
        backups: Sequence[BackupRecord],
        wal: Sequence[ArchivedWal],
        now: datetime,
        incomplete: Sequence[tuple[str, datetime]] = (),
    ) -> ExpiryPlan:
        if now.tzinfo is None:
            raise ValueError("expiry needs an aware 'now' (UTC), not a naive datetime")
        backup_decisions = self._backups(backups, now)
        kept = [b for b in backups if b.ok and backup_decisions[b.label].action == "keep"]
        decisions = [
            *sorted(backup_decisions.values(), key=lambda d: d.item),
            *self._incomplete(incomplete, now),
            *self._wal(wal, kept, now),
        ]
        return ExpiryPlan(tuple(decisions))

    # backups

    def _backups(self, backups: Sequence[BackupRecord], now: datetime) -> dict[str, Decision]:
        by_label = {b.label: b for b in backups}
        reasons = {b.label: self._age_reasons(b, now) for b in backups}
        pinned = self._pinned(backups, by_label)
        needed_by: dict[str, list[str]] = {}
        for backup in backups:
            young = not reasons[backup.label][1]
            if not (backup.ok and (young or backup.label in pinned)):
                continue
            for member in chain(backup, by_label)[1:]:
                needed_by.setdefault(member.label, []).append(backup.label)
        decisions: dict[str, Decision] = {}
        for backup in backups:
            age_reason, expired = reasons[backup.label]
            keep = [*pinned.get(backup.label, [])]
            if backup.label in needed_by:
                keep.append(f"needed to restore kept {_names(needed_by[backup.label])}")
            if keep or not expired:
                decisions[backup.label] = Decision(
                    backup.label, "backup", "keep", "; ".join([*keep, age_reason])
                )
            else:
                decisions[backup.label] = Decision(backup.label, "backup", "delete", age_reason)
        return decisions

    def _age_reasons(self, backup: BackupRecord, now: datetime) -> tuple[str, bool]:
        span = self.full if backup.kind == "full" else self.incremental
        moment = _reference_time(backup)
        what = backup.kind if backup.ok else f"failed {backup.kind}"
        verb = "stopped" if backup.stop_time else "started"
        expired = _older(moment, now, span)
        age = f"older than {span}" if expired else f"within {span}"
        return f"{what} {age} ({verb} {human_time(moment)})", expired

    def _pinned(
        self, backups: Sequence[BackupRecord], by_label: Mapping[str, BackupRecord]
    ) -> dict[str, list[str]]:
        """Backups kept whatever their age: the newest fulls and broken chains."""
        pinned: dict[str, list[str]] = {}
        fulls = [b for b in backups if b.ok and b.kind == "full"]
        newest_verified = _newest(b for b in fulls if b.verified_at is not None)
        newest = _newest(fulls)
        if newest_verified is not None:
            pinned.setdefault(newest_verified.label, []).append("newest verified full")
        if newest is not None and newest is not newest_verified:
            note = "no full is verified" if newest_verified is None else "not verified yet"
            pinned.setdefault(newest.label, []).append(f"newest full ({note})")
        for backup in backups:
            if backup.ok:
                broken = broken_link(backup, by_label)
                if broken is not None:
                    pinned.setdefault(backup.label, []).append(
                        f"{broken} (not restorable; kept for verification to flag)"
                    )
        return pinned

    # incomplete backups

    def _incomplete(
        self, incomplete: Sequence[tuple[str, datetime]], now: datetime
    ) -> list[Decision]:
        decisions = []
        for label, first_seen in sorted(incomplete):
            seen = f"first seen {human_time(first_seen)}"
            if _older(first_seen, now, self.incomplete):
                reason = f"no backup.json and {seen}, more than {self.incomplete} ago"
                decisions.append(Decision(label, "incomplete", "delete", reason))
            else:
                reason = f"no backup.json yet, {seen}: the run may still be in progress"
                decisions.append(Decision(label, "incomplete", "keep", reason))
        return decisions

    # WAL

    def _wal(
        self, wal: Sequence[ArchivedWal], kept: Sequence[BackupRecord], now: datetime
    ) -> list[Decision]:
        files = sorted(wal, key=lambda w: w.name)
        positions = [_position(w.name) for w in files]
        needed = _needed_by(files, positions, kept)
        limit = self._blocker(kept) or self._horizon(kept, now)
        decisions = []
        for file, position in zip(files, positions, strict=True):
            action, reason = self._wal_rule(file, position, needed, limit, now)
            decisions.append(Decision(file.name, "wal", action, reason))
        return decisions

    def _blocker(self, kept: Sequence[BackupRecord]) -> str | None:
        """Why no WAL may be deleted at all, or None."""
        if not kept:
            return "no kept ok backup to anchor WAL retention: kept"
        unknown = sorted(b.label for b in kept if _ranges(b) is None)
        if unknown:
            return f"kept backup {_names(unknown)} records no usable WAL range: all WAL kept"
        return None

    def _horizon(self, kept: Sequence[BackupRecord], now: datetime) -> _Horizon:
        """The backup from which point-in-time recovery stays continuous (rule 8)."""
        by_label = {b.label: b for b in kept}
        candidates = [b for b in kept if broken_link(b, by_label) is None] or list(kept)
        young = [b for b in candidates if not _older(_reference_time(b), now, self.logs)]
        if young:
            anchor = min(young, key=lambda b: (_reference_time(b), b.label))
        else:
            anchor = _newest(candidates) or kept[0]
        position = _position(anchor.start_wal or "")
        assert anchor.start_wal is not None and position is not None  # checked by _blocker
        return _Horizon(anchor.label, anchor.start_wal, position)

    def _wal_rule(
        self,
        file: ArchivedWal,
        position: tuple[int, int] | None,
        needed: Mapping[str, str],
        limit: str | _Horizon,
        now: datetime,
    ) -> tuple[Action, str]:
        """Rules 5-8 for one file; ``limit`` is the horizon, or why nothing may go."""
        if kind_of(file.name) == "history":
            return "keep", "timeline history file: always kept"
        if position is None:
            return "keep", "not a WAL file name powrops knows: kept"
        if not _older(file.archived_at, now, self.logs):
            return "keep", f"archived {human_time(file.archived_at)}, within {self.logs}"
        if file.name in needed:
            return "keep", f"needed by kept backup {needed[file.name]} to reach consistency"
        if isinstance(limit, str):
            return "keep", limit
        if position[0] > limit.position[0]:
            return "keep", f"on a later timeline than backup {limit.label} ({limit.start}): kept"
        if position[1] >= limit.position[1]:
            return "keep", (
                f"at or after start WAL {limit.start} of backup {limit.label}: "
                "kept for point-in-time recovery from it"
            )
        return "delete", (
            f"archived {human_time(file.archived_at)}, older than {self.logs}; before start WAL "
            f"{limit.start} of backup {limit.label} and needed by no kept backup"
        )


@dataclass(frozen=True)
class _Horizon:
    """The backup whose start WAL bounds WAL deletion, and that WAL's position."""

    label: str
    start: str
    position: tuple[int, int]


def _needed_by(
    files: Sequence[ArchivedWal],
    positions: Sequence[tuple[int, int] | None],
    kept: Sequence[BackupRecord],
) -> dict[str, str]:
    """Names of WAL files inside a kept backup's range -> the first such backup's label."""
    index = sorted((p, f.name) for f, p in zip(files, positions, strict=True) if p is not None)
    keys = [p for p, _ in index]
    needed: dict[str, str] = {}
    for backup in sorted(kept, key=lambda b: b.label):
        for timeline, first, last in _ranges(backup) or []:
            lo = bisect.bisect_left(keys, (timeline, first))
            hi = bisect.bisect_right(keys, (timeline, last))
            for _, name in index[lo:hi]:
                needed.setdefault(name, backup.label)
    return needed


def plan_expiry(
    backups: Sequence[BackupRecord],
    wal: Sequence[ArchivedWal],
    retention: BackupRetention,
    now: datetime,
    incomplete: Sequence[tuple[str, datetime]] = (),
) -> ExpiryPlan:
    """The expiry plan for a repository's contents under ``backup.retention`` at ``now``."""
    return RetentionPolicy.from_config(retention).plan(backups, wal, now, incomplete)
