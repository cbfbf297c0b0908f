"""Demo data: deterministic generation, exact planted defects, plausible histories, safe loading.

The defect queries below are written here, independently of the generator, the way an
integrity check would find each kind set-based.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy

from cli_helpers import libpq
from powrops import migrate
from powrops.demo import data as demo_data
from powrops.errors import SeedError
from powrops.pg.cluster import LocalCluster

pytestmark = pytest.mark.pg

TODAY = date(2025, 6, 1)
SET_KINDS = ("weight_out_of_range", "weight_missing", "reps_out_of_range", "reps_missing")
SMALL: dict[str, Any] = {"users": 20, "weeks": 12, "seed": 7, "today": TODAY}

DEFECT_SQL = {
    "weight_out_of_range": "SELECT id FROM workout_sets WHERE weight < 0 OR weight > 1000",
    "weight_missing": "SELECT id FROM workout_sets WHERE weight IS NULL",
    "reps_out_of_range": "SELECT id FROM workout_sets WHERE reps < 1 OR reps > 100",
    "reps_missing": "SELECT id FROM workout_sets WHERE reps IS NULL",
    "date_out_of_range": (
        "SELECT id FROM workouts WHERE date < DATE '2020-01-01' OR date > CURRENT_DATE"
    ),
    "orphan_sets": (
        "SELECT s.id FROM workout_sets s LEFT JOIN workouts w ON w.id = s.workout_id "
        "WHERE w.id IS NULL"
    ),
    "orphan_workouts": (
        "SELECT w.id FROM workouts w LEFT JOIN users u ON u.id = w.user_id WHERE u.id IS NULL"
    ),
    "wrong_total_volume": """
        SELECT w.id FROM workouts w
        LEFT JOIN (SELECT workout_id, SUM(weight * reps) AS volume
                   FROM workout_sets GROUP BY workout_id) s ON s.workout_id = w.id
        WHERE w.total_volume IS NOT NULL AND w.total_volume <> COALESCE(s.volume, 0)
    """,
    "wrong_user_totals": """
        WITH truth AS (
            SELECT w.user_id, count(DISTINCT w.id) AS n,
                   COALESCE(SUM(s.weight * s.reps), 0) AS volume
            FROM workouts w LEFT JOIN workout_sets s ON s.workout_id = w.id
            WHERE w.deleted_at IS NULL GROUP BY w.user_id)
        SELECT t.user_id FROM user_totals t LEFT JOIN truth r USING (user_id)
        WHERE t.workout_count <> COALESCE(r.n, 0) OR t.total_volume <> COALESCE(r.volume, 0)
    """,
}

# The same user-totals check, summing workouts.total_volume instead of the sets.
USER_TOTALS_FROM_WORKOUTS = """
    WITH truth AS (
        SELECT user_id, count(*) AS n, COALESCE(SUM(total_volume), 0) AS volume
        FROM workouts WHERE deleted_at IS NULL GROUP BY user_id)
    SELECT t.user_id FROM user_totals t LEFT JOIN truth r USING (user_id)
    WHERE t.workout_count <> COALESCE(r.n, 0) OR t.total_volume <> COALESCE(r.volume, 0)
"""


def ids(url: str, query: str) -> set[int]:
    with psycopg.connect(libpq(url)) as conn:
        return {row[0] for row in conn.execute(query)}


def fetch(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute(query, params).fetchall()


def one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def scalar(url: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(libpq(url)) as conn:
        return one(conn, query, params)


def table_digests(url: str) -> dict[str, str]:
    """md5 of each POWR table's rows in a stable order."""
    query = "SELECT md5(COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
    with psycopg.connect(libpq(url)) as conn:
        return {t: one(conn, query.format(t)) for t in demo_data.POWR_TABLES}


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(libpq(url)) as conn:
        return {t: one(conn, f"SELECT count(*) FROM {t}") for t in demo_data.POWR_TABLES}


@pytest.fixture(scope="module")
def dataset() -> demo_data.Dataset:
    return demo_data.generate(**SMALL, defects=True)


@pytest.fixture(scope="module")
def clean_dataset() -> demo_data.Dataset:
    return demo_data.generate(**SMALL)


