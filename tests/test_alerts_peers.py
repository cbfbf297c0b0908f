"""The checks pgMonitor and check_postgres page on (``alerts/peer_checks.py``), each planted on
a small cluster of this module's own (``max_prepared_transactions`` > 0, data checksums on):
a sequence near its end, a prepared transaction left open, a setting pending a restart, a
corrupted page read, a disk filling at the planted growth, another cluster under the same
server name."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from cli_helpers import libpq, login_role
from conftest import traversable_dir
from powrops import alerts, migrate
from powrops.alerts import peer_checks
from powrops.alerts import state as alert_state
from powrops.config import Settings, validate
from powrops.findings import Finding, Severity, overall
from powrops.growth.forecast import growth_rate
from powrops.pg.cluster import LocalCluster
from powrops.pg.embedded import cluster_settings
from scratch import scratch_dir

pytestmark = pytest.mark.pg

UNSET_UP = "backup_freshness,archive_age,archive_ready,archive_failures"


@pytest.fixture(scope="module")
def peer_cluster() -> Iterator[LocalCluster]:
    """A small cluster that can prepare transactions (the session cluster cannot)."""
    base = traversable_dir("peers")
    cluster = LocalCluster(base / "state")
    cluster.start({**cluster_settings(Settings()), "max_prepared_transactions": "4",
                   "archive_mode": "off"})  # fmt: skip
    yield cluster
    cluster.destroy()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def peer_db(peer_cluster: LocalCluster) -> str:
    name = "t_peers_" + uuid.uuid4().hex[:8]
    with psycopg.connect(**peer_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = peer_cluster.url(name)
    migrate.upgrade(url, "head")
    return libpq(url)


def _settings(url: str, **alert: Any) -> Settings:
    state = scratch_dir("powrops-alerts-peers-")
    return validate({"database": {"url": url}, "state": {"dir": state},
                     "alerts": {"skip": UNSET_UP, **alert}})  # fmt: skip


def _of(findings: list[Finding], check: str, obj: str | None = None) -> list[Finding]:
    return [f for f in findings if f.check == check and (obj is None or f.object == obj)]


def _worst(findings: list[Finding], check: str, obj: str | None = None) -> Severity:
    return overall(_of(findings, check, obj))


def _run(settings: Settings, record: bool = False, **kw: Any) -> list[Finding]:
    return alerts.evaluate(settings, record=record, **kw).findings


def test_sequence_near_the_end_of_its_range(peer_db: str) -> None:
    settings = _settings(peer_db)
    name = "s_" + uuid.uuid4().hex[:6]
    with psycopg.connect(peer_db, autocommit=True) as conn:
        conn.execute(f"CREATE SEQUENCE public.{name} AS smallint")
        try:
            conn.execute("SELECT setval(%s, 25000)", (f"public.{name}",))  # 76 % of 32766
            [warn] = _of(_run(settings), "sequences", f"public.{name}")
            assert warn.severity == Severity.WARNING and 76 <= warn.value < 77
            assert "AS bigint" in (warn.advice or "")
            conn.execute("SELECT setval(%s, 30000)", (f"public.{name}",))
            assert _worst(_run(settings), "sequences", f"public.{name}") == Severity.CRITICAL
        finally:
            conn.execute(f"DROP SEQUENCE public.{name}")
    assert _worst(_run(settings), "sequences") == Severity.OK


def test_sequences_the_role_may_not_read_are_unknown_not_ok(peer_db: str) -> None:
    """pg_sequences hides the value of a sequence the role may not read: such sequences are
    named UNKNOWN, not counted as fine; powr_readonly (the alerts role's group) reads them,
    those made later too, from the sequence reads revision on."""
    name = "s_" + uuid.uuid4().hex[:6]
    with psycopg.connect(peer_db, autocommit=True) as conn:
        conn.execute(f"CREATE SEQUENCE public.{name} AS smallint")
        conn.execute("SELECT setval(%s, 30000)", (f"public.{name}",))  # 92 % of its range
        try:
            with login_role(peer_db, "t_seq") as blind:
                [unknown] = _of(_run(_settings(blind)), "sequences")
                assert unknown.severity == Severity.UNKNOWN, unknown
                assert f"public.{name}" in unknown.details["sequences"]
                assert f"{len(unknown.details['sequences'])} sequence(s)" in unknown.message
                assert "GRANT SELECT ON ALL SEQUENCES" in (unknown.advice or "")
                role = psycopg.conninfo.conninfo_to_dict(blind)["user"]
                conn.execute(f"GRANT powr_readonly TO {role}")
                seen = _of(_run(_settings(blind)), "sequences")
                assert [f.severity for f in seen] == [Severity.CRITICAL], seen
                assert seen[0].object == f"public.{name}"
        finally:
            conn.execute(f"DROP SEQUENCE public.{name}")


def test_prepared_transaction_left_open(peer_db: str) -> None:
    settings = _settings(peer_db, prepared_transactions={"warning": "1s", "critical": "1h"})
    gid = "powrops-test-" + uuid.uuid4().hex[:6]
    with psycopg.connect(peer_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.peer_2pc (id int)")
        with psycopg.connect(peer_db) as tx:
            tx.execute("INSERT INTO public.peer_2pc VALUES (1)")
            tx.execute(f"PREPARE TRANSACTION '{gid}'")
        try:
            assert not _of(_run(settings), "prepared_transactions", gid)  # under 1 s
            time.sleep(1.2)
            [found] = _of(_run(settings), "prepared_transactions", gid)
            assert found.severity == Severity.WARNING and found.value >= 1.2
            assert f"ROLLBACK PREPARED '{gid}'" in (found.advice or "")
        finally:
            conn.execute(f"ROLLBACK PREPARED '{gid}'")
    assert _worst(_run(settings), "prepared_transactions") == Severity.OK


def _wait_pending(conn: psycopg.Connection[Any], pending: bool) -> None:
    deadline = time.monotonic() + 10
    query = "SELECT pending_restart FROM pg_settings WHERE name = 'max_connections'"
    while conn.execute(query).fetchone() != (pending,):
        assert time.monotonic() < deadline, "the reload did not take effect"
        time.sleep(0.1)


def test_setting_pending_a_restart(peer_db: str) -> None:
    settings = _settings(peer_db)
    with psycopg.connect(peer_db, autocommit=True) as conn:
        assert _worst(_run(settings), "pending_restart") == Severity.OK
        row = conn.execute("SHOW max_connections").fetchone()
        assert row is not None
        conn.execute(f"ALTER SYSTEM SET max_connections = {int(row[0]) + 1}")
        conn.execute("SELECT pg_reload_conf()")
        try:
            _wait_pending(conn, True)
            [found] = _of(_run(settings), "pending_restart", "max_connections")
            assert found.severity == Severity.WARNING and "ALTER SYSTEM RESET" in (
                found.advice or ""
            )
        finally:
            conn.execute("ALTER SYSTEM RESET max_connections")
            conn.execute("SELECT pg_reload_conf()")
        _wait_pending(conn, False)
    assert _worst(_run(settings), "pending_restart") == Severity.OK


def test_checksum_failure_since_the_previous_run(peer_cluster: LocalCluster, peer_db: str) -> None:
    settings = _settings(peer_db)
    with psycopg.connect(peer_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.peer_corrupt AS SELECT g, md5(g::text) FROM "
                     "generate_series(1, 100) g")  # fmt: skip
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_relation_filepath('public.peer_corrupt')").fetchone()
        assert row is not None
        datname = conn.info.dbname
    assert _worst(_run(settings, record=True), "checksum_failures") == Severity.OK  # baseline
    peer_cluster.stop()
    path = peer_cluster.data_dir / str(row[0])
    with path.open("r+b") as page:  # a byte of the first tuple's data, not the page header
        page.seek(8000)
        byte = page.read(1)
        page.seek(8000)
        page.write(bytes([byte[0] ^ 0xFF]))
    peer_cluster.start()
    with (
        psycopg.connect(peer_db, autocommit=True) as conn,
        pytest.raises(psycopg.errors.DataCorrupted),
    ):
        conn.execute("SELECT count(*) FROM public.peer_corrupt")
    [found] = _of(_run(settings, record=True), "checksum_failures", datname)
    assert found.severity == Severity.CRITICAL and found.value == 1
    assert "since the previous run" in found.message
    # seen once, it stays CRITICAL for alerts.change_hold; past it, OK again
    assert _worst(_run(settings), "checksum_failures", datname) == Severity.CRITICAL
    brief = _settings(peer_db, change_hold="1s")
    time.sleep(1.1)
    alerts.evaluate(brief)  # the baseline now includes the failure
    assert _worst(_run(brief), "checksum_failures") == Severity.OK
    with psycopg.connect(peer_db, autocommit=True) as conn:
        conn.execute("DROP TABLE public.peer_corrupt")


def test_disk_full_forecast_from_planted_growth(peer_db: str) -> None:
    settings = _settings(peer_db)
    growth = growth_rate(settings.server)
    with psycopg.connect(peer_db, autocommit=True) as conn:
        disk = alerts.disk_usage(settings, conn)
        assert disk is not None
        free = disk.capacity_bytes - disk.used_bytes
        assert [f.severity for f in _of(_run(settings, growth=growth), "disk_forecast")] == [
            Severity.OK
        ]
        now = datetime.now(UTC)
        # ten daily snapshots growing by a twentieth of the free space a day: full in 20 days
        conn.execute(
            "INSERT INTO ops.metric_snapshots (server, taken_at, metrics) "
            "SELECT %s, %s - make_interval(days => 10 - d), "
            "jsonb_build_object('database', jsonb_build_object('total_bytes', d * %s::bigint)) "
            "FROM generate_series(0, 9) d",
            (settings.server, now, free // 20),
        )
        try:
            [found] = _of(_run(settings, growth=growth), "disk_forecast")
            assert found.severity == Severity.WARNING and 15 < found.value < 25
            assert _of(_run(settings), "disk_forecast") == []  # no forecast handed in
        finally:
            conn.execute("DELETE FROM ops.metric_snapshots WHERE server = %s", (settings.server,))


def test_system_identifier_of_another_cluster_under_the_same_name(
    migrated_db: str, peer_db: str
) -> None:
    """A pg_dump of one cluster's database restored on another carries its alert state: the
    identifier the state names is not the one that answers."""
    first = _settings(libpq(migrated_db))
    assert _worst(_run(first, record=True), "system_identifier") == Severity.OK
    with psycopg.connect(libpq(migrated_db)) as conn:
        state = alert_state.load(conn, first, alerts.STATE_NAME)
    second = _settings(peer_db)
    with psycopg.connect(peer_db, autocommit=True) as conn:
        alert_state.save(conn, second, alerts.STATE_NAME, state)
        ident = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert ident is not None
    [changed] = _of(_run(second, record=True), "system_identifier")
    assert changed.severity == Severity.CRITICAL and changed.object == str(ident[0])
    assert state["peers"]["system_identifier"]["id"] in changed.message
    assert _worst(_run(second, record=True), "system_identifier") == Severity.CRITICAL  # held
    brief = _settings(peer_db, change_hold="1s")
    with psycopg.connect(peer_db, autocommit=True) as conn:
        conn.execute("UPDATE ops.alert_state SET state = %s WHERE name = %s AND server = %s",
                     (Jsonb({**state, "peers": {"system_identifier": {"id": str(ident[0])}}}),
                      alerts.STATE_NAME, second.server))  # fmt: skip
    assert _worst(_run(brief), "system_identifier") == Severity.OK


def test_the_first_run_does_not_say_the_system_identifier_is_as_before() -> None:
    settings = validate({})
    now = datetime.now(UTC)
    [first], kept = peer_checks.identifier_findings("7001", None, settings, now)
    assert first.severity == Severity.OK and "as before" not in first.message, first.message
    assert "no previous run" in first.message and kept == {"id": "7001"}
    [again], _ = peer_checks.identifier_findings("7001", kept, settings, now)
    assert again.message == "system identifier 7001, as before"
