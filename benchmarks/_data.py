"""The data the benchmarks measure on: the demo data (as ``make demo``), then ``workout_sets``
grown to millions of rows with one set-based ``INSERT ... SELECT generate_series`` (created_at
spread over two years) and ``VACUUM ANALYZE``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from _site import Site, mib

from powrops import migrate
from powrops.db import engine
from powrops.demo.data import generate, load

M = TypeVar("M")

GROW_SQL = """
WITH b AS (SELECT min(id) AS lo, max(id) AS hi FROM workouts),
     e AS (SELECT min(id) AS id FROM exercises)
INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps, created_at)
SELECT b.lo + g % (b.hi - b.lo + 1), e.id, 1 + g % 5, 20 + g % 160, 1 + g % 12,
       now() - (g % 730) * interval '1 day'
FROM generate_series(1, {rows}) g, b, e
"""


def grow(site: Site, target: int) -> float:
    """Grow ``workout_sets`` to ``target`` rows; the seconds it took."""
    have = int(site.sql("SELECT count(*) FROM workout_sets")[0][0])
    started = time.perf_counter()
    with site.connect() as conn:
        # foreign keys are not checked row by row for the bulk load (ids are in range)
        conn.execute("SET session_replication_role = replica")
        conn.execute(GROW_SQL.format(rows=max(target - have, 0)))  # type: ignore[arg-type]
        conn.execute("SET session_replication_role = origin")
        conn.execute("VACUUM ANALYZE workout_sets")
    return time.perf_counter() - started


def seed_demo(site: Site) -> None:
    """The schema at its head revision and the demo data of ``make demo`` (50 users, 26
    weeks, about 62 thousand sets), vacuumed and analyzed."""
    eng = engine(site.settings)
    migrate.upgrade(eng, "head")
    load(eng, generate(users=50, weeks=26, seed=42))
    eng.dispose()
    site.sql("VACUUM ANALYZE")


def small_then_large(
    site: Site,
    sets: int,
    measure: Callable[[], M],
    before_large: Callable[[], None] | None = None,
) -> tuple[M, M, str]:
    """``measure`` on the demo data, then on ``sets`` workout sets (after ``before_large``,
    when given, adds more); both results and a line saying how the data grew."""
    seed_demo(site)
    small_sets = int(site.sql("SELECT count(*) FROM workout_sets")[0][0])
    small_size = int(site.sql("SELECT pg_database_size('powr')")[0][0])
    small = measure()
    print(f"small: {small_sets:,} sets, {mib(small_size)}")
    load_s = grow(site, sets)
    large_sets = int(site.sql("SELECT reltuples::bigint FROM pg_class "
                              "WHERE relname = 'workout_sets'")[0][0])  # fmt: skip
    large_size = int(site.sql("SELECT pg_database_size('powr')")[0][0])
    print(f"grown to {large_sets:,} sets ({mib(large_size)}) in {load_s:.0f} s")
    if before_large is not None:
        before_large()
        large_size = int(site.sql("SELECT pg_database_size('powr')")[0][0])
    large = measure()
    data = (f"data: {small_sets:,} -> {large_sets:,} sets ({large_sets / small_sets:.0f}x), "
            f"{mib(small_size)} -> {mib(large_size)}")  # fmt: skip
    return small, large, data
