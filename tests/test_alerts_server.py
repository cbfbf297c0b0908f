"""The DBA checks of ``powrops alerts``, each planted on one shared database of the session
cluster: a transaction held open, a lock with a waiter, an inactive slot retaining WAL,
connections opened towards the limit, xids burnt on an unfrozen database, requested
checkpoints, a failing archive_command, stale backups, and statement timing per interval
that leaves powrops' own roles out."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq
from powrops import alerts, migrate
from powrops.alerts import reads
from powrops.config import Settings, to_toml, validate
from powrops.findings import Finding, Severity, overall
from powrops.pg.cluster import LocalCluster, ensure_os_user
from scratch import scratch_dir

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def alert_db(pg_cluster: LocalCluster) -> Iterator[str]:
    """One migrated database for every planted check of this module (libpq URL)."""
    name = "t_alerts_" + uuid.uuid4().hex[:8]
    with psycopg.connect(**pg_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_cluster.url(name)
    migrate.upgrade(url, "head")
    yield libpq(url)
    with psycopg.connect(**pg_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(url: str, **alert: Any) -> Settings:
    state = scratch_dir("powrops-alerts-server-")
    return validate({"database": {"url": url}, "state": {"dir": state}, "alerts": alert})


def _of(findings: list[Finding], check: str, obj: str | None = None) -> list[Finding]:
    return [f for f in findings if f.check == check and (obj is None or f.object == obj)]


def _worst(findings: list[Finding], check: str, obj: str | None = None) -> Severity:
    return overall(_of(findings, check, obj))


def _run(settings: Settings, record: bool = False) -> list[Finding]:
    return alerts.evaluate(settings, record=record).findings


SECOND = {"warning": "1s", "critical": "1h"}


def test_transaction_held_open_is_idle_in_transaction_and_long(alert_db: str) -> None:
    settings = _settings(alert_db, idle_in_transaction=SECOND, long_transaction=SECOND)
    app = psycopg.connect(alert_db)
    own = psycopg.connect(alert_db, application_name="powrops")
    try:
        app.execute("SELECT 1")  # opens the transaction and leaves it idle
        own.execute("SELECT 1")
        pid, own_pid = app.info.backend_pid, own.info.backend_pid
        time.sleep(1.3)
        found = _run(settings)
        assert _worst(found, "idle_in_transaction", f"pid {pid}") == Severity.WARNING
        assert _worst(found, "long_transaction", f"pid {pid}") == Severity.WARNING
        [idle] = _of(found, "idle_in_transaction", f"pid {pid}")
        assert f"pg_terminate_backend({pid})" in (idle.advice or "")
        # powrops' own long work is not a long transaction (idle in one it still is)
        assert not _of(found, "long_transaction", f"pid {own_pid}")
        assert _of(found, "idle_in_transaction", f"pid {own_pid}")
        app.commit()
        own.commit()
        found = _run(settings)
        assert _worst(found, "idle_in_transaction") == Severity.OK
        assert _worst(found, "long_transaction") == Severity.OK
    finally:
        app.close()
        own.close()


def test_lock_held_while_another_session_waits(alert_db: str) -> None:
    settings = _settings(alert_db, blocked={"warning": "1s", "critical": "1h"})
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.alert_lock_target (id int)")
    holder = psycopg.connect(alert_db)
    # EXCLUSIVE blocks writers only: the metrics' size functions still read the table
    holder.execute("LOCK TABLE public.alert_lock_target IN EXCLUSIVE MODE")
    waiter = psycopg.connect(alert_db, autocommit=True)
    thread = threading.Thread(
        target=lambda: waiter.execute("INSERT INTO public.alert_lock_target VALUES (1)")
    )
    thread.start()
    try:
        assert _worst(_run(settings), "blocked") == Severity.OK  # waiting for under 1 s
        time.sleep(1.3)
        [blocked] = _of(_run(settings), "blocked")
        assert blocked.severity == Severity.WARNING
        assert blocked.object == f"pid {waiter.info.backend_pid}"
        assert blocked.details["blockers"] == [holder.info.backend_pid]
        assert f"pg_terminate_backend({holder.info.backend_pid})" in (blocked.advice or "")
    finally:
        holder.rollback()
        thread.join(10)
        holder.close()
        waiter.close()
    assert _worst(_run(settings), "blocked") == Severity.OK


def test_inactive_slot_retaining_wal(alert_db: str) -> None:
    slot = "powrops_alerts_" + uuid.uuid4().hex[:6]
    settings = _settings(alert_db)
    tight = _settings(alert_db, slot_retained_wal={"warning": "1kB", "critical": "64kB"})
    with psycopg.connect(alert_db, autocommit=True) as conn:
        assert not _of(_run(settings), "replication_slot", slot)
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        try:
            [inactive] = _of(_run(settings), "replication_slot", slot)
            assert inactive.severity == Severity.WARNING and "inactive" in inactive.message
            assert "pg_drop_replication_slot" in (inactive.advice or "")
            conn.execute("CREATE TABLE public.alert_wal AS SELECT g, md5(g::text) FROM "
                         "generate_series(1, 5000) g")  # fmt: skip
            [held] = _of(_run(tight), "replication_slot", slot)
            assert held.severity == Severity.CRITICAL and held.value > 64 * 1024
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute("DROP TABLE IF EXISTS public.alert_wal")
    assert not _of(_run(settings), "replication_slot", slot)


def test_connections_opened_towards_the_limit(alert_db: str) -> None:
    [before] = _of(_run(_settings(alert_db)), "connections")
    used, usable = before.details["used"], before.details["usable"]
    warning = round(100.0 * (used + 4) / usable, 2)
    settings = _settings(alert_db, connections={"warning": warning, "critical": 100})
    assert _worst(_run(settings), "connections") == Severity.OK
    extra = [psycopg.connect(alert_db) for _ in range(6)]
    try:
        [near] = _of(_run(settings), "connections")
        assert near.severity == Severity.WARNING and near.details["used"] >= used + 6
        assert "pg_stat_activity" in (near.advice or "")
    finally:
        for conn in extra:
            conn.close()


def test_wraparound_of_an_unfrozen_database(alert_db: str) -> None:
    # 1500 xids in % of the default autovacuum_freeze_max_age (200 million)
    settings = _settings(alert_db, wraparound={"warning": 0.00075, "critical": 50})
    name = alert_db.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE)")
        assert not _of(_run(settings), "wraparound", name)
        conn.execute(
            "DO $$ BEGIN FOR i IN 1..1600 LOOP PERFORM pg_current_xact_id(); COMMIT; "
            "END LOOP; END $$"
        )
        [aged] = _of(_run(settings), "wraparound", name)
        assert aged.severity == Severity.WARNING and aged.details["age"] >= 1600
        assert "VACUUM (FREEZE" in (aged.advice or "")
        conn.execute("VACUUM (FREEZE)")
    assert not _of(_run(settings), "wraparound", name)


def test_wal_size_against_max_wal_size(alert_db: str) -> None:
    with psycopg.connect(alert_db, autocommit=True) as conn:
        row = conn.execute("SELECT sum(size), pg_size_bytes(current_setting('max_wal_size')) "
                           "FROM pg_ls_waldir()").fetchone()  # fmt: skip
    assert row is not None
    pct = 100.0 * int(row[0]) / int(row[1])
    [normal] = _of(_run(_settings(alert_db)), "wal_size")
    assert normal.severity == Severity.OK and normal.value >= 16 * 1024 * 1024
    low = _settings(alert_db, wal_size={"warning": pct / 2, "critical": pct * 10})
    [over] = _of(_run(low), "wal_size")
    assert over.severity == Severity.WARNING and "disk_space_response" in (over.advice or "")


def test_requested_checkpoints_since_the_previous_run(alert_db: str) -> None:
    settings = _settings(alert_db)
    alerts.evaluate(settings)  # stores the counters
    with psycopg.connect(alert_db, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("CHECKPOINT")
    [pressure] = _of(alerts.evaluate(settings).findings, "checkpoints")
    assert pressure.severity == Severity.CRITICAL and pressure.details["requested"] >= 3
    assert "max_wal_size" in (pressure.advice or "")
    [calm] = _of(alerts.evaluate(settings).findings, "checkpoints")
    assert calm.severity == Severity.OK and "too few" in calm.message


def _archiver(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute("SELECT failed_count, archived_count FROM pg_stat_archiver").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _wait(conn: psycopg.Connection[Any], done: Any, what: str) -> None:
    """Until ``done``; the reload is repeated: an archiver between retries may miss one."""
    deadline = time.monotonic() + 40
    tick = 0
    while not done(_archiver(conn)):
        assert time.monotonic() < deadline, f"the archiver did not {what}"
        tick += 1
        if tick % 10 == 0:
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)


def test_failing_archive_command_and_backlog(alert_db: str) -> None:
    settings = _settings(alert_db, archive_ready={"warning": 1, "critical": 1000})
    with psycopg.connect(alert_db, autocommit=True) as conn:
        try:
            conn.execute("ALTER SYSTEM SET archive_command = 'true'")
            conn.execute("SELECT pg_reload_conf()")
            alerts.evaluate(settings)  # the failure count to compare with
            failed, _ = _archiver(conn)
            conn.execute("ALTER SYSTEM SET archive_command = 'false'")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE TEMP TABLE w AS SELECT 1 AS x")
            conn.execute("SELECT pg_switch_wal()")
            _wait(conn, lambda s: s[0] > failed, "fail")
            found = alerts.evaluate(settings).findings
            [failing] = _of(found, "archive_failures")
            assert failing.severity == Severity.CRITICAL and "is failing" in failing.message
            assert _worst(found, "archive_ready") >= Severity.WARNING
            _, archived = _archiver(conn)  # read before the fix: it may archive at once
            conn.execute("ALTER SYSTEM SET archive_command = 'true'")
            conn.execute("SELECT pg_reload_conf()")
            _wait(conn, lambda s: s[1] > archived, "recover")
            time.sleep(0.5)
            alerts.evaluate(settings)  # counts the retries made before the fix
            found = alerts.evaluate(settings).findings
            assert _worst(found, "archive_failures") == Severity.OK
            [age] = _of(found, "archive_age")
            assert age.severity == Severity.OK and age.value < 60
        finally:
            conn.execute("ALTER SYSTEM RESET archive_command")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("SELECT pg_stat_reset_shared('archiver')")


def test_wal_archived_between_runs_makes_no_new_finding_object(alert_db: str) -> None:
    """A finding's check and object are its series in Prometheus (the rules' ``for:`` runs
    on it) and its key for notifications: a WAL file name there made a new one every run."""
    settings = _settings(alert_db)
    keys = []
    with psycopg.connect(alert_db, autocommit=True) as conn:
        try:
            conn.execute("ALTER SYSTEM SET archive_command = 'true'")
            conn.execute("SELECT pg_reload_conf()")
            for n in range(2):
                _, archived = _archiver(conn)
                conn.execute(f"CREATE TEMP TABLE wal_{n} AS SELECT 1 AS x")
                conn.execute("SELECT pg_switch_wal()")
                _wait(conn, lambda s, a=archived: s[1] > a, "archive")  # type: ignore[misc]
                found = _run(settings)
                keys.append({(f.check, f.object) for f in found if f.check.startswith("archive")})
        finally:
            conn.execute("ALTER SYSTEM RESET archive_command")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("SELECT pg_stat_reset_shared('archiver')")
    assert ("archive_age", None) in keys[0] and keys[0] == keys[1], keys


def test_backup_freshness_against_the_schedule(alert_db: str) -> None:
    from powrops.backup import repos
    from powrops.backup.catalog import Catalog
    from powrops.backup.model import BackupRecord

    settings = _settings(alert_db)
    [none] = _of(_run(settings), "backup_freshness")
    assert none.severity == Severity.CRITICAL and "powrops backup full" in (none.advice or "")
    catalog = Catalog(repos.primary(settings))
    now = datetime.now(UTC)

    def add(label: str, kind: str, age: timedelta) -> None:
        when = now - age
        catalog.write(BackupRecord(label=label, kind=kind, status="ok",  # type: ignore[arg-type]
                                   start_time=when, stop_time=when))  # fmt: skip

    add("20260101T000000F", "full", timedelta(days=3))  # schedule: full daily
    found = _of(_run(settings), "backup_freshness")
    assert {f.object: f.severity for f in found} == {
        "full": Severity.CRITICAL, "incremental": Severity.WARNING}  # fmt: skip
    add("20260102T000000F", "full", timedelta(hours=30))
    assert _worst(_run(settings), "backup_freshness", "full") == Severity.WARNING
    add("20260103T000000F", "full", timedelta(minutes=5))
    assert _worst(_run(settings), "backup_freshness") == Severity.OK


def test_statement_time_per_interval_leaves_powrops_roles_out(alert_db: str) -> None:
    settings = _settings(alert_db)
    with psycopg.connect(alert_db, autocommit=True) as conn:
        alerts.evaluate(settings)  # the baseline
        conn.execute("SET ROLE powr_owner")
        conn.execute("SELECT pg_sleep(1.2)")  # a slow statement of powrops' maintenance role
        conn.execute("RESET ROLE")
        assert _worst(alerts.evaluate(settings).findings, "query_time") == Severity.OK
        conn.execute("SELECT pg_sleep(1.1)")  # an application statement
    [slow] = _of(alerts.evaluate(settings).findings, "query_time")
    assert slow.severity == Severity.WARNING and "pg_sleep" in slow.details["query"]
    assert "since the previous run" in slow.message and 1.1 <= slow.value < 2
    # the next interval has no new slow call: quiet again (the cumulative mean is still slow)
    [quiet] = _of(alerts.evaluate(settings).findings, "query_time")
    assert quiet.severity == Severity.OK


# --- notifications with state ----------------------------------------------------------------


#: checks that this session's cluster cannot satisfy (no backups, no archive_command)
UNSET_UP = "backup_freshness,archive_age,archive_ready,archive_failures"


def test_notify_once_per_change_and_once_on_recovery(
    alert_db: str, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    settings = validate({
        "database": {"url": alert_db},
        "state": {"dir": scratch_dir("powrops-notify-")},
        "notify": {"channels": [{"kind": "webhook", "url": url}]},
        "alerts": {"skip": UNSET_UP, "idle_in_transaction": {"warning": "1s", "critical": "3s"},
                   "long_transaction": {"warning": "1h", "critical": "2h"}},
    })  # fmt: skip
    alerts.evaluate(settings, send=True)
    assert received == []  # nothing wrong, nothing sent
    app = psycopg.connect(alert_db)
    try:
        app.execute("SELECT 1")
        pid = app.info.backend_pid
        time.sleep(1.2)
        first = alerts.evaluate(settings, send=True)
        assert first.notified == 1 and len(received) == 1
        assert received[0]["severity"] == "WARNING" and received[0]["kind"] == "alerts"
        assert received[0]["details"]["object"] == f"pid {pid}"
        second = alerts.evaluate(settings, send=True)  # still WARNING: quiet
        assert second.notified == 0 and len(received) == 1
        time.sleep(2.0)
        alerts.evaluate(settings, send=True)  # WARNING -> CRITICAL is a change
        assert len(received) == 2 and received[1]["severity"] == "CRITICAL"
        assert received[1]["message"].startswith("CRITICAL (was WARNING)")
    finally:
        app.close()
    alerts.evaluate(settings, send=True)
    assert len(received) == 3 and received[2]["details"]["resolved"] is True
    assert received[2]["message"].startswith(f"resolved: idle_in_transaction pid {pid}")
    alerts.evaluate(settings, send=True)
    assert len(received) == 3
    with psycopg.connect(alert_db) as conn:
        row = conn.execute("SELECT state FROM ops.alert_state WHERE name = 'notify'").fetchone()
    assert row is not None and row[0] == {"findings": {}}


def test_alert_state_falls_back_to_the_state_directory(alert_db: str) -> None:
    from powrops.alerts import state as alert_state

    settings = _settings(alert_db)
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        assert alert_state.save(conn, settings, "probe", {"n": 1}) == "state directory"
        assert (settings.state_dir / "alerts" / "probe.json").exists()
        assert alert_state.load(conn, settings, "probe") == {"n": 1}
        conn.execute("SET default_transaction_read_only = off")
        assert alert_state.save(conn, settings, "probe", {"n": 2}) == "database"
        assert alert_state.load(conn, settings, "probe") == {"n": 2}


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the jobs' OS user needs root")
def test_alert_state_in_a_state_directory_this_user_may_not_enter(alert_db: str) -> None:
    """The jobs' OS user (cron's) running alerts where root made the state directory 0700:
    no baseline to read or keep there, said by the run's history finding, never a crash."""
    from powrops.alerts import state as alert_state

    settings = _settings(alert_db)
    settings.make_state_dir("alerts")
    (settings.state_dir / "alerts" / "unentered.json").write_text('{"n": 1}')
    jobs = ensure_os_user(settings.postgres.os_user)
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        os.seteuid(jobs.uid)
        try:
            loaded = alert_state.load(conn, settings, "unentered")
            saved = alert_state.save(conn, settings, "unentered", {"n": 2})
        finally:
            os.seteuid(0)
    assert loaded == {} and saved.startswith("nowhere: Permission denied"), saved