@contextlib.contextmanager
def scratch_db(cluster: LocalCluster) -> Iterator[str]:
    """A migrated database that lives as long as a module-scoped fixture."""
    name = "seed_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = cluster.url(name)
        migrate.upgrade(url, "head")
        yield url
    finally:
        with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def seeded(pg_cluster: LocalCluster, dataset: demo_data.Dataset) -> Iterator[str]:
    """A migrated database loaded with the small dataset and its planted defects."""
    with scratch_db(pg_cluster) as url:
        demo_data.load(url, dataset)
        yield url


@pytest.fixture(scope="module")
def seeded_clean(pg_cluster: LocalCluster, clean_dataset: demo_data.Dataset) -> Iterator[str]:
    """A migrated database loaded with the small dataset without defects."""
    with scratch_db(pg_cluster) as url:
        demo_data.load(url, clean_dataset)
        yield url


@pytest.fixture
def migrated(fresh_db: str) -> str:
    migrate.upgrade(fresh_db, "head")
    return fresh_db


# -- generation -------------------------------------------------------------------------


def test_same_parameters_give_identical_rows(dataset: demo_data.Dataset) -> None:
    random.seed(1)  # the global generator must not matter
    again = demo_data.generate(**SMALL, defects=True)
    assert again.digest() == dataset.digest()
    assert again.defects == dataset.defects
    assert again.row_counts() == dataset.row_counts()


def test_different_seed_gives_different_rows(dataset: demo_data.Dataset) -> None:
    other = demo_data.generate(**{**SMALL, "seed": 8}, defects=True)
    assert other.digest() != dataset.digest()


def test_row_counts_match_the_streams(dataset: demo_data.Dataset) -> None:
    counted = {load.table: sum(1 for _ in load.rows) for load in dataset.tables()}
    assert counted == dataset.row_counts()
    assert counted["workout_sets"] > 5 * counted["workouts"]


def planted(dataset: demo_data.Dataset, *kinds: str) -> set[int]:
    return {i for kind in kinds for i in dataset.defects[kind]}


def test_defects_change_only_the_planted_rows(
    dataset: demo_data.Dataset, clean_dataset: demo_data.Dataset
) -> None:
    assert clean_dataset.defect_counts() == dict.fromkeys(demo_data.DEFECT_TABLES, 0)
    assert clean_dataset.users == dataset.users
    assert clean_dataset.user_totals != dataset.user_totals
    bad_sets = planted(dataset, *SET_KINDS)
    clean_sets = list(clean_dataset.workout_sets())
    sets = list(dataset.workout_sets())
    assert {b.id for a, b in zip(clean_sets, sets, strict=False) if a != b} == bad_sets
    assert [s.id for s in sets[len(clean_sets) :]] == dataset.defects["orphan_sets"]
    # a bad set changes its workout's total (consistently), nothing else changes in workouts
    totals_changed = {s.workout_id for s in sets if s.id in bad_sets}
    changed = {
        a.id for a, b in zip(clean_dataset.workouts, dataset.workouts, strict=True) if a != b
    }
    workout_kinds = planted(dataset, "date_out_of_range", "orphan_workouts", "wrong_total_volume")
    assert changed == workout_kinds | totals_changed


def test_planted_counts(dataset: demo_data.Dataset) -> None:
    assert dataset.defect_counts() == demo_data.DEFECT_COUNTS
    assert set(dataset.defects) == set(demo_data.DEFECT_TABLES)


def test_personal_data_is_synthetic(dataset: demo_data.Dataset) -> None:
    for user in dataset.users:
        assert re.fullmatch(rf"user{user.id}@example\.invalid", user.email)
        assert user.display_name == f"Demo Lifter {user.id}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users must be at least 1"),
        ({"weeks": 0}, "weeks must be between 1 and"),
        ({"weeks": 400}, "before 2020-01-01"),
        ({"today": date(2022, 1, 1)}, "today must be 2023-01-01 or later"),
        ({"users": 5, "defects": True}, "at least 10 users"),
        ({"users": 100_000_000_000, "weeks": 1}, "users x weeks must be at most 260,000"),
        ({"users": 10_001, "weeks": 26}, "(got 10,001 x 26)"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SeedError, match=message):
        demo_data.generate(**{**SMALL, **kwargs})


