"""Deterministic synthetic POWR data, optionally with known, planted integrity defects.

``generate()`` builds a dataset that looks like a real POWR database: a global exercise
catalogue plus a few user-specific exercises, and per user 2-4 workouts a week with 3-6
exercises of 3-5 sets, where weights trend upward per user and lift (progressive overload)
with a deload every 4-6 weeks and some day-to-day noise, rounded to 2.5 kg. Around it sit
inactive users (last active more than 2 years ago), soft-deleted users and workouts, archived
workouts, expired and live sessions, stale temp data and cache entries, consents and system
logs spread over 15 months, so that every retention and cleanup policy of the strategy has
rows that are due and rows that are not. Every timestamp is relative to ``today`` (00:00 UTC).

The same parameters always give the same rows: every random choice comes from a
``random.Random`` seeded with a string derived from ``seed`` (never the global generator,
never the clock). Ids are explicit, with a few natural gaps (rolled-back inserts, hard-deleted
accounts); the planted orphans point at those gaps, so no future insert can adopt them.

``defects=True`` plants a known number of each kind in ``DEFECT_TABLES``; an exact set-based
check finds exactly ``len(dataset.defects[kind])`` rows of each kind and no more:

==================== ============ =======================================================
kind                 table        the rows a check finds
==================== ============ =======================================================
weight_out_of_range  workout_sets ``weight < 0 OR weight > 1000``
weight_missing       workout_sets ``weight IS NULL``
reps_out_of_range    workout_sets ``reps < 1 OR reps > 100``
reps_missing         workout_sets ``reps IS NULL``
date_out_of_range    workouts     ``date < '2020-01-01' OR date > CURRENT_DATE``
orphan_sets          workout_sets no ``workouts`` row with ``id = workout_id``
orphan_workouts      workouts     no ``users`` row with ``id = user_id``
wrong_total_volume   workouts     ``total_volume IS NOT NULL`` and it differs from
                                  ``COALESCE(SUM(weight * reps), 0)`` of its sets
wrong_user_totals    user_totals  ``workout_count`` / ``total_volume`` differ from the
                                  user's workouts with ``deleted_at IS NULL`` (archived
                                  ones included) and ``SUM(weight * reps)`` of their sets
==================== ============ =======================================================

The kinds do not overlap: a planted bad weight or reps value is already counted in its
workout's ``total_volume`` (with SQL's ``SUM`` semantics: a NULL product adds nothing), a
workout with an out-of-range date has a correct total, and the users with a wrong
``user_totals`` row are the owners of the workouts with a wrong ``total_volume`` and have a
wrong ``workout_count`` or a volume that is wrong by an amount no planted workout error
explains, so a user-totals check finds the same rows whether it sums sets or
``workouts.total_volume``. Planted future dates lie 25 years ahead so they stay out of range
whenever the check runs.

``load()`` writes a dataset with COPY in one transaction and records the run in
``ops.seed_runs`` and ``ops.planted_defects``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import json
import math
import random
import time as clock
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from powrops.errors import SeedError

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy

GENERATOR_VERSION = 1
"""Bumped whenever the same parameters would produce different rows."""

EARLIEST_DATE = date(2020, 1, 1)
"""The validation rules' lower bound for workout dates; natural data never goes before it."""
FIRST_MONDAY = date(2020, 1, 6)
EARLIEST_TODAY = date(2023, 1, 1)
"""Inactive users' histories (over 2 years old) must fit after EARLIEST_DATE."""

SET_SECONDS = 150
WORKOUT_ID_GAP_RATE = 0.004
SYSTEM_LOG_SPAN_DAYS = 456  # ~15 months

DEFECT_TABLES: dict[str, str] = {
    "weight_out_of_range": "workout_sets",
    "weight_missing": "workout_sets",
    "reps_out_of_range": "workout_sets",
    "reps_missing": "workout_sets",
    "date_out_of_range": "workouts",
    "orphan_sets": "workout_sets",
    "orphan_workouts": "workouts",
    "wrong_total_volume": "workouts",
    "wrong_user_totals": "user_totals",
}
"""Every defect kind and the table whose ids ``Dataset.defects`` lists for it."""

DEFECT_COUNTS: dict[str, int] = {
    "weight_out_of_range": 5,
    "weight_missing": 3,
    "reps_out_of_range": 6,
    "reps_missing": 3,
    "date_out_of_range": 4,
    "orphan_sets": 5,
    "orphan_workouts": 3,
    "wrong_total_volume": 4,
    "wrong_user_totals": 3,
}
"""How many rows of each kind ``defects=True`` plants."""

POOLED_DEFECTS = (
    "date_out_of_range",
    "orphan_workouts",
    "weight_out_of_range",
    "weight_missing",
    "reps_out_of_range",
    "reps_missing",
)
"""Kinds planted in one distinct workout each (a set-level defect in its first set)."""

BAD_WEIGHTS = (-250, 125_000, 100_001, -1_000, 250_000)  # hundredths of a kg
BAD_REPS = (0, 101, -3, 150, -1, 0)
WRONG_VOLUME_DELTAS = (10_000, 3_750, 50_000, 1_250)  # no subset sums to the 123_450 below
USER_TOTAL_ERRORS = ((1, 0), (0, 123_450), (-1, 0))  # (workout_count, volume in hundredths)

POWR_TABLES = (
    "users",
    "exercises",
    "workouts",
    "workout_sets",
    "user_totals",
    "sessions",
    "temp_data",
    "cache_entries",
    "consents",
    "system_logs",
)
"""The application tables demo data fills, in foreign-key order."""


# -- rows, one NamedTuple per table (field names are the column names) ---------------------


class User(NamedTuple):
    id: int
    email: str
    display_name: str
    created_at: datetime
    last_active_at: datetime | None
    deleted_at: datetime | None


class Exercise(NamedTuple):
    id: int
    user_id: int | None
    name: str
    muscle_group: str
    created_at: datetime


class Workout(NamedTuple):
    id: int
    user_id: int
    date: date
    notes: str | None
    total_volume: Decimal | None
    archived_at: datetime | None
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WorkoutSet(NamedTuple):
    id: int
    workout_id: int
    exercise_id: int
    set_number: int
    weight: Decimal | None
    reps: int | None
    created_at: datetime


class UserTotal(NamedTuple):
    user_id: int
    workout_count: int
    total_volume: Decimal
    updated_at: datetime


class Session(NamedTuple):
    id: uuid.UUID
    user_id: int
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


class TempData(NamedTuple):
    id: int
    key: str
    payload: str  # JSON text
    created_at: datetime


class CacheEntry(NamedTuple):
    key: str
    value: str  # JSON text
    created_at: datetime
    expires_at: datetime


class Consent(NamedTuple):
    id: int
    user_id: int
    purpose: str
    granted: bool
    granted_at: datetime | None
    revoked_at: datetime | None
    source: str


class SystemLog(NamedTuple):
    id: int
    category: str
    logged_at: datetime
    level: str
    message: str


# -- the exercise catalogue -------------------------------------------------------------


class _CatalogueEntry(NamedTuple):
    name: str
    muscle_group: str
    base_kg: float  # working weight of an average novice; 0: bodyweight
    reps: tuple[int, ...]