def test_table_and_index_bloat_estimated_from_statistics(alert_db: str) -> None:
    settings = _settings(alert_db, table_bloat={"warning": "1MB", "critical": "1GB"},
                         index_bloat={"warning": "256kB", "critical": "1GB"})  # fmt: skip
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.alert_bloat (id int, v text) "
                     "WITH (autovacuum_enabled = off)")  # fmt: skip
        conn.execute("CREATE INDEX alert_bloat_id ON public.alert_bloat (id)")
        try:
            conn.execute("INSERT INTO public.alert_bloat "
                         "SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")  # fmt: skip
            conn.execute("VACUUM ANALYZE public.alert_bloat")
            fresh = _run(settings)
            assert not _of(fresh, "table_bloat", "public.alert_bloat")
            assert not _of(fresh, "index_bloat", "public.alert_bloat_id")
            # four rows in five go, spread over every page: VACUUM cannot truncate them away
            conn.execute("DELETE FROM public.alert_bloat WHERE id % 5 <> 0")
            conn.execute("VACUUM ANALYZE public.alert_bloat")
            bloated = _run(settings)
            [bloat] = _of(bloated, "table_bloat", "public.alert_bloat")
            [index] = _of(bloated, "index_bloat", "public.alert_bloat_id")
            assert index.severity == Severity.WARNING and index.details["percent"] > 60
            assert "REINDEX INDEX CONCURRENTLY public.alert_bloat_id" in (index.advice or "")
            assert bloat.severity == Severity.WARNING and bloat.details["percent"] > 60
            assert bloat.value > 2 << 20 and "VACUUM FULL public.alert_bloat" in (
                bloat.advice or ""
            )
            conn.execute("VACUUM FULL public.alert_bloat")  # rebuilds its indexes too
            conn.execute("ANALYZE public.alert_bloat")
            rebuilt = _run(settings)
            assert not _of(rebuilt, "table_bloat", "public.alert_bloat")
            assert not _of(rebuilt, "index_bloat", "public.alert_bloat_id")
        finally:
            conn.execute("DROP TABLE public.alert_bloat")