# -- loading and planted defects --------------------------------------------------------


def test_loaded_rows_equal_the_report(migrated: str, dataset: demo_data.Dataset) -> None:
    report = demo_data.load(migrated, dataset)
    assert not report.already_seeded
    assert report.rows == dataset.row_counts() == row_counts(migrated)
    assert report.defects == demo_data.DEFECT_COUNTS
    assert json.loads(json.dumps(report.to_dict()))["rows"] == report.rows
    assert report.describe().startswith("seeded 20 users")


@pytest.mark.parametrize("kind", sorted(DEFECT_SQL))
def test_checks_find_exactly_the_planted_rows(
    seeded: str, dataset: demo_data.Dataset, kind: str
) -> None:
    assert ids(seeded, DEFECT_SQL[kind]) == set(dataset.defects[kind])
    assert len(dataset.defects[kind]) == demo_data.DEFECT_COUNTS[kind]


def test_user_totals_check_agrees_when_summing_workout_totals(
    seeded: str, dataset: demo_data.Dataset
) -> None:
    assert ids(seeded, USER_TOTALS_FROM_WORKOUTS) == set(dataset.defects["wrong_user_totals"])


@pytest.mark.parametrize("kind", sorted(DEFECT_SQL))
def test_clean_data_has_no_defects(seeded_clean: str, kind: str) -> None:
    assert ids(seeded_clean, DEFECT_SQL[kind]) == set()


def test_planted_defects_are_recorded(seeded: str, dataset: demo_data.Dataset) -> None:
    assert demo_data.planted_defects(seeded) == demo_data.DEFECT_COUNTS
    with psycopg.connect(libpq(seeded)) as conn:
        rows = conn.execute(
            "SELECT kind, table_name, count, sample_ids FROM ops.planted_defects"
        ).fetchall()
        run = conn.execute(
            "SELECT seed, users, weeks, defects, params FROM ops.seed_runs"
        ).fetchall()
    assert {(k, t, n) for k, t, n, _ in rows} == {
        (k, demo_data.DEFECT_TABLES[k], n) for k, n in demo_data.DEFECT_COUNTS.items()
    }
    assert all(samples == dataset.defects[k] for k, _, _, samples in rows)
    assert run == [(7, 20, 12, True, {**dataset.params.to_dict()})]


def test_same_data_after_loading_twice(
    seeded_clean: str, migrated: str, clean_dataset: demo_data.Dataset
) -> None:
    engine = sqlalchemy.create_engine(migrated)  # how `powrops seed` and `make demo` call it
    try:
        demo_data.load(engine, demo_data.generate(**SMALL))
    finally:
        engine.dispose()
    assert table_digests(migrated) == table_digests(seeded_clean)


def test_identity_sequences_continue_after_the_seeded_ids(migrated: str) -> None:
    demo_data.load(migrated, demo_data.generate(users=10, weeks=2, seed=1, today=TODAY))
    with psycopg.connect(libpq(migrated)) as conn:
        top = one(conn, "SELECT max(id) FROM workouts")
        user = one(conn, "SELECT max(id) FROM users")
        new = one(
            conn, "INSERT INTO workouts (user_id, date) VALUES (%s, %s) RETURNING id", (user, TODAY)
        )
        new_user = one(
            conn, "INSERT INTO users (email) VALUES ('new@example.invalid') RETURNING id"
        )
    assert (new, new_user) == (top + 1, user + 1)


# -- plausibility -----------------------------------------------------------------------

ACTIVE_USERS = (
    "SELECT id FROM users WHERE deleted_at IS NULL AND last_active_at > %(today)s::date - 30"
)


