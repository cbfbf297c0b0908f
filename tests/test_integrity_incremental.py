"""The incremental integrity check: defects planted by DML after a check are found by it as by
the full check, with the audit trail and without it; a full check runs when due, on request
and on a first run; under a role with few privileges, and against Debian's PostgreSQL 15."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq, run_cli
from powrops import integrity, migrate
from powrops.config import Settings, validate
from powrops.demo.data import generate, load
from powrops.integrity import IntegrityReport, incident
from powrops.pg.binaries import find_binaries
from powrops.pg.cluster import LocalCluster
from powrops.retention.journal import audit_summary, bulk_transaction
from versions import DEBIAN_15

pytestmark = pytest.mark.pg

PHYSICAL = ("amcheck", "checksum_failures", "data_checksums", "audit_trail")


def _settings(url: str, **consistency: Any) -> Settings:
    return validate({"database": {"url": libpq(url)}, "consistency": consistency})


def _sql(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run the statements in one transaction; the rows of the last."""
    with psycopg.connect(libpq(url)) as conn:
        cur = None
        for statement in statements:
            cur = conn.execute(statement)
        return cur.fetchall() if cur is not None and cur.description else []


@pytest.fixture(scope="module")
def db(module_db: str) -> str:
    """Clean demo data, checked once in full (the watermark every test starts from)."""
    migrate.upgrade(module_db)
    load(module_db, generate(users=10, weeks=4, seed=7, defects=False))
    first = integrity.run(_settings(module_db), full=False)
    assert first.mode == "full" and "no earlier check" in first.why
    assert first.status.name == "OK", [r.message for r in first.problems()]
    return module_db


def _data(report: IntegrityReport) -> dict[str, tuple[int | None, tuple[str, ...]]]:
    return {r.name: (r.count, r.sample_ids) for r in report.results if r.name not in PHYSICAL}


def _both(url: str) -> tuple[IntegrityReport, IntegrityReport]:
    """The daily (incremental, stored) check, then a full one of the same data: same results."""
    daily = integrity.run(_settings(url), full=False)
    full = integrity.run(_settings(url), store=False, full=True)
    assert daily.mode == "incremental", daily.why
    assert full.mode == "full"
    assert _data(daily) == _data(full)
    assert [r.name for r in daily.results] == [r.name for r in full.results]
    assert set(daily.scopes) == {r.name for r in daily.results}
    return daily, full


def _scope(report: IntegrityReport, name: str) -> str:
    return report.scopes[name]["scope"]


def _one(url: str, query: str) -> Any:
    return _sql(url, query)[0][0]


def test_bad_value_update_is_found_incrementally(db: str) -> None:
    set_id = _one(db, "SELECT min(id) FROM workout_sets")
    _sql(db, f"UPDATE workout_sets SET weight = 1500 WHERE id = {set_id}")
    daily, _ = _both(db)
    assert daily.result("weight_range").sample_ids == (str(set_id),)
    assert _scope(daily, "weight_range") == "incremental"
    assert _scope(daily, "amcheck") == "skipped"
    assert "incremental since" in daily.summary()
    _sql(db, f"UPDATE workout_sets SET weight = 50 WHERE id = {set_id}")
    again, _ = _both(db)
    assert again.result("weight_range").count == 0  # the kept id was looked at again


def test_orphan_insert_with_foreign_keys_bypassed(db: str) -> None:
    orphan = _sql(
        db,
        "SET LOCAL session_replication_role = replica",
        "INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps) "
        "VALUES (987654, 1, 1, 50, 5) RETURNING id",
    )[0][0]
    daily, _ = _both(db)
    assert str(orphan) in daily.result("orphan_workout_sets").sample_ids
    assert _scope(daily, "orphan_workout_sets") == "incremental"