#: Rows the statistics counted as inserted into a table (flushed by its writer).
INSERTED_SQL = "SELECT pg_stat_get_tuples_inserted(%s::regclass)"


def _inserted(conn: psycopg.Connection[Any], table: str) -> int:
    for _ in range(50):  # the writer flushes its statistics when it goes idle
        row = conn.execute(INSERTED_SQL, (table,)).fetchone()
        if row and row[0]:
            return int(row[0])
        time.sleep(0.1)
    return 0


def test_a_loaded_table_no_statistics_counted_yet_is_sized(alert_db: str) -> None:
    """relpages is 0 until VACUUM or ANALYZE counts a table: a bulk-loaded table with
    autovacuum off is over table_size, its index over index_size, its dead tuples judged,
    and the database size holds it, before anything analyzes it; while an ACCESS EXCLUSIVE
    lock is held on it, the run does not wait to measure it."""
    settings = validate({"database": {"url": alert_db},
                         "state": {"dir": scratch_dir("powrops-alerts-server-")},
                         "maintenance": {"alerts": {"table_size": "64kB",
                                                    "index_size": "64kB"}}})  # fmt: skip
    name = "public.alert_uncounted"
    before = alerts.evaluate(settings, record=False).figures["total_bytes"]
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v text) "
                     "WITH (autovacuum_enabled = off)")  # fmt: skip
        try:
            conn.execute(f"INSERT INTO {name} "
                         "SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g")  # fmt: skip
            conn.execute(f"DELETE FROM {name} WHERE id % 4 = 0")
            conn.execute("SELECT pg_stat_force_next_flush()")
            with psycopg.connect(alert_db, autocommit=True) as other:
                assert _inserted(other, name) == 20000
            row = conn.execute("SELECT relpages, pg_relation_size(oid) FROM pg_class "
                               "WHERE oid = %s::regclass", (name,)).fetchone()  # fmt: skip
            assert row is not None and row[0] == 0 and row[1] > 2 << 20, row  # never counted
            report = alerts.evaluate(settings, record=False)
            [table] = _of(report.findings, "table_size", name)
            assert table.severity == Severity.WARNING and table.value == row[1]
            [index] = _of(report.findings, "index_size", name + "_pkey")
            assert index.severity == Severity.WARNING and index.value > 256 << 10
            [dead] = _of(report.findings, "dead_tuples", name)
            assert dead.severity == Severity.CRITICAL, dead
            assert report.figures["total_bytes"] >= before + row[1]
            with psycopg.connect(alert_db) as locker:  # a TRUNCATE and reload, say
                locker.execute("SET idle_in_transaction_session_timeout = '10s'")
                locker.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                locked = alerts.evaluate(settings, record=False)
                assert time.monotonic() - started < 5, "waited behind the lock"
                locker.rollback()
            assert not _of(locked.findings, "table_size", name)  # measured on a later run
        finally:
            conn.execute(f"DROP TABLE {name}")


