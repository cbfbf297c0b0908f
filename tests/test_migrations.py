"""The POWR migrations against real PostgreSQL: walk, status, indexes, roles, schema module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine

from powrops import migrate
from powrops.errors import MigrationError
from powrops.pg.cluster import LocalCluster
from powrops.schema import OPS_TABLES
from powrops.tables import PUBLIC_TABLES

pytestmark = pytest.mark.pg

REPO = Path(__file__).resolve().parents[1]
VERSIONS = REPO / "migrations" / "versions"
REVISIONS = [
    "20240101000000",
    "20240308123000",
    "20240308124500",
    "20240315090000",
    "20240320100000",
    "20240322090000",
    "20240401090000",
    "20241204090000",
    "20250110090000",
    "20251201090000",
    "20261208090000",
]
HEAD = REVISIONS[-1]
ROLES = ("powr_readonly", "powr_reporting", "powr_backup", "powr_app", "powr_owner")


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), **kwargs)


def rows(url: str, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def new_database(cluster: LocalCluster) -> str:
    name = "m_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(name)


def drop_database(cluster: LocalCluster, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def head_db(pg_cluster: LocalCluster) -> Iterator[str]:
    """A database migrated to head once for the read-only tests of this module."""
    url = new_database(pg_cluster)
    migrate.upgrade(url)
    yield url
    drop_database(pg_cluster, url)


# -- revision files ------------------------------------------------------------------------


def test_revision_files_are_timestamped_and_declare_transaction() -> None:
    files = sorted(p.name for p in VERSIONS.glob("*.py"))
    assert files, "no revision files found"
    for name in files:
        assert re.fullmatch(r"\d{14}_[a-z0-9_]+\.py", name), name
    statuses = migrate.revisions()
    assert [s.revision for s in statuses] == REVISIONS
    assert [f.split("_", 1)[0] for f in files] == REVISIONS
    for s in statuses:
        assert isinstance(s.transaction, bool)
        assert s.timestamp == datetime.strptime(s.revision, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert migrate.heads() == [HEAD]


def test_concurrent_revisions_run_outside_a_transaction() -> None:
    previous: str | None = None
    concurrent = []
    for s in migrate.revisions():
        sql = migrate.offline_sql(previous, s.revision)
        if "CONCURRENTLY" in sql:
            concurrent.append(s.revision)
            assert s.transaction is False, f"{s.revision} uses CONCURRENTLY in a transaction"
            before = sql[: sql.index("CONCURRENTLY")]
            assert before.rindex("COMMIT;") > before.rindex("BEGIN;")
        previous = s.revision
    assert concurrent == ["20240308124500"]


def test_offline_sql_shows_the_change_before_it_runs() -> None:
    up = migrate.offline_sql("20240101000000", "20240308123000")
    assert "ALTER TABLE workouts ADD COLUMN total_volume NUMERIC(10, 2);" in up
    assert "CREATE INDEX idx_workouts_user_date ON workouts (user_id, date DESC);" in up
    down = migrate.offline_sql("20240308123000", "20240101000000", downgrade=True)
    assert "DROP INDEX idx_workouts_user_date;" in down
    assert "ALTER TABLE workouts DROP COLUMN total_volume;" in down
    assert "%%" not in migrate.offline_sql(None, "head")


def test_offline_sql_errors() -> None:
    with pytest.raises(MigrationError, match="needs the revision to start from"):
        migrate.offline_sql(None, "base", downgrade=True)
    with pytest.raises(MigrationError, match="29991231000000"):
        migrate.offline_sql(None, "29991231000000")


# -- walking the history -------------------------------------------------------------------


def public_tables(url: str) -> list[str]:
    found = rows(
        url,
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema IN ('public', 'ops') AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    return [r[0] for r in found]


def role_grants_here(url: str) -> int:
    """Privileges this database records for the powr roles (pg_shdepend)."""
    return rows(
        url,
        "SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid "
        "WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND r.rolname = ANY(%s)",
        (list(ROLES),),
    )[0][0]


def test_walk_up_down_up(fresh_db: str) -> None:
    before = migrate.status(fresh_db)
    assert [s.applied for s in before] == [False] * len(REVISIONS)
    assert migrate.current(fresh_db) is None

    assert migrate.upgrade(fresh_db, "20240308123000") == "20240308123000"
    assert [s.applied for s in migrate.status(fresh_db)] == [True, True] + [False] * (
        len(REVISIONS) - 2
    )

    assert migrate.upgrade(fresh_db) == HEAD
    after = migrate.status(fresh_db)
    assert all(s.applied for s in after)
    assert [s.revision for s in after if s.is_head] == [HEAD]
    assert after[1].to_dict() == {
        "revision": "20240308123000",
        "slug": "add_workout_volume",
        "doc": "add workout volume",
        "timestamp": "2024-03-08T12:30:00+00:00",
        "is_head": False,
        "transaction": True,
        "applied": True,
    }
    assert role_grants_here(fresh_db) > 0

    stepped = []
    while (now_at := migrate.rollback(fresh_db)) is not None:
        stepped.append(now_at)
    assert stepped == REVISIONS[-2::-1]
    assert migrate.current(fresh_db) is None
    assert public_tables(fresh_db) == ["ops.alembic_version"]
    assert role_grants_here(fresh_db) == 0

    assert migrate.upgrade(fresh_db) == HEAD
    assert migrate.downgrade(fresh_db, "base") is None
    engine = create_engine(fresh_db)
    try:
        assert migrate.upgrade(engine) == HEAD
        assert migrate.current(engine) == HEAD
    finally:
        engine.dispose()


def test_failed_revision_is_rolled_back_and_reported(fresh_db: str) -> None:
    with connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE system_logs (id int)")
    with pytest.raises(MigrationError, match=r"now at base.*system_logs"):
        migrate.upgrade(fresh_db)
    # the version table went with the rolled-back first revision; the clash is untouched
    assert public_tables(fresh_db) == ["public.system_logs"]


# -- head schema ---------------------------------------------------------------------------


def test_schema_module_matches_database(head_db: str) -> None:
    assert migrate.schema_diff(head_db) == []
    tables = set(public_tables(head_db)) - {"ops.alembic_version"}
    assert tables == {f"public.{t}" for t in PUBLIC_TABLES} | {f"ops.{t}" for t in OPS_TABLES}


def test_schema_diff_sees_drift(fresh_db: str) -> None:
    migrate.upgrade(fresh_db)
    with connect(fresh_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE workout_sets ALTER weight TYPE numeric(8, 2)")
        conn.execute("DROP INDEX idx_exercises_user")
    kinds = sorted(d[0][0] if isinstance(d, list) else d[0] for d in migrate.schema_diff(fresh_db))
    assert kinds == ["add_index", "modify_type"]


def test_strategy_indexes_are_valid_with_their_definitions(head_db: str) -> None:
    found = dict(
        rows(
            head_db,
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname LIKE 'idx\\_%' AND i.indisvalid AND i.indisready",
        )
    )
    assert found["idx_workouts_user_date"].endswith(
        "ON public.workouts USING btree (user_id, date DESC)"
    )
    assert found["idx_exercises_user"].endswith("ON public.exercises USING btree (user_id)")
    assert found["idx_workouts_volume"].endswith(
        "ON public.workouts USING btree (total_volume) WHERE (total_volume IS NOT NULL)"
    )


def test_check_constraints_leave_validation_to_the_integrity_checks(head_db: str) -> None:
    checks = rows(
        head_db,
        "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'c' "
        "AND connamespace = 'public'::regnamespace",
    )
    assert checks == [("system_logs",)]
    nullable = rows(
        head_db,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'workout_sets' "
        "AND column_name IN ('weight', 'reps') AND is_nullable = 'YES' ORDER BY 1",
    )
    assert nullable == [("reps",), ("weight",)]


# -- roles ---------------------------------------------------------------------------------


def test_roles_have_least_privilege(head_db: str) -> None:
    attrs = dict(
        (r[0], r[1:])
        for r in rows(
            head_db,
            "SELECT rolname, rolcanlogin, rolreplication, rolsuper FROM pg_roles "
            "WHERE rolname = ANY(%s)",
            (list(ROLES),),
        )
    )
    assert attrs == {
        "powr_readonly": (False, False, False),
        "powr_reporting": (True, False, False),
        "powr_backup": (True, True, False),
        "powr_app": (True, False, False),
        "powr_owner": (True, False, False),
    }
    memberships = rows(
        head_db,
        "SELECT pg_has_role('powr_readonly', 'pg_monitor', 'MEMBER'), "
        "pg_has_role('powr_reporting', 'powr_readonly', 'MEMBER'), "
        "pg_has_role('powr_backup', 'pg_read_all_settings', 'MEMBER'), "
        "has_function_privilege('powr_backup', 'pg_backup_start(text, boolean)', 'EXECUTE'), "
        "has_function_privilege('powr_backup', 'pg_switch_wal()', 'EXECUTE'), "
        "has_function_privilege('powr_reporting', 'pg_switch_wal()', 'EXECUTE'), "
        "has_function_privilege('powr_reporting', 'pg_backup_start(text, boolean)', 'EXECUTE'), "
        "has_function_privilege('powr_app', 'pg_switch_wal()', 'EXECUTE')",
    )
    # reporting may close a WAL segment (a drill's target), never start a backup
    assert memberships == [(True, True, True, True, True, True, False, False)]


def test_reporting_reads_but_cannot_write(head_db: str) -> None:
    with connect(head_db) as conn:
        conn.execute("SET ROLE powr_reporting")
        assert conn.execute("SELECT count(*) FROM workouts").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM ops.check_runs").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO workouts (user_id, date) VALUES (1, current_date)")
        conn.rollback()


def test_job_roles_can_do_their_jobs_and_no_more(head_db: str) -> None:
    """Reporting records its history only; the owner owns the POWR tables; backup reads stats."""
    with connect(head_db, autocommit=True) as conn:
        owners = rows(
            head_db, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        assert owners == [("powr_owner",)]
        conn.execute("SET ROLE powr_reporting")
        conn.execute("INSERT INTO ops.check_runs (kind, status) VALUES ('alerts', 'OK')")
        conn.execute("INSERT INTO ops.events (kind) VALUES ('test')")
        for statement in (
            "UPDATE ops.check_runs SET status = 'OK'",
            "DELETE FROM ops.events",
            "INSERT INTO ops.quarantine (table_name, row_id, reason, row) "
            "VALUES ('t', '1', 'x', '{}')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
        amcheck = conn.execute(
            "SELECT bool_and(has_function_privilege('powr_reporting', p.oid, 'EXECUTE')) "
            "FROM pg_proc p WHERE p.proname IN ('bt_index_check', 'verify_heapam')"
        ).fetchone()
        assert amcheck in ((True,), (None,))  # None: amcheck not installed here
        conn.execute("RESET ROLE")
        conn.execute("SET ROLE powr_owner")
        conn.execute("VACUUM (ANALYZE) workouts")
        conn.execute(
            "INSERT INTO ops.quarantine (table_name, row_id, reason, row) "
            "VALUES ('t', '1', 'x', '{}')"
        )
        conn.execute("RESET ROLE")
        monitor = conn.execute(
            "SELECT pg_has_role('powr_backup', 'pg_monitor', 'MEMBER'), "
            "pg_has_role('powr_owner', 'pg_monitor', 'MEMBER'), "
            "has_table_privilege('powr_backup', 'public.workouts', 'SELECT')"
        ).fetchone()
        assert monitor == (True, True, False)


def test_app_writes_public_only_and_new_tables_are_readable(head_db: str) -> None:
    with connect(head_db) as conn:
        conn.execute("CREATE TABLE later_table (id int)")  # default privileges apply
        conn.execute("SET ROLE powr_app")
        conn.execute("INSERT INTO users (email) VALUES ('app@example.org')")
        conn.execute("INSERT INTO later_table VALUES (1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT 1 FROM ops.events")
        conn.rollback()
        conn.execute("CREATE TABLE later_table (id int)")
        conn.execute("SET ROLE powr_readonly")
        assert conn.execute("SELECT count(*) FROM later_table").fetchone() == (0,)
        conn.rollback()


@pytest.fixture
def own_cluster(pg_tmp: Path) -> Iterator[LocalCluster]:
    """A cluster of its own: which roles exist depends on every database in the cluster."""
    cluster = LocalCluster(pg_tmp / "state")
    cluster.start()
    yield cluster
    cluster.destroy()


def role_names(url: str) -> list[str]:
    found = rows(url, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(ROLES),))
    return sorted(r[0] for r in found)


def test_roles_are_dropped_only_by_the_last_database(own_cluster: LocalCluster) -> None:
    first, second = new_database(own_cluster), new_database(own_cluster)
    assert migrate.upgrade(first) == HEAD
    assert migrate.upgrade(second) == HEAD  # the roles exist already: no error
    assert migrate.downgrade(first, "base") is None
    assert role_names(second) == sorted(ROLES)
    with connect(second) as conn:
        conn.execute("SET ROLE powr_reporting")
        assert conn.execute("SELECT count(*) FROM workouts").fetchone() == (0,)
    assert migrate.downgrade(second, "base") is None
    assert role_names(second) == []
    assert migrate.upgrade(first) == HEAD
    assert role_names(first) == sorted(ROLES)


# -- errors and the command line -----------------------------------------------------------


def test_unreachable_database_is_a_migration_error() -> None:
    url = "postgresql+psycopg://powr:s3cret-pw@127.0.0.1:1/powr"
    with pytest.raises(MigrationError, match="cannot connect to") as caught:
        migrate.upgrade(url)
    assert "s3cret-pw" not in str(caught.value)
    with pytest.raises(MigrationError, match="not a usable database URL"):
        migrate.current("this is not a url")
    with pytest.raises(MigrationError, match="no database URL"):
        migrate.status("")


def test_unknown_revision_is_a_migration_error(fresh_db: str) -> None:
    with pytest.raises(MigrationError, match=r"Can't locate revision.*29991231000000"):
        migrate.upgrade(fresh_db, "29991231000000")
    with pytest.raises(MigrationError, match="downgrade to -1"):
        migrate.rollback(fresh_db)


def test_missing_environment_is_a_migration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWROPS_PROJECT_ROOT", str(tmp_path))
    with pytest.raises(MigrationError, match="POWROPS_PROJECT_ROOT"):
        migrate.heads()


def test_revision_ids_must_be_timestamps() -> None:
    assert migrate.revision_timestamp("20240308123000") == datetime(2024, 3, 8, 12, 30, tzinfo=UTC)
    with pytest.raises(MigrationError, match="not a timestamp"):
        migrate.revision_timestamp("ae1027a6acf")
    with pytest.raises(MigrationError, match="not a valid time"):
        migrate.revision_timestamp("20241340000000")


def test_alembic_command_line_uses_the_environment_url(head_db: str) -> None:
    libpq_url = head_db.replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "current"],
        env={**os.environ, "POWROPS_DATABASE_URL": libpq_url},
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{HEAD} (head)"


def test_monitoring_extensions_come_and_go_with_their_revision(fresh_db: str) -> None:
    migrate.upgrade(fresh_db)
    installed = {r[0] for r in rows(fresh_db, "SELECT extname FROM pg_extension")}
    assert {"pg_stat_statements", "amcheck", "pgstattuple"} <= installed
    migrate.downgrade(fresh_db, "20240320100000")
    installed = {r[0] for r in rows(fresh_db, "SELECT extname FROM pg_extension")}
    assert not {"pg_stat_statements", "amcheck", "pgstattuple"} & installed


def test_extensions_present_before_the_revision_survive_its_downgrade(fresh_db: str) -> None:
    migrate.upgrade(fresh_db, "20240320100000")
    with connect(fresh_db) as conn:
        conn.execute("CREATE EXTENSION pgstattuple")
    migrate.upgrade(fresh_db)
    migrate.downgrade(fresh_db, "20240320100000")
    installed = {r[0] for r in rows(fresh_db, "SELECT extname FROM pg_extension")}
    assert "pgstattuple" in installed and "amcheck" not in installed