def test_parent_deleted_with_the_audit_trail_is_incremental(db: str) -> None:
    before = (
        integrity.run(_settings(db), store=False, full=True).result("orphan_workout_sets").count
    )
    workout = _one(
        db, "SELECT max(s.workout_id) FROM workout_sets s JOIN workouts w ON w.id = s.workout_id"
    )
    _sql(
        db,
        "ALTER TABLE workout_sets DROP CONSTRAINT workout_sets_workout_id_fkey",
        f"DELETE FROM workouts WHERE id = {workout}",
    )
    daily, _ = _both(db)
    assert (daily.result("orphan_workout_sets").count or 0) > (before or 0)
    assert _scope(daily, "orphan_workout_sets") == "incremental"
    assert "children of 1 workouts keys gone" in daily.scopes["orphan_workout_sets"]["why"]
    assert daily.result("user_totals").count  # the workout count of its user


def test_parent_deleted_behind_the_audit_trail_runs_that_check_in_full(db: str) -> None:
    user = _one(db, "SELECT max(user_id) FROM workouts")
    _sql(db, "SET LOCAL session_replication_role = replica", f"DELETE FROM users WHERE id = {user}")
    daily, _ = _both(db)
    assert str(user) in daily.result("orphan_user_totals").sample_ids
    assert _scope(daily, "orphan_workouts") == "full"
    assert "pg_stat_user_tables" in daily.scopes["orphan_workouts"]["why"]
    assert _scope(daily, "orphan_workout_sets_exercises") == "incremental"  # no deletes there


def test_set_deleted_behind_the_user_total(db: str) -> None:
    set_id, workout, user = _sql(
        db,
        "SELECT s.id, s.workout_id, w.user_id FROM workout_sets s JOIN workouts w "
        "ON w.id = s.workout_id WHERE s.weight * s.reps > 0 AND w.total_volume IS NOT NULL "
        "ORDER BY s.id LIMIT 1",
    )[0]
    _sql(db, f"DELETE FROM workout_sets WHERE id = {set_id}")
    daily, _ = _both(db)
    assert str(workout) in daily.result("workout_total_volume").sample_ids
    assert str(user) in daily.result("user_totals").sample_ids
    assert _scope(daily, "user_totals") == "incremental"
    set_id = _one(db, f"SELECT min(id) FROM workout_sets WHERE workout_id <> {workout}")
    _sql(db, "SET LOCAL powrops.audit_rows = off", f"DELETE FROM workout_sets WHERE id = {set_id}")
    unaudited, _ = _both(db)
    assert _scope(unaudited, "workout_total_volume") == "full"
    assert "audit trail recorded 0" in unaudited.scopes["workout_total_volume"]["why"]


def test_a_bulk_change_with_the_row_audit_off_runs_its_checks_in_full(db: str) -> None:
    """A bulk change (retention, archival, cleanup, an erasure) deletes with the row triggers
    off and leaves one summary row: the checks that depend on its table's deletes read in full,
    even where the trail holds as many old rows as the statistics counted (here an audited
    update that the last check's counters included but its snapshot's xmin, held back by an
    open transaction, did not)."""
    set_id, workout = _sql(
        db,
        "SELECT s.id, s.workout_id FROM workout_sets s JOIN workouts w ON w.id = s.workout_id "
        "WHERE s.weight * s.reps > 0 AND w.total_volume IS NOT NULL ORDER BY s.id DESC LIMIT 1",
    )[0]
    other = _one(db, f"SELECT min(id) FROM workout_sets WHERE workout_id <> {workout}")
    with (
        psycopg.connect(libpq(db), autocommit=True) as held,
        psycopg.connect(libpq(db), autocommit=True) as writer,
    ):
        held.execute("BEGIN")
        held.execute("SELECT pg_current_xact_id()")
        for change in ("+ 1", "- 1"):  # two audited updates, the data as it was
            writer.execute(f"UPDATE workout_sets SET reps = reps {change} WHERE id = {other}")
        writer.execute("SELECT pg_stat_force_next_flush()")
        writer.execute("SELECT 1")  # its counters are flushed once it has gone idle
        integrity.run(_settings(db), full=False)
        held.execute("ROLLBACK")
    with psycopg.connect(libpq(db)) as conn, bulk_transaction(conn):
        conn.execute(f"DELETE FROM workout_sets WHERE id = {set_id}")
        audit_summary(conn, "CLEANUP", {"deleted": 1}, table_name="workout_sets")
    daily, _ = _both(db)
    assert str(workout) in daily.result("workout_total_volume").sample_ids
    assert _scope(daily, "workout_total_volume") == "full"
    assert "bulk change (CLEANUP)" in daily.scopes["workout_total_volume"]["why"]