COMPOUNDS = (
    _CatalogueEntry("Squat", "legs", 80, (5, 5, 6, 8)),
    _CatalogueEntry("Bench Press", "chest", 60, (5, 5, 6, 8)),
    _CatalogueEntry("Deadlift", "back", 100, (3, 5, 5)),
    _CatalogueEntry("Overhead Press", "shoulders", 40, (5, 6, 8)),
    _CatalogueEntry("Barbell Row", "back", 55, (5, 6, 8)),
)
ACCESSORIES = (
    _CatalogueEntry("Biceps Curl", "arms", 25, (8, 10, 12)),
    _CatalogueEntry("Lateral Raise", "shoulders", 8, (10, 12)),
    _CatalogueEntry("Leg Press", "legs", 120, (8, 10, 12)),
    _CatalogueEntry("Pull-up", "back", 0, (5, 6, 8, 10)),
    _CatalogueEntry("Triceps Pushdown", "arms", 25, (8, 10, 12)),
    _CatalogueEntry("Romanian Deadlift", "legs", 70, (8, 10)),
    _CatalogueEntry("Incline Dumbbell Press", "chest", 22.5, (8, 10, 12)),
    _CatalogueEntry("Leg Curl", "legs", 35, (10, 12)),
    _CatalogueEntry("Calf Raise", "legs", 60, (10, 12)),
    _CatalogueEntry("Face Pull", "shoulders", 20, (10, 12)),
    _CatalogueEntry("Dip", "chest", 0, (6, 8, 10, 12)),
    _CatalogueEntry("Lunge", "legs", 20, (8, 10, 12)),
    _CatalogueEntry("Hip Thrust", "glutes", 80, (8, 10)),
    _CatalogueEntry("Lat Pulldown", "back", 50, (8, 10, 12)),
    _CatalogueEntry("Cable Row", "back", 45, (8, 10, 12)),
)
CUSTOM = (
    _CatalogueEntry("Landmine Press", "shoulders", 25, (8, 10)),
    _CatalogueEntry("Sled Push", "legs", 60, (6, 8)),
    _CatalogueEntry("Zercher Squat", "legs", 60, (5, 6, 8)),
    _CatalogueEntry("Trap Bar Deadlift", "back", 100, (5, 6)),
    _CatalogueEntry("Cable Crossover", "chest", 15, (10, 12)),
    _CatalogueEntry("Hammer Curl", "arms", 12.5, (8, 10, 12)),
    _CatalogueEntry("Front Squat", "legs", 60, (5, 6, 8)),
    _CatalogueEntry("Arnold Press", "shoulders", 15, (8, 10, 12)),
)
CATALOGUE = COMPOUNDS + ACCESSORIES
PROGRAM_DAYS = ((0, 1, 4), (2, 3))  # A: squat, bench, row; B: deadlift, overhead press
NOTES = ("Felt strong", "Short on time", "Gym was busy", "Slept badly", "New personal best")


# -- parameters and plans -----------------------------------------------------------------


@dataclass(frozen=True)
class SeedParams:
    """What a dataset was generated from. ``identity()`` decides whether a seed run matches."""

    users: int
    weeks: int
    seed: int
    defects: bool
    today: date

    def identity(self) -> dict[str, Any]:
        """The parameters that determine the rows (``today`` only shifts them in time)."""
        return {
            "users": self.users,
            "weeks": self.weeks,
            "seed": self.seed,
            "defects": self.defects,
            "generator": GENERATOR_VERSION,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity(), "today": self.today.isoformat()}

    @property
    def now(self) -> datetime:
        """The instant every generated timestamp is relative to: ``today`` at 00:00 UTC."""
        return datetime.combine(self.today, time.min, tzinfo=UTC)

    def rng(self, purpose: str) -> random.Random:
        """An independent, reproducible random stream for one purpose."""
        return random.Random(f"powrops-demo:{GENERATOR_VERSION}:{self.seed}:{purpose}")


class _Lift(NamedTuple):
    exercise_id: int
    base_kg: float
    gain: float
    reps: int
    compound: bool
    bodyweight: bool


@dataclass(frozen=True)
class _UserPlan:
    """One user's life in the demo: status, training window, program and lifts."""

    user_id: int
    status: str  # "active" | "inactive" | "deleted"
    first_monday: date
    n_weeks: int
    deload_every: int
    hour: int
    compounds: tuple[_Lift, ...]
    accessories: tuple[_Lift, ...]
    created_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class _Training:
    """One workout as the per-user simulation produces it, before ids are assigned."""

    start: datetime
    user_id: int
    day: date
    notes: str | None
    sets: list[tuple[int, int, int, int]]  # (exercise_id, weight hundredths, reps, set_number)


@dataclass
class _Header:
    """A workout between the first pass and its final row (the only per-workout state kept)."""

    id: int
    user_id: int
    day: date
    notes: str | None
    start: datetime
    end: datetime
    n_sets: int
    first_set_id: int
    first_set: tuple[int, int]  # (weight hundredths, reps) of its first set
    volume: int  # true sum of weight * reps in hundredths, planted values included
    stored_volume: int | None = None  # what total_volume says, when it is planted wrong
    archived_at: datetime | None = None
    deleted_at: datetime | None = None


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _weeks_between(first: date, last: date) -> int:
    return (last - first).days // 7


def _validate(params: SeedParams) -> None:
    if params.users < 1:
        raise SeedError(f"users must be at least 1 (got {params.users})")
    if params.today < EARLIEST_TODAY:
        raise SeedError(
            f"today must be {EARLIEST_TODAY} or later (got {params.today}): inactive users' "
            f"histories, over 2 years old, must start after {EARLIEST_DATE}"
        )
    most = _weeks_between(FIRST_MONDAY, _monday(params.today))
    if not 1 <= params.weeks <= most:
        raise SeedError(
            f"weeks must be between 1 and {most} so that no workout is dated before "
            f"{EARLIEST_DATE} (got {params.weeks})"
        )
    if params.defects and params.users < 10:
        raise SeedError(f"planting defects needs at least 10 users (got {params.users})")


