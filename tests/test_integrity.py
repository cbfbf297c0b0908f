"""Integrity checks and repairs against a real server, with defects planted to see each found."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq, run_cli
from powrops import integrity, migrate
from powrops.cli.main import build_parser
from powrops.config import Settings, validate
from powrops.demo.data import generate, load, planted_defects
from powrops.findings import Severity
from powrops.integrity import DEFECT_CHECKS
from powrops.pg.cluster import LocalCluster
from powrops.reports.runner import run_report
from powrops.schedule.jobs import jobs

pytestmark = pytest.mark.pg

REPO = Path(__file__).resolve().parents[1]
REPAIRABLE = ("workout_total_volume", "user_totals")


def _settings(url: str, **extra: Any) -> Settings:
    return validate({"database": {"url": libpq(url)}, **extra})


def _sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _seeded(cluster: LocalCluster, defects: bool) -> str:
    import uuid

    name = "i_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = cluster.url(name)
    migrate.upgrade(url)
    load(url, generate(users=10, weeks=4, seed=5, defects=defects))
    return url


def _drop(cluster: LocalCluster, url: str) -> None:
    with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture(scope="module")
def defects_db(pg_cluster: LocalCluster) -> Iterator[str]:
    """Seeded with planted defects; read-only tests only."""
    url = _seeded(pg_cluster, defects=True)
    yield url
    _drop(pg_cluster, url)


@pytest.fixture
def fresh_defects_db(pg_cluster: LocalCluster) -> Iterator[str]:
    """Seeded with planted defects, for one test that changes it."""
    url = _seeded(pg_cluster, defects=True)
    yield url
    _drop(pg_cluster, url)


@pytest.fixture
def clean_db(pg_cluster: LocalCluster) -> Iterator[str]:
    url = _seeded(pg_cluster, defects=False)
    yield url
    _drop(pg_cluster, url)


def _planted_ids(url: str) -> dict[str, set[str]]:
    rows = _sql(url, "SELECT kind, sample_ids FROM ops.planted_defects")
    return {kind: {str(i) for i in ids} for kind, ids in rows}


# -- checks ---------------------------------------------------------------------------------


def test_seeded_defects_are_reported_with_exactly_the_planted_counts(defects_db: str) -> None:
    planted = planted_defects(defects_db)
    assert planted and all(planted.values())
    report = integrity.run(_settings(defects_db), store=False, full=True)
    counts = report.counts()
    expected = {DEFECT_CHECKS[kind]: n for kind, n in planted.items()}
    for name, count in counts.items():
        assert count == expected.get(name, 0), (name, count)
    ids = _planted_ids(defects_db)
    for kind, name in DEFECT_CHECKS.items():
        result = report.result(name)
        assert result.sample_ids and set(result.sample_ids) <= ids[kind], name
        assert result.severity == Severity.WARNING
    assert report.status == Severity.WARNING and report.exit_code == 1


def test_every_relationship_and_rule_has_a_check(defects_db: str) -> None:
    report = integrity.run(_settings(defects_db), store=False, full=True)
    names = set(report.counts())
    assert {r.name for r in integrity.relationships()} <= names
    assert {"orphan_workout_sets", "orphan_workouts", "orphan_workout_sets_exercises"} <= names
    assert {
        "weight_range",
        "weight_required",
        "reps_range",
        "reps_required",
        "date_range",
        "date_required",
        "amcheck",
        "checksum_failures",
        "data_checksums",
        "audit_trail",
    } <= names
    assert report.result("amcheck").details["relations_checked"] > 20
    assert report.result("data_checksums").count == 0  # PostgreSQL 18 initdb: checksums on


def test_configured_rules_change_what_is_counted(defects_db: str) -> None:
    strict = _settings(
        defects_db,
        validation={
            "workout": {"reps": {"type": "integer", "min": 1, "max": 5, "required": False}}
        },
    )
    report = integrity.run(strict, store=False, full=True)
    counts = report.counts()
    assert "reps_required" not in counts
    assert counts["reps_range"] > planted_defects(defects_db)["reps_out_of_range"]


def test_run_is_stored_for_trends(fresh_defects_db: str) -> None:
    settings = _settings(fresh_defects_db)
    report = integrity.run(settings, full=True)
    assert report.run_id is not None
    row = _sql(
        fresh_defects_db,
        "SELECT kind, status, counts, jsonb_array_length(findings), finished_at IS NOT NULL "
        "FROM ops.check_runs WHERE id = %s",
        (report.run_id,),
    )[0]
    # every result, and the watermark the next incremental run starts from
    assert [n.check for n in report.notes] == ["watermark"]
    assert row == ("integrity", "WARNING", report.counts(), len(report.results) + 1, True)
    runs = integrity.history(settings)
    assert [r["run_id"] for r in runs] == [report.run_id]
    assert runs[0]["failed_checks"] == len(planted_defects(fresh_defects_db))


def test_clean_data_is_ok(clean_db: str) -> None:
    report = integrity.run(_settings(clean_db), store=False, full=True)
    assert report.status == Severity.OK, [r.message for r in report.problems()]
    assert all(count == 0 for count in report.counts().values())


def test_defects_planted_with_raw_sql_are_found(clean_db: str) -> None:
    workout = _sql(clean_db, "SELECT min(id) FROM workouts WHERE total_volume > 0")[0][0]
    orphan_set = _sql(
        clean_db,
        "BEGIN; SET LOCAL session_replication_role = replica; "
        "INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps) "
        "VALUES (987654, 1, 1, 50, 5) RETURNING id; COMMIT;",
    )
    _sql(clean_db, "ALTER TABLE workouts DROP CONSTRAINT workouts_user_id_fkey")
    orphan_workout = _sql(
        clean_db, "INSERT INTO workouts (user_id, date) VALUES (888888, current_date) RETURNING id"
    )[0][0]
    _sql(clean_db, "ALTER TABLE consents DROP CONSTRAINT consents_user_id_fkey")
    orphan_consent = _sql(
        clean_db,
        "INSERT INTO consents (user_id, purpose, granted) VALUES (777777, 'x', true) RETURNING id",
    )[0][0]
    _sql(
        clean_db,
        "ALTER TABLE consents ADD CONSTRAINT consents_user_id_fkey FOREIGN KEY "
        "(user_id) REFERENCES users (id) NOT VALID",
    )
    _sql(clean_db, "UPDATE workouts SET total_volume = total_volume + 1 WHERE id = %s", (workout,))
    del orphan_set
    report = integrity.run(_settings(clean_db), store=False, full=True)
    found = {name: n for name, n in report.counts().items() if n}
    assert found == {
        "orphan_workout_sets": 1,
        "orphan_workouts": 1,
        "orphan_consents": 1,
        "workout_total_volume": 1,
    }
    assert report.result("orphan_workouts").sample_ids == (str(orphan_workout),)
    assert report.result("orphan_consents").sample_ids == (str(orphan_consent),)
    assert report.result("workout_total_volume").sample_ids == (str(workout),)


# -- repair ---------------------------------------------------------------------------------

SNAPSHOT_TABLES = (
    "users",
    "exercises",
    "workouts",
    "workout_sets",
    "user_totals",
    "consents",
    "audit_log",
    "ops.quarantine",
    "ops.repairs",
    "ops.check_runs",
)


def _contents(url: str) -> dict[str, tuple[Any, ...]]:
    return {
        t: _sql(url, f"SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x")[
            0
        ]
        for t in SNAPSHOT_TABLES
    }


def _orphan_workout_sets(url: str) -> int:
    return int(
        _sql(
            url,
            "SELECT count(*) FROM workout_sets s WHERE s.workout_id IN "
            "(SELECT w.id FROM workouts w WHERE NOT EXISTS "
            "(SELECT 1 FROM users u WHERE u.id = w.user_id))",
        )[0][0]
    )


def test_dry_run_changes_nothing_and_says_what_it_would_do(defects_db: str) -> None:
    planted = planted_defects(defects_db)
    before = _contents(defects_db)
    outcome = integrity.check(_settings(defects_db), repair=True, dry_run=True)
    assert _contents(defects_db) == before
    assert outcome.before.run_id is None and outcome.after is None
    rows = {r.kind: r.rows for r in outcome.repair.results} if outcome.repair else {}
    assert rows == {
        "quarantine_orphans": {
            "workouts": planted["orphan_workouts"],
            "workout_sets": planted["orphan_sets"] + _orphan_workout_sets(defects_db),
        },
        "workout_total_volume": {"workouts": planted["wrong_total_volume"]},
        "user_totals": {"user_totals": planted["wrong_user_totals"]},
    }


def test_a_repair_above_max_rows_stops_and_changes_nothing(fresh_defects_db: str) -> None:
    url = fresh_defects_db
    before = _sql(url, "SELECT (SELECT count(*) FROM workouts), (SELECT count(*) FROM "
                       "workout_sets), (SELECT count(*) FROM ops.quarantine)")  # fmt: skip
    settings = _settings(url, consistency={"repair": {"max_rows": 1}})
    outcome = integrity.check(settings, repair=True)
    assert outcome.repair is not None and outcome.repair.failed
    stopped = [r for r in outcome.repair.results if r.error]
    assert stopped and all("consistency.repair.max_rows = 1" in r.error for r in stopped)
    assert all(r.total > 1 for r in stopped)  # it says how many rows it would have changed
    assert outcome.exit_code == 2
    after = _sql(url, "SELECT (SELECT count(*) FROM workouts), (SELECT count(*) FROM "
                      "workout_sets), (SELECT count(*) FROM ops.quarantine)")  # fmt: skip
    assert after == before
    assert _sql(url, "SELECT count(*) FROM ops.repairs") == [(0,)]


def test_repair_fixes_what_it_claims_with_audit_rows(fresh_defects_db: str) -> None:
    url = fresh_defects_db
    planted = planted_defects(url)
    dependent_sets = _orphan_workout_sets(url)
    settings = _settings(url)
    outcome = integrity.check(settings, repair=True)
    assert outcome.repair is not None and not outcome.repair.failed
    run_id = outcome.before.run_id
    assert run_id is not None and outcome.repair.run_id == run_id
    after = outcome.after
    assert after is not None
    for name in ("orphan_workouts", "orphan_workout_sets", *REPAIRABLE):
        assert outcome.before.counts()[name] > 0 and after.counts()[name] == 0, name
    for kind in ("weight_out_of_range", "reps_missing", "date_out_of_range"):
        assert after.counts()[DEFECT_CHECKS[kind]] == planted[kind]  # not repairable
    # the values are right, not just different
    assert (
        _sql(
            url,
            "SELECT count(*) FROM workouts w WHERE total_volume IS DISTINCT FROM "
            "(SELECT COALESCE(sum(weight * reps), 0) FROM workout_sets s "
            "WHERE s.workout_id = w.id) AND total_volume IS NOT NULL",
        )[0][0]
        == 0
    )
    total = outcome.repair.total
    assert total == (
        planted["orphan_workouts"]
        + planted["orphan_sets"]
        + dependent_sets
        + planted["wrong_total_volume"]
        + planted["wrong_user_totals"]
    )
    audit = _sql(
        url,
        "SELECT table_name, count(*), count(old_value), count(new_value) "
        "FROM audit_log WHERE action = 'REPAIR' AND (details ->> 'run_id')::bigint = %s "
        "GROUP BY 1 ORDER BY 1",
        (run_id,),
    )
    assert audit == [
        ("user_totals", 3, 3, 3),
        (
            "workout_sets",
            planted["orphan_sets"] + dependent_sets,
            planted["orphan_sets"] + dependent_sets,
            0,
        ),
        (
            "workouts",
            planted["orphan_workouts"] + planted["wrong_total_volume"],
            planted["orphan_workouts"] + planted["wrong_total_volume"],
            planted["wrong_total_volume"],
        ),
    ]
    changed = _sql(
        url,
        "SELECT count(*) FROM audit_log WHERE action = 'REPAIR' AND "
        "table_name = 'workouts' AND new_value IS NOT NULL AND "
        "old_value ->> 'total_volume' <> new_value ->> 'total_volume'",
    )
    assert changed[0][0] == planted["wrong_total_volume"]
    # nothing but REPAIR rows beside the migrations' own DDL rows
    others = "SELECT count(*) FROM audit_log WHERE action NOT IN ('REPAIR', 'DDL')"
    assert _sql(url, others)[0][0] == 0
    repairs = _sql(url, "SELECT sum(rows) FROM ops.repairs WHERE run_id = %s", (run_id,))
    assert repairs[0][0] == total
    quarantined = {
        r[0]
        for r in _sql(
            url,
            "SELECT row_id FROM ops.quarantine WHERE table_name = 'workout_sets' AND run_id = %s",
            (run_id,),
        )
    }
    assert _planted_ids(url)["orphan_sets"] <= quarantined
    again = integrity.check(settings, repair=True)
    assert again.repair is not None and again.repair.total == 0
    assert all(again.before.counts()[n] == 0 for n in REPAIRABLE)


def test_repair_is_refused_when_auto_fix_is_off(defects_db: str) -> None:
    from powrops.errors import ParameterError

    settings = _settings(defects_db, consistency={"repair": {"auto_fix": False}})
    with pytest.raises(ParameterError, match="auto_fix"):
        integrity.check(settings, repair=True)


# -- command line and notebook ----------------------------------------------------------------


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("check", "integrity", *args, env={"POWROPS_DATABASE_URL": libpq(url)})


def test_cli_exit_codes_and_json(defects_db: str, clean_db: str) -> None:
    ok = _cli(clean_db)
    assert ok.returncode == 0, ok.stderr
    assert "integrity OK" in ok.stdout
    warn = _cli(defects_db, "--json")
    assert warn.returncode == 1, warn.stderr
    data = json.loads(warn.stdout)
    assert data["status"] == "WARNING"
    assert (
        data["before"]["counts"]["orphan_workout_sets"]
        == planted_defects(defects_db)["orphan_sets"]
    )
    assert "@" not in warn.stdout  # no emails
    dry = _cli(defects_db, "--repair", "--dry-run")
    assert dry.returncode == 1 and "would change" in dry.stdout
    bad = _cli(defects_db, "--dry-run")
    assert bad.returncode == 3 and "--dry-run only applies to --repair" in bad.stderr
    gone = _cli("postgresql://powr@127.0.0.1:1/powr")
    assert gone.returncode == 3 and "cannot connect" in gone.stderr


def test_integrity_report_notebook_shows_the_planted_defects(
    defects_db: str, tmp_path: Path
) -> None:
    run = run_report(
        "integrity_report",
        {},
        reports_dir=tmp_path,
        root=REPO,
        timeout=300,
        env={"POWROPS_DATABASE_URL": libpq(defects_db)},
    )
    result = run.result
    assert result["failed"] is False, result["error"]
    assert result["status"] == "WARNING" and run.exit_code == 1
    planted = planted_defects(defects_db)
    values = {f["check"]: f["value"] for f in result["findings"]}
    for kind, n in planted.items():
        assert values[DEFECT_CHECKS[kind]] == n
    assert (
        result["figures"]["orphaned_records"] == planted["orphan_sets"] + planted["orphan_workouts"]
    )
    html = run.html.read_text()
    assert "orphan_workout_sets" in html and "data:image/png;base64," in html  # the trend plot
    assert "integrity.check(settings" not in html  # a scheduled report hides its code
    assert "@example" not in html


def test_corruption_runbook_finds_the_target_and_changes_nothing_by_default(
    clean_db: str, tmp_path: Path
) -> None:
    import time
    from datetime import datetime, timedelta

    user = 7
    # a good workout with its set (and the user's totals), inserted before the bad change
    with psycopg.connect(libpq(clean_db), autocommit=True) as conn, conn.transaction():
        conn.execute(
            "UPDATE user_totals SET workout_count = workout_count + 1, "
            "total_volume = total_volume + 500 WHERE user_id = %s",
            (user,),
        )
        good = conn.execute(
            "WITH w AS (INSERT INTO workouts (user_id, date, total_volume) "
            "VALUES (%s, CURRENT_DATE, 500) RETURNING id) "
            "INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps) "
            "SELECT w.id, 1, 1, 50, 10 FROM w RETURNING workout_id",
            (user,),
        ).fetchall()[0][0]
    time.sleep(0.05)
    with psycopg.connect(libpq(clean_db), autocommit=True) as conn:
        conn.execute("SET powrops.actor = 'app-bug'")
        conn.execute("UPDATE workouts SET total_volume = 0 WHERE user_id = %s", (user,))
    bad_at = _sql(
        clean_db,
        "SELECT DISTINCT occurred_at FROM audit_log WHERE table_name = 'workouts' "
        "AND action = 'UPDATE'",
    )
    assert len(bad_at) == 1
    bad_at = bad_at[0][0]
    history = "SELECT action FROM audit_log WHERE table_name = 'workouts' AND row_id = %s"
    assert _sql(clean_db, history + " ORDER BY id", (str(good),)) == [("INSERT",), ("UPDATE",)]
    before = _contents(clean_db)
    env = {"POWROPS_DATABASE_URL": libpq(clean_db)}
    run = run_report(
        "data_corruption_response", {}, reports_dir=tmp_path, root=REPO, timeout=300, env=env
    )
    assert run.result["failed"] is False, run.result["error"]
    assert _contents(clean_db) == before
    figures = run.result["figures"]
    assert figures["read_only"] is False
    assert datetime.fromisoformat(figures["target_time"]) == bad_at - timedelta(milliseconds=1)
    assert figures["first_bad_change"].startswith("UPDATE on workouts ")
    assert f"by app-bug at {bad_at.isoformat()}" in figures["first_bad_change"]
    assert figures["writes_discarded"] > 1 and figures["users_affected"] == 1
    html = run.html.read_text()
    assert "Failing rows and the change that made each fail" in html and "app-bug" in html
    assert "SET default_transaction_read_only = off; COMMIT;" in html  # the undo command is shown
    # the hand-off opens the restore runbook's working copy, where the restore is confirmed
    assert "run: powrops runbook point_in_time_restore -p target_time " in html
    assert "stop_writes" in html  # a runbook shows its code
    settings = _sql(
        clean_db,
        "SELECT count(*) FROM pg_db_role_setting WHERE setdatabase = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    assert settings == [(0,)]

    confirmed = run_report(
        "data_corruption_response",
        {"confirm": "True"},
        reports_dir=tmp_path,
        root=REPO,
        timeout=300,
        env=env,
    )
    assert confirmed.result["figures"]["read_only"] is True
    assert _sql(clean_db, "SHOW default_transaction_read_only") == [("on",)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _sql(clean_db, "UPDATE workouts SET notes = 'x' WHERE id = %s", (good,))
    events = "SELECT details->>'read_only' FROM ops.events WHERE kind = 'read_only' ORDER BY id"
    assert _sql(clean_db, events) == [("true",)]  # the switch is journaled
    from powrops.integrity.incident import resume_writes, stop_writes

    # a second answer that does not confirm reports the database as it is: read-only
    again = stop_writes(_settings(clean_db), False)
    assert (again["changed"], again["read_only"]) == (False, True)
    resumed = resume_writes(_settings(clean_db), True)
    assert (resumed["changed"], resumed["read_only"]) == (True, False)
    assert _sql(clean_db, "SHOW default_transaction_read_only") == [("off",)]
    assert _sql(clean_db, events) == [("true",), ("false",)]  # and so is its undo


def test_a_repair_that_fails_changes_nothing_and_exits_critical(clean_db: str) -> None:
    workout = _sql(clean_db, "SELECT min(id) FROM workouts WHERE total_volume > 0")[0][0]
    # a volume no numeric(10,2) total can hold: recomputing this workout's total must fail
    _sql(
        clean_db,
        "INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps) "
        "VALUES (%s, 1, 99, 99999, 10000)",
        (workout,),
    )
    before = _sql(clean_db, "SELECT total_volume FROM workouts WHERE id = %s", (workout,))
    result = _cli(clean_db, "--repair", "--json")
    assert result.returncode == 2, result.stderr
    data = json.loads(result.stdout)
    failed = {r["kind"]: r for r in data["repair"]["results"]}
    assert failed["workout_total_volume"]["error"] and failed["workout_total_volume"]["rows"] == {}
    assert failed["user_totals"]["error"] is None and failed["user_totals"]["rows"] == {
        "user_totals": 1
    }
    assert _sql(clean_db, "SELECT total_volume FROM workouts WHERE id = %s", (workout,)) == before
    assert data["after"]["counts"]["workout_total_volume"] == 1
    assert data["after"]["counts"]["user_totals"] == 0


def test_scope_finds_the_first_bad_change_beyond_the_sample_ids(clean_db: str) -> None:
    from datetime import UTC, datetime, timedelta

    from powrops.integrity import incident, restore_point

    since = datetime.now(UTC) - timedelta(hours=1)
    _sql(
        clean_db,
        "BEGIN; SET LOCAL session_replication_role = replica; "
        "UPDATE workout_sets SET weight = -1 WHERE id <= 20; COMMIT;",
    )  # not audited
    last = _sql(clean_db, "SELECT max(id) FROM workout_sets")[0][0]
    _sql(clean_db, "UPDATE workout_sets SET weight = 2000 WHERE id = %s", (last,))
    owner = _sql(clean_db, "SELECT user_id FROM workouts ORDER BY id DESC LIMIT 1")[0][0]
    _sql(clean_db, "ALTER TABLE workouts DROP CONSTRAINT workouts_user_id_fkey")
    _sql(clean_db, "ALTER TABLE user_totals DROP CONSTRAINT user_totals_user_id_fkey")
    _sql(clean_db, "ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey")
    _sql(clean_db, "ALTER TABLE consents DROP CONSTRAINT consents_user_id_fkey")
    _sql(clean_db, "ALTER TABLE exercises DROP CONSTRAINT exercises_user_id_fkey")
    _sql(clean_db, "DELETE FROM users WHERE id = %s", (owner,))
    deleted_at = _sql(
        clean_db,
        "SELECT occurred_at FROM audit_log WHERE table_name = 'users' AND action = 'DELETE'",
    )[0][0]
    settings = _settings(clean_db)
    report = integrity.run(settings, store=False, full=True)
    assert str(last) not in report.result("weight_range").sample_ids
    found = incident.scope(settings, report, since)
    assert {"workouts", "workout_sets"} <= set(found["tables"])
    assert any(c["command"] == "ALTER TABLE" for c in found["system_changes"])
    point = restore_point.derive(settings, report, since)
    first = point.first_bad_change
    assert first is not None
    assert (first.table, first.row_id, first.action) == ("workout_sets", str(last), "UPDATE")
    # 20 rows went bad with the trail silenced: the target would be a guess, so there is none
    weights = next(b for b in point.blames if b.check == "weight_range")
    assert (weights.explained, weights.unexplained) == (1, 20)
    assert point.target is None and incident.recovery_target(point)["target_time"] is None
    # the orphans alone lead to the DELETE of their user
    orphans_only = integrity.IntegrityReport(
        [report.result("orphan_workouts")], report.started_at, report.finished_at
    )
    deleted = restore_point.derive(settings, orphans_only, since)
    assert deleted.first_bad_change is not None
    assert (
        deleted.first_bad_change.table,
        deleted.first_bad_change.action,
        deleted.first_bad_change.row_id,
    ) == ("users", "DELETE", str(owner))
    target = incident.recovery_target(deleted)
    assert datetime.fromisoformat(target["target_time"]) == deleted_at - restore_point.BEFORE
    assert target["parameters"] == {"target_time": target["target_time"], "confirm": False}


def _notebook_parameter(name: str, notebook: Path) -> Any:
    """The value the notebook's ``parameters`` cell gives ``name``."""
    cells = json.loads(notebook.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{notebook.name} has no parameter {name}")


def test_every_entry_point_runs_the_daily_check_alike_unless_told() -> None:
    """``integrity.run`` and ``integrity.check``, ``powrops check integrity``, the integrity
    report's ``full`` parameter and the scheduled jobs (which run the command and the report)
    are incremental unless asked for a full check: one default flipped would make one of them
    read everything every day."""
    args = build_parser(["check", "integrity"]).parse_args(["check", "integrity"])
    defaults = {
        "integrity.run": inspect.signature(integrity.run).parameters["full"].default,
        "integrity.check": inspect.signature(integrity.check).parameters["full"].default,
        "powrops check integrity": args.full,
        "integrity_report": _notebook_parameter("full", REPO / "notebooks/integrity_report.ipynb"),
    }
    assert defaults == dict.fromkeys(defaults, False)
    scheduled = [job.args for job in jobs(Settings()) if "integrity" in " ".join(job.args)]
    assert len(scheduled) == 2 and not any("--full" in a for a in scheduled), scheduled