def test_rebuild_gives_back_the_space_of_a_bloated_table(alert_db: str) -> None:
    from powrops import maintenance
    from powrops.growth import gather

    settings = _settings(alert_db)
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.alert_rebuild (id int, v text) "
                     "WITH (autovacuum_enabled = off)")  # fmt: skip
        conn.execute("INSERT INTO public.alert_rebuild "
                     "SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")  # fmt: skip
        conn.execute("DELETE FROM public.alert_rebuild WHERE id % 5 <> 0")
        conn.execute("VACUUM ANALYZE public.alert_rebuild")
    try:
        before = gather.space_breakdown(settings)
        assert {"this database", "pg_wal", "temporary files"} <= {r["where"] for r in before}
        dry = maintenance.run(settings, "rebuild", dry_run=True)
        [target] = [t for t in dry.targets if t.qualified == "public.alert_rebuild"]
        assert "ACCESS EXCLUSIVE" in target.reason and target.after_bytes is None
        done = maintenance.run(settings, "rebuild")
        [target] = [t for t in done.targets if t.qualified == "public.alert_rebuild"]
        assert target.error is None and target.reclaimed > 2 << 20
        freed = gather.space_freed(before, gather.space_breakdown(settings))
        [database] = [r for r in freed if r["where"] == "this database"]
        assert database["freed"] not in ("-", "0 B") and not database["freed"].startswith("-")
        again = maintenance.run(settings, "rebuild", dry_run=True)
        assert "public.alert_rebuild" not in [t.qualified for t in again.targets]
    finally:
        with psycopg.connect(alert_db, autocommit=True) as conn:
            conn.execute("DROP TABLE public.alert_rebuild")