def test_moved_set_and_wrong_totals(db: str) -> None:
    bad = (
        integrity.run(_settings(db), store=False, full=True)
        .result("workout_total_volume")
        .sample_ids
    )
    right = f"w.total_volume IS NOT NULL AND w.id NOT IN ({', '.join(bad) or '0'})"
    set_id, old = _sql(
        db,
        "SELECT s.id, s.workout_id FROM workout_sets s JOIN workouts w ON w.id = s.workout_id "
        f"WHERE s.weight * s.reps > 0 AND {right} ORDER BY s.id DESC LIMIT 1",
    )[0]
    new = _one(db, f"SELECT min(w.id) FROM workouts w WHERE {right} AND w.id <> {old}")
    _sql(db, f"UPDATE workout_sets SET workout_id = {new} WHERE id = {set_id}")
    user = _one(db, "SELECT min(user_id) FROM user_totals")
    _sql(db, f"UPDATE user_totals SET total_volume = total_volume + 1 WHERE user_id = {user}")
    daily, _ = _both(db)
    volume = daily.result("workout_total_volume")
    assert volume.count == len(bad) + 2 and {str(old), str(new)} <= set(volume.sample_ids)
    assert _scope(daily, "workout_total_volume") == "incremental"
    assert str(user) in daily.result("user_totals").sample_ids


def test_full_check_when_asked_when_due_and_in_the_cli(db: str) -> None:
    forced = integrity.check(_settings(db), full=True).before
    assert forced.mode == "full" and forced.why == "a full check was asked for"
    assert _scope(forced, "amcheck") == "full" and forced.result("amcheck").count == 0
    time.sleep(1.1)
    due = integrity.run(_settings(db, full_every="1s"), full=False)
    assert due.mode == "full" and "consistency.full_every" in due.why
    never = integrity.run(_settings(db, full_every="never"), full=False)
    assert never.mode == "incremental", never.why
    assert "consistency.full_every: never" in never.result("amcheck").message
    result = run_cli("check", "integrity", "--full", env={"POWROPS_DATABASE_URL": libpq(db)})
    assert "full (a full check was asked for)" in result.stdout, result.stdout
    result = run_cli("check", "integrity", "--json", env={"POWROPS_DATABASE_URL": libpq(db)})
    assert '"mode": "incremental"' in result.stdout


def test_audited_edits_of_columns_a_check_does_not_read_are_left_out(db: str) -> None:
    integrity.run(_settings(db), full=False)
    known = (
        integrity.run(_settings(db), store=False, full=True).result("workout_total_volume").count
    )
    _sql(db, "UPDATE workouts SET notes = 'edited' WHERE id IN (SELECT id FROM workouts LIMIT 5)")
    daily, _ = _both(db)
    why = daily.scopes["workout_total_volume"]["why"]
    assert f": {known:,} workouts written or whose sets were" in why, why
    bad = ", ".join(daily.result("workout_total_volume").kept_ids) or "0"
    workout = _one(db, f"SELECT min(id) FROM workouts WHERE total_volume > 0 AND id NOT IN ({bad})")
    _sql(db, f"UPDATE workouts SET total_volume = total_volume + 0.5 WHERE id = {workout}")
    daily, _ = _both(db)
    assert str(workout) in daily.result("workout_total_volume").kept_ids


