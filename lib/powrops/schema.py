"""The POWR schema as SQLAlchemy Core metadata, mirroring the migrations at head.

Alembic's revisions in ``migrations/`` own the schema; this module describes the result so that
library code can build queries from table objects, and a test compares it with a migrated
database (alembic autogenerate) so the two never drift apart. Constraint names follow
PostgreSQL's own defaults (``users_pkey``, ``users_email_key``, ``workouts_user_id_fkey``).

Application tables live in ``public``; tooling state (seed runs, check runs, repairs, metric
snapshots, the archive index, the ops journal) in ``ops``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from powrops.config import DEFAULT_SERVER
from powrops.tables import OPS_SCHEMA, VERSION_TABLE

NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

NOW = text("now()")
EMPTY_OBJECT = text("'{}'::jsonb")
EMPTY_ARRAY = text("'[]'::jsonb")


def _id() -> Column[int]:
    return Column("id", BigInteger, Identity(always=False), primary_key=True)


def _ts(name: str, nullable: bool = True, **kwargs: Any) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=nullable, **kwargs)


def _now(name: str) -> Column[Any]:
    return _ts(name, nullable=False, server_default=NOW)


def _user_fk(nullable: bool = False) -> Column[int]:
    return Column("user_id", BigInteger, ForeignKey("users.id"), nullable=nullable)


def _jsonb(name: str, default: Any = EMPTY_OBJECT) -> Column[Any]:
    return Column(name, JSONB, nullable=False, server_default=default)


def _server(**kwargs: Any) -> Column[str]:
    """The server a history row came from (``Settings.server``; ``default`` without servers)."""
    return Column("server", Text, nullable=False, server_default=DEFAULT_SERVER, **kwargs)


# -- public: the application's tables ------------------------------------------------------

users = Table(
    "users",
    metadata,
    _id(),
    Column("email", Text, nullable=False, unique=True),
    Column("display_name", Text),
    _now("created_at"),
    _ts("last_active_at"),
    _ts("deleted_at"),
)

exercises = Table(
    "exercises",
    metadata,
    _id(),
    _user_fk(nullable=True),  # NULL: the global exercise catalogue
    Column("name", Text, nullable=False),
    Column("muscle_group", Text),
    _now("created_at"),
    Index("idx_exercises_user", "user_id"),
)

workouts = Table(
    "workouts",
    metadata,
    _id(),
    _user_fk(),
    Column("date", Date, nullable=False),
    Column("notes", Text),
    _ts("archived_at"),
    _ts("deleted_at"),
    _now("created_at"),
    _now("updated_at"),
    Column("total_volume", Numeric(10, 2)),  # sum of weight * reps of the workout's sets
)
Index("idx_workouts_user_date", workouts.c.user_id, workouts.c.date.desc())
Index(
    "idx_workouts_volume",
    workouts.c.total_volume,
    postgresql_where=workouts.c.total_volume.isnot(None),
)

# weight and reps are nullable and unconstrained on purpose: the validation rules (weight
# 0..1000, reps 1..100, date 2020-01-01..today, all required) are checked in data by the
# integrity checks, which report violations instead of making writes fail.
workout_sets = Table(
    "workout_sets",
    metadata,
    _id(),
    Column("workout_id", BigInteger, ForeignKey("workouts.id", ondelete="CASCADE"), nullable=False),
    Column("exercise_id", BigInteger, ForeignKey("exercises.id"), nullable=False),
    Column("set_number", Integer, nullable=False),
    Column("weight", Numeric(7, 2)),
    Column("reps", Integer),
    _now("created_at"),
    Index("idx_workout_sets_workout", "workout_id"),
    Index("idx_workout_sets_exercise", "exercise_id"),
)

user_totals = Table(
    "user_totals",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.id"), primary_key=True),
    Column("workout_count", Integer, nullable=False, server_default="0"),
    Column("total_volume", Numeric(14, 2), nullable=False, server_default="0"),
    _now("updated_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    _user_fk(),
    _now("created_at"),
    _ts("expires_at", nullable=False),
    _ts("last_seen_at"),
    Index("idx_sessions_user", "user_id"),
    Index("idx_sessions_expires_at", "expires_at"),
)

temp_data = Table(
    "temp_data",
    metadata,
    _id(),
    Column("key", Text),
    Column("payload", JSONB),
    _now("created_at"),
    Index("idx_temp_data_created_at", "created_at"),
)

cache_entries = Table(
    "cache_entries",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JSONB),
    _now("created_at"),
    _ts("expires_at", nullable=False, server_default=text("now() + interval '1 hour'")),
    Index("idx_cache_entries_expires_at", "expires_at"),
)

consents = Table(
    "consents",
    metadata,
    _id(),
    _user_fk(),
    Column("purpose", Text, nullable=False),
    Column("granted", Boolean, nullable=False),
    _ts("granted_at"),
    _ts("revoked_at"),
    Column("source", Text),
    Index("idx_consents_user", "user_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    _now("occurred_at"),
    Column("actor", Text, server_default=text("CURRENT_USER")),
    Column("action", Text, nullable=False),
    Column("table_name", Text),
    Column("row_id", Text),
    Column("old_value", JSONB),
    Column("new_value", JSONB),
    Column("details", JSONB),
    Index("idx_audit_log_occurred_at", "occurred_at"),
    Index("idx_audit_log_table_row", "table_name", "row_id"),
)

SYSTEM_LOG_CATEGORIES = ("security", "performance", "debug")

system_logs = Table(
    "system_logs",
    metadata,
    _id(),
    Column("category", Text, nullable=False),
    _now("logged_at"),
    Column("level", Text),
    Column("message", Text),
    CheckConstraint(
        "category IN ('security', 'performance', 'debug')", name="system_logs_category_check"
    ),
    Index("idx_system_logs_category_logged_at", "category", "logged_at"),
)

# -- ops: tooling state --------------------------------------------------------------------

seed_runs = Table(
    "seed_runs",
    metadata,
    _id(),
    _now("seeded_at"),
    Column("seed", Integer, nullable=False),
    Column("users", Integer, nullable=False),
    Column("weeks", Integer, nullable=False),
    Column("defects", Boolean, nullable=False, server_default=false()),
    _jsonb("params"),
    _jsonb("rows"),
    schema=OPS_SCHEMA,
)

planted_defects = Table(
    "planted_defects",
    metadata,
    _id(),
    Column(
        "seed_run_id",
        BigInteger,
        ForeignKey("ops.seed_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", Text, nullable=False),
    Column("table_name", Text, nullable=False),
    Column("count", Integer, nullable=False),
    _jsonb("sample_ids", EMPTY_ARRAY),
    Index("idx_planted_defects_seed_run", "seed_run_id"),
    schema=OPS_SCHEMA,
)

check_runs = Table(
    "check_runs",
    metadata,
    _id(),
    _now("started_at"),
    _ts("finished_at"),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    _jsonb("counts"),
    _jsonb("findings", EMPTY_ARRAY),
    _server(),
    Index("idx_check_runs_kind_started_at", "kind", "started_at"),
    Index("idx_check_runs_server_kind_started_at", "server", "kind", "started_at"),
    schema=OPS_SCHEMA,
)

repairs = Table(
    "repairs",
    metadata,
    _id(),
    Column("run_id", BigInteger, ForeignKey("ops.check_runs.id", ondelete="SET NULL")),
    _now("at"),
    Column("kind", Text, nullable=False),
    Column("table_name", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    _jsonb("details"),
    Index("idx_repairs_run", "run_id"),
    schema=OPS_SCHEMA,
)

quarantine = Table(
    "quarantine",
    metadata,
    _id(),
    Column("run_id", BigInteger, ForeignKey("ops.check_runs.id", ondelete="SET NULL")),
    _now("quarantined_at"),
    Column("table_name", Text, nullable=False),
    Column("row_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("row", JSONB, nullable=False),
    Index("idx_quarantine_run", "run_id"),
    Index("idx_quarantine_table_row", "table_name", "row_id"),
    schema=OPS_SCHEMA,
)

alert_state = Table(
    "alert_state",
    metadata,
    Column("name", Text, primary_key=True),
    _now("updated_at"),
    _jsonb("state"),
    _server(primary_key=True),
    schema=OPS_SCHEMA,
)

metric_snapshots = Table(
    "metric_snapshots",
    metadata,
    _id(),
    _now("taken_at"),
    _jsonb("metrics"),
    _server(),
    Index("idx_metric_snapshots_taken_at", "taken_at"),
    Index("idx_metric_snapshots_server_taken_at", "server", "taken_at"),
    schema=OPS_SCHEMA,
)

archive_index = Table(
    "archive_index",
    metadata,
    _id(),
    Column("user_id", BigInteger),  # no FK: archives outlive erased users
    Column("date_from", Date),
    Column("date_to", Date),
    Column("url", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("sha256", Text, nullable=False),
    _now("created_at"),
    _jsonb("details"),
    Index("idx_archive_index_user", "user_id"),
    schema=OPS_SCHEMA,
)

events = Table(
    "events",
    metadata,
    _id(),
    _now("at"),
    Column("kind", Text, nullable=False),
    Column("actor", Text, server_default=text("CURRENT_USER")),
    _jsonb("details"),
    _server(),
    Index("idx_events_kind_at", "kind", "at"),
    Index("idx_events_server_kind_at", "server", "kind", "at"),
    schema=OPS_SCHEMA,
)


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Which database objects this metadata describes (alembic's ``include_name`` hook)."""
    if type_ == "schema":
        return name in (None, "public", OPS_SCHEMA)
    if type_ == "table":
        return not (name == VERSION_TABLE and parent_names.get("schema_name") == OPS_SCHEMA)
    return True


OPS_TABLES = tuple(t.name for t in metadata.sorted_tables if t.schema == OPS_SCHEMA)
