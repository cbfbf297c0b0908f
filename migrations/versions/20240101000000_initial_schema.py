"""initial schema

The POWR application tables in ``public`` and the ``ops`` schema for tooling state.

The validation rules (weight 0..1000, reps 1..100, date 2020-01-01..today, all required) are
deliberately not CHECK constraints: the integrity checks find and report violations in data
that older application versions, imports or restores may have written.

Revision ID: 20240101000000
Revises:
Create Date: 2024-01-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "20240101000000"
down_revision = None
branch_labels = None
depends_on = None

transaction = True

NOW = sa.text("now()")


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True)


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW)


def _user_fk(nullable: bool = False) -> sa.Column[int]:
    return sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=nullable)


def _tz(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


INDEXES = [
    ("idx_exercises_user", "exercises", ["user_id"]),
    ("idx_workout_sets_workout", "workout_sets", ["workout_id"]),
    ("idx_workout_sets_exercise", "workout_sets", ["exercise_id"]),
    ("idx_sessions_user", "sessions", ["user_id"]),
    ("idx_sessions_expires_at", "sessions", ["expires_at"]),
    ("idx_consents_user", "consents", ["user_id"]),
    ("idx_cache_entries_expires_at", "cache_entries", ["expires_at"]),
    ("idx_temp_data_created_at", "temp_data", ["created_at"]),
    ("idx_audit_log_occurred_at", "audit_log", ["occurred_at"]),
    ("idx_audit_log_table_row", "audit_log", ["table_name", "row_id"]),
    ("idx_system_logs_category_logged_at", "system_logs", ["category", "logged_at"]),
]

TABLES = [
    "system_logs",
    "audit_log",
    "consents",
    "cache_entries",
    "temp_data",
    "sessions",
    "user_totals",
    "workout_sets",
    "workouts",
    "exercises",
    "users",
]


def _create_people() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.Text, nullable=False, unique=True),
        sa.Column("display_name", sa.Text),
        _created_at(),
        _tz("last_active_at"),
        _tz("deleted_at"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        _user_fk(),
        _created_at(),
        _tz("expires_at", nullable=False),
        _tz("last_seen_at"),
    )
    op.create_table(
        "consents",
        _id(),
        _user_fk(),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        _tz("granted_at"),
        _tz("revoked_at"),
        sa.Column("source", sa.Text),
    )


def _create_training() -> None:
    op.create_table(
        "exercises",
        _id(),
        _user_fk(nullable=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("muscle_group", sa.Text),
        _created_at(),
    )
    op.create_table(
        "workouts",
        _id(),
        _user_fk(),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("notes", sa.Text),
        _tz("archived_at"),
        _tz("deleted_at"),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "workout_sets",
        _id(),
        sa.Column(
            "workout_id",
            sa.BigInteger,
            sa.ForeignKey("workouts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("exercise_id", sa.BigInteger, sa.ForeignKey("exercises.id"), nullable=False),
        sa.Column("set_number", sa.Integer, nullable=False),
        sa.Column("weight", sa.Numeric(7, 2)),
        sa.Column("reps", sa.Integer),
        _created_at(),
    )
    op.create_table(
        "user_totals",
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("workout_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_volume", sa.Numeric(14, 2), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )


def _create_housekeeping() -> None:
    op.create_table(
        "temp_data",
        _id(),
        sa.Column("key", sa.Text),
        sa.Column("payload", postgresql.JSONB),
        _created_at(),
    )
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", postgresql.JSONB),
        _created_at(),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now() + interval '1 hour'"),
        ),
    )
    op.create_table(
        "audit_log",
        _id(),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("actor", sa.Text, server_default=sa.text("CURRENT_USER")),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("table_name", sa.Text),
        sa.Column("row_id", sa.Text),
        sa.Column("old_value", postgresql.JSONB),
        sa.Column("new_value", postgresql.JSONB),
        sa.Column("details", postgresql.JSONB),
    )
    op.create_table(
        "system_logs",
        _id(),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("level", sa.Text),
        sa.Column("message", sa.Text),
        sa.CheckConstraint(
            "category IN ('security', 'performance', 'debug')", name="system_logs_category_check"
        ),
    )


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS ops")
    _create_people()
    _create_training()
    _create_housekeeping()
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    # Schema ops stays: alembic's version table lives there until the very end.
    for table in TABLES:
        op.drop_table(table)
