"""Retention policies at their boundaries: rows just inside and just past every period.

Every planted row sits one hour either side of its policy's cutoff; exactly the ones past it
are erased, anonymized, archived or deleted, and a dry run changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import run_cli, write_config
from powrops.config import Settings
from powrops.errors import ConfigError
from powrops.retention import run
from powrops.retention.archival import run_archival
from powrops.retention.repository import open_archive
from readable import machine_values
from test_archival import make_settings, sql

pytestmark = pytest.mark.pg

INSIDE, PAST = "+ interval '1 hour'", "- interval '1 hour'"
USERS = {
    # id: (last_active_at, deleted_at)
    1: ("now()", "NULL"),
    2: ("now()", f"now() - interval '30 days' {INSIDE}"),
    3: ("now()", f"now() - interval '30 days' {PAST}"),
    4: (f"now() - interval '730 days' {INSIDE}", "NULL"),
    5: (f"now() - interval '730 days' {PAST}", "NULL"),
    6: (f"now() - interval '365 days' {INSIDE}", "NULL"),
    7: (f"now() - interval '365 days' {PAST}", "NULL"),
    8: ("now()", "NULL"),
    9: ("now()", "NULL"),
}
#: user 1's extra workouts: name -> (deleted_at, archived_at)
WORKOUTS = {
    "deleted-inside": (f"now() - interval '90 days' {INSIDE}", "NULL"),
    "deleted-past": (f"now() - interval '90 days' {PAST}", "NULL"),
    "archived-inside": ("NULL", f"now() - interval '1825 days' {INSIDE}"),
    "archived-past": ("NULL", f"now() - interval '1825 days' {PAST}"),
}
LOGS = {"security": 365, "performance": 90, "debug": 7}


def _workout(settings: Settings, user: int, notes: str, deleted: str, archived: str) -> int:
    wid = sql(
        settings,
        f"INSERT INTO workouts (user_id, date, notes, deleted_at, archived_at) "
        f"VALUES (%s, current_date - 400, %s, {deleted}, {archived}) RETURNING id",
        (user, notes),
    )[0][0]
    sql(
        settings,
        "INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps) "
        "SELECT %s, e.id, n, 100 + n, 5 FROM exercises e, generate_series(1, 2) n "
        "WHERE e.name = 'Squat'",
        (wid,),
    )
    return int(wid)


def plant(settings: Settings) -> None:
    sql(settings, "INSERT INTO exercises (name) VALUES ('Squat')")
    for uid, (active, deleted) in USERS.items():
        sql(
            settings,
            f"INSERT INTO users (id, email, display_name, created_at, last_active_at, "
            f"deleted_at) VALUES (%s, %s, %s, now() - interval '3000 days', {active}, {deleted})",
            (uid, f"u{uid}@example.invalid", f"Lifter {uid}"),
        )
        _workout(settings, uid, "base", "NULL", "NULL")
    for name, (deleted, archived) in WORKOUTS.items():
        _workout(settings, 1, name, deleted, archived)
    sql(
        settings,
        "INSERT INTO user_totals (user_id, workout_count, total_volume) "
        "SELECT w.user_id, count(DISTINCT w.id), sum(s.weight * s.reps) FROM workouts w "
        "JOIN workout_sets s ON s.workout_id = w.id WHERE w.deleted_at IS NULL "
        "GROUP BY w.user_id",
    )
    for category, days in LOGS.items():
        for where, edge in (("inside", INSIDE), ("past", PAST)):
            sql(
                settings,
                f"INSERT INTO system_logs (category, logged_at, message) VALUES "
                f"(%s, now() - interval '{days} days' {edge}, %s)",
                (category, where),
            )


@pytest.fixture
def planted(migrated_db: str, tmp_path: Path) -> Settings:
    settings = make_settings(migrated_db, tmp_path, cleanup={"batch_size": 1})
    plant(settings)
    for uid, age in ((8, PAST), (9, INSIDE)):  # archive files indexed 5 years ago, +-1 h
        run_archival(settings, dry_run=False, user_id=uid)
        sql(
            settings,
            f"UPDATE ops.archive_index SET created_at = now() - interval '1825 days' "
            f"{age} WHERE user_id = %s",
            (uid,),
        )
    return settings


def _fingerprint(settings: Settings) -> list[Any]:
    tables = (
        "users",
        "workouts",
        "workout_sets",
        "user_totals",
        "system_logs",
        "ops.archive_index",
    )
    return [
        sql(settings, f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {t} t")
        for t in tables
    ]


EXPECTED_DUE = {
    "user_account.active": 0,
    "user_account.deleted": 1,  # user 3
    "user_account.inactive": 1,  # user 5
    "workout_data.active": 0,
    "workout_data.deleted": 1,  # deleted-past
    "workout_data.archived": 1 + 3,  # archived-past, and user 8's file (1 workout + 2 sets)
    "archival": 3 * 3,  # users 4, 5, 7: a workout and two sets each
    "system_logs.security": 1,
    "system_logs.performance": 1,
    "system_logs.debug": 1,
}


def test_plan_counts_exactly_the_rows_past_each_boundary(planted: Settings) -> None:
    before = _fingerprint(planted)
    result = run.plan(planted)
    assert {p.policy: p.due for p in result.plans()} == EXPECTED_DUE
    assert all(p.why for p in result.plans())
    dry = run.apply(planted, dry_run=True)
    assert {p.policy: p.due for p in dry.plans()} == EXPECTED_DUE
    assert _fingerprint(planted) == before
    event = sql(planted, "SELECT details FROM ops.events WHERE kind = 'retention'")
    assert len(event) == 1 and event[0][0]["dry_run"] is True


def test_apply_acts_on_exactly_the_due_rows(planted: Settings) -> None:
    key8 = sql(planted, "SELECT details->>'key' FROM ops.archive_index WHERE user_id = 8")[0][0]
    totals1 = sql(planted, "SELECT workout_count, total_volume FROM user_totals WHERE user_id = 1")
    result = run.apply(planted, dry_run=False)
    assert result.errors == []
    assert {r[0] for r in sql(planted, "SELECT id FROM users")} == set(USERS) - {3}
    emails = dict(sql(planted, "SELECT id, email FROM users"))
    assert emails[5] == "user-5@anonymized.invalid" and emails[4] == "u4@example.invalid"
    assert sql(planted, "SELECT display_name FROM users WHERE id = 5") == [(None,)]
    live = {r[0] for r in sql(planted, "SELECT DISTINCT user_id FROM workouts")}
    assert live == {1, 2, 6}  # 4, 5, 7 archived; 3 erased; 8, 9 archived before
    archived = {r[0] for r in sql(planted, "SELECT user_id FROM ops.archive_index")}
    assert archived == {4, 5, 7, 9}
    notes = {r[0] for r in sql(planted, "SELECT notes FROM workouts WHERE user_id = 1")}
    assert notes == {"base", "deleted-inside", "archived-inside"}
    assert not open_archive(planted).exists(key8)
    after = sql(planted, "SELECT workout_count, total_volume FROM user_totals WHERE user_id = 1")
    assert after[0][0] == totals1[0][0] - 1 and after[0][1] == totals1[0][1] - (101 + 102) * 5
    logs = sql(planted, "SELECT category, message FROM system_logs")
    assert sorted(logs) == sorted((c, "inside") for c in LOGS)
    assert {p.policy: p.due for p in run.plan(planted).plans()} == dict.fromkeys(EXPECTED_DUE, 0)
    done = {o.plan.policy: o.done for o in result.outcomes}
    assert done["system_logs.debug"] == {"rows deleted": 1}
    assert done["archival"]["rows archived"] == 9 and done["user_account.inactive"] == {
        "users anonymized": 1
    }
    record = sql(planted, "SELECT details FROM audit_log WHERE action = 'RETENTION'")
    assert len(record) == 1 and "@" not in json.dumps(record[0][0])
    assert sql(planted, "SELECT count(*) FROM audit_log WHERE action = 'DELETE'") == [(0,)]


def test_active_data_is_never_given_a_limit(migrated_db: str, tmp_path: Path) -> None:
    settings = make_settings(
        migrated_db, tmp_path, retention={"user_account": {"active": "10 years"}}
    )
    with pytest.raises(ConfigError, match=r"user_account\.active"):
        run.plan(settings)


def test_cli_plan_and_dry_run(planted: Settings, tmp_path: Path) -> None:
    env = {"POWROPS_CONFIG": str(write_config(tmp_path / "powrops.toml", planted))}

    before = _fingerprint(planted)
    plan = run_cli("retention", "plan", "--json", env=env)
    assert plan.returncode == 0, plan.stderr
    assert {p["policy"]: p["due"] for p in json.loads(plan.stdout)} == EXPECTED_DUE
    dry = run_cli("retention", "apply", "--dry-run", env=env)
    assert dry.returncode == 0 and "nothing changed" in dry.stdout
    said = run_cli("retention", "plan", env=env)
    assert said.returncode == 0 and " UTC " in said.stdout, said.stdout
    assert machine_values(said.stdout + dry.stdout) == [], said.stdout + dry.stdout
    assert _fingerprint(planted) == before
    bad = run_cli("retention", "frobnicate", env=env)
    assert bad.returncode == 3
    for out in (plan, dry):
        assert "@" not in out.stdout


@pytest.fixture(scope="module")
def seeded_site() -> Any:
    from backup_site import Site

    site = Site.create()
    site.seed(users=10, weeks=4, seed=3)
    yield site
    site.destroy()


def _html(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text()


def test_retention_report_runs_and_changes_nothing(seeded_site: Any) -> None:
    from powrops.reports.html import external_resources
    from powrops.reports.runner import run_report
    from test_notebooks import REPO

    site = seeded_site
    assert site.cli("cleanup").returncode == 0
    before = _fingerprint(site.settings)
    env = {"POWROPS_CONFIG": str(site.config)}
    report = run_report("retention_report", {}, reports_dir=site.root / "r", root=REPO, env=env)
    assert report.result["failed"] is False, report.result["error"]
    assert _fingerprint(site.settings) == before
    figures = report.result["figures"]
    assert figures["rows_due"] > 0 and figures["archive_files"] == 0
    html = _html(report.path)
    assert "user_account.inactive" in html and "cleanup" in html and "analytics" in html
    assert "History due for cleanup" in html and "alert_runs" in html
    assert "@example.invalid" not in html and external_resources(html) == []
    findings = {f["check"]: f["severity"] for f in report.result["findings"]}
    assert findings["cleanup.last_run"] == "OK" and findings["retention.last_run"] == "WARNING"


def test_gdpr_runbook_about_no_one_stops_before_asking(seeded_site: Any) -> None:
    """A user id of whom nothing is held (a typo, or a user already erased) stops the runbook
    at the counts with one line naming user_id, before the confirmation: it never asks to
    export or erase no one, even confirmed by the parameter."""
    from powrops.reports.runner import run_report
    from test_notebooks import REPO

    site = seeded_site
    before = _fingerprint(site.settings)
    env = {"POWROPS_CONFIG": str(site.config)}
    run = run_report(
        "gdpr_request", {"user_id": "99999", "action": "erase", "confirm": "True"},
        reports_dir=site.root / "r", root=REPO, env=env,
    )  # fmt: skip
    assert run.exit_code == 3 and run.result["failed"] is True
    said = run.result["error"]["evalue"]
    assert said.startswith("user 99999: nothing held, no rows and no archive files") and (
        "check user_id in the parameters cell" in said
    )
    notebook = (run.path / "notebook.ipynb").read_text()
    assert "Traceback" not in notebook and "Confirmed" not in notebook
    assert _fingerprint(site.settings) == before


def test_gdpr_runbook_defaults_change_nothing_then_export(seeded_site: Any) -> None:
    from powrops.reports.runner import run_report
    from test_notebooks import REPO

    site = seeded_site
    before = _fingerprint(site.settings)
    env = {"POWROPS_CONFIG": str(site.config)}
    nobody = run_report("gdpr_request", {}, reports_dir=site.root / "r", root=REPO, env=env)
    assert nobody.exit_code == 3  # no default subject: user 1 is never erased by a typo
    assert "user_id is not set" in json.dumps(nobody.result["error"])
    dry = run_report(
        "gdpr_request", {"user_id": "2"}, reports_dir=site.root / "r", root=REPO, env=env
    )
    assert dry.result["failed"] is False, dry.result["error"]
    assert _fingerprint(site.settings) == before
    assert "nothing done" in _html(dry.path) and "workout_sets" in _html(dry.path)
    private = site.root / "private-export-dir"
    run = run_report(
        "gdpr_request",
        {"user_id": "2", "confirm": "True", "export_path": "env:GDPR_OUT"},
        reports_dir=site.root / "r",
        root=REPO,
        env={**env, "GDPR_OUT": str(private)},
    )
    assert run.result["failed"] is False, run.result["error"]
    manifest = json.loads((private / "manifest.json").read_text())
    assert manifest["user_id"] == 2
    for name in ("report.html", "notebook.ipynb", "result.json"):
        text = (run.path / name).read_text()
        assert str(private) not in text and "@example.invalid" not in text
    bad = run_report(
        "gdpr_request", {"action": "delete"}, reports_dir=site.root / "r", root=REPO, env=env
    )
    assert bad.result["failed"] is True and "action must be" in json.dumps(bad.result["error"])
