"""The names of POWR's tables and of powrops' own schema, for code that only queries by name.

Kept apart from ``schema`` (the SQLAlchemy table definitions) so that a restore, its smoke test
and the drill start without loading SQLAlchemy. ``tests/test_migrations.py`` checks that these
names agree with the definitions.
"""

from __future__ import annotations

OPS_SCHEMA = "ops"
VERSION_TABLE = "alembic_version"  # alembic's, in schema ops

#: POWR's tables in schema public, parents before children (``metadata.sorted_tables``).
PUBLIC_TABLES = (
    "audit_log", "cache_entries", "system_logs", "temp_data", "users", "consents", "exercises",
    "sessions", "user_totals", "workouts", "workout_sets",
)  # fmt: skip
