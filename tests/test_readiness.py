"""Readiness checks against a real server, with defects planted to see each one found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cli_helpers import libpq, login_role
from powrops import db, migrate, readiness
from powrops.config import Settings, validate
from powrops.findings import Finding, Severity
from powrops.pg.cluster import LocalCluster
from powrops.tables import STRATEGY_INDEXES

pytestmark = pytest.mark.pg


def _settings(url: str, **extra: object) -> Settings:
    return validate({"database": {"url": libpq(url)}, **extra})


def _by_check(url: str, settings: Settings | None = None) -> dict[str, Finding]:
    settings = settings or _settings(url)
    with db.connect(settings, autocommit=True) as conn:
        return {f.check: f for f in readiness.run_checks(conn, settings)}


def _severities(found: dict[str, Finding]) -> dict[str, str]:
    return {name: f.severity.name for name, f in found.items()}


def test_migrated_database_on_the_embedded_default(migrated_db: str) -> None:
    found = _severities(_by_check(migrated_db))
    assert found["data_checksums"] == "OK"
    assert found["wal_level"] == "OK"
    assert found["archive_mode"] == "OK"
    assert found["archive_timeout"] == "OK"
    assert found["summarize_wal"] == "OK"
    assert found["pg_stat_statements"] == "OK"
    assert found["alembic"] == "OK"
    for name in STRATEGY_INDEXES:
        assert found[f"index.{name}"] == "OK"
    for name in readiness.ROLES:
        assert found[f"role.{name}"] == "OK"
    # nothing configured: backups would stay on this machine, in one copy
    assert found["storage.primary"] == "WARNING"
    assert found["storage.secondary"] == "WARNING"


def test_unmigrated_database_is_critical(fresh_db: str) -> None:
    found = _by_check(fresh_db)
    assert found["alembic"].severity is Severity.CRITICAL
    assert found["index.idx_workouts_user_date"].severity is Severity.CRITICAL
    assert "missing" in found["index.idx_workouts_user_date"].message


def test_pending_migration_is_a_warning(migrated_db: str) -> None:
    migrate.downgrade(migrated_db, "-1")
    found = _by_check(migrated_db)
    assert found["alembic"].severity is Severity.WARNING
    assert "pending" in found["alembic"].message


def test_missing_and_invalid_indexes_are_found(migrated_db: str) -> None:
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        conn.execute("DROP INDEX idx_workouts_volume")
        conn.execute("CREATE INDEX idx_workouts_volume ON workouts(total_volume)")  # not partial
        conn.execute(
            "UPDATE pg_index SET indisvalid = false "
            "WHERE indexrelid = 'idx_exercises_user'::regclass"
        )
    found = _by_check(migrated_db)
    assert found["index.idx_workouts_volume"].severity is Severity.CRITICAL
    assert "predicate" in found["index.idx_workouts_volume"].message
    assert found["index.idx_exercises_user"].severity is Severity.CRITICAL
    assert "INVALID" in found["index.idx_exercises_user"].message
    assert found["index.idx_workouts_user_date"].severity is Severity.OK


@pytest.fixture
def backup_role_without_replication(pg_cluster: LocalCluster) -> Iterator[None]:
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER ROLE powr_backup NOREPLICATION")
    yield
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER ROLE powr_backup REPLICATION")


def test_role_without_its_privilege_is_a_warning(
    migrated_db: str, backup_role_without_replication: None
) -> None:
    found = _by_check(migrated_db)
    assert found["role.powr_backup"].severity is Severity.WARNING
    assert "lacks REPLICATION" in found["role.powr_backup"].message


def test_archive_timeout_is_judged_against_the_configured_wal_schedule(migrated_db: str) -> None:
    tight = _settings(migrated_db, backup={"schedule": {"logs": "5min"}})
    found = _by_check(migrated_db, tight)
    assert found["archive_timeout"].severity is Severity.WARNING
    assert found["archive_timeout"].value == "900s"
    assert "5min" in found["archive_timeout"].message


def test_configured_repositories_satisfy_the_storage_items(migrated_db: str) -> None:
    settings = _settings(
        migrated_db,
        backup={
            "storage": {
                "primary": {"kind": "s3", "url": "s3://powr-backups/prod"},
                "secondary": {"kind": "gcs", "url": "s3://powr-backups-2/prod"},
            }
        },
    )
    found = _by_check(migrated_db, settings)
    assert found["storage.primary"].severity is Severity.OK
    assert found["storage.secondary"].severity is Severity.OK


def test_every_finding_names_its_checklist_item(migrated_db: str) -> None:
    items = {f.details["checklist"] for f in _by_check(migrated_db).values()}
    assert items == {
        readiness.BACKUP,
        readiness.MONITORING,
        readiness.MAINTENANCE,
        readiness.RECOVERY,
    }


@pytest.fixture
def connect_only(migrated_db: str) -> Iterator[str]:
    """The URL of a login role that may connect to the migrated database, and nothing more."""
    with login_role(libpq(migrated_db), "t_ready") as url:
        yield url


def test_a_role_that_may_not_read_the_revision_gets_unknown_and_the_rest(
    connect_only: str, migrated_db: str
) -> None:
    """Without USAGE on schema ops the revision is not evaluated (UNKNOWN, with the GRANT),
    not called missing, and every other item is still judged as for the owner."""
    found = _by_check(connect_only)
    alembic = found["alembic"]
    assert (
        alembic.severity is Severity.UNKNOWN
        and alembic.details["checklist"] == readiness.MAINTENANCE
    )
    assert alembic.details["grant"].startswith('GRANT USAGE ON SCHEMA ops TO "t_ready_')
    owner = _severities(_by_check(migrated_db))
    assert {k: v for k, v in _severities(found).items() if k != "alembic"} == {
        k: v for k, v in owner.items() if k != "alembic"
    }


def _site(folder: Path, repo: str) -> Settings:
    """A configuration of a server of one's own in ``folder``, its primary ``repo``."""
    from powrops.config import load_settings

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "powrops.toml").write_text(
        '[database]\nurl = "postgresql://powrops@127.0.0.1:5432/powr"\n'
        f'[backup.storage]\nprimary = {{ kind = "file", url = "{repo}" }}\n'
    )
    return load_settings(folder / "powrops.toml", environ={})


