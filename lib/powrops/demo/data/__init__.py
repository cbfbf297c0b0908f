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

from powrops.demo.data.catalogue import (
    ACCESSORIES,
    CATALOGUE,
    COMPOUNDS,
    CUSTOM,
    NOTES,
    PROGRAM_DAYS,
)
from powrops.demo.data.connect import (
    Target,
)
from powrops.demo.data.dataset import (
    Dataset,
    generate,
)
from powrops.demo.data.defects import (
    BAD_REPS,
    BAD_WEIGHTS,
    DEFECT_COUNTS,
    DEFECT_TABLES,
    POOLED_DEFECTS,
    USER_TOTAL_ERRORS,
    WRONG_VOLUME_DELTAS,
)
from powrops.demo.data.load import (
    FOREIGN_KEYS,
    LOCK_KEY,
    SeedReport,
    load,
    planted_defects,
)
from powrops.demo.data.params import (
    EARLIEST_DATE,
    EARLIEST_TODAY,
    FIRST_MONDAY,
    GENERATOR_VERSION,
    SeedParams,
)
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
from powrops.demo.data.simulate import (
    SET_SECONDS,
    WORKOUT_ID_GAP_RATE,
    SetOverrides,
)
from powrops.demo.data.tables import (
    LOG_RETENTION_DAYS,
    SYSTEM_LOG_SPAN_DAYS,
)

__all__ = [
    "ACCESSORIES",
    "BAD_REPS",
    "BAD_WEIGHTS",
    "CATALOGUE",
    "COMPOUNDS",
    "CUSTOM",
    "DEFECT_COUNTS",
    "DEFECT_TABLES",
    "EARLIEST_DATE",
    "EARLIEST_TODAY",
    "FIRST_MONDAY",
    "FOREIGN_KEYS",
    "GENERATOR_VERSION",
    "LOCK_KEY",
    "LOG_RETENTION_DAYS",
    "NOTES",
    "POOLED_DEFECTS",
    "POWR_TABLES",
    "PROGRAM_DAYS",
    "SET_SECONDS",
    "SYSTEM_LOG_SPAN_DAYS",
    "USER_TOTAL_ERRORS",
    "WORKOUT_ID_GAP_RATE",
    "WRONG_VOLUME_DELTAS",
    "CacheEntry",
    "Consent",
    "Dataset",
    "Exercise",
    "SeedParams",
    "SeedReport",
    "Session",
    "SetOverrides",
    "SystemLog",
    "TableLoad",
    "Target",
    "TempData",
    "User",
    "UserTotal",
    "Workout",
    "WorkoutSet",
    "generate",
    "load",
    "planted_defects",
]
