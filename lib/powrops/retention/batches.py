"""Batched deletes by key: short transactions that skip locked rows and never queue long."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from powrops.retention import journal

#: Deletes one batch given the locked ids; returns counts per table it changed.
BatchAction = Callable[[psycopg.Connection[Any], list[int]], dict[str, int]]


def run_batches(
    conn: psycopg.Connection[Any],
    select_ids: sql.Composed,
    args: dict[str, Any],
    action: BatchAction,
    batch_size: int,
    errors: list[str],
) -> dict[str, int]:
    """Lock up to ``batch_size`` ids (``select_ids``, with ``%(limit)s``) and act on them,
    one transaction per batch, until a batch comes back short. A failing batch is recorded in
    ``errors`` and ends the loop (its transaction rolled back; earlier batches stay done)."""
    totals: dict[str, int] = {}
    while True:
        try:
            with journal.bulk_transaction(conn):
                rows = conn.execute(select_ids, {**args, "limit": batch_size}).fetchall()
                ids = [int(r[0]) for r in rows]
                counts = action(conn, ids) if ids else {}
        except psycopg.Error as exc:
            errors.append(str(exc).strip().splitlines()[0])
            return totals
        for table, n in counts.items():
            totals[table] = totals.get(table, 0) + n
        if len(ids) < batch_size:
            return totals