def test_weights_trend_upward(seeded_clean: str) -> None:
    """The heaviest set of a lift in a user's last 4 weeks beats that of their first 4."""
    rows = fetch(
        seeded_clean,
        f"""
        WITH s AS (
            SELECT w.user_id, s.exercise_id, s.weight,
                   w.date - min(w.date) OVER (PARTITION BY w.user_id) AS day,
                   max(w.date) OVER (PARTITION BY w.user_id)
                     - min(w.date) OVER (PARTITION BY w.user_id) AS span
            FROM workout_sets s JOIN workouts w ON w.id = s.workout_id
            WHERE w.user_id IN ({ACTIVE_USERS}))
        SELECT max(weight) FILTER (WHERE day < 28), max(weight) FILTER (WHERE day > span - 28)
        FROM s WHERE span >= 56 GROUP BY user_id, exercise_id
        """,
        {"today": TODAY},
    )
    pairs = [(first, last) for first, last in rows if first and last]  # not bodyweight-only
    assert len(pairs) > 50
    rising = sum(last > first for first, last in pairs)
    assert rising / len(pairs) >= 0.75, f"{rising} of {len(pairs)} user/lift pairs got stronger"


def test_natural_sets_look_like_training(seeded_clean: str) -> None:
    ((min_reps, max_reps, plates, heaviest, lightest),) = fetch(
        seeded_clean,
        "SELECT min(reps), max(reps), bool_and(weight % 2.5 = 0), max(weight), min(weight) "
        "FROM workout_sets",
    )
    assert (min_reps, max_reps, plates, lightest) == (3, 12, True, 0)  # 0: bodyweight
    assert 100 < heaviest < 400
    per_workout = fetch(
        seeded_clean,
        "SELECT min(n), max(n) FROM (SELECT count(DISTINCT exercise_id) AS n "
        "FROM workout_sets GROUP BY workout_id) x",
    )
    assert per_workout == [(3, 6)]


def test_two_to_four_workouts_a_week(seeded_clean: str) -> None:
    counts = fetch(
        seeded_clean,
        f"SELECT user_id, date_trunc('week', date), count(*) FROM workouts "
        f"WHERE user_id IN ({ACTIVE_USERS}) GROUP BY 1, 2",
        {"today": TODAY},
    )
    assert {n for _, _, n in counts} == {2, 3, 4}
    assert len({user for user, _, _ in counts}) >= 14


def test_retention_has_rows_due_and_not_due(seeded_clean: str) -> None:
    query = (
        "SELECT count(*) FILTER (WHERE {col} < %(now)s - interval '{age}'), "
        "count(*) FILTER (WHERE {col} >= %(now)s - interval '{age}') FROM {table} {where}"
    )
    now = demo_data.SeedParams(1, 1, 1, False, TODAY).now
    cases = [
        ("users", "last_active_at", "2 years", "WHERE deleted_at IS NULL"),
        ("users", "deleted_at", "30 days", "WHERE deleted_at IS NOT NULL"),
        ("workouts", "deleted_at", "90 days", "WHERE deleted_at IS NOT NULL"),
        ("sessions", "expires_at", "14 days", ""),
        ("temp_data", "created_at", "24 hours", ""),
        ("cache_entries", "expires_at", "0 seconds", ""),
        ("system_logs", "logged_at", "1 year", "WHERE category = 'security'"),
        ("system_logs", "logged_at", "3 months", "WHERE category = 'performance'"),
        ("system_logs", "logged_at", "7 days", "WHERE category = 'debug'"),
    ]
    with psycopg.connect(libpq(seeded_clean)) as conn:
        for table, col, age, where in cases:
            sql = query.format(col=col, age=age, table=table, where=where)
            row = conn.execute(sql, {"now": now}).fetchone()
            assert row is not None and row[0] > 0 and row[1] > 0, f"{table}.{col} {where}: {row}"
        assert now - one(conn, "SELECT min(logged_at) FROM system_logs") > timedelta(days=400)
        assert one(conn, "SELECT count(*) FROM workouts WHERE archived_at IS NOT NULL") > 0


def test_consents_are_granted_and_revoked(seeded_clean: str) -> None:
    purposes = fetch(
        seeded_clean,
        "SELECT purpose, bool_or(granted), bool_or(revoked_at IS NOT NULL AND NOT granted) "
        "FROM consents GROUP BY 1 ORDER BY 1",
    )
    assert [p for p, _, _ in purposes] == ["analytics", "marketing", "research"]
    assert all(granted for _, granted, _ in purposes)
    assert any(revoked for _, _, revoked in purposes)


