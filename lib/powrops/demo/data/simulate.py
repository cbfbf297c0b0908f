"""The workout simulation: workouts and their sets per user, archived and deleted workouts.

The simulation is replayable: the first pass keeps one header per workout, and the sets
stream is generated again from the same plan whenever it is needed, never stored.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from powrops.demo.data.catalogue import NOTES, PROGRAM_DAYS
from powrops.demo.data.params import SeedParams
from powrops.demo.data.plan import Lift, Plan, UserPlan
from powrops.demo.data.rows import WorkoutSet

SET_SECONDS = 150
WORKOUT_ID_GAP_RATE = 0.004


@dataclass(frozen=True)
class _Training:
    """One workout as the per-user simulation produces it, before ids are assigned."""

    start: datetime
    user_id: int
    day: date
    notes: str | None
    sets: list[tuple[int, int, int, int]]  # (exercise_id, weight hundredths, reps, set_number)


@dataclass
class Header:
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


def _plate(kg: float, minimum: int) -> int:
    """Weight in hundredths of a kg, rounded to 2.5 kg plates."""
    return max(minimum, round(kg / 2.5) * 250)


def _working_weight(rng: random.Random, lift: Lift, t: float, deload: bool) -> int:
    """Progressive overload with diminishing returns, a deload factor and daily noise."""
    kg = lift.base_kg * (1 + lift.gain * math.log1p(t / 3))
    kg *= (0.85 if deload else 1.0) * (1 + rng.uniform(-0.03, 0.03))
    return _plate(min(kg, 500.0), 0 if lift.bodyweight else 250)


def _reps(x: float, target: int, set_index: int) -> int:
    """Reps of one set from one uniform draw: a good day now and then, fatigue late on."""
    reps = target + (x < 0.08) - (set_index >= 2 and x > 0.65) - (set_index >= 3 and x > 0.9)
    return 3 if reps < 3 else 12 if reps > 12 else reps


def _choose_lifts(rng: random.Random, plan: UserPlan, n: int) -> list[Lift]:
    """Day A or B of the user's program, topped up with accessories to 3-6 exercises."""
    day = PROGRAM_DAYS[n % len(PROGRAM_DAYS)]
    total = rng.randint(3, 6)
    compounds = [plan.compounds[i] for i in day][:total]
    extra = min(total - len(compounds), len(plan.accessories))
    return compounds + rng.sample(plan.accessories, extra)


def _workout_sets(
    rng: random.Random, lifts: Sequence[Lift], t: float, deload: bool
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


def _trainings(plan: UserPlan, params: SeedParams) -> Iterator[_Training]:
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


def _numbered(plan: Plan) -> Iterator[tuple[int, int, _Training]]:
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


def workout_headers(plan: Plan) -> list[Header]:
    """The first pass: every workout's header and true volume; its sets are dropped."""
    headers = []
    for workout_id, set_id, tr in _numbered(plan):
        _, weight, reps, _ = tr.sets[0]
        headers.append(
            Header(
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
def decimal_kg(hundredths: int) -> Decimal:
    return Decimal(hundredths).scaleb(-2)


def _kg(hundredths: int | None) -> Decimal | None:
    return None if hundredths is None else decimal_kg(hundredths)


SetOverrides = dict[int, tuple[int | None, int | None]]


def natural_sets(plan: Plan, overrides: SetOverrides) -> Iterator[WorkoutSet]:
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


def lifecycle(params: SeedParams, plans: Mapping[int, UserPlan], headers: list[Header]) -> None:
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


def _soft_delete(header: Header, at: datetime, now: datetime) -> None:
    at = min(at, now - timedelta(minutes=10))
    if at > header.end:
        header.deleted_at = at


def _delete_one(
    rng: random.Random,
    headers: list[Header],
    wanted: Callable[[Header], bool],
    after: timedelta,
    now: datetime,
) -> None:
    candidates = [
        h for h in headers if wanted(h) and h.archived_at is None and h.deleted_at is None
    ]
    if candidates:
        victim = rng.choice(candidates)
        _soft_delete(victim, victim.end + after, now)
