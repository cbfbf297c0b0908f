"""The names of POWR's tables and of powrops' own schema, and the strategy's indexes, for code
that only queries by name.

Kept apart from ``schema`` (the SQLAlchemy table definitions) so that a restore, its smoke test,
the drill and the growth report's kernel start without loading SQLAlchemy.
``tests/test_migrations.py`` checks that these names agree with the definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

OPS_SCHEMA = "ops"
VERSION_TABLE = "alembic_version"  # alembic's, in schema ops

#: POWR's tables in schema public, parents before children (``metadata.sorted_tables``).
PUBLIC_TABLES = (
    "audit_log", "cache_entries", "system_logs", "temp_data", "users", "consents", "exercises",
    "sessions", "user_totals", "workouts", "workout_sets",
)  # fmt: skip


@dataclass(frozen=True)
class StrategyIndex:
    """One index of the strategy's index section, as ``pg_get_indexdef`` prints its parts."""

    table: str
    columns: str
    predicate: str | None = None


#: The strategy's indexes (readiness checks they exist; maintenance checks and keeps them).
#: Migrations keep their own literal copy: a revision must not change when the library does.
STRATEGY_INDEXES: dict[str, StrategyIndex] = {
    "idx_workouts_user_date": StrategyIndex("workouts", "(user_id, date DESC)"),
    "idx_exercises_user": StrategyIndex("exercises", "(user_id)"),
    "idx_workouts_volume": StrategyIndex("workouts", "(total_volume)", "total_volume IS NOT NULL"),
}