def test_an_audited_delete_is_found_before_its_session_flushes_its_statistics(db: str) -> None:
    integrity.run(_settings(db), full=False)
    workout = _one(
        db, "SELECT max(s.workout_id) FROM workout_sets s JOIN workouts w ON w.id = s.workout_id"
    )
    _sql(db, "ALTER TABLE workout_sets DROP CONSTRAINT IF EXISTS workout_sets_workout_id_fkey")
    with psycopg.connect(libpq(db), autocommit=True) as writer:
        writer.execute("SELECT 1")  # flushes; the next commit's counters wait for the interval
        writer.execute(f"DELETE FROM workouts WHERE id = {workout}")
        daily, _ = _both(db)
    orphans = daily.result("orphan_workout_sets")
    assert orphans.count and _scope(daily, "orphan_workout_sets") == "incremental"
    assert str(workout) in {
        str(r[0])
        for r in _sql(
            db,
            "SELECT workout_id FROM workout_sets WHERE id IN (" + ",".join(orphans.kept_ids) + ")",
        )
    }


def test_a_rewritten_table_runs_the_checks_of_its_deletes_in_full(db: str) -> None:
    integrity.run(_settings(db), full=False)
    with psycopg.connect(libpq(db), autocommit=True) as conn:
        conn.execute("VACUUM FULL workouts")
    daily, _ = _both(db)
    assert _scope(daily, "orphan_workout_sets") == "full"
    assert "truncated or rewritten" in daily.scopes["orphan_workout_sets"]["why"]
    assert "orphan_workout_sets" in daily.in_full()
    assert _scope(daily, "orphan_workout_sets_exercises") == "incremental"


@pytest.fixture
def low_role(migrated_db: str) -> Iterator[tuple[str, str]]:
    """Demo data and a login role that reads the POWR tables, the audit trail and
    ``ops.check_runs`` and records its runs there, without pg_monitor and without EXECUTE on
    pg_control_system() and pg_control_checkpoint() (revoked from PUBLIC in this database):
    the superuser's URL and the role's."""
    url = libpq(migrated_db)
    load(url, generate(users=4, weeks=2, seed=7, defects=False))
    low = _grant_low_role(url)
    yield url, low
    role = psycopg.conninfo.conninfo_to_dict(low)["user"]
    _sql(url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_a_role_that_cannot_read_the_cluster_identity_checks_in_full(
    low_role: tuple[str, str],
) -> None:
    """Without the system identifier a reloaded copy of the database (same name, oid and
    watermark, new transaction ids) could not be told apart: every run is full, saying why."""
    owner, low = low_role
    first = integrity.run(_settings(low), full=False)
    assert first.mode == "full" and "no earlier check" in first.why
    assert first.status.name == "WARNING"  # amcheck's functions are not the role's
    assert ": 18 checks passed, 1 not checked (amcheck) in" in first.summary()
    set_id = _one(owner, "SELECT min(id) FROM workout_sets")
    _sql(owner, f"UPDATE workout_sets SET weight = -5 WHERE id = {set_id}")
    daily = integrity.run(_settings(low), full=False)
    assert daily.mode == "full", daily.scopes["weight_range"]
    assert "this check's role may not execute pg_control_system()" in daily.why
    assert daily.result("weight_range").sample_ids == (str(set_id),)
    after = integrity.run(_settings(owner), full=False)
    assert after.mode == "full" and "the last check's role may not execute" in after.why
    assert integrity.run(_settings(owner), full=False).mode == "incremental"


def _counted_deletes(url: str, table: str, more_than: int) -> None:
    """Wait (up to 5 s) until pg_stat_user_tables counts more deletes of ``table``."""
    query = f"SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = '{table}'"
    deadline = time.monotonic() + 5
    while _one(url, query) <= more_than and time.monotonic() < deadline:
        time.sleep(0.1)


def test_what_the_role_may_not_read_is_named_in_the_why(low_role: tuple[str, str]) -> None:
    """Granted the cluster's identity, the role checks incrementally; where it may not read the
    audit trail or the stored watermark, the run says that, not that nothing was recorded."""
    owner, low = low_role
    role = psycopg.conninfo.conninfo_to_dict(low)["user"]
    _sql(owner, f"GRANT EXECUTE ON FUNCTION pg_control_system(), pg_control_checkpoint() TO {role}")
    integrity.run(_settings(low), full=False)
    set_id, workout = _sql(
        owner,
        "SELECT s.id, s.workout_id FROM workout_sets s JOIN workouts w ON w.id = s.workout_id "
        "WHERE s.weight * s.reps > 0 AND w.total_volume IS NOT NULL ORDER BY s.id LIMIT 1",
    )[0]
    deleted = _one(
        owner, "SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = 'workout_sets'"
    )
    _sql(
        owner,
        f"REVOKE SELECT ON audit_log FROM {role}",
        f"DELETE FROM workout_sets WHERE id = {set_id}",
    )
    _counted_deletes(owner, "workout_sets", deleted)
    daily = integrity.run(_settings(low), full=False)
    assert daily.mode == "incremental", daily.why
    why = daily.scopes["workout_total_volume"]["why"]
    assert "this role may not read the audit trail (audit_log)" in why, why
    assert str(workout) in daily.result("workout_total_volume").sample_ids
    assert daily.scopes["amcheck"]["why"] == "the last run did not verify every relation"
    _sql(owner, f"REVOKE SELECT ON ops.check_runs FROM {role}")
    blind = integrity.run(_settings(low), full=False)
    assert blind.mode == "full"
    assert (
        blind.why == "this role may not read ops.check_runs, which keeps the last check's watermark"
    )


def test_a_check_without_a_statement_timeout_runs(db: str) -> None:
    """``consistency.statement_timeout = "indefinite"`` passes config check: the check then
    runs without one (PostgreSQL's 0), full and incremental."""
    settings = _settings(db, statement_timeout="indefinite")
    assert integrity.run(settings, store=False, full=True).mode == "full"
    assert integrity.run(settings, store=False).mode == "incremental"


def _grant_low_role(url: str) -> str:
    """:func:`low_role`'s grants on ``url`` (revoking the cluster's identity from PUBLIC): the
    role's URL."""
    role = "t_low_" + uuid.uuid4().hex[:8]
    parts = psycopg.conninfo.conninfo_to_dict(url)
    _sql(
        url,
        f"CREATE ROLE {role} LOGIN PASSWORD 'low'",
        f'GRANT CONNECT ON DATABASE "{parts["dbname"]}" TO {role}',
        f"GRANT USAGE ON SCHEMA public, ops TO {role}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public, ops TO {role}",
        f"GRANT INSERT ON ops.check_runs TO {role}",
        "REVOKE EXECUTE ON FUNCTION pg_control_system(), pg_control_checkpoint() FROM PUBLIC",
    )
    return f"postgresql://{role}:low@{parts['host']}:{parts['port']}/{parts['dbname']}"


def _cli_check(url: str, *args: str) -> tuple[int, dict[str, Any]]:
    """``powrops check integrity --json`` against ``url``: exit code and the run."""
    result = run_cli("check", "integrity", "--json", *args, env={"POWROPS_DATABASE_URL": url})
    assert "Traceback" not in result.stderr and not result.stderr.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)["before"]


