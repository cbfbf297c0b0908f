"""Expiry: each rule on hand-made histories, then properties over generated histories."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from powrops.backup.expiry import (
    ArchivedWal,
    Decision,
    ExpiryPlan,
    broken_link,
    chain,
    needed_wal,
    plan_expiry,
)
from powrops.backup.model import BackupRecord, Kind, new_label
from powrops.backup.wal.positions import Segment, parse_segment
from powrops.config import BackupRetention

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
RETENTION = BackupRetention()  # full 30d, incremental 7d, logs 24h


def seg(number: int, timeline: int = 1) -> str:
    return Segment(timeline, number).name


def backup(
    kind: Kind,
    days_ago: float,
    *,
    parent: BackupRecord | str | None = None,
    wal: tuple[int, int] | None = (1, 1),
    failed: bool = False,
    verified: bool = False,
) -> BackupRecord:
    stop = NOW - timedelta(days=days_ago)
    start = stop - timedelta(minutes=5)
    return BackupRecord(
        label=new_label(kind, start),
        kind=kind,
        status="failed" if failed else "ok",
        start_time=start,
        stop_time=stop,
        parent=parent.label if isinstance(parent, BackupRecord) else parent,
        timeline=1,
        start_wal=seg(wal[0]) if wal else None,
        stop_wal=None if failed or wal is None else seg(wal[1]),
        verified_at=stop + timedelta(hours=1) if verified else None,
    )


def decision(plan: ExpiryPlan, item: str) -> Decision:
    (found,) = [d for d in plan.decisions if d.item == item]
    return found


def deleted(plan: ExpiryPlan, kind: str | None = None) -> set[str]:
    return {d.item for d in plan.deletes(kind)}  # type: ignore[arg-type]


# --- backups ----------------------------------------------------------------------------------


def test_old_full_with_a_kept_incremental_child_is_kept_with_the_reason() -> None:
    old_full = backup("full", 35)
    child = backup("incremental", 3, parent=old_full)
    new_full = backup("full", 1, verified=True)
    plan = plan_expiry([old_full, child, new_full], [], RETENTION, NOW)
    kept = decision(plan, old_full.label)
    assert kept.action == "keep"
    assert f"needed to restore kept {child.label}" in kept.reason
    assert "full older than 30d" in kept.reason
    assert decision(plan, child.label).action == "keep"


def test_chains_are_kept_transitively_back_to_the_full() -> None:
    full = backup("full", 40)
    middle = backup("incremental", 10, parent=full)  # older than 7d on its own
    newest = backup("incremental", 2, parent=middle)
    other = backup("full", 1, verified=True)
    plan = plan_expiry([full, middle, newest, other], [], RETENTION, NOW)
    assert deleted(plan) == set()
    assert f"needed to restore kept {newest.label}" in decision(plan, middle.label).reason
    assert f"needed to restore kept {newest.label}" in decision(plan, full.label).reason


def test_old_backups_without_kept_dependants_expire() -> None:
    old_full = backup("full", 31)
    old_child = backup("incremental", 8, parent=old_full)
    recent_full = backup("full", 6, verified=True)
    plan = plan_expiry([old_full, old_child, recent_full], [], RETENTION, NOW)
    assert deleted(plan, "backup") == {old_full.label, old_child.label}
    assert "incremental older than 7d" in decision(plan, old_child.label).reason


def test_newest_verified_full_is_kept_even_when_older_than_retention() -> None:
    oldest = backup("full", 70, verified=True)
    verified = backup("full", 60, verified=True)
    unverified = backup("full", 40)
    plan = plan_expiry([oldest, verified, unverified], [], RETENTION, NOW)
    assert decision(plan, verified.label).action == "keep"
    assert "newest verified full" in decision(plan, verified.label).reason
    assert decision(plan, unverified.label).action == "keep"
    assert "newest full (not verified yet)" in decision(plan, unverified.label).reason
    assert deleted(plan) == {oldest.label}


def test_newest_full_is_kept_when_no_full_is_verified() -> None:
    older = backup("full", 50)
    newest = backup("full", 40)
    plan = plan_expiry([older, newest], [], RETENTION, NOW)
    assert deleted(plan) == {older.label}
    assert "newest full (no full is verified)" in decision(plan, newest.label).reason


def test_failed_backups_expire_on_the_age_rule_of_their_kind() -> None:
    full = backup("full", 2, verified=True)
    old_failed_full = backup("full", 31, failed=True)
    young_failed_full = backup("full", 20, failed=True)
    old_failed_incr = backup("incremental", 8, parent=full, failed=True)
    young_failed_incr = backup("incremental", 1, parent=full, failed=True)
    history = [full, old_failed_full, young_failed_full, old_failed_incr, young_failed_incr]
    plan = plan_expiry(history, [], RETENTION, NOW)
    assert deleted(plan) == {old_failed_full.label, old_failed_incr.label}
    assert "failed full older than 30d" in decision(plan, old_failed_full.label).reason
    assert "failed full within 30d" in decision(plan, young_failed_full.label).reason
    assert decision(plan, young_failed_incr.label).action == "keep"


def test_a_failed_full_is_not_the_newest_full() -> None:
    good = backup("full", 45)
    failed = backup("full", 40, failed=True)
    plan = plan_expiry([good, failed], [], RETENTION, NOW)
    assert deleted(plan) == {failed.label}


def test_broken_chain_is_kept_and_noted() -> None:
    full = backup("full", 1, verified=True)
    orphan = backup("incremental", 20, parent="20261001T000000F")
    failed_parent = backup("incremental", 25, parent=full, failed=True)
    on_failed = backup("incremental", 24, parent=failed_parent)
    plan = plan_expiry([full, orphan, failed_parent, on_failed], [], RETENTION, NOW)
    assert deleted(plan) == set()
    assert "chain broken: parent 20261001T000000F missing" in decision(plan, orphan.label).reason
    reason = decision(plan, on_failed.label).reason
    assert f"chain broken: parent {failed_parent.label} failed" in reason


def test_chain_and_broken_link() -> None:
    full = backup("full", 3)
    first = backup("incremental", 2, parent=full)
    second = backup("incremental", 1, parent=first)
    by_label = {b.label: b for b in (full, first, second)}
    assert [b.label for b in chain(second, by_label)] == [second.label, first.label, full.label]
    assert broken_link(second, by_label) is None
    del by_label[full.label]
    assert [b.label for b in chain(second, by_label)] == [second.label, first.label]
    assert broken_link(second, by_label) == f"chain broken: parent {full.label} missing"
    loop = replace(first, parent=second.label)
    assert broken_link(second, {second.label: second, loop.label: loop}) is not None
    assert "records no parent" in str(broken_link(replace(second, parent=None), {}))


def test_indefinite_retention_never_expires() -> None:
    forever = BackupRetention(full="indefinite", incremental="indefinite", logs="indefinite")
    old = backup("full", 900)
    newer = backup("full", 800)
    wal = [ArchivedWal(seg(1), NOW - timedelta(days=900))]
    assert plan_expiry([old, newer], wal, forever, NOW).deletes() == ()


def test_incomplete_backups_are_removed_after_a_day() -> None:
    incomplete = [
        ("20261126T050000F", NOW - timedelta(hours=3)),
        ("20261120T000000F", NOW - timedelta(days=2)),
    ]
    plan = plan_expiry([], [], RETENTION, NOW, incomplete)
    assert deleted(plan, "incomplete") == {"20261120T000000F"}
    assert "may still be in progress" in decision(plan, "20261126T050000F").reason


# --- WAL --------------------------------------------------------------------------------------


def test_wal_needed_by_a_kept_backup_is_kept_even_when_older_than_24h() -> None:
    old_full = backup("full", 20, wal=(5, 6))
    new_full = backup("full", 3, wal=(0x20, 0x21), verified=True)
    wal = [
        ArchivedWal(seg(n), NOW - timedelta(days=25) + timedelta(hours=12 * n))
        for n in range(1, 0x31)
    ]
    wal += [
        ArchivedWal(f"{seg(5)}.00000028.backup", NOW - timedelta(days=20)),
        ArchivedWal(f"{seg(3)}.partial", NOW - timedelta(days=21)),
    ]
    plan = plan_expiry([old_full, new_full], wal, RETENTION, NOW)
    gone = deleted(plan, "wal")
    expected = {seg(n) for n in (*range(1, 5), *range(7, 0x20))} | {f"{seg(3)}.partial"}
    assert gone == expected
    reason = decision(plan, seg(5)).reason
    assert reason == f"needed by kept backup {old_full.label} to reach consistency"
    assert decision(plan, f"{seg(5)}.00000028.backup").action == "keep"
    assert "at or after start WAL" in decision(plan, seg(0x22)).reason
    assert (
        f"before start WAL {seg(0x20)} of backup {new_full.label}" in decision(plan, seg(7)).reason
    )


def test_horizon_is_the_oldest_backup_within_the_logs_window() -> None:
    full = backup("full", 0.9, wal=(10, 10), verified=True)
    incr = backup("incremental", 0.2, parent=full, wal=(20, 20))
    wal = [
        ArchivedWal(seg(n), NOW - timedelta(days=3) + timedelta(hours=2 * n)) for n in range(1, 30)
    ]
    plan = plan_expiry([full, incr], wal, RETENTION, NOW)
    # segments 1..9 are older than 24h and before the full's start: deleted; 10.. are kept so
    # point-in-time recovery from the full stays continuous, even though 11..(24h) are old.
    assert deleted(plan, "wal") == {seg(n) for n in range(1, 10)}
    assert decision(plan, seg(12)).reason.startswith(f"at or after start WAL {seg(10)}")
    assert "within 24h" in decision(plan, seg(29)).reason


def test_young_wal_before_the_horizon_is_kept() -> None:
    full = backup("full", 0.5, wal=(10, 10), verified=True)
    wal = [ArchivedWal(seg(n), NOW - timedelta(hours=2)) for n in range(1, 12)]
    assert plan_expiry([full], wal, RETENTION, NOW).deletes() == ()


def test_history_and_unknown_files_are_always_kept() -> None:
    full = backup("full", 1, wal=(50, 50), verified=True)
    ancient = NOW - timedelta(days=400)
    wal = [
        ArchivedWal("00000002.history", ancient),
        ArchivedWal("notes.txt", ancient),
        ArchivedWal(seg(1), ancient),
    ]
    plan = plan_expiry([full], wal, RETENTION, NOW)
    assert deleted(plan) == {seg(1)}
    assert decision(plan, "00000002.history").reason == "timeline history file: always kept"
    assert "not a WAL file name" in decision(plan, "notes.txt").reason


def test_later_timeline_wal_is_kept() -> None:
    full = backup("full", 2, wal=(50, 50), verified=True)
    old = NOW - timedelta(days=10)
    wal = [ArchivedWal(seg(10, timeline=2), old), ArchivedWal(seg(10, timeline=1), old)]
    plan = plan_expiry([full], wal, RETENTION, NOW)
    assert deleted(plan) == {seg(10, timeline=1)}
    assert "later timeline" in decision(plan, seg(10, timeline=2)).reason


def test_no_wal_is_deleted_without_a_kept_backup_or_with_an_unknown_range() -> None:
    old = NOW - timedelta(days=10)
    wal = [ArchivedWal(seg(n), old) for n in range(1, 5)]
    assert plan_expiry([], wal, RETENTION, NOW).deletes() == ()
    unknown = backup("full", 2, wal=None, verified=True)
    plan = plan_expiry([unknown], wal, RETENTION, NOW)
    assert plan.deletes() == ()
    assert "records no usable WAL range" in decision(plan, seg(1)).reason


def test_needed_wal_crosses_xlogid_boundaries() -> None:
    record = replace(
        backup("full", 1), start_wal="0000000100000000000000FE", stop_wal="000000010000000100000001"
    )
    assert needed_wal(record) == [
        "0000000100000000000000FE",
        "0000000100000000000000FF",
        "000000010000000100000000",
        "000000010000000100000001",
    ]
    assert needed_wal(replace(record, stop_wal=None)) == []
    with pytest.raises(ValueError):
        needed_wal(replace(record, stop_wal="000000020000000100000001"))


# --- the plan as data and text ---------------------------------------------------------------


def test_plan_is_deterministic_and_readable() -> None:
    old = backup("full", 40)
    new = backup("full", 2, wal=(9, 9), verified=True)
    wal = [ArchivedWal(seg(n), NOW - timedelta(days=45 - n)) for n in range(1, 12)]
    items = ([old, new], wal, [("20261101T000000I", NOW - timedelta(days=3))])
    first = plan_expiry(*items[:2], RETENTION, NOW, items[2])
    shuffled = plan_expiry(
        list(reversed(items[0])), random.Random(4).sample(wal, len(wal)), RETENTION, NOW, items[2]
    )
    assert first == shuffled
    assert [d.kind for d in first.decisions] == ["backup"] * 2 + ["incomplete"] + ["wal"] * 11
    lines = first.describe().splitlines()
    stopped = f"{old.stop_time:%Y-%m-%d %H:%M:%S} UTC"
    assert f"delete backup {old.label}: full older than 30d (stopped {stopped})" in lines
    assert lines[-1].startswith("expiry: backup 1 to delete / 1 kept")
    assert all(line.startswith("delete") for line in first.describe(keeps=False).splitlines()[:-1])
    data = first.to_dict()
    assert data["counts"]["wal"] == {"keep": 3, "delete": 8}
    assert data["decisions"][0] == {
        "item": old.label,
        "kind": "backup",
        "action": "delete",
        "reason": decision(first, old.label).reason,
    }


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        plan_expiry([], [], RETENTION, NOW.replace(tzinfo=None))


# --- properties over generated histories -----------------------------------------------------

BASE = datetime(2026, 9, 1, tzinfo=UTC)
FIRST_SEGMENT = 0x10


@dataclass(frozen=True)
class History:
    backups: tuple[BackupRecord, ...]
    wal: tuple[ArchivedWal, ...]
    incomplete: tuple[tuple[str, datetime], ...]
    now: datetime

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # used by hypothesis' reports
        printer.text(repr(self))

    def __repr__(self) -> str:  # hypothesis prints this for a failing example: keep it short
        rows = [
            f"{b.label} {b.status} parent={b.parent} wal={b.start_wal}..{b.stop_wal} "
            f"verified={b.verified_at is not None}"
            for b in self.backups
        ]
        span = f"{self.wal[0].name}..{self.wal[-1].name}" if self.wal else "none"
        return (
            f"History(now={self.now:%Y-%m-%d %H:%M}, wal={len(self.wal)} files {span}, "
            f"incomplete={len(self.incomplete)}, backups=[{'; '.join(rows)}])"
        )


one_backup = st.tuples(
    st.integers(0, 36).map(lambda hours: 10 + 60 * hours),  # minutes since the previous stop
    st.integers(1, 9),  # duration in minutes
    st.integers(0, 9),  # a full when below the history's share of fulls
    st.integers(0, 5).map(lambda n: n == 0),  # failed
    st.integers(0, 9),  # verified when below the history's share of verified backups
    st.integers(0, 15).map(lambda n: n == 0),  # record lost (breaks a chain)
)


@st.composite
def histories(draw: st.DrawFn) -> History:
    """1-40 backups over up to 60 days, a continuous WAL stream, a random 'now'."""
    size = draw(st.integers(1, 40))  # drawn first: plain lists of tuples tend to stay short
    rows = draw(st.lists(one_backup, min_size=size, max_size=size))
    full_share = draw(st.integers(0, 10))  # 0: one full, then only incrementals
    verified_share = draw(st.integers(0, 10))
    cadence = timedelta(minutes=draw(st.integers(30, 720)))
    later = draw(st.one_of(st.integers(1, 3 * 24 * 60), st.integers(1, 40 * 24 * 60)))
    moment = BASE
    spans: list[tuple[datetime, datetime, str, bool, bool, bool]] = []
    for gap, minutes, roll, failed, check, lost in rows:
        start = moment + timedelta(minutes=gap)
        moment = start + timedelta(minutes=minutes)
        kind = "full" if roll < full_share else "incremental"
        verified = check < verified_share
        spans.append((start, moment, kind, failed, verified, lost))
    now = moment + timedelta(minutes=later)
    # WAL: a segment every `cadence`, plus the switch each backup forces when it stops.
    times = sorted({*_every(BASE - timedelta(hours=2), now, cadence), *(s[1] for s in spans)})
    wal = [ArchivedWal(seg(FIRST_SEGMENT + i), t) for i, t in enumerate(times)]
    records: list[BackupRecord] = []
    parent: str | None = None
    for start, stop, kind, failed, verified, _ in spans:
        kind = "full" if parent is None else kind
        first = seg(FIRST_SEGMENT + bisect.bisect_left(times, start))
        last = seg(FIRST_SEGMENT + bisect.bisect_left(times, stop))
        record = BackupRecord(
            label=new_label(kind, start),  # type: ignore[arg-type]
            kind=kind,  # type: ignore[arg-type]
            status="failed" if failed else "ok",
            start_time=start,
            stop_time=stop,
            parent=parent if kind == "incremental" else None,
            timeline=1,
            start_wal=first,
            stop_wal=None if failed else last,
            verified_at=stop if verified and not failed else None,
        )
        records.append(record)
        if not failed:
            parent = record.label
            wal.append(ArchivedWal(f"{first}.00000028.backup", stop))
    present = tuple(r for r, span in zip(records, spans, strict=True) if not span[5])
    ages = draw(st.lists(st.integers(0, 3 * 24 * 60), max_size=3, unique=True))
    incomplete = tuple(
        (new_label("full", now - timedelta(minutes=a)), now - timedelta(minutes=a)) for a in ages
    )
    return History(present, tuple(wal), incomplete, now)


def _every(start: datetime, stop: datetime, step: timedelta) -> list[datetime]:
    count = int((stop - start) / step)
    return [start + step * i for i in range(count + 1)]


def apply(history: History, plan: ExpiryPlan) -> History:
    gone = {(d.kind, d.item) for d in plan.deletes()}
    return History(
        tuple(b for b in history.backups if ("backup", b.label) not in gone),
        tuple(w for w in history.wal if ("wal", w.name) not in gone),
        tuple(i for i in history.incomplete if ("incomplete", i[0]) not in gone),
        history.now,
    )


def _newest_full(backups: tuple[BackupRecord, ...], verified: bool) -> BackupRecord | None:
    fulls = [b for b in backups if b.ok and b.kind == "full" and (b.verified_at or not verified)]
    return max(fulls, key=lambda b: b.stop_time or b.start_time, default=None)


def violations(history: History, plan: ExpiryPlan) -> list[str]:
    """Every way in which applying ``plan`` to ``history`` breaks a promise of expiry."""
    problems: list[str] = []
    after = apply(history, plan)
    before_by_label = {b.label: b for b in history.backups}
    after_by_label = {b.label: b for b in after.backups}
    present = {w.name for w in after.wal}
    archived = {w.name for w in history.wal}
    for kept in (b for b in after.backups if b.ok):
        members = chain(kept, before_by_label)
        if [m.label for m in chain(kept, after_by_label)] != [m.label for m in members]:
            problems.append(f"chain of kept {kept.label} lost a member")
        for member in (m for m in members if m.ok):
            missing = [n for n in needed_wal(member) if n in archived and n not in present]
            if missing:
                problems.append(f"{member.label} (chain of {kept.label}) lost WAL {missing[0]}")
    for verified in (False, True):
        newest = _newest_full(history.backups, verified)
        if newest is not None and newest.label not in after_by_label:
            problems.append(f"newest {'verified ' if verified else ''}full {newest.label} deleted")
    problems += _young_deleted(history, plan)
    problems += _pitr_gap(history, after)
    return problems


def _young_deleted(history: History, plan: ExpiryPlan) -> list[str]:
    now, problems = history.now, []
    times = {
        ("backup", b.label): (
            b.stop_time or b.start_time,
            RETENTION.full if b.kind == "full" else RETENTION.incremental,
        )
        for b in history.backups
    }
    times.update({("wal", w.name): (w.archived_at, RETENTION.logs) for w in history.wal})
    times.update(
        {("incomplete", label): (seen, timedelta(days=1)) for label, seen in history.incomplete}
    )
    for d in plan.deletes():
        moment, span = times[(d.kind, d.item)]
        limit = span if isinstance(span, timedelta) else span.timedelta
        if now - moment <= limit:
            problems.append(f"young {d.kind} {d.item} deleted")
    return problems


def _pitr_gap(history: History, after: History) -> list[str]:
    """Point-in-time recovery must stay possible from some kept restorable backup to the end."""
    by_label = {b.label: b for b in after.backups}
    restorable = [
        b for b in after.backups if b.ok and broken_link(b, by_label) is None and b.start_wal
    ]
    if not restorable:
        return []
    present = {w.name for w in after.wal}
    gaps = [
        parse_segment(w.name).number
        for w in history.wal
        if len(w.name) == 24 and w.name not in present
    ]
    last_gap = max(gaps, default=-1)
    if any(parse_segment(b.start_wal).number > last_gap for b in restorable if b.start_wal):
        return []
    return [f"WAL segment {seg(last_gap)} deleted after the start of every kept backup"]


def plan_for(history: History) -> ExpiryPlan:
    return plan_expiry(history.backups, history.wal, RETENTION, history.now, history.incomplete)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_expiry_never_breaks_restorability(history: History) -> None:
    plan = plan_for(history)
    assert violations(history, plan) == []
    # deleting is idempotent: a second run over the result finds nothing more to delete
    assert plan_for(apply(history, plan)).deletes() == ()
    # every item has exactly one decision, with a reason
    assert all(d.reason for d in plan.decisions)
    assert len(plan.decisions) == len(history.backups) + len(history.wal) + len(history.incomplete)
    assert_not_vacuous(history, plan)


def assert_not_vacuous(history: History, plan: ExpiryPlan) -> None:
    """What is old and needed by nothing does go: failed backups, WAL before every kept start."""
    action = {d.item: d.action for d in plan.decisions}
    for record in history.backups:
        age = history.now - (record.stop_time or record.start_time)
        if not record.ok and age > timedelta(days=30):
            assert action[record.label] == "delete"
    starts = [
        parse_segment(b.start_wal).number
        for b in history.backups
        if b.ok and b.start_wal and action[b.label] == "keep"
    ]
    for w in history.wal:
        old = history.now - w.archived_at > RETENTION.logs.timedelta
        if len(w.name) == 24 and old and starts and parse_segment(w.name).number < min(starts):
            assert action[w.name] == "delete", w.name


def naive_plan(history: History) -> ExpiryPlan:
    """Delete purely by age: what expiry must not do."""
    now, out = history.now, []
    for b in history.backups:
        span = RETENTION.full if b.kind == "full" else RETENTION.incremental
        old = now - (b.stop_time or b.start_time) > span.timedelta
        out.append(Decision(b.label, "backup", "delete" if old else "keep", "age"))
    for w in history.wal:
        old = now - w.archived_at > RETENTION.logs.timedelta
        out.append(Decision(w.name, "wal", "delete" if old else "keep", "age"))
    return ExpiryPlan(tuple(out))


def test_the_property_catches_a_naive_age_only_policy() -> None:
    counterexample = find(
        histories(),
        lambda h: bool(violations(h, naive_plan(h))),
        # no shrinking: the first counterexample is enough, and shrinking big histories is slow
        settings=settings(max_examples=2000, deadline=None, database=None, phases=[Phase.generate]),
    )
    found = violations(counterexample, naive_plan(counterexample))
    assert found, counterexample
    print(f"naive policy: {found[0]} in {counterexample!r}")
    assert violations(counterexample, plan_for(counterexample)) == []


def test_naive_policy_breaks_a_chain_that_expiry_keeps() -> None:
    full = backup("full", 31, wal=(1, 1))
    child = backup("incremental", 2, parent=full, wal=(5, 5))
    wal = tuple(ArchivedWal(seg(n), NOW - timedelta(days=31 - 4 * n)) for n in range(1, 8))
    history = History((full, child), wal, (), NOW)
    assert f"chain of kept {child.label} lost a member" in violations(history, naive_plan(history))
    assert violations(history, plan_for(history)) == []
