"""The SQL of the retention policies (parameters ``cutoff``, ``category``, ``limit``)."""

from __future__ import annotations

from typing import Any

import psycopg

ANONYMIZED = "%%@anonymized.invalid"

DELETED_USERS_WHERE = "deleted_at < %(cutoff)s"
DELETED_USERS = f"SELECT id FROM users WHERE {DELETED_USERS_WHERE} ORDER BY id"
DELETED_USERS_COUNT = f"SELECT count(*) FROM users WHERE {DELETED_USERS_WHERE}"

INACTIVE_WHERE = (
    "deleted_at IS NULL AND COALESCE(last_active_at, created_at) < %(cutoff)s "
    f"AND email NOT LIKE '{ANONYMIZED}'"
)
INACTIVE_USERS = f"SELECT id FROM users WHERE {INACTIVE_WHERE} ORDER BY id"
INACTIVE_COUNT = f"SELECT count(*) FROM users WHERE {INACTIVE_WHERE}"

WORKOUTS_DELETED_WHERE = "deleted_at < %(cutoff)s"
WORKOUTS_ARCHIVED_WHERE = "deleted_at IS NULL AND archived_at < %(cutoff)s"


def count_workouts(where: str) -> str:
    return f"SELECT count(*) FROM workouts WHERE {where}"


def lock_workouts(where: str) -> str:
    return (
        f"SELECT id FROM workouts WHERE {where} ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
    )


ARCHIVED_FILES_WHERE = "created_at < %(cutoff)s"
ARCHIVED_FILES = (
    f"SELECT id, details FROM ops.archive_index WHERE {ARCHIVED_FILES_WHERE} ORDER BY id"
)
WORKOUTS_ARCHIVED_COUNT = (
    f"SELECT ({count_workouts(WORKOUTS_ARCHIVED_WHERE)}) + (SELECT COALESCE(sum(rows), 0) "
    f"FROM ops.archive_index WHERE {ARCHIVED_FILES_WHERE})"
)

LOGS_WHERE = "category = %(category)s AND logged_at < %(cutoff)s"
LOGS_COUNT = f"SELECT count(*) FROM system_logs WHERE {LOGS_WHERE}"
LOGS_SELECT = (
    f"SELECT id FROM system_logs WHERE {LOGS_WHERE} ORDER BY id LIMIT %(limit)s "
    "FOR UPDATE SKIP LOCKED"
)

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
