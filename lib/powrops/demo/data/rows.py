"""The POWR tables demo data fills, one NamedTuple per table (field names are the columns)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

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


class TableLoad(NamedTuple):
    """One COPY: a table, its columns and a single-use iterable of its rows."""

    table: str
    columns: tuple[str, ...]
    rows: Iterable[tuple[Any, ...]]