def test_performance_runbook_reads_chains_rules_and_statistics(alert_db: str) -> None:
    from powrops.growth import gather

    pages = {"pagination": {"default_limit": 2, "max_limit": 5}}
    settings = validate({"database": {"url": alert_db}, "query": pages,
                         "state": {"dir": scratch_dir("powrops-perf-")}})  # fmt: skip
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.alert_pages (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO public.alert_pages SELECT g, 'v' FROM generate_series(1, 50) g")
        conn.execute("SELECT * FROM public.alert_pages ORDER BY id LIMIT 3 OFFSET 30")
        conn.execute("SELECT * FROM public.alert_pages ORDER BY id DESC LIMIT 40")
        conn.execute("SELECT * FROM public.alert_pages WHERE id > 10 ORDER BY id LIMIT 4")
    try:
        rules = {r["query"]: r["rule broken"] for r in gather.query_rule_rows(settings)}
        offset = [q for q in rules if "OFFSET" in q and "alert_pages" in q]
        big = [q for q in rules if "DESC LIMIT" in q and "alert_pages" in q]
        assert offset and "OFFSET pagination" in rules[offset[0]]
        assert big and "over query.pagination.max_limit 5" in rules[big[0]]
        assert not [q for q in rules if "id > $1" in q]  # keyset, within the limit: fine
        ages = gather.statistics_age(settings)
        assert ages[0]["last analyze"] is None  # never analyzed first
        holder = psycopg.connect(alert_db)
        holder.execute("LOCK TABLE public.alert_pages IN EXCLUSIVE MODE")
        waiter = psycopg.connect(alert_db, autocommit=True)
        thread = threading.Thread(
            target=lambda: waiter.execute("INSERT INTO public.alert_pages VALUES (100, 'w')")
        )
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not (chains := gather.blocking_chains(settings)):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            [chain] = chains
            assert chain["waiting_pid"] == waiter.info.backend_pid
            assert chain["blocking_pid"] == holder.info.backend_pid
            assert chain["blocking_state"] == "idle in transaction"
        finally:
            holder.rollback()
            thread.join(10)
            holder.close()
            waiter.close()
        assert gather.blocking_chains(settings) == []
    finally:
        with psycopg.connect(alert_db, autocommit=True) as conn:
            conn.execute("DROP TABLE public.alert_pages")


def test_disk_space_runbook_rebuilds_when_confirmed_and_measures_the_space(
    alert_db: str, tmp_path: Any
) -> None:
    from powrops.reports.runner import run_report

    repo = Path(__file__).resolve().parents[1]
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.alert_runbook (id int, v text) "
                     "WITH (autovacuum_enabled = off)")  # fmt: skip
        conn.execute("INSERT INTO public.alert_runbook "
                     "SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")  # fmt: skip
        conn.execute("DELETE FROM public.alert_runbook WHERE id % 5 <> 0")
        conn.execute("VACUUM ANALYZE public.alert_runbook")
        size = "SELECT pg_total_relation_size('public.alert_runbook')"
        before = conn.execute(size).fetchone()[0]  # type: ignore[index]
    try:
        env = {"POWROPS_DATABASE_URL": alert_db, "POWROPS_STATE_DIR": str(tmp_path / "state")}
        run = run_report("disk_space_response", {"confirm_rebuild": True},
                         reports_dir=tmp_path / "r", root=repo, timeout=300, env=env)  # fmt: skip
        assert run.result["failed"] is False, run.result["error"]
        html = (run.path / "report.html").read_text()
        assert "Space before and after" in html and "public.alert_runbook" in html
        with psycopg.connect(alert_db) as conn:
            after = conn.execute(size).fetchone()[0]  # type: ignore[index]
        assert after < before / 2
    finally:
        with psycopg.connect(alert_db, autocommit=True) as conn:
            conn.execute("DROP TABLE public.alert_runbook")


