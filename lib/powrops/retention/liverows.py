"""SQL over the live rows archival moves: a user's workouts and their sets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from powrops.retention.archival_file import Digest
from powrops.retention.errors import RetentionError

CANDIDATES_SQL = """
WITH live AS (
    SELECT w.user_id,
           count(DISTINCT w.id) AS workouts,
           count(s.id) AS sets,
           count(DISTINCT w.id) FILTER (WHERE w.date < %(before)s) AS old_workouts,
           count(s.id) FILTER (WHERE w.date < %(before)s) AS old_sets
    FROM workouts w LEFT JOIN workout_sets s ON s.workout_id = w.id
    WHERE w.deleted_at IS NULL
    GROUP BY w.user_id
), due AS (
    SELECT l.*, COALESCE(u.last_active_at, u.created_at) < %(cutoff)s AS by_age
    FROM live l JOIN users u ON u.id = l.user_id
    WHERE u.deleted_at IS NULL
)
SELECT user_id,
       CASE WHEN by_age THEN 'age' ELSE 'size' END,
       CASE WHEN by_age THEN workouts ELSE old_workouts END,
       CASE WHEN by_age THEN sets ELSE old_sets END,
       CASE WHEN by_age THEN NULL ELSE %(before)s::date END
FROM due
WHERE by_age OR (workouts + sets > %(size)s AND old_workouts > 0)
ORDER BY user_id
"""


def db_now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    conn.commit()
    assert row is not None
    value: datetime = row[0]
    return value


def live_counts(conn: psycopg.Connection[Any], user_id: int) -> tuple[int, int]:
    """A user's live (not deleted) workouts and their sets."""
    row = conn.execute(
        "SELECT count(DISTINCT w.id), count(s.id) FROM workouts w "
        "LEFT JOIN workout_sets s ON s.workout_id = w.id "
        "WHERE w.user_id = %s AND w.deleted_at IS NULL",
        (user_id,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def lock_workouts(conn: psycopg.Connection[Any], user_id: int, before: date | None) -> list[int]:
    """Lock the user's live workouts (dated before ``before``) and their sets; their ids."""
    rows = conn.execute(
        "SELECT id FROM workouts WHERE user_id = %s AND deleted_at IS NULL "
        "AND (%s::date IS NULL OR date < %s::date) ORDER BY id FOR UPDATE",
        (user_id, before, before),
    ).fetchall()
    ids = [int(r[0]) for r in rows]
    conn.execute("SELECT 1 FROM workout_sets WHERE workout_id = ANY(%s) FOR UPDATE", (ids,))
    return ids


DIGEST = sql.SQL("""
SELECT count(*),
       encode(sha256(convert_to(COALESCE(
           string_agg(to_jsonb(t)::text || E'\\n', '' ORDER BY t.id), ''), 'UTF8')), 'hex')
FROM {table} t WHERE {key} = ANY(%s)
""")
"""Row count and SHA-256 over the rows' texts (each followed by a newline, in id order)."""

DIGESTED = (("workouts", "id"), ("workout_sets", "workout_id"))
"""Each table archival moves, and the column holding the workout ids its rows belong to."""


def digest(conn: psycopg.Connection[Any], ids: list[int]) -> Digest:
    """Row counts and SHA-256 of the rows' texts, computed by PostgreSQL."""
    result = Digest()
    for table, key in DIGESTED:
        query = DIGEST.format(table=sql.Identifier(table), key=sql.Identifier("t", key))
        row = conn.execute(query, (ids,)).fetchone()
        assert row is not None
        result.rows[table] = int(row[0])
        result.sha256[table] = str(row[1])
    return result


def span_and_volume(
    conn: psycopg.Connection[Any], ids: list[int]
) -> tuple[tuple[date | None, date | None], Decimal]:
    """The workouts' date range and the volume (sum of weight * reps) of their sets."""
    span = conn.execute("SELECT min(date), max(date) FROM workouts WHERE id = ANY(%s)", (ids,))
    low, high = span.fetchone() or (None, None)
    vol = conn.execute(
        "SELECT COALESCE(sum(weight * reps), 0) FROM workout_sets WHERE workout_id = ANY(%s)",
        (ids,),
    ).fetchone()
    assert vol is not None
    return (low, high), Decimal(vol[0])


def stream(conn: psycopg.Connection[Any], ids: list[int]) -> Iterator[tuple[str, str]]:
    """``(table, row text)`` of the workouts then their sets, in id order, via a cursor."""
    queries = (
        "SELECT 'workouts', to_jsonb(t)::text FROM workouts t WHERE t.id = ANY(%s) ORDER BY t.id",
        "SELECT 'workout_sets', to_jsonb(t)::text FROM workout_sets t "
        "WHERE t.workout_id = ANY(%s) ORDER BY t.id",
    )
    for query in queries:
        with conn.cursor(name="powrops_archive_rows") as cur:
            cur.itersize = 2000
            cur.execute(query, (ids,))
            for table, text in cur:
                yield str(table), str(text)


def remove(
    conn: psycopg.Connection[Any], user_id: int, ids: list[int], live: Digest, volume: Decimal
) -> None:
    """Delete the archived rows and take them out of ``user_totals``; all or nothing."""
    sets = conn.execute("DELETE FROM workout_sets WHERE workout_id = ANY(%s)", (ids,)).rowcount
    workouts = conn.execute("DELETE FROM workouts WHERE id = ANY(%s)", (ids,)).rowcount
    if (workouts, sets) != (live.rows["workouts"], live.rows["workout_sets"]):
        raise RetentionError(
            f"user {user_id}: deleting {workouts} workouts / {sets} sets, expected "
            f"{live.rows['workouts']} / {live.rows['workout_sets']}: nothing was removed"
        )
    adjust_totals(conn, user_id, -workouts, -volume)


def adjust_totals(
    conn: psycopg.Connection[Any], user_id: int, workouts: int, volume: Decimal
) -> None:
    """Move a user's ``user_totals`` by the given counts (archived rows leave, restored return)."""
    conn.execute(
        "UPDATE user_totals SET workout_count = workout_count + %s, "
        "total_volume = total_volume + %s, updated_at = now() WHERE user_id = %s",
        (workouts, volume, user_id),
    )
