"""The SQL of the retention policies (parameters ``cutoff``, ``category``, ``limit``)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

# --- user_account.deleted: accounts deleted longer ago than the grace period -------------------

DELETED_USERS_WHERE = sql.SQL("deleted_at < %(cutoff)s")
DELETED_USERS = sql.SQL("SELECT id FROM users WHERE {} ORDER BY id").format(DELETED_USERS_WHERE)
DELETED_USERS_COUNT = sql.SQL("SELECT count(*) FROM users WHERE {}").format(DELETED_USERS_WHERE)

# --- user_account.inactive: accounts not active for the period, not yet anonymized ---------------
# (an anonymized account's e-mail is user-<id>@anonymized.invalid; %% is a % beside parameters)

INACTIVE_WHERE = sql.SQL(
    "deleted_at IS NULL AND COALESCE(last_active_at, created_at) < %(cutoff)s "
    "AND email NOT LIKE '%%@anonymized.invalid'"
)
INACTIVE_USERS = sql.SQL("SELECT id FROM users WHERE {} ORDER BY id").format(INACTIVE_WHERE)
INACTIVE_COUNT = sql.SQL("SELECT count(*) FROM users WHERE {}").format(INACTIVE_WHERE)

# --- workout_data.deleted / .archived: workouts past their end of retention ----------------------

COUNT_WORKOUTS = sql.SQL("SELECT count(*) FROM workouts WHERE {where}")
LOCK_WORKOUTS = sql.SQL(
    "SELECT id FROM workouts WHERE {where} ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
"""One batch of due workouts, locked; rows another transaction holds are left for later."""

WORKOUTS_DELETED_WHERE = sql.SQL("deleted_at < %(cutoff)s")
WORKOUTS_DELETED_COUNT = COUNT_WORKOUTS.format(where=WORKOUTS_DELETED_WHERE)
WORKOUTS_DELETED_LOCK = LOCK_WORKOUTS.format(where=WORKOUTS_DELETED_WHERE)

WORKOUTS_ARCHIVED_WHERE = sql.SQL("deleted_at IS NULL AND archived_at < %(cutoff)s")
WORKOUTS_ARCHIVED_LOCK = LOCK_WORKOUTS.format(where=WORKOUTS_ARCHIVED_WHERE)

ARCHIVED_FILES_WHERE = sql.SQL("created_at < %(cutoff)s")
ARCHIVED_FILES = sql.SQL("SELECT id, details FROM ops.archive_index WHERE {} ORDER BY id").format(
    ARCHIVED_FILES_WHERE
)
WORKOUTS_ARCHIVED_COUNT = sql.SQL(
    "SELECT ({workouts}) + (SELECT COALESCE(sum(rows), 0) FROM ops.archive_index WHERE {files})"
).format(workouts=COUNT_WORKOUTS.format(where=WORKOUTS_ARCHIVED_WHERE), files=ARCHIVED_FILES_WHERE)
"""Archived workouts still in the table, plus the rows of archive files indexed that long ago."""

# --- system_logs.<category>: log rows of one category older than its period ----------------------

LOGS_WHERE = sql.SQL("category = %(category)s AND logged_at < %(cutoff)s")
LOGS_COUNT = sql.SQL("SELECT count(*) FROM system_logs WHERE {}").format(LOGS_WHERE)
LOGS_SELECT = sql.SQL(
    "SELECT id FROM system_logs WHERE {} ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
).format(LOGS_WHERE)

_TAKE_FROM_TOTALS = """
UPDATE user_totals t
SET workout_count = t.workout_count - d.n, total_volume = t.total_volume - d.vol,
    updated_at = now()
FROM (
    SELECT w.user_id, count(*) AS n, COALESCE(sum(v.vol), 0) AS vol
    FROM workouts w
    LEFT JOIN LATERAL (
        SELECT sum(s.weight * s.reps) AS vol FROM workout_sets s WHERE s.workout_id = w.id
    ) v ON true
    WHERE w.id = ANY(%s)
    GROUP BY w.user_id
) d
WHERE t.user_id = d.user_id
"""


def delete_workouts(
    conn: psycopg.Connection[Any], ids: list[int], *, adjust_totals: bool
) -> dict[str, int]:
    """Delete workouts and their sets (locked by the caller); counts per table.

    ``adjust_totals``: the workouts still count in ``user_totals`` (not soft-deleted), so
    their count and volume are taken out in the same transaction.
    """
    if adjust_totals:
        conn.execute(_TAKE_FROM_TOTALS, (ids,))
    sets = conn.execute("DELETE FROM workout_sets WHERE workout_id = ANY(%s)", (ids,)).rowcount
    workouts = conn.execute("DELETE FROM workouts WHERE id = ANY(%s)", (ids,)).rowcount
    return {"workouts deleted": workouts, "sets deleted": sets}
