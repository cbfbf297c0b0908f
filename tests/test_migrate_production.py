"""``powrops migrate production``: refuses without a recent verified backup or under a blocking
lock, shows the SQL and changes nothing unless confirmed, and runs with ``--yes``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from backup_site import Site
from powrops import migrate
from powrops.db import embedded_cluster, engine
from powrops.errors import ParameterError
from powrops.migrate import production as migrate_production
from powrops.migrate.production import Options, tables_in

pytestmark = pytest.mark.pg

START = "20240101000000"  # the initial schema: add_workout_volume (ALTER TABLE workouts) pending


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    site = Site.create()
    try:
        eng = engine(site.settings)
        migrate.upgrade(eng, START)
        eng.dispose()
        site.sql("INSERT INTO users (id, email) VALUES (1, 'someone@example.org')")
        site.sql("INSERT INTO workouts (user_id, date) VALUES (1, current_date)")
        yield site
    finally:
        site.destroy()


def at(site: Site) -> str:
    return str(site.sql("SELECT version_num FROM ops.alembic_version")[0][0])


def audit_rows(site: Site) -> int:
    return int(site.sql("SELECT count(*) FROM audit_log WHERE action = 'MIGRATION'")[0][0])


def test_tables_in_offline_sql() -> None:
    sql = migrate.revision_sql("20240308123000")
    assert tables_in(sql) == (["workouts"], [])
    down = migrate.revision_sql("20240308123000", downgrade=True)
    assert tables_in(down) == (["workouts"], ["idx_workouts_user_date"])
    trigger = 'CREATE TRIGGER t AFTER INSERT OR UPDATE ON public."Lifts" FOR EACH ROW'
    assert tables_in(trigger)[0] == ['public."Lifts"']


def test_bad_options_are_parameter_errors() -> None:
    with pytest.raises(ParameterError, match="lock_timeout"):
        Options.parse(lock_timeout="soon")
    with pytest.raises(ParameterError, match="max_backup_age"):
        Options.parse(max_backup_age="indefinite")


def test_refuses_without_a_verified_backup(site: Site) -> None:
    result = site.cli("migrate", "production", "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CRITICAL backup       no verified backup" in result.stdout
    assert "not migrated" in result.stdout
    assert at(site) == START and audit_rows(site) == 0


def test_verified_backup_is_recorded_by_verify(site: Site) -> None:
    assert site.cli("backup", "full").returncode == 0
    label = site.backups()[-1]["label"]
    # Taken, not yet verified: still refused.
    assert site.cli("migrate", "production", "--yes").returncode == 2
    verified = site.cli("verify", label)
    assert verified.returncode in (0, 1), verified.stdout + verified.stderr
    assert site.backups()[-1]["verified_at"] is not None


def test_dry_path_shows_the_sql_and_changes_nothing(site: Site) -> None:
    result = site.cli("migrate", "production")  # no --yes and no terminal: refuse, exit 3
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert "OK       backup       newest verified backup" in out
    assert "=== 20240308123000 add_workout_volume: runs in a transaction; tables: workouts" in out
    assert "ALTER TABLE workouts ADD COLUMN total_volume NUMERIC(10, 2);" in out
    assert "=== 20240308124500 index_workout_volume: runs NOT in a transaction" in out
    assert "CREATE INDEX CONCURRENTLY" in out
    assert (
        "rollback plan (downgrade" in out and "ALTER TABLE workouts DROP COLUMN total_volume" in out
    )
    assert "lock_timeout = 5000ms" in out
    assert "pass --yes" in result.stderr
    assert at(site) == START and audit_rows(site) == 0
    assert "someone@example.org" not in out + result.stderr


def test_refuses_when_a_long_transaction_holds_a_lock(site: Site) -> None:
    info = embedded_cluster(site.settings).conninfo()
    with psycopg.connect(**info) as blocker:
        blocker.execute("SELECT count(*) FROM workouts")  # ACCESS SHARE, held until rollback
        pid = blocker.info.backend_pid
        result = site.cli("migrate", "production", "--yes", "--json")
        time.sleep(1.2)
        aged = site.cli("migrate", "production", "--yes", "--max-transaction-age", "1s")
        blocker.rollback()
    assert result.returncode == 2, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    locks = next(f for f in data["plan"]["findings"] if f["check"] == "locks")
    assert locks["severity"] == "CRITICAL" and pid in locks["value"]
    assert "AccessShareLock on workouts" in locks["message"]
    assert data["applied"] is False
    assert "CRITICAL transactions 1 transaction(s) open longer than 1s" in aged.stdout
    assert aged.returncode == 2
    assert at(site) == START and audit_rows(site) == 0


def test_lock_timeout_is_set_for_the_migration(site: Site) -> None:
    """Past the safeguards (force), a lock taken meanwhile ends the migration at lock_timeout."""
    plan = migrate_production.prepare(site.settings, Options.parse(lock_timeout="0.3s"))
    assert plan.allowed
    info = embedded_cluster(site.settings).conninfo()
    with psycopg.connect(**info) as blocker:
        blocker.execute("LOCK TABLE workouts IN ACCESS SHARE MODE")
        started = time.monotonic()
        result = migrate_production.apply(site.settings, plan, force=True)
        took = time.monotonic() - started
        blocker.rollback()
    assert not result.applied and result.error and "lock timeout" in result.error
    assert took < 20 and at(site) == START
    # ops.events does not exist yet at the initial schema: the audit_log row records the attempt.
    assert site.sql("SELECT to_regclass('ops.events')") == [(None,)]
    details = site.sql("SELECT details FROM audit_log WHERE action = 'MIGRATION'")[0][0]
    assert details["status"] == "failed" and details["from"] == details["to"] == START
    assert audit_rows(site) == 1


def test_a_plan_made_before_the_schema_moved_is_refused(site: Site) -> None:
    """The runbook's plan made, then the schema changed before the confirmation (another
    DBA's migration, or the confirmed cell run a second time after its migration): what was
    reviewed is no longer what would run, so nothing runs and no attempt is recorded (a
    second run of the confirmed cell used to record a second migration from the old revision
    in the audit trail)."""
    plan = migrate_production.prepare(site.settings, Options.parse())
    assert plan.allowed and plan.current == START
    eng = engine(site.settings)
    try:
        moved = migrate.upgrade(eng, plan.pending[0].revision)
        before = audit_rows(site)
        result = migrate_production.apply(site.settings, plan)
        assert not result.applied and result.rollback_file is None
        assert result.error and f"the database is at {moved} now, not at {START}" in result.error
        assert at(site) == moved and audit_rows(site) == before
    finally:
        migrate.downgrade(eng, START)
        eng.dispose()
    assert at(site) == START


def test_runs_with_yes_and_ends_at_head(site: Site) -> None:
    before = audit_rows(site)
    result = site.cli("migrate", "production", "--yes")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    head = migrate.heads()[0]
    assert at(site) == head
    assert f"migrated {START} -> {head}" in result.stdout
    assert "OK       at_head" in result.stdout
    assert audit_rows(site) == before + 1
    old, new = site.sql(
        "SELECT old_value, new_value FROM audit_log WHERE action = 'MIGRATION' "
        "ORDER BY id DESC LIMIT 1"
    )[0]
    assert old == {"revision": START} and new == {"revision": head}
    event = site.sql("SELECT details FROM ops.events WHERE kind = 'migration'")[-1][0]
    assert event["from"] == START and event["to"] == head and event["status"] == "ok"
    rollback = site.root / "state" / "migrations"
    saved = list(rollback.glob(f"rollback-{head}-to-{START}-*.sql"))
    assert saved and "DROP COLUMN total_volume" in saved[0].read_text()
    again = site.cli("migrate", "production", "--yes")
    assert again.returncode == 0 and "nothing to migrate" in again.stdout


def test_the_runbook_at_head_does_not_ask_to_apply_nothing(site: Site) -> None:
    """The production migration runbook by hand on a database already at head: nothing is
    pending, so the DBA is not asked to type the database's name for a migration of nothing
    (a typo there graded the run WARNING for refusing nothing)."""
    from by_hand import run_by_hand
    from test_interactive import open_runbook

    eng = engine(site.settings)
    migrate.upgrade(eng)
    eng.dispose()
    copy = open_runbook("migrate_production", site.config)
    replies = run_by_hand(copy, ["powr-typo"])
    assert [r["status"] for r in replies] == ["ok"] * len(replies)
    result = json.loads((copy.parent / "result.json").read_text())
    assert result["answers"] == [] and result["confirmations"] == []
    assert result["status"] == "OK" and result["figures"]["applied"] is False