def _user_ids(params: SeedParams) -> tuple[list[int], list[int]]:
    """Ids of the real users and the gaps between them (accounts erased long ago)."""
    rng = params.rng("user-ids")
    n_gaps = max(2, params.users // 30) if params.users >= 2 else 0
    gaps = set(rng.sample(range(2, params.users + n_gaps), n_gaps))
    ids = [i for i in range(1, params.users + n_gaps + 1) if i not in gaps]
    return ids, sorted(gaps)


def _statuses(params: SeedParams, ids: Sequence[int]) -> dict[int, str]:
    n = len(ids)
    inactive = max(1, round(n * 0.10)) if n >= 5 else 0
    deleted = (max(2, round(n * 0.05)) if n >= 10 else 1) if n >= 5 else 0
    shuffled = params.rng("statuses").sample(list(ids), n)
    status = dict.fromkeys(ids, "active")
    for uid in shuffled[:inactive]:
        status[uid] = "inactive"
    for uid in shuffled[inactive : inactive + deleted]:
        status[uid] = "deleted"
    return status


def _lift(rng: random.Random, exercise_id: int, entry: _CatalogueEntry, strength: float) -> _Lift:
    bodyweight = entry.base_kg == 0
    base = max(0.0, (strength - 1.2) * 50) if bodyweight else entry.base_kg * strength
    return _Lift(
        exercise_id=exercise_id,
        base_kg=base * rng.uniform(0.9, 1.1),
        gain=rng.uniform(0.18, 0.32),
        reps=rng.choice(entry.reps),
        compound=entry in COMPOUNDS,
        bodyweight=bodyweight,
    )


def _window(
    params: SeedParams, rng: random.Random, status: str, deleted_at: datetime | None
) -> tuple[date, int]:
    """First Monday and number of training weeks for a user of this status."""
    this_monday = _monday(params.today)
    if status == "active":
        late = params.weeks >= 6 and rng.random() < 0.4
        offset = rng.randint(1, params.weeks // 3) if late else 0
        return this_monday - timedelta(weeks=params.weeks - offset), params.weeks - offset
    if status == "inactive":
        last_day = params.today - timedelta(days=730 + rng.randint(14, 200))
        end_monday = _monday(last_day)
    else:
        assert deleted_at is not None
        end_monday = _monday(deleted_at.date()) - timedelta(weeks=1)
    n_weeks = min(params.weeks, _weeks_between(FIRST_MONDAY, end_monday) + 1)
    return end_monday - timedelta(weeks=n_weeks - 1), n_weeks


def _deleted_at(params: SeedParams, rng: random.Random, old: bool) -> datetime:
    days = rng.randint(35, 200) if old else rng.randint(1, 25)
    return params.now - timedelta(days=days, seconds=rng.randint(0, 86_399))


@dataclass(frozen=True)
class _Plan:
    """Everything the replayable workout simulation needs."""

    params: SeedParams
    users: tuple[_UserPlan, ...]
    gap_user_ids: tuple[int, ...]
    exercises: tuple[Exercise, ...]


def _plan(params: SeedParams) -> _Plan:
    ids, gaps = _user_ids(params)
    status = _statuses(params, ids)
    rng = params.rng("plans")
    catalogue_at = datetime(2019, 11, 1, 9, 0, tzinfo=UTC)
    exercises = [
        Exercise(i + 1, None, e.name, e.muscle_group, catalogue_at) for i, e in enumerate(CATALOGUE)
    ]
    plans = []
    n_deleted = 0
    for uid in ids:
        deleted_at = None
        if status[uid] == "deleted":
            deleted_at = _deleted_at(params, rng, old=n_deleted % 2 == 0)
            n_deleted += 1
        plan, custom = _user_plan(params, rng, uid, status[uid], deleted_at, len(exercises))
        plans.append(plan)
        exercises.extend(custom)
    return _Plan(params, tuple(plans), tuple(gaps), tuple(exercises))


def _user_plan(
    params: SeedParams,
    rng: random.Random,
    uid: int,
    status: str,
    deleted_at: datetime | None,
    n_exercises: int,
) -> tuple[_UserPlan, list[Exercise]]:
    first_monday, n_weeks = _window(params, rng, status, deleted_at)
    created_at = datetime.combine(
        first_monday - timedelta(days=rng.randint(1, 20)), time(rng.randint(7, 22)), tzinfo=UTC
    )
    strength = rng.uniform(0.6, 1.5)
    compounds = tuple(_lift(rng, i + 1, e, strength) for i, e in enumerate(COMPOUNDS))
    picks = rng.sample(range(len(COMPOUNDS), len(CATALOGUE)), rng.randint(4, 7))
    accessories = [_lift(rng, i + 1, CATALOGUE[i], strength) for i in sorted(picks)]
    custom: list[Exercise] = []
    if rng.random() < 0.2:
        for entry in rng.sample(CUSTOM, rng.randint(1, 2)):
            ex_id = n_exercises + len(custom) + 1
            made = created_at + timedelta(minutes=rng.randint(5, 600))
            custom.append(Exercise(ex_id, uid, entry.name, entry.muscle_group, made))
            accessories.append(_lift(rng, ex_id, entry, strength))
    plan = _UserPlan(
        user_id=uid,
        status=status,
        first_monday=first_monday,
        n_weeks=n_weeks,
        deload_every=rng.randint(4, 6),
        hour=rng.randint(6, 19),
        compounds=compounds,
        accessories=tuple(accessories),
        created_at=created_at,
        deleted_at=deleted_at,
    )
    return plan, custom


# -- the workout simulation (replayable: the sets stream is generated, never stored) --------


def _plate(kg: float, minimum: int) -> int:
    """Weight in hundredths of a kg, rounded to 2.5 kg plates."""
    return max(minimum, round(kg / 2.5) * 250)


def _working_weight(rng: random.Random, lift: _Lift, t: float, deload: bool) -> int:
    """Progressive overload with diminishing returns, a deload factor and daily noise."""
    kg = lift.base_kg * (1 + lift.gain * math.log1p(t / 3))
    kg *= (0.85 if deload else 1.0) * (1 + rng.uniform(-0.03, 0.03))
    return _plate(min(kg, 500.0), 0 if lift.bodyweight else 250)


def _reps(x: float, target: int, set_index: int) -> int:
    """Reps of one set from one uniform draw: a good day now and then, fatigue late on."""
    reps = target + (x < 0.08) - (set_index >= 2 and x > 0.65) - (set_index >= 3 and x > 0.9)
    return 3 if reps < 3 else 12 if reps > 12 else reps


def _choose_lifts(rng: random.Random, plan: _UserPlan, n: int) -> list[_Lift]:
    """Day A or B of the user's program, topped up with accessories to 3-6 exercises."""
    day = PROGRAM_DAYS[n % len(PROGRAM_DAYS)]
    total = rng.randint(3, 6)
    compounds = [plan.compounds[i] for i in day][:total]
    extra = min(total - len(compounds), len(plan.accessories))
    return compounds + rng.sample(plan.accessories, extra)


def _workout_sets(
    rng: random.Random, lifts: Sequence[_Lift], t: float, deload: bool
) -> list[tuple[int, int, int, int]]:
    """3-5 sets per lift at its working weight, sometimes ending with a lighter back-off set."""
    sets = []
    rand = rng.random
    for lift in lifts:
        working = _working_weight(rng, lift, t, deload)
        count = 3 + int(rand() * 3)
        backoff = lift.compound and rand() < 0.15
        for index in range(count):
            weight = working
            if backoff and index == count - 1:
                weight = _plate(working / 100 * 0.9, 250)
            sets.append((lift.exercise_id, weight, _reps(rand(), lift.reps, index), index + 1))
    return sets


def _note(rng: random.Random, deload: bool) -> str | None:
    if deload and rng.random() < 0.5:
        return "Deload week"
    return rng.choice(NOTES) if rng.random() < 0.08 else None


def _trainings(plan: _UserPlan, params: SeedParams) -> Iterator[_Training]:
    """One user's workouts in date order; the same plan always yields the same workouts."""
    rng = params.rng(f"user:{plan.user_id}")
    n = 0
    for week in range(plan.n_weeks):
        monday = plan.first_monday + timedelta(weeks=week)
        deload = (week + 1) % plan.deload_every == 0
        count = rng.choices((2, 3, 4), weights=(3, 5, 2))[0]
        for offset in sorted(rng.sample(range(7), count)):
            day = monday + timedelta(days=offset)
            at = time(plan.hour + rng.randint(-1, 1), rng.randint(0, 59))
            notes = _note(rng, deload)
            t = week + offset / 7
            sets = _workout_sets(rng, _choose_lifts(rng, plan, n), t, deload)
            yield _Training(datetime.combine(day, at, tzinfo=UTC), plan.user_id, day, notes, sets)
            n += 1


def _numbered(plan: _Plan) -> Iterator[tuple[int, int, _Training]]:
    """All workouts in time order with their workout id and first set id."""
    streams = [_trainings(p, plan.params) for p in plan.users]
    merged = heapq.merge(*streams, key=lambda tr: (tr.start, tr.user_id))
    gaps = plan.params.rng("workout-ids")
    workout_id, set_id = 0, 1
    for index, training in enumerate(merged):
        skip = gaps.random() < WORKOUT_ID_GAP_RATE or index == 1
        workout_id += 2 if skip else 1
        yield workout_id, set_id, training
        set_id += len(training.sets)


def _headers(plan: _Plan) -> list[_Header]:
    """The first pass: every workout's header and true volume; its sets are dropped."""
    headers = []
    for workout_id, set_id, tr in _numbered(plan):
        _, weight, reps, _ = tr.sets[0]
        headers.append(
            _Header(
                id=workout_id,
                user_id=tr.user_id,
                day=tr.day,
                notes=tr.notes,
                start=tr.start,
                end=tr.start + timedelta(seconds=SET_SECONDS * (len(tr.sets) + 1)),
                n_sets=len(tr.sets),
                first_set_id=set_id,
                first_set=(weight, reps),
                volume=sum(s[1] * s[2] for s in tr.sets),
            )
        )
    return headers


@functools.lru_cache(maxsize=4096)
def _decimal(hundredths: int) -> Decimal:
    return Decimal(hundredths).scaleb(-2)


def _kg(hundredths: int | None) -> Decimal | None:
    return None if hundredths is None else _decimal(hundredths)


SetOverrides = dict[int, tuple[int | None, int | None]]


def _natural_sets(plan: _Plan, overrides: SetOverrides) -> Iterator[WorkoutSet]:
    """The second pass: every set of every workout, planted values applied."""
    offsets = [timedelta(seconds=SET_SECONDS * (k + 1)) for k in range(64)]
    for workout_id, first_id, tr in _numbered(plan):
        for k, (exercise_id, weight, reps, number) in enumerate(tr.sets):
            set_id = first_id + k
            w: int | None = weight
            r: int | None = reps
            if set_id in overrides:
                w, r = overrides[set_id]
            yield WorkoutSet(
                set_id, workout_id, exercise_id, number, _kg(w), r, tr.start + offsets[k]
            )


# -- archived and deleted workouts --------------------------------------------------------


def _lifecycle(params: SeedParams, plans: Mapping[int, _UserPlan], headers: list[_Header]) -> None:
    """Archive and soft-delete some workouts, with deletions both past and within 90 days."""
    rng = params.rng("lifecycle")
    now = params.now
    last_end: dict[int, datetime] = {}
    for h in headers:
        last_end[h.user_id] = h.end
    for h in headers:
        if plans[h.user_id].status == "inactive" and rng.random() < 0.5:
            h.archived_at = last_end[h.user_id] + timedelta(days=365 + rng.randint(0, 90))
        elif h.start < now - timedelta(days=180) and rng.random() < 0.02:
            h.archived_at = h.start + timedelta(days=rng.randint(30, 150))
        elif rng.random() < 0.02:
            _soft_delete(h, h.end + timedelta(seconds=rng.randint(3_600, 864_000)), now)
    cut = now - timedelta(days=90)
    deleted = [h.deleted_at for h in headers if h.deleted_at is not None]
    if not any(d < cut for d in deleted):
        _delete_one(
            rng, headers, lambda h: h.end < cut - timedelta(days=30), timedelta(days=2), now
        )
    if not any(d >= cut for d in deleted):
        _delete_one(
            rng, headers, lambda h: h.end > cut + timedelta(days=30), timedelta(hours=1), now
        )


def _soft_delete(header: _Header, at: datetime, now: datetime) -> None:
    at = min(at, now - timedelta(minutes=10))
    if at > header.end:
        header.deleted_at = at


def _delete_one(
    rng: random.Random,
    headers: list[_Header],
    wanted: Callable[[_Header], bool],
    after: timedelta,
    now: datetime,
) -> None:
    candidates = [
        h for h in headers if wanted(h) and h.archived_at is None and h.deleted_at is None
    ]
    if candidates:
        victim = rng.choice(candidates)
        _soft_delete(victim, victim.end + after, now)


# -- planted defects ------------------------------------------------------------------------


@dataclass
class _Defects:
    """The planted defects: ids per kind plus what the generator must change."""

    ids: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in DEFECT_TABLES})
    set_overrides: SetOverrides = field(default_factory=dict)
    user_total_errors: dict[int, tuple[int, int]] = field(default_factory=dict)
    orphan_sets: list[WorkoutSet] = field(default_factory=list)