def test_inactive_users_trained_long_ago(seeded_clean: str) -> None:
    rows = fetch(
        seeded_clean,
        """
        SELECT u.last_active_at, max(w.date), min(w.date) FROM users u
        JOIN workouts w ON w.user_id = u.id
        WHERE u.deleted_at IS NULL AND u.last_active_at < %s::date - interval '2 years'
        GROUP BY u.id
        """,
        (TODAY,),
    )
    assert rows
    for last_active, last_workout, first_workout in rows:
        assert first_workout >= date(2020, 1, 1)
        assert last_workout <= last_active.date()


# -- rerunning, replacing, refusing -----------------------------------------------------


def test_same_parameters_again_is_a_no_op(migrated: str, dataset: demo_data.Dataset) -> None:
    first = demo_data.load(migrated, dataset)
    before = table_digests(migrated)
    engine = sqlalchemy.create_engine(migrated)
    try:
        again = demo_data.load(engine, demo_data.generate(**SMALL, defects=True))
    finally:
        engine.dispose()
    assert again.already_seeded and again.seed_run_id == first.seed_run_id
    assert again.rows == first.rows and again.defects == first.defects
    assert again.describe().startswith("already seeded")
    assert table_digests(migrated) == before
    assert scalar(migrated, "SELECT count(*) FROM ops.seed_runs") == 1


def test_other_data_needs_replace(migrated: str, dataset: demo_data.Dataset) -> None:
    demo_data.load(migrated, dataset)
    other = demo_data.generate(users=12, weeks=4, seed=99, today=TODAY)
    with pytest.raises(SeedError, match=r"already holds POWR data.*replace=True"):
        demo_data.load(migrated, other)
    assert row_counts(migrated) == dataset.row_counts()
    with psycopg.connect(libpq(migrated)) as conn:
        report = demo_data.load(conn, other, replace=True)
    assert report.rows == other.row_counts() == row_counts(migrated)
    assert demo_data.planted_defects(migrated) == dict.fromkeys(demo_data.DEFECT_TABLES, 0)
    assert scalar(migrated, "SELECT min(id) FROM users") == other.users[0].id
    assert scalar(migrated, "SELECT count(*) FROM ops.seed_runs") == 2


def test_data_without_a_seed_run_needs_replace(migrated: str) -> None:
    with psycopg.connect(libpq(migrated)) as conn:
        conn.execute("INSERT INTO users (email) VALUES ('someone@example.invalid')")
    with pytest.raises(SeedError, match="already holds POWR data"):
        demo_data.load(migrated, demo_data.generate(users=10, weeks=2, today=TODAY))


def test_missing_schema_is_refused(fresh_db: str) -> None:
    with pytest.raises(SeedError, match="powrops migrate latest"):
        demo_data.load(fresh_db, demo_data.generate(users=10, weeks=2, today=TODAY))


def test_nothing_seeded_means_no_planted_defects(migrated: str) -> None:
    assert demo_data.planted_defects(migrated) == {}


def test_role_that_cannot_stop_triggers_loads_with_foreign_keys_checked(
    pg_cluster: LocalCluster, migrated: str
) -> None:
    role = "seeder_" + uuid.uuid4().hex[:8]
    with psycopg.connect(libpq(migrated), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'demo-only'")
        conn.execute(
            f"GRANT USAGE ON SCHEMA public, ops TO {role}; "
            f"GRANT ALL ON ALL TABLES IN SCHEMA public, ops TO {role}; "
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public, ops TO {role}"
        )
    url = sqlalchemy.make_url(migrated).set(username=role, password="demo-only")
    try:
        with pytest.raises(SeedError, match="session_replication_role"):
            demo_data.load(url, demo_data.generate(**SMALL, defects=True))
        report = demo_data.load(url, demo_data.generate(**SMALL))
        assert report.rows == row_counts(migrated)
    finally:
        with psycopg.connect(libpq(migrated), autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