def _found(run: dict[str, Any], name: str) -> list[str]:
    return next(r["sample_ids"] for r in run["results"] if r["name"] == name)


@pytest.mark.pg15
@pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed")
def test_a_low_privileged_role_on_postgresql_15(pg_tmp: Path) -> None:
    """The daily check under a role without pg_monitor against Debian's PostgreSQL 15 by URL:
    full while it may not read the cluster's identity; once granted, incremental, finding a
    planted negative weight and the workout of an audited deleted set as --full does."""
    cluster = LocalCluster(pg_tmp / "pg15", binaries=find_binaries(bin_dir=str(DEBIAN_15)))
    cluster.start()
    try:
        owner = libpq(cluster.url())
        migrate.upgrade(owner)
        load(owner, generate(users=4, weeks=2, seed=7, defects=False))
        low = _grant_low_role(owner)
        role = psycopg.conninfo.conninfo_to_dict(low)["user"]
        assert _cli_check(low)[0] == 1  # amcheck: not allowed
        code, run = _cli_check(low)
        assert run["mode"] == "full" and "pg_control_system()" in run["why"]
        _sql(
            owner,
            f"GRANT EXECUTE ON FUNCTION pg_control_system(), pg_control_checkpoint() TO {role}",
        )
        _cli_check(low)
        set_id, workout = _sql(
            owner,
            "SELECT s.id, s.workout_id FROM workout_sets s JOIN workouts w ON w.id = s.workout_id "
            "WHERE s.weight * s.reps > 0 AND w.total_volume IS NOT NULL ORDER BY s.id LIMIT 1",
        )[0]
        bad = _one(owner, "SELECT max(id) FROM workout_sets")
        _sql(
            owner,
            f"UPDATE workout_sets SET weight = -5 WHERE id = {bad}",
            f"DELETE FROM workout_sets WHERE id = {set_id}",
        )
        code, daily = _cli_check(low)
        assert code == 1 and daily["mode"] == "incremental", daily["why"]
        assert daily["server_version"].startswith("15.")
        assert _found(daily, "weight_range") == [str(bad)]
        assert str(workout) in _found(daily, "workout_total_volume")
        assert daily["scopes"]["workout_total_volume"]["scope"] == "incremental"
        code, full = _cli_check(low, "--full")
        assert full["mode"] == "full" and full["why"] == "a full check was asked for"
        assert [(r["name"], r["count"]) for r in full["results"]] == [
            (r["name"], r["count"]) for r in daily["results"]
        ]
    finally:
        cluster.destroy()


