"""``powrops migrate rollback`` has the safeguards of ``migrate production``.

A verified backup, lock and statement timeouts, the downgrade SQL shown, a confirmation, an
audit row; and a downgrade that would drop a table still holding rows (the audit revision
drops ``ops.quarantine``, the only copy of repaired rows) is refused unless told to.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backup_site import Site
from powrops import migrate
from powrops.db import engine

pytestmark = pytest.mark.pg

JOB_ROLES = "20241204090000"
AUDIT_TRAIL = "20240401090000"
BEFORE_AUDIT = "20240322090000"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    site = Site.create()
    try:
        eng = engine(site.settings)
        # the job roles revision: the rollbacks below walk down through the audit trail
        # (test_migrations walks every revision, the newer ones included)
        migrate.upgrade(eng, JOB_ROLES)
        eng.dispose()
        site.sql(
            "INSERT INTO ops.quarantine (table_name, row_id, reason, row) "
            "VALUES ('workouts', '7', 'orphan', '{}')"
        )
        yield site
    finally:
        site.destroy()


def at(site: Site) -> str:
    return str(site.sql("SELECT version_num FROM ops.alembic_version")[0][0])


def rollbacks(site: Site) -> int:
    rows = site.sql("SELECT count(*) FROM ops.events WHERE details->>'direction' = 'rollback'")
    return int(rows[0][0])


def test_refused_without_a_verified_backup(site: Site) -> None:
    run = site.cli("migrate", "rollback", "--yes")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "CRITICAL backup" in run.stdout and "not rolled back" in run.stderr
    assert (
        f"DELETE FROM ops.alembic_version WHERE ops.alembic_version.version_num = '{JOB_ROLES}'"
        in run.stdout
        or JOB_ROLES in run.stdout
    )
    assert at(site) == JOB_ROLES and rollbacks(site) == 0


def test_not_confirmed_without_yes_or_a_terminal(site: Site) -> None:
    assert site.cli("backup", "full").returncode == 0
    label = site.backups()[-1]["label"]
    assert site.cli("verify", label).returncode in (0, 1)
    run = site.cli("migrate", "rollback")
    assert run.returncode == 3 and "pass --yes" in run.stderr, run.stdout + run.stderr
    assert at(site) == JOB_ROLES and rollbacks(site) == 0


def test_one_revision_back_audited(site: Site) -> None:
    run = site.cli("migrate", "rollback", "--yes", "--lock-timeout", "2s")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lock_timeout = 2000ms" in run.stdout
    assert f"database at {JOB_ROLES}; rolls back to {AUDIT_TRAIL}; 1 revision(s) to undo" in (
        run.stdout
    )
    assert "pending" not in run.stdout and "=== rollback plan" not in run.stdout, run.stdout
    assert f"rolled back {JOB_ROLES} -> {AUDIT_TRAIL} (audited)" in run.stdout
    assert at(site) == AUDIT_TRAIL and rollbacks(site) == 1


def test_a_downgrade_dropping_rows_is_refused_unless_allowed(site: Site) -> None:
    run = site.cli("migrate", "rollback", "--yes")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "CRITICAL data_loss" in run.stdout and "ops.quarantine" in run.stdout
    assert at(site) == AUDIT_TRAIL
    assert site.sql("SELECT count(*) FROM ops.quarantine") == [(1,)]
    allowed = site.cli("migrate", "rollback", "--yes", "--allow-data-loss")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "WARNING  data_loss" in allowed.stdout
    assert at(site) == BEFORE_AUDIT
