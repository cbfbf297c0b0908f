"""Users and their plans: ids with gaps, status, training window, program and lifts."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from powrops.demo.data.catalogue import CATALOGUE, COMPOUNDS, CUSTOM, CatalogueEntry
from powrops.demo.data.params import FIRST_MONDAY, SeedParams, monday_of, weeks_between
from powrops.demo.data.rows import Exercise


class Lift(NamedTuple):
    exercise_id: int
    base_kg: float
    gain: float
    reps: int
    compound: bool
    bodyweight: bool


@dataclass(frozen=True)
class UserPlan:
    """One user's life in the demo: status, training window, program and lifts."""

    user_id: int
    status: str  # "active" | "inactive" | "deleted"
    first_monday: date
    n_weeks: int
    deload_every: int
    hour: int
    compounds: tuple[Lift, ...]
    accessories: tuple[Lift, ...]
    created_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class Plan:
    """Everything the replayable workout simulation needs."""

    params: SeedParams
    users: tuple[UserPlan, ...]
    gap_user_ids: tuple[int, ...]
    exercises: tuple[Exercise, ...]


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


def _lift(rng: random.Random, exercise_id: int, entry: CatalogueEntry, strength: float) -> Lift:
    bodyweight = entry.base_kg == 0
    base = max(0.0, (strength - 1.2) * 50) if bodyweight else entry.base_kg * strength
    return Lift(
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
    this_monday = monday_of(params.today)
    if status == "active":
        late = params.weeks >= 6 and rng.random() < 0.4
        offset = rng.randint(1, params.weeks // 3) if late else 0
        return this_monday - timedelta(weeks=params.weeks - offset), params.weeks - offset
    if status == "inactive":
        last_day = params.today - timedelta(days=730 + rng.randint(14, 200))
        end_monday = monday_of(last_day)
    else:
        assert deleted_at is not None
        end_monday = monday_of(deleted_at.date()) - timedelta(weeks=1)
    n_weeks = min(params.weeks, weeks_between(FIRST_MONDAY, end_monday) + 1)
    return end_monday - timedelta(weeks=n_weeks - 1), n_weeks


def _deleted_at(params: SeedParams, rng: random.Random, old: bool) -> datetime:
    days = rng.randint(35, 200) if old else rng.randint(1, 25)
    return params.now - timedelta(days=days, seconds=rng.randint(0, 86_399))


def make_plan(params: SeedParams) -> Plan:
    """Every user's plan, and the exercises: the global catalogue plus users' own."""
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
    return Plan(params, tuple(plans), tuple(gaps), tuple(exercises))


def _user_plan(
    params: SeedParams,
    rng: random.Random,
    uid: int,
    status: str,
    deleted_at: datetime | None,
    n_exercises: int,
) -> tuple[UserPlan, list[Exercise]]:
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
    plan = UserPlan(
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