def test_a_repair_leaves_the_checks_after_it_incremental(migrated_db: str) -> None:
    """The re-check after a repair, and the daily run after that, stay incremental: a repair's
    audit rows carry the old rows of its updates, and its own counters are flushed before the
    re-check reads them (else the next run counts them again, against no audit row)."""
    url = libpq(migrated_db)
    load(url, generate(users=4, weeks=2, seed=7, defects=False))
    integrity.run(_settings(url), full=False)
    workout = _one(url, "SELECT min(id) FROM workouts WHERE total_volume > 0")
    _sql(url, f"UPDATE workouts SET total_volume = total_volume + 1 WHERE id = {workout}")
    outcome = integrity.check(_settings(url), repair=True)
    assert outcome.repair is not None and outcome.repair.total == 1
    assert str(workout) in outcome.before.result("workout_total_volume").sample_ids
    recheck = outcome.after
    assert recheck is not None and recheck.mode == "incremental", recheck.why
    assert recheck.result("workout_total_volume").count == 0
    assert recheck.in_full() == {}, recheck.scopes
    daily = integrity.run(_settings(url), full=False)
    assert daily.mode == "incremental" and daily.in_full() == {}, daily.scopes


def test_deletes_the_statistics_did_not_count_run_their_checks_in_full(migrated_db: str) -> None:
    """With ``track_counts`` off, a delete behind the audit trail moves no counter: the checks
    depending on deletes run in full while it is off and in the first run after."""
    url = libpq(migrated_db)
    load(url, generate(users=4, weeks=2, seed=7, defects=False))
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    integrity.run(_settings(url), full=False)
    _sql(url, f'ALTER DATABASE "{name}" SET track_counts = off')
    workout = _one(url, "SELECT max(workout_id) FROM workout_sets")
    _sql(
        url,
        "ALTER TABLE workout_sets DROP CONSTRAINT workout_sets_workout_id_fkey",
        "SET LOCAL powrops.audit_rows = off",
        f"DELETE FROM workouts WHERE id = {workout}",
    )
    daily, _ = _both(url)
    assert daily.result("orphan_workout_sets").count
    assert "track_counts is off" in daily.scopes["orphan_workout_sets"]["why"]
    _sql(url, f'ALTER DATABASE "{name}" RESET track_counts')
    after, _ = _both(url)
    assert "track_counts was off at the last check" in after.scopes["orphan_workout_sets"]["why"]
    assert _both(url)[0].in_full() == {}


def test_the_corruption_assessment_reads_everything(db: str) -> None:
    """The incident runbook's assessment asks for a full check (the library's default is the
    daily, incremental one): after a stored run it still reads every row."""
    report = incident.assess(_settings(db))
    assert report.mode == "full" and report.why == "a full check was asked for", report.why