def test_the_archive_command_of_a_server_of_ones_own_is_read_for_where_wal_goes(
    tmp_path: Path,
) -> None:
    """A configured server's archive_command names the configuration `wal push` loads: WAL
    goes to that one's primary, which must be the one this configuration's backups read."""
    from powrops.readiness.archiving import archive_command_findings

    here = _site(tmp_path / "a", f"file://{tmp_path}/repo-a")
    same_repo = _site(tmp_path / "b", f"file://{tmp_path}/repo-a")
    elsewhere = _site(tmp_path / "c", f"file://{tmp_path}/repo-c")

    def judged(command: str) -> tuple[Severity, str]:
        [finding] = archive_command_findings(command, here)
        return finding.severity, finding.message

    push = "/opt/powrops/.venv/bin/powrops {} wal push %p"
    assert judged(push.format(f"--config {here.config_file}"))[0] == Severity.OK
    assert judged(push.format(f"-c {same_repo.config_file}"))[0] == Severity.OK
    severity, message = judged(push.format(f"--config={elsewhere.config_file}"))
    assert (
        severity == Severity.CRITICAL
        and f"repo-c (the configuration {elsewhere.config_file})" in message
    )
    severity, message = judged(push.format(""))
    assert severity == Severity.WARNING and "names no configuration" in message, message
    severity, message = judged(push.format(f"-c {tmp_path / 'absent.toml'}"))
    assert severity == Severity.UNKNOWN and "absent.toml" in message, message
    assert judged(push.format(f"--spec {tmp_path / 'absent.json'}"))[0] == Severity.CRITICAL
    assert archive_command_findings("pgbackrest --stanza=main archive-push %p", here) == []
    assert archive_command_findings(push.format(""), validate({})) == []  # embedded: its spec