def _plant(
    params: SeedParams,
    plans: Mapping[int, _UserPlan],
    headers: list[_Header],
    gap_users: Sequence[int],
) -> _Defects:
    """Choose distinct healthy workouts of active users and plant every defect kind."""
    defects = _Defects()
    if not params.defects:
        return defects
    rng = params.rng("defects")
    eligible = [
        h
        for h in headers
        if plans[h.user_id].status == "active" and h.archived_at is None and h.deleted_at is None
    ]
    _plant_totals(rng, eligible, defects)
    used = set(defects.ids["wrong_total_volume"])
    pool = [h for h in eligible if h.id not in used]
    rng.shuffle(pool)
    needed = sum(DEFECT_COUNTS[k] for k in POOLED_DEFECTS)
    if len(pool) < needed:
        raise SeedError(
            f"too little data to plant defects ({len(pool)} eligible workouts, {needed} needed): "
            "use more users or weeks"
        )
    _plant_dates(params, pool, defects)
    _plant_orphan_workouts(pool, gap_users, defects)
    _plant_sets(pool, defects)
    _plant_orphan_sets(params, headers, defects)
    return defects


def _plant_totals(rng: random.Random, eligible: list[_Header], defects: _Defects) -> None:
    """Wrong user_totals for a few users, and wrong total_volume on some of their workouts."""
    by_user: dict[int, list[_Header]] = {}
    for h in eligible:
        by_user.setdefault(h.user_id, []).append(h)
    owners = sorted(uid for uid, hs in by_user.items() if len(hs) >= 2)
    if len(owners) < DEFECT_COUNTS["wrong_user_totals"]:
        raise SeedError("too few active users with workouts to plant wrong user totals")
    chosen = rng.sample(owners, DEFECT_COUNTS["wrong_user_totals"])
    for i, uid in enumerate(chosen):
        defects.ids["wrong_user_totals"].append(uid)
        defects.user_total_errors[uid] = USER_TOTAL_ERRORS[i % len(USER_TOTAL_ERRORS)]
    picks = {uid: rng.sample(by_user[uid], 2) for uid in chosen}
    for i in range(DEFECT_COUNTS["wrong_total_volume"]):
        h = picks[chosen[i % len(chosen)]][(i // len(chosen)) % 2]
        h.stored_volume = h.volume + WRONG_VOLUME_DELTAS[i % len(WRONG_VOLUME_DELTAS)]
        defects.ids["wrong_total_volume"].append(h.id)


def _plant_dates(params: SeedParams, pool: list[_Header], defects: _Defects) -> None:
    past = (date(2019, 12, 31), date(2019, 6, 15), date(2018, 3, 3))
    for i in range(DEFECT_COUNTS["date_out_of_range"]):
        h = pool.pop()
        future = date(params.today.year + 25, 1 + i % 12, 15)
        h.day = future if i % 2 else past[(i // 2) % len(past)]
        defects.ids["date_out_of_range"].append(h.id)


def _plant_orphan_workouts(
    pool: list[_Header], gap_users: Sequence[int], defects: _Defects
) -> None:
    for i in range(DEFECT_COUNTS["orphan_workouts"]):
        h = pool.pop()
        h.user_id = gap_users[i % len(gap_users)]
        defects.ids["orphan_workouts"].append(h.id)


def _plant_sets(pool: list[_Header], defects: _Defects) -> None:
    """Bad values in the first set of distinct workouts; the workout's total includes them."""
    plans: list[tuple[str, Callable[[int, int, int], tuple[int | None, int | None]]]] = [
        ("weight_out_of_range", lambda i, w, r: (BAD_WEIGHTS[i % len(BAD_WEIGHTS)], r)),
        ("weight_missing", lambda i, w, r: (None, r)),
        ("reps_out_of_range", lambda i, w, r: (w, BAD_REPS[i % len(BAD_REPS)])),
        ("reps_missing", lambda i, w, r: (w, None)),
    ]
    for kind, change in plans:
        for i in range(DEFECT_COUNTS[kind]):
            h = pool.pop()
            weight, reps = h.first_set
            new_weight, new_reps = change(i, weight, reps)
            product = 0 if new_weight is None or new_reps is None else new_weight * new_reps
            h.volume += product - weight * reps
            defects.set_overrides[h.first_set_id] = (new_weight, new_reps)
            defects.ids[kind].append(h.first_set_id)


def _plant_orphan_sets(params: SeedParams, headers: list[_Header], defects: _Defects) -> None:
    """Sets left behind by workouts that were hard-deleted (ids in the workout id gaps)."""
    existing = {h.id for h in headers}
    gaps = [i for i in range(1, headers[-1].id) if i not in existing]
    next_id = headers[-1].first_set_id + headers[-1].n_sets
    at = params.now - timedelta(days=3)
    for i in range(DEFECT_COUNTS["orphan_sets"]):
        row = WorkoutSet(
            next_id + i,
            gaps[i % len(gaps)],
            1 + i % len(COMPOUNDS),
            1 + i,
            _decimal(6_000),
            8,
            at + timedelta(seconds=SET_SECONDS * i),
        )
        defects.orphan_sets.append(row)
        defects.ids["orphan_sets"].append(row.id)


# -- the small tables -------------------------------------------------------------------


def _workout_rows(headers: Iterable[_Header]) -> tuple[Workout, ...]:
    return tuple(
        Workout(
            h.id,
            h.user_id,
            h.day,
            h.notes,
            _decimal(h.volume if h.stored_volume is None else h.stored_volume),
            h.archived_at,
            h.deleted_at,
            h.start,
            h.end,
        )
        for h in headers
    )


def _user_totals(
    plans: Sequence[_UserPlan], headers: Iterable[_Header], errors: Mapping[int, tuple[int, int]]
) -> tuple[UserTotal, ...]:
    """What the application keeps per user: live (not soft-deleted) workouts and their volume."""
    count: dict[int, int] = {}
    volume: dict[int, int] = {}
    updated: dict[int, datetime] = {}
    for h in headers:
        if h.deleted_at is None:
            count[h.user_id] = count.get(h.user_id, 0) + 1
            volume[h.user_id] = volume.get(h.user_id, 0) + h.volume
            updated[h.user_id] = h.end
    rows = []
    for p in plans:
        extra_count, extra_volume = errors.get(p.user_id, (0, 0))
        rows.append(
            UserTotal(
                p.user_id,
                count.get(p.user_id, 0) + extra_count,
                _decimal(volume.get(p.user_id, 0) + extra_volume),
                updated.get(p.user_id, p.created_at),
            )
        )
    return tuple(rows)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _session(
    rng: random.Random, uid: int, created: datetime, seen_within: timedelta, now: datetime
) -> Session:
    seen = min(created + seen_within * rng.random(), now - timedelta(minutes=1))
    return Session(_uuid(rng), uid, created, created + timedelta(days=14), max(created, seen))


def _sessions(
    params: SeedParams, plans: Sequence[_UserPlan], last: Mapping[int, datetime]
) -> tuple[Session, ...]:
    """A live session per active user, and expired ones (more than 14 days) for everybody."""
    rng = params.rng("sessions")
    now = params.now
    rows = []
    for p in plans:
        end = p.deleted_at or last.get(p.user_id, p.created_at)
        if p.status == "active":
            created = now - timedelta(seconds=rng.randint(1_800, 12 * 86_400))
            created = max(created, p.created_at + timedelta(hours=1))
            rows.append(_session(rng, p.user_id, created, timedelta(days=2), now))
            end = created
        for _ in range(rng.randint(0, 2) if p.status == "active" else rng.randint(1, 2)):
            created = end - timedelta(seconds=rng.randint(20 * 86_400, 150 * 86_400))
            rows.append(
                _session(rng, p.user_id, max(created, p.created_at), timedelta(days=10), now)
            )
    rows.sort(key=lambda s: (s.created_at, s.user_id))
    return tuple(rows)


def _users(
    plans: Sequence[_UserPlan], last: Mapping[int, datetime], sessions: Iterable[Session]
) -> tuple[User, ...]:
    active = dict(last)
    for s in sessions:
        if s.last_seen_at > active.get(s.user_id, s.last_seen_at - timedelta(seconds=1)):
            active[s.user_id] = s.last_seen_at
    return tuple(
        User(
            p.user_id,
            f"user{p.user_id}@example.invalid",
            f"Demo Lifter {p.user_id}",
            p.created_at,
            active.get(p.user_id),
            p.deleted_at,
        )
        for p in plans
    )


def _consents(params: SeedParams, plans: Sequence[_UserPlan]) -> tuple[Consent, ...]:
    """Grants per purpose at sign-up or later, about a quarter of them revoked since."""
    rng = params.rng("consents")
    now = params.now
    rows: list[Consent] = []
    for p in plans:
        for purpose, share in (("analytics", 0.8), ("marketing", 0.4), ("research", 0.25)):
            if rng.random() >= share:
                continue
            granted_at = p.created_at + timedelta(seconds=rng.randint(0, 30 * 86_400))
            source = rng.choice(("signup", "settings", "banner"))
            revoked_at = None
            if rng.random() < 0.25:
                revoked_at = min(
                    granted_at + timedelta(days=rng.randint(1, 300)), now - timedelta(hours=1)
                )
            rows.append(
                Consent(
                    len(rows) + 1,
                    p.user_id,
                    purpose,
                    revoked_at is None,
                    granted_at,
                    revoked_at,
                    source,
                )
            )
    return tuple(rows)


def _temp_data(params: SeedParams, user_ids: Sequence[int]) -> tuple[TempData, ...]:
    """Uploads and exports in flight over the last 3 days; those over 24 h old are due."""
    rng = params.rng("temp-data")
    ages = [30 * 3_600, 2 * 3_600] + [
        rng.randint(60, 72 * 3_600) for _ in range(max(8, len(user_ids) // 2))
    ]
    rows = []
    for age in ages:
        uid = rng.choice(user_ids)
        kind = rng.choice(("csv_import", "export", "photo_upload"))
        payload = json.dumps(
            {"kind": kind, "user_id": uid, "rows": rng.randint(1, 500)}, sort_keys=True
        )
        rows.append(
            (
                params.now - timedelta(seconds=age),
                f"{kind}:{uid}:{rng.getrandbits(48):012x}",
                payload,
            )
        )
    rows.sort()
    return tuple(TempData(i + 1, key, payload, at) for i, (at, key, payload) in enumerate(rows))


def _cache_entries(params: SeedParams, plans: Sequence[_UserPlan]) -> tuple[CacheEntry, ...]:
    """Cached stats with a 1 h TTL written over the last 3 hours: most already expired."""
    rng = params.rng("cache")
    keys = [f"leaderboard:{e.name.lower().replace(' ', '-')}:weekly" for e in COMPOUNDS]
    keys += [
        f"user:{p.user_id}:stats" for p in plans if p.status == "active" and rng.random() < 0.5
    ]
    rows = []
    for i, key in enumerate(keys):
        age = (600, 7_200)[i] if i < 2 else rng.randint(60, 3 * 3_600)
        created = params.now - timedelta(seconds=age)
        value = json.dumps({"hits": rng.randint(0, 900), "version": 1}, sort_keys=True)
        rows.append(CacheEntry(key, value, created, created + timedelta(hours=1)))
    return tuple(rows)


LOG_RETENTION_DAYS = {"security": 365, "performance": 91, "debug": 7}


def _log_message(rng: random.Random, category: str, user_ids: Sequence[int]) -> tuple[str, str]:
    uid = rng.choice(user_ids)
    if category == "security":
        return rng.choice(
            (
                ("INFO", f"login succeeded for user {uid}"),
                ("WARNING", f"login failed for user {uid} from 192.0.2.{rng.randint(1, 254)}"),
                ("INFO", f"password changed for user {uid}"),
                ("WARNING", f"session revoked for user {uid}: token reuse"),
            )
        )
    if category == "performance":
        ms = rng.randint(200, 4_000)
        return ("WARNING" if ms > 1_000 else "INFO"), rng.choice(
            (
                f"slow query {ms} ms: SELECT * FROM workouts WHERE user_id = $1 LIMIT 20",
                f"p95 latency {ms} ms for GET /api/workouts",
                f"cache rebuild took {ms} ms for user:{uid}:stats",
            )
        )
    return "DEBUG", rng.choice(
        (f"cache miss user:{uid}:stats", f"recomputed total_volume for a workout of user {uid}")
    )


def _system_logs(params: SeedParams, user_ids: Sequence[int]) -> tuple[SystemLog, ...]:
    """Logs of every category over ~15 months, each with rows inside and past its retention."""
    rng = params.rng("system-logs")
    span = SYSTEM_LOG_SPAN_DAYS * 86_400
    entries: list[tuple[int, str]] = []
    for category, keep in LOG_RETENTION_DAYS.items():
        entries += [((keep + 20) * 86_400, category), (keep * 43_200, category)]
    for _ in range(max(300, 30 * len(user_ids))):
        category = rng.choices(("security", "performance", "debug"), weights=(3, 4, 3))[0]
        recent = category == "debug" and rng.random() < 0.5
        entries.append((rng.randint(60, 14 * 86_400 if recent else span), category))
    rows = []
    for age, category in entries:
        level, message = _log_message(rng, category, user_ids)
        rows.append((params.now - timedelta(seconds=age), category, level, message))
    rows.sort()
    return tuple(
        SystemLog(i + 1, cat, at, level, msg) for i, (at, cat, level, msg) in enumerate(rows)
    )


# -- the dataset ---------------------------------------------------------------------------


class TableLoad(NamedTuple):
    """One COPY: a table, its columns and a single-use iterable of its rows."""

    table: str
    columns: tuple[str, ...]
    rows: Iterable[tuple[Any, ...]]


@dataclass(frozen=True, repr=False)
class Dataset:
    """A generated POWR database. Sets are a replayable stream; everything else is held."""

    params: SeedParams
    users: tuple[User, ...]
    exercises: tuple[Exercise, ...]
    workouts: tuple[Workout, ...]
    user_totals: tuple[UserTotal, ...]
    sessions: tuple[Session, ...]
    temp_data: tuple[TempData, ...]
    cache_entries: tuple[CacheEntry, ...]
    consents: tuple[Consent, ...]
    system_logs: tuple[SystemLog, ...]
    defects: dict[str, list[int]]
    set_count: int
    _plan: _Plan
    _planted: _Defects

    def __repr__(self) -> str:
        counts = ", ".join(f"{t}={n}" for t, n in self.row_counts().items())
        return f"Dataset({self.params.to_dict()}, {counts})"

    def workout_sets(self) -> Iterator[WorkoutSet]:
        """Every set in id order, generated on the fly (flat memory however many there are)."""
        yield from _natural_sets(self._plan, self._planted.set_overrides)
        yield from self._planted.orphan_sets

    def tables(self) -> list[TableLoad]:
        """The COPYs that load this dataset, in foreign-key order (call again to reload)."""
        return [
            TableLoad("users", User._fields, self.users),
            TableLoad("exercises", Exercise._fields, self.exercises),
            TableLoad("workouts", Workout._fields, self.workouts),
            TableLoad("workout_sets", WorkoutSet._fields, self.workout_sets()),
            TableLoad("user_totals", UserTotal._fields, self.user_totals),
            TableLoad("sessions", Session._fields, self.sessions),
            TableLoad("temp_data", TempData._fields, self.temp_data),
            TableLoad("cache_entries", CacheEntry._fields, self.cache_entries),
            TableLoad("consents", Consent._fields, self.consents),
            TableLoad("system_logs", SystemLog._fields, self.system_logs),
        ]

    def expected_orphans(self) -> dict[tuple[str, str], int]:
        """Rows per (table, foreign key column) that reference nothing, on purpose."""
        return {
            ("workout_sets", "workout_id"): len(self.defects["orphan_sets"]),
            ("workouts", "user_id"): len(self.defects["orphan_workouts"]),
        }

    def row_counts(self) -> dict[str, int]:
        """Rows per table, without generating the sets."""
        counts = {t: len(getattr(self, t)) for t in POWR_TABLES if t != "workout_sets"}
        counts["workout_sets"] = self.set_count
        return {t: counts[t] for t in POWR_TABLES}

    def defect_counts(self) -> dict[str, int]:
        return {kind: len(ids) for kind, ids in self.defects.items()}

    def digest(self) -> str:
        """SHA-256 over every row of every table: equal digests mean identical data."""
        sha = hashlib.sha256()
        for load in self.tables():
            sha.update(f"\n{load.table}\n".encode())
            for row in load.rows:
                sha.update(repr(tuple(row)).encode())
                sha.update(b"\n")
        return sha.hexdigest()


def generate(
    users: int = 50,
    weeks: int = 12,
    seed: int = 42,
    defects: bool = False,
    today: date | None = None,
) -> Dataset:
    """Generate a deterministic POWR dataset: the same arguments always give the same rows.

    ``users`` real users (ids with a few gaps), ``weeks`` of training history for each,
    every timestamp relative to ``today`` (default: the local date) at 00:00 UTC. With
    ``defects`` the ``DEFECT_COUNTS`` rows are planted and listed in ``Dataset.defects``.
    Raises SeedError for parameters that cannot give valid data (e.g. history before 2020).
    Nothing touches a database: pass the result to ``load()``.
    """
    params = SeedParams(users, weeks, seed, defects, today or date.today())
    _validate(params)
    plan = _plan(params)
    plans = {p.user_id: p for p in plan.users}
    headers = _headers(plan)
    _lifecycle(params, plans, headers)
    planted = _plant(params, plans, headers, plan.gap_user_ids)
    last = {h.user_id: h.end for h in headers if h.user_id in plans}
    sessions = _sessions(params, plan.users, last)
    user_ids = [p.user_id for p in plan.users]
    return Dataset(
        params=params,
        users=_users(plan.users, last, sessions),
        exercises=plan.exercises,
        workouts=_workout_rows(headers),
        user_totals=_user_totals(plan.users, headers, planted.user_total_errors),
        sessions=sessions,
        temp_data=_temp_data(params, user_ids),
        cache_entries=_cache_entries(params, plan.users),
        consents=_consents(params, plan.users),
        system_logs=_system_logs(params, user_ids),
        defects=planted.ids,
        set_count=sum(h.n_sets for h in headers) + len(planted.orphan_sets),
        _plan=plan,
        _planted=planted,
    )


# -- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedReport:
    """What ``load()`` did: rows per table, planted defects per kind, time taken."""

    rows: dict[str, int]
    defects: dict[str, int]
    seconds: float
    already_seeded: bool
    seed_run_id: int | None
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(self.rows),
            "defects": dict(self.defects),
            "seconds": round(self.seconds, 3),
            "already_seeded": self.already_seeded,
            "seed_run_id": self.seed_run_id,
            "params": dict(self.params),
        }

    def describe(self) -> str:
        """A summary line, then rows per table and planted defects per kind."""
        p = self.params
        what = (
            f"{self.rows.get('users', 0):,} users, {self.rows.get('workouts', 0):,} workouts, "
            f"{self.rows.get('workout_sets', 0):,} sets"
        )
        planted = sum(self.defects.values())
        how = f"seed {p.get('seed')}, {p.get('weeks')} weeks, {planted} planted defects"
        if self.already_seeded:
            head = f"already seeded (seed run {self.seed_run_id}: {what}; {how}): nothing loaded"
        else:
            head = f"seeded {what} in {self.seconds:.1f} s ({how}; seed run {self.seed_run_id})"
        lines = [head]
        lines += [f"  {table:14} {count:>10,}" for table, count in self.rows.items()]
        lines += [f"  defect {kind:22} {n:>4}" for kind, n in self.defects.items() if n]
        return "\n".join(lines)


Target: TypeAlias = (
    "psycopg.Connection[Any] | sqlalchemy.Engine | sqlalchemy.Connection | sqlalchemy.URL | str"
)
"""Where to load: a psycopg connection, a SQLAlchemy Engine or Connection, or a database URL
(``postgresql://`` or ``postgresql+psycopg://``)."""


@contextlib.contextmanager
def _connect(target: Target) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection for any kind of target; connections opened here are closed here."""
    import psycopg
    import sqlalchemy

    if isinstance(target, psycopg.Connection):
        yield target
    elif isinstance(target, sqlalchemy.Connection):
        yield _driver_connection(target.connection.driver_connection)
    elif isinstance(target, sqlalchemy.Engine):
        try:
            raw = target.raw_connection()
        except sqlalchemy.exc.DBAPIError as exc:
            raise SeedError(f"cannot connect to {target.url!r}: {exc.orig}") from exc
        try:
            conn = _driver_connection(raw.driver_connection)
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            yield conn
        finally:
            raw.close()
    else:
        url = sqlalchemy.make_url(target).set(drivername="postgresql")
        try:
            conn = psycopg.connect(url.render_as_string(hide_password=False))
        except psycopg.OperationalError as exc:
            raise SeedError(f"cannot connect to {url!r}: {exc}") from exc
        with conn:
            yield conn


def _driver_connection(conn: Any) -> psycopg.Connection[Any]:
    import psycopg

    if not isinstance(conn, psycopg.Connection):
        raise SeedError("demo data loads through psycopg 3: use a postgresql+psycopg:// URL")
    return conn


def _missing_tables(conn: psycopg.Connection[Any]) -> list[str]:
    names = [f"public.{t}" for t in POWR_TABLES] + ["ops.seed_runs", "ops.planted_defects"]
    found = conn.execute(
        "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL", (names,)
    ).fetchall()
    return [row[0] for row in found]


def _require_schema(conn: psycopg.Connection[Any]) -> None:
    missing = _missing_tables(conn)
    if missing:
        raise SeedError(
            f"the POWR schema is missing ({', '.join(missing)}): "
            "run `powrops migrate latest` first",
            missing=missing,
        )


def _has_data(conn: psycopg.Connection[Any]) -> bool:
    query = " OR ".join(f"EXISTS (SELECT 1 FROM public.{t})" for t in POWR_TABLES)
    row = conn.execute(f"SELECT {query}").fetchone()
    return bool(row and row[0])


class _SeedRun(NamedTuple):
    id: int
    identity: dict[str, Any]
    params: dict[str, Any]
    rows: dict[str, int]


def _last_seed_run(conn: psycopg.Connection[Any]) -> _SeedRun | None:
    row = conn.execute(
        "SELECT id, seed, users, weeks, defects, params, rows FROM ops.seed_runs "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    run_id, seed, users, weeks, defects, params, rows = row
    identity = {
        "users": users,
        "weeks": weeks,
        "seed": seed,
        "defects": defects,
        "generator": params.get("generator"),
    }
    ordered = {t: rows[t] for t in POWR_TABLES if t in rows}
    return _SeedRun(run_id, identity, dict(params), ordered)


def _planted_counts(conn: psycopg.Connection[Any], run_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT kind, count FROM ops.planted_defects WHERE seed_run_id = %s ORDER BY id", (run_id,)
    ).fetchall()
    return {kind: count for kind, count in rows}


def _copy(conn: psycopg.Connection[Any], load: TableLoad) -> int:
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("public", load.table), sql.SQL(", ").join(map(sql.Identifier, load.columns))
    )
    n = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in load.rows:
            copy.write_row(row)
            n += 1
    return n


def _triggers_off(conn: psycopg.Connection[Any]) -> bool:
    """Stop foreign-key (and other) triggers for this transaction, if the role may."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, r.attname
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]
WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
  AND c.conrelid = ANY(%s::regclass[])
ORDER BY 1, 2
"""


def _verify_references(conn: psycopg.Connection[Any], dataset: Dataset) -> None:
    """Check every foreign key set-based: only the planted orphans may reference nothing."""
    expected = dataset.expected_orphans()
    tables = [f"public.{t}" for t in POWR_TABLES]
    for table, column, parent, key in conn.execute(FOREIGN_KEYS, (tables,)).fetchall():
        row = conn.execute(
            f'SELECT count(*) FROM {table} AS c WHERE c."{column}" IS NOT NULL AND NOT EXISTS '
            f'(SELECT 1 FROM {parent} AS p WHERE p."{key}" = c."{column}")'
        ).fetchone()
        found = int(row[0]) if row else 0
        want = expected.get((table.split(".")[-1], column), 0)
        if found != want:
            raise SeedError(
                f"demo data broke a foreign key: {found} rows of {table}.{column} reference no "
                f"{parent}.{key} ({want} planted); this is a bug in powrops.demo_data"
            )


def _fix_sequences(conn: psycopg.Connection[Any]) -> None:
    """Move every id sequence (identity or serial) past the explicit ids that COPY wrote."""
    found = conn.execute(
        "SELECT table_name, pg_get_serial_sequence(format('public.%%I', table_name), 'id') "
        "FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'id' "
        "AND table_name = ANY(%s)",
        (list(POWR_TABLES),),
    ).fetchall()
    for table, sequence in found:
        if sequence is not None:
            conn.execute(
                f"SELECT setval(%s, COALESCE((SELECT max(id) FROM public.{table}), 0) + 1, false)",
                (sequence,),
            )


def _record(conn: psycopg.Connection[Any], dataset: Dataset, rows: Mapping[str, int]) -> int:
    from psycopg.types.json import Jsonb

    p = dataset.params
    row = conn.execute(
        "INSERT INTO ops.seed_runs (seed, users, weeks, defects, params, rows) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (p.seed, p.users, p.weeks, p.defects, Jsonb(p.to_dict()), Jsonb(dict(rows))),
    ).fetchone()
    assert row is not None
    run_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.planted_defects (seed_run_id, kind, table_name, count, sample_ids) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (run_id, kind, DEFECT_TABLES[kind], len(ids), Jsonb(ids[:20]))
                for kind, ids in dataset.defects.items()
            ],
        )
    return run_id


def _write(conn: psycopg.Connection[Any], dataset: Dataset) -> dict[str, int]:
    """COPY every table with triggers off and check references after, set-based (fast);
    or, for a role that may not turn triggers off, COPY with foreign keys checked per row."""
    fast = _triggers_off(conn)
    if not fast and any(dataset.expected_orphans().values()):
        raise SeedError(
            "planting orphan rows needs SET session_replication_role (a superuser, or GRANT "
            "SET ON PARAMETER session_replication_role TO the role); seed without defects"
        )
    rows = dict.fromkeys(POWR_TABLES, 0)
    for load in dataset.tables():
        rows[load.table] += _copy(conn, load)
    if fast:
        conn.execute("SET LOCAL session_replication_role = origin")
        _verify_references(conn, dataset)
    _fix_sequences(conn)
    for table in POWR_TABLES:
        conn.execute(f"ANALYZE public.{table}")
    return rows


LOCK_KEY = 0x504F5752  # "POWR": one seeding at a time per database


def load(target: Target, dataset: Dataset, *, replace: bool = False) -> SeedReport:
    """Load a dataset with COPY in one transaction and record it in ``ops.seed_runs``.

    Loading the same parameters (``SeedParams.identity()``) into a database last seeded with
    them is a no-op that reports ``already_seeded``, so ``make demo`` can be rerun; any other
    existing POWR data raises SeedError unless ``replace`` is given, which truncates the
    POWR tables (RESTART IDENTITY CASCADE) in the same transaction. A missing schema raises
    SeedError asking for ``powrops migrate latest``.

    Rows are copied with ``session_replication_role = replica`` (no per-row foreign-key
    triggers, and none of any other trigger either), then every foreign key is checked
    set-based, allowing exactly the planted orphans. A role that may not set it loads with
    foreign keys checked row by row, and cannot plant orphans. Identity sequences are moved
    past the explicit ids and the tables analyzed. Given a connection already inside a
    transaction, the load runs in a savepoint and the caller commits.
    """
    import psycopg

    started = clock.perf_counter()
    with _connect(target) as conn:
        try:
            with conn.transaction():
                _require_schema(conn)
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                if _has_data(conn):
                    done = _existing(conn, dataset, replace, started)
                    if done is not None:
                        return done
                    tables = ", ".join(f"public.{t}" for t in POWR_TABLES)
                    conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
                rows = _write(conn, dataset)
                run_id = _record(conn, dataset, rows)
        except psycopg.Error as exc:
            raise SeedError(f"loading demo data failed: {str(exc).strip()}") from exc
    return SeedReport(
        rows=rows,
        defects=dataset.defect_counts(),
        seconds=clock.perf_counter() - started,
        already_seeded=False,
        seed_run_id=run_id,
        params=dataset.params.to_dict(),
    )


def _existing(
    conn: psycopg.Connection[Any], dataset: Dataset, replace: bool, started: float
) -> SeedReport | None:
    """The report for a database already seeded alike, None to replace, or SeedError."""
    last = _last_seed_run(conn)
    if replace:
        return None
    if last is not None and last.identity == dataset.params.identity():
        return SeedReport(
            rows=last.rows,
            defects=_planted_counts(conn, last.id),
            seconds=clock.perf_counter() - started,
            already_seeded=True,
            seed_run_id=last.id,
            params=last.params,
        )
    before = ""
    if last is not None:
        i = last.identity
        with_defects = ", with defects" if i["defects"] else ""
        before = (
            f" (seed run {last.id}: seed {i['seed']}, {i['users']} users, {i['weeks']} weeks"
            f"{with_defects})"
        )
    raise SeedError(
        f"the database already holds POWR data{before}; pass replace=True "
        "(`powrops seed --replace`) to truncate it and load the demo data",
        last_seed_run=last.id if last else None,
    )


def planted_defects(target: Target) -> dict[str, int]:
    """Defects per kind that the latest seed run planted ({} when nothing was ever seeded)."""
    import psycopg

    with _connect(target) as conn:
        try:
            with conn.transaction():
                row = conn.execute("SELECT max(id) FROM ops.seed_runs").fetchone()
                return _planted_counts(conn, row[0]) if row and row[0] is not None else {}
        except psycopg.errors.UndefinedTable as exc:
            raise SeedError(
                "the ops schema is missing: run `powrops migrate latest` first"
            ) from exc