@pytest.fixture
def select_only(alert_db: str) -> Iterator[str]:
    """A login role with CONNECT on the database and SELECT on its tables, nothing more (no
    pg_monitor, no INSERT on powrops' history): its libpq URL."""
    role = "t_ro_" + uuid.uuid4().hex[:8]
    parts = psycopg.conninfo.conninfo_to_dict(alert_db)
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'select-only'")
        conn.execute(f'GRANT CONNECT ON DATABASE "{parts["dbname"]}" TO {role}')
        conn.execute(f"GRANT USAGE ON SCHEMA ops TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public, ops TO {role}")
    yield (f"postgresql://{role}:select-only@{parts['host']}:{parts['port']}/{parts['dbname']}")
    with psycopg.connect(alert_db, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_a_select_only_role_gets_every_check_it_can_read(select_only: str) -> None:
    """Each check on its own: what the role may not read is UNKNOWN naming the GRANT, the
    rest is evaluated, the exit is 3, and the text says the run was not recorded."""
    from cli_helpers import run_cli

    settings = _settings(select_only)
    config = settings.state_dir / "powrops.toml"
    config.write_text(
        to_toml(
            {
                "database": {"url": select_only},
                "state": {"dir": str(settings.state_dir)},
                "alerts": {"skip": ["backup_freshness", "failed_backups"]},
            }
        )
    )
    result = run_cli("-c", str(config), "alerts")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr, result.stderr
    rows = {
        line.split()[1]: line.split()[0]
        for line in result.stdout.splitlines()[1:]
        if line.split() and line.split()[0] in Severity.__members__
    }
    for check in ("dead_tuples", "query_time", "wraparound", "table_size", "table_bloat"):
        assert rows.get(check) == "OK", (check, result.stdout)
    role = psycopg.conninfo.conninfo_to_dict(select_only)["user"]
    report = json.loads(run_cli("-c", str(config), "alerts", "--json", "--no-record").stdout)
    denied = {f["check"]: f for f in report["findings"] if f["severity"] == "UNKNOWN"}
    for check in ("wal_size", "archive_ready", "connections", "running_query", "blocked"):
        assert check in denied, (check, result.stdout)
        assert denied[check]["advice"].startswith(f'GRANT pg_monitor TO "{role}"'), denied[check]
    assert "pg_ls_waldir" in denied["wal_size"]["message"]
    assert "pg_read_all_stats" in denied["connections"]["message"]
    assert "run not recorded" in result.stdout and "check_runs" in result.stdout
    integrity = run_cli("-c", str(config), "check", "integrity")
    assert "Traceback" not in integrity.stderr, integrity.stderr
    assert "run not recorded in ops.check_runs" in integrity.stdout, integrity.stdout


def test_a_pg_monitor_role_without_ops_gets_every_server_check(alert_db: str) -> None:
    """A monitoring login (pg_monitor, no grant on powrops' ops schema, whose name alone
    PostgreSQL then refuses to look up): the server's checks are evaluated, what ops holds
    (the growth forecast, drills) is UNKNOWN naming the grant, not the whole run refused."""
    from cli_helpers import login_role, run_cli

    with login_role(alert_db, "t_mon") as url:
        role = psycopg.conninfo.conninfo_to_dict(url)["user"]
        with psycopg.connect(alert_db, autocommit=True) as conn:
            conn.execute(f"GRANT pg_monitor TO {role}")
        settings = _settings(url)
        config = settings.state_dir / "powrops.toml"
        config.write_text(to_toml({"database": {"url": url},
                                   "state": {"dir": str(settings.state_dir)}}))  # fmt: skip
        result = run_cli("-c", str(config), "alerts", "--json", "--no-record")
        recorded = json.loads(run_cli("-c", str(config), "alerts", "--json").stdout)
    assert "error" not in result.stderr, result.stderr
    [history] = [f for f in recorded["findings"] if f["check"] == "history"]
    assert history["message"].endswith("permission denied for schema ops"), history  # one line
    report = json.loads(result.stdout)
    found = {f["check"]: f for f in report["findings"]}
    for check in ("connections", "wal_size", "archive_ready", "wraparound", "disk_usage"):
        assert found[check]["severity"] != "UNKNOWN", found[check]
    forecast = found["disk_forecast"]
    assert forecast["severity"] == "UNKNOWN", forecast
    assert forecast["advice"].startswith(f'GRANT USAGE ON SCHEMA ops TO "{role}"'), forecast
    evidence = report["figures"]["recoverability"]  # the drills unread: said so, none made up
    assert evidence["evidence_read"] is False and evidence["drill_at"] is None, evidence
    assert any(p.startswith("drills unreadable") for p in evidence["problems"]), evidence


# --- round trips -----------------------------------------------------------------------------

#: Statements run in this database since the reset, but the reset and this count.
STATEMENTS_RUN_SQL = """
SELECT /* counting */ coalesce(sum(calls), 0)::int FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements_reset%' AND query NOT LIKE '%counting%'
"""


def _statements_of_a_run(url: str, settings: Settings) -> tuple[int, list[Finding]]:
    """The statements one unrecorded evaluation ran (pg_stat_statements), and its findings."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        findings = alerts.evaluate(settings, record=False).findings
        row = conn.execute(STATEMENTS_RUN_SQL).fetchone()
    assert row is not None
    return int(row[0]), findings


def _verdicts(findings: list[Finding]) -> list[tuple[str, str, str | None]]:
    return sorted((f.check, f.severity.name, f.object) for f in findings)


def test_more_parts_than_one_statement_takes_are_read_in_several(alert_db: str) -> None:
    """json_build_object takes 100 arguments: past MAX_PARTS parts, one more statement."""
    parts = {f"p{n}": reads.Part(f"SELECT {n} AS n") for n in range(reads.MAX_PARTS + 7)}
    with psycopg.connect(alert_db, autocommit=True) as conn:
        read = reads.read_parts(conn, parts)
    assert read == {f"p{n}": [{"n": n}] for n in range(reads.MAX_PARTS + 7)}


def test_the_checks_read_the_server_in_two_statements(
    alert_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One statement asks what the role may read, one reads what every check judges; the
    checks read alone (as a restricted role's refused parts still are) cost a statement or
    more each, and judge alike."""
    settings = _settings(alert_db)
    count, findings = _statements_of_a_run(alert_db, settings)
    assert count == 2, f"{count} statements for one evaluation: a round trip per check again?"
    monkeypatch.setattr(reads, "read_all", lambda *args, **kwargs: {})
    alone, alone_findings = _statements_of_a_run(alert_db, settings)
    checks = {f.check for f in findings}
    assert alone > len(checks) > 20, (alone, len(checks))
    assert _verdicts(alone_findings) == _verdicts(findings)
