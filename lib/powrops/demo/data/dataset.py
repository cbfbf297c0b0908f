"""The generated dataset and ``generate()``, which assembles it from the parts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from powrops.demo.data.defects import Defects, plant
from powrops.demo.data.params import SeedParams, validate
from powrops.demo.data.plan import Plan, make_plan
from powrops.demo.data.rows import (
    POWR_TABLES,
    CacheEntry,
    Consent,
    Exercise,
    Session,
    SystemLog,
    TableLoad,
    TempData,
    User,
    UserTotal,
    Workout,
    WorkoutSet,
)
from powrops.demo.data.simulate import lifecycle, natural_sets, workout_headers
from powrops.demo.data.tables import (
    cache_entry_rows,
    consent_rows,
    session_rows,
    system_log_rows,
    temp_data_rows,
    user_rows,
    user_total_rows,
    workout_rows,
)


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
    _plan: Plan
    _planted: Defects

    def __repr__(self) -> str:
        counts = ", ".join(f"{t}={n}" for t, n in self.row_counts().items())
        return f"Dataset({self.params.to_dict()}, {counts})"

    def workout_sets(self) -> Iterator[WorkoutSet]:
        """Every set in id order, generated on the fly (flat memory however many there are)."""
        yield from natural_sets(self._plan, self._planted.set_overrides)
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
    validate(params)
    plan = make_plan(params)
    plans = {p.user_id: p for p in plan.users}
    headers = workout_headers(plan)
    lifecycle(params, plans, headers)
    planted = plant(params, plans, headers, plan.gap_user_ids)
    last = {h.user_id: h.end for h in headers if h.user_id in plans}
    sessions = session_rows(params, plan.users, last)
    user_ids = [p.user_id for p in plan.users]
    return Dataset(
        params=params,
        users=user_rows(plan.users, last, sessions),
        exercises=plan.exercises,
        workouts=workout_rows(headers),
        user_totals=user_total_rows(plan.users, headers, planted.user_total_errors),
        sessions=sessions,
        temp_data=temp_data_rows(params, user_ids),
        cache_entries=cache_entry_rows(params, plan.users),
        consents=consent_rows(params, plan.users),
        system_logs=system_log_rows(params, user_ids),
        defects=planted.ids,
        set_count=sum(h.n_sets for h in headers) + len(planted.orphan_sets),
        _plan=plan,
        _planted=planted,
    )
