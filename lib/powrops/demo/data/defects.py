"""Planted integrity defects: which kinds, how many, and where in the data they go."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from powrops.demo.data.catalogue import COMPOUNDS
from powrops.demo.data.params import SeedParams
from powrops.demo.data.plan import UserPlan
from powrops.demo.data.rows import WorkoutSet
from powrops.demo.data.simulate import SET_SECONDS, Header, SetOverrides, decimal_kg
from powrops.errors import SeedError

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


@dataclass
class Defects:
    """The planted defects: ids per kind plus what the generator must change."""

    ids: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in DEFECT_TABLES})
    set_overrides: SetOverrides = field(default_factory=dict)
    user_total_errors: dict[int, tuple[int, int]] = field(default_factory=dict)
    orphan_sets: list[WorkoutSet] = field(default_factory=list)


def plant(
    params: SeedParams,
    plans: Mapping[int, UserPlan],
    headers: list[Header],
    gap_users: Sequence[int],
) -> Defects:
    """Choose distinct healthy workouts of active users and plant every defect kind."""
    defects = Defects()
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


def _plant_totals(rng: random.Random, eligible: list[Header], defects: Defects) -> None:
    """Wrong user_totals for a few users, and wrong total_volume on some of their workouts."""
    by_user: dict[int, list[Header]] = {}
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


def _plant_dates(params: SeedParams, pool: list[Header], defects: Defects) -> None:
    past = (date(2019, 12, 31), date(2019, 6, 15), date(2018, 3, 3))
    for i in range(DEFECT_COUNTS["date_out_of_range"]):
        h = pool.pop()
        future = date(params.today.year + 25, 1 + i % 12, 15)
        h.day = future if i % 2 else past[(i // 2) % len(past)]
        defects.ids["date_out_of_range"].append(h.id)


def _plant_orphan_workouts(pool: list[Header], gap_users: Sequence[int], defects: Defects) -> None:
    for i in range(DEFECT_COUNTS["orphan_workouts"]):
        h = pool.pop()
        h.user_id = gap_users[i % len(gap_users)]
        defects.ids["orphan_workouts"].append(h.id)


def _plant_sets(pool: list[Header], defects: Defects) -> None:
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


def _plant_orphan_sets(params: SeedParams, headers: list[Header], defects: Defects) -> None:
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
            decimal_kg(6_000),
            8,
            at + timedelta(seconds=SET_SECONDS * i),
        )
        defects.orphan_sets.append(row)
        defects.ids["orphan_sets"].append(row.id)
