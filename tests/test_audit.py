"""The audit trail installed by the migration: row triggers, DDL event triggers, queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq, run_cli
from powrops import audit, migrate
from powrops.config import AuditEvents

pytestmark = pytest.mark.pg


def _conn(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(libpq(url), autocommit=True)


def _log(conn: psycopg.Connection[Any], action: str | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT actor, action, table_name, row_id, old_value, new_value, details FROM audit_log "
        "WHERE %s::text IS NULL OR action = %s ORDER BY id",
        (action, action),
    ).fetchall()


def _user(conn: psycopg.Connection[Any], email: str = "a@example.org") -> int:
    row = conn.execute(
        "INSERT INTO users (email, display_name) VALUES (%s, 'A') RETURNING id", (email,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_update_and_delete_record_old_and_new_values(migrated_db: str) -> None:
    with _conn(migrated_db) as conn:
        uid = _user(conn)
        workout = conn.execute(
            "INSERT INTO workouts (user_id, date, total_volume) VALUES (%s, current_date, 10) "
            "RETURNING id",
            (uid,),
        ).fetchone()[0]  # type: ignore[index]
        with conn.transaction():
            audit.set_actor(conn, "dba:42")
            conn.execute("UPDATE workouts SET total_volume = 20 WHERE id = %s", (workout,))
        conn.execute("DELETE FROM workouts WHERE id = %s", (workout,))
        rows = _log(conn)
    assert [(r[1], r[2]) for r in rows] == [
        ("INSERT", "users"),
        ("INSERT", "workouts"),
        ("UPDATE", "workouts"),
        ("DELETE", "workouts"),
    ]
    actor, _, _, row_id, old, new, _ = rows[2]
    assert actor == "dba:42" and row_id == str(workout)
    assert (old["total_volume"], new["total_volume"]) == (10, 20)
    deleted = rows[3]
    assert deleted[0] == "postgres"  # no actor set: the database role
    assert deleted[4]["total_volume"] == 20 and deleted[5] is None


def test_suppressed_transactions_and_noop_updates_are_not_recorded(migrated_db: str) -> None:
    with _conn(migrated_db) as conn:
        with conn.transaction():
            audit.suppress_row_audit(conn)
            uid = _user(conn)
        conn.execute("UPDATE users SET display_name = display_name WHERE id = %s", (uid,))
        assert _log(conn) == []
        conn.execute("UPDATE users SET display_name = 'B' WHERE id = %s", (uid,))
        assert [r[1] for r in _log(conn)] == ["UPDATE"]


def test_user_totals_rows_are_identified_by_user_id(migrated_db: str) -> None:
    with _conn(migrated_db) as conn:
        uid = _user(conn)
        conn.execute("INSERT INTO user_totals (user_id) VALUES (%s)", (uid,))
        assert _log(conn)[-1][2:4] == ("user_totals", str(uid))


def test_event_trigger_records_alter_table(migrated_db: str) -> None:
    with _conn(migrated_db) as conn:
        conn.execute("ALTER TABLE workouts DROP CONSTRAINT workouts_user_id_fkey")
        conn.execute("CREATE TEMP TABLE scratch (id int)")  # temporary objects are not recorded
        conn.execute("CREATE TABLE later (id int)")
        conn.execute("DROP TABLE later")
        rows = _log(conn, "DDL")
        since = datetime.now(UTC) - timedelta(minutes=5)
        listed = audit.system_changes(conn, since)
    assert [(r[2], r[6]["command_tag"], r[6]["object_type"]) for r in rows] == [
        ("workouts", "ALTER TABLE", "table constraint"),  # sql_drop: what was dropped
        ("workouts", "ALTER TABLE", "table"),  # ddl_command_end: the command
        ("later", "CREATE TABLE", "table"),
        ("later", "DROP TABLE", "table"),
    ]
    assert rows[0][3] == "workouts_user_id_fkey on public.workouts"
    assert rows[1][3] == "public.workouts" and rows[3][3] == "public.later"
    assert all(r[0] == "postgres" for r in rows)
    assert [c["command"] for c in listed][-2:] == ["ALTER TABLE", "ALTER TABLE"]


def test_status_and_apply_config_turn_event_classes_off_and_on(migrated_db: str) -> None:
    with _conn(migrated_db) as conn:
        trail = audit.status(conn)
        assert trail.missing() == []
        assert set(trail.row_triggers.values()) == {"enabled"}
        off = AuditEvents(data_modification=False, system_changes=False)
        done = audit.apply_config(conn, off)
        assert len(done) == len(audit.AUDITED_TABLES) + len(audit.EVENT_TRIGGERS)
        state = audit.status(conn)
        assert set(state.row_triggers.values()) == {"disabled"}
        assert set(state.event_triggers.values()) == {"disabled"}
        # the configuration change itself is a system change, recorded until it takes effect
        assert {(r[1], r[6]["command_tag"]) for r in _log(conn)} == {("DDL", "ALTER TABLE")}
        recorded = len(_log(conn))
        _user(conn)
        conn.execute("CREATE TABLE unseen (id int)")
        assert len(_log(conn)) == recorded
        audit.apply_config(conn, AuditEvents())
        _user(conn, "b@example.org")
        conn.execute("CREATE TABLE seen (id int)")
        assert [(r[1], r[2]) for r in _log(conn)[recorded:]] == [
            ("INSERT", "users"),
            ("DDL", "seen"),
        ]
        no_access = AuditEvents(access_patterns=False)
        assert audit.access_patterns(conn, no_access) == {"statements": [], "roles": []}


def test_integrity_reports_a_missing_audit_trail(migrated_db: str) -> None:
    from powrops import integrity
    from powrops.config import validate

    with _conn(migrated_db) as conn:
        conn.execute("DROP EVENT TRIGGER powrops_audit_drop")
        conn.execute("ALTER TABLE users DISABLE TRIGGER powrops_audit_row")
    settings = validate({"database": {"url": libpq(migrated_db)}})
    result = integrity.run(settings, store=False, full=True).result("audit_trail")
    assert result.count == 2 and result.severity.name == "WARNING"
    assert "powrops_audit_drop" in result.message and "users is disabled" in result.message


def test_row_history_and_changes_by_table(migrated_db: str) -> None:
    with _conn(migrated_db) as conn:
        uid = _user(conn)
        conn.execute(
            "UPDATE users SET display_name = 'C', last_active_at = now() WHERE id = %s", (uid,)
        )
        history = audit.row_history(conn, "users", uid)
        assert [h["action"] for h in history] == ["INSERT", "UPDATE"]
        assert history[1]["columns"] == "display_name, last_active_at"
        assert "old" not in history[1]  # values only on request
        assert audit.row_history(conn, "users", uid, values=True)[1]["new"]["display_name"] == "C"
        since = datetime.now(UTC) - timedelta(minutes=5)
        changes = audit.changes_by_table(conn, since)
        assert [(c["table"], c["action"], c["changes"]) for c in changes] == [
            ("users", "INSERT", 1),
            ("users", "UPDATE", 1),
        ]
        patterns = audit.access_patterns(conn, AuditEvents())
        assert any(r["role"] == "postgres" and r["connections"] >= 1 for r in patterns["roles"])
        assert isinstance(patterns["statements"], list)


def test_downgrade_removes_the_audit_trail(migrated_db: str) -> None:
    migrate.downgrade(migrated_db, "20240322090000")
    with _conn(migrated_db) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname = 'powrops_audit_row'), "
            "(SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'powrops%%'), "
            "(SELECT count(*) FROM pg_proc WHERE proname LIKE 'powrops_audit%%'), "
            "to_regclass('ops.quarantine')"
        ).fetchone()
    assert left == (0, 0, 0, None)
    migrate.upgrade(migrated_db)


def test_migration_skips_event_triggers_for_a_non_superuser(fresh_db: str) -> None:
    import uuid

    role = "mig_" + uuid.uuid4().hex[:8]
    with _conn(fresh_db) as conn:
        migrate.upgrade(fresh_db, "20240322090000")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
        dbname = fresh_db.rsplit("/", 1)[1]
        conn.execute(f'ALTER DATABASE "{dbname}" OWNER TO {role}')
        conn.execute(f"GRANT ALL ON SCHEMA public, ops TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public, ops TO {role}")
        for table in (
            "users",
            "exercises",
            "workouts",
            "workout_sets",
            "user_totals",
            "consents",
            "audit_log",
        ):
            conn.execute(f"ALTER TABLE {table} OWNER TO {role}")
        # the migrating role owns what later revisions alter
        for table in ("alembic_version", "check_runs", "events", "metric_snapshots"):
            conn.execute(f"ALTER TABLE ops.{table} OWNER TO {role}")
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(fresh_db)
    url = urlunsplit(parts._replace(netloc=f"{role}:pw@{parts.hostname}:{parts.port}"))
    migrate.upgrade(url)
    with _conn(fresh_db) as conn:
        trail = audit.status(conn)
        conn.execute(f"REASSIGN OWNED BY {role} TO postgres")
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
    assert set(trail.row_triggers.values()) == {"enabled"}
    assert trail.missing() == list(audit.EVENT_TRIGGERS)


DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


@pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed")
def test_audit_trail_and_integrity_on_postgresql_15(pg_tmp: Path) -> None:
    from powrops import integrity
    from powrops.config import validate
    from powrops.demo.data import generate, load, planted_defects
    from powrops.pg.binaries import find_binaries
    from powrops.pg.cluster import LocalCluster

    cluster = LocalCluster(pg_tmp / "pg15", binaries=find_binaries(bin_dir=str(DEBIAN_15)))
    cluster.start()
    try:
        url = cluster.url()
        migrate.upgrade(url)
        load(url, generate(users=10, weeks=4, seed=2, defects=True))
        with _conn(url) as conn:
            assert conn.info.server_version // 10000 == 15
            uid = _user(conn)
            conn.execute("UPDATE users SET display_name = 'Z' WHERE id = %s", (uid,))
            conn.execute("ALTER TABLE users ADD COLUMN nickname text")
            actions = [(r[1], r[2]) for r in _log(conn)]
        assert actions == [("INSERT", "users"), ("UPDATE", "users"), ("DDL", "users")]
        report = integrity.run(validate({"database": {"url": libpq(url)}}), store=False, full=True)
        counts = report.counts()
        expected = {integrity.DEFECT_CHECKS[k]: n for k, n in planted_defects(url).items()}
        assert {k: v for k, v in counts.items() if v} == expected
        assert report.result("amcheck").count == 0
    finally:
        cluster.destroy()


def _cli(url: str, *args: str, **env: str) -> Any:
    import json

    proc = run_cli("audit", *args, env={"POWROPS_DATABASE_URL": libpq(url), **env})
    return proc.returncode, (json.loads(proc.stdout) if "--json" in args else proc.stdout), proc


def test_audit_command_line(migrated_db: str) -> None:
    with _conn(migrated_db) as conn:
        uid = _user(conn, "cli@example.org")
        conn.execute("UPDATE users SET display_name = 'D' WHERE id = %s", (uid,))
    code, status, _ = _cli(migrated_db, "status", "--json")
    assert code == 0 and set(status["row_triggers"].values()) == {"enabled"}
    code, changes, _ = _cli(migrated_db, "changes", "--json")
    assert code == 0
    assert [(c["table"], c["action"], c["changes"]) for c in changes["changes"]] == [
        ("users", "INSERT", 1),
        ("users", "UPDATE", 1),
    ]
    code, history, proc = _cli(migrated_db, "history", "users", str(uid))
    assert code == 0 and "UPDATE display_name" in history
    assert "cli@example.org" not in proc.stdout  # columns, never values
    off = {"POWROPS__AUDIT__EVENTS__DATA_MODIFICATION": "false"}
    code, applied, _ = _cli(migrated_db, "apply", "--json", **off)
    assert code == 0 and applied["missing"] == []
    disabled = [s for s in applied["statements"] if "DISABLE TRIGGER" in s]
    assert len(disabled) == len(audit.AUDITED_TABLES)
    with _conn(migrated_db) as conn:
        assert set(audit.status(conn).row_triggers.values()) == {"disabled"}
    for days in ("0", "100000000"):  # the second is no date at all: it was a crash
        code, _, proc = _cli(migrated_db, "changes", "--days", days)
        assert code == 3 and "--days must be between 0 and 3660 days" in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr


def test_metadata_config_leaves_out_what_is_turned_off(migrated_db: str) -> None:
    from powrops.config import AuditMetadata

    with _conn(migrated_db) as conn:
        done = audit.apply_config(
            conn, AuditEvents(), AuditMetadata(user_id=False, old_value=False)
        )
        assert any("CREATE OR REPLACE TRIGGER" in s and "'new_value'" in s for s in done)
        assert set(audit.status(conn).row_triggers.values()) == {"enabled"}
        uid = _user(conn)
        conn.execute("UPDATE users SET display_name = 'E' WHERE id = %s", (uid,))
        update = _log(conn, "UPDATE")[0]
        assert update[0] is None and update[4] is None  # no actor, no old value
        assert update[5]["display_name"] == "E" and update[3] == str(uid)
        audit.apply_config(conn, AuditEvents(), AuditMetadata())
        conn.execute("UPDATE users SET display_name = 'F' WHERE id = %s", (uid,))
        again = _log(conn, "UPDATE")[-1]
        assert again[0] == "postgres" and again[4]["display_name"] == "E"
