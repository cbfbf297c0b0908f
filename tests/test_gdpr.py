"""GDPR export and erasure, and the consent report, against a real PostgreSQL and archive."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import run_cli, write_config
from powrops.config import Settings
from powrops.errors import ParameterError
from powrops.retention import consent, journal
from powrops.retention.archival import run_archival
from powrops.retention.erase import erase_user
from powrops.retention.gdpr import export_user
from powrops.retention.repository import open_archive
from test_archival import make_settings, seed, sql

pytestmark = pytest.mark.pg


def _subject(settings: Settings) -> int:
    """An active user with sessions and consents, some workouts archived, some live."""
    row = sql(
        settings,
        "SELECT u.id FROM users u WHERE u.deleted_at IS NULL "
        "AND EXISTS (SELECT 1 FROM consents c WHERE c.user_id = u.id) "
        "AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id) "
        "AND (SELECT count(*) FROM workouts w WHERE w.user_id = u.id) >= 2 ORDER BY u.id LIMIT 1",
    )
    return int(row[0][0])


@pytest.fixture
def site(migrated_db: str, tmp_path: Path) -> tuple[Settings, int, int]:
    """Seeded data; the subject's older workouts archived; personal data planted around it."""
    seed(migrated_db)
    settings = make_settings(migrated_db, tmp_path)
    uid = _subject(settings)
    other = int(
        sql(
            settings,
            "SELECT min(id) FROM users WHERE id <> %s AND deleted_at IS NULL "
            "AND EXISTS (SELECT 1 FROM workouts WHERE user_id = users.id)",
            (uid,),
        )[0][0]
    )
    run_archival(settings, dry_run=False, user_id=uid)
    sql(
        settings,
        "INSERT INTO workouts (user_id, date, notes) VALUES (%s, current_date, 'new')",
        (uid,),
    )
    email = f"user{uid}@example.invalid"
    exercise = sql(
        settings,
        "INSERT INTO exercises (user_id, name) VALUES (%s, 'Zercher') RETURNING id",
        (uid,),
    )[0][0]
    theirs = sql(settings, "SELECT id FROM workouts WHERE user_id = %s LIMIT 1", (other,))[0][0]
    sql(
        settings,
        "INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps) "
        "VALUES (%s, %s, 9, 50, 5)",
        (theirs, exercise),
    )
    audit = [
        ("INSERT", "users", str(uid), None, {"id": uid, "email": email}),
        ("UPDATE", "users", str(uid), {"email": email}, {"email": "x" + email}),
        ("UPDATE", "sessions", "s1", {"user_id": uid, "ip": "198.51.100.7"}, None),
        (
            "INSERT",
            "users",
            str(other),
            None,
            {"id": other, "email": f"user{other}@example.invalid"},
        ),
    ]
    for action, table, row_id, old, new in audit:
        sql(
            settings,
            "INSERT INTO audit_log (action, table_name, row_id, old_value, new_value) "
            "VALUES (%s, %s, %s, %s, %s)",
            (
                action,
                table,
                row_id,
                json.dumps(old) if old else None,
                json.dumps(new) if new else None,
            ),
        )
    archived_id = _archived_workout_ids(settings, uid)[0]
    sql(
        settings,
        "INSERT INTO audit_log (action, table_name, row_id, old_value) VALUES "
        "('UPDATE', 'workout_sets', '1', %s)",
        (json.dumps({"workout_id": archived_id}),),
    )
    sql(
        settings,
        "INSERT INTO system_logs (category, message) VALUES ('security', %s), ('security', %s)",
        (
            f"login failed for user {uid} from 192.0.2.9",
            f"login failed for user {uid}0 from 192.0.2.8",
        ),
    )
    sql(
        settings,
        "INSERT INTO temp_data (key, payload) VALUES (%s, %s)",
        (f"export:{uid}:abc", json.dumps({"user_id": uid, "email": email})),
    )
    return settings, uid, other


def _archived_workout_ids(settings: Settings, uid: int) -> list[int]:
    from test_archival import read_file

    ids = []
    for (details,) in sql(
        settings, "SELECT details FROM ops.archive_index WHERE user_id = %s", (uid,)
    ):
        _, rows = read_file(open_archive(settings, details["repository"]), details["key"])
        ids += [json.loads(r)["id"] for r in rows["workouts"]]
    return sorted(ids)


def _load(path: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data


def test_export_holds_all_of_the_users_rows_and_no_other(
    site: tuple[Settings, int, int], tmp_path: Path
) -> None:
    import hashlib

    settings, uid, other = site
    target = tmp_path / "private" / "export"
    result = export_user(settings, uid, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    files = sorted(p.name for p in target.iterdir())
    assert all(stat.S_IMODE((target / f).stat().st_mode) == 0o600 for f in files)
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["user_id"] == uid and manifest["generated_at"]
    for name, info in manifest["files"].items():
        data = (target / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"]
        assert len(json.loads(data)) == info["rows"]
    live = {r[0] for r in sql(settings, "SELECT id FROM workouts WHERE user_id = %s", (uid,))}
    archived = set(_archived_workout_ids(settings, uid))
    assert archived and live
    exported = {w["id"] for w in _load(target / "workouts.json")}
    assert exported == live
    assert {w["id"] for w in _load(target / "archived_workouts.json")} == archived
    sets = _load(target / "archived_workout_sets.json") + _load(target / "workout_sets.json")
    assert sets and {s["workout_id"] for s in sets} <= live | archived
    n_sets = sql(
        settings,
        "SELECT count(*) FROM workout_sets s JOIN workouts w ON "
        "w.id = s.workout_id WHERE w.user_id = %s",
        (uid,),
    )[0][0]
    assert len(_load(target / "workout_sets.json")) == n_sets
    for table in ("sessions", "consents", "user_totals"):
        expected = sql(settings, f"SELECT count(*) FROM {table} WHERE user_id = %s", (uid,))[0][0]
        assert len(_load(target / f"{table}.json")) == expected > 0
    assert [u["id"] for u in _load(target / "users.json")] == [uid]
    audit = _load(target / "audit_log.json")
    about = [
        a
        for a in audit
        if a["row_id"] == str(uid)
        or uid in ((a["old_value"] or {}).get("user_id"), (a["new_value"] or {}).get("user_id"))
    ]
    assert len(audit) >= 6 and len(about) >= 4  # planted + the audit triggers' own rows
    assert str(other) not in {a["row_id"] for a in audit if a["table_name"] == "users"}
    assert len(_load(target / "system_logs.json")) >= 1
    everything = "".join((target / f).read_text() for f in files)
    assert f"user{other}@example.invalid" not in everything
    for name in files:
        if name == "manifest.json":
            continue
        for row in _load(target / name):
            assert row.get("user_id", uid) == uid, f"{name} holds another user's row"
    assert result.to_dict()["rows"]["workouts"] == len(live)
    with pytest.raises(ParameterError, match="not empty"):
        export_user(settings, uid, target)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ParameterError, match="not a directory"):
        export_user(settings, uid, tmp_path / "afile")


def _columns(settings: Settings) -> list[tuple[str, str, str]]:
    rows = sql(
        settings,
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema IN ('public', 'ops') AND t.table_type = 'BASE TABLE' "
        "AND c.data_type IN ('text', 'jsonb', 'json', 'character varying')",
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def _grep(settings: Settings, needle: str) -> list[str]:
    """Every text/json column anywhere holding ``needle`` (not followed by a digit)."""
    found = []
    for schema, table, column in _columns(settings):
        n = sql(
            settings,
            f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text ~* %s',
            (re.escape(needle) + "([^0-9]|$)",),
        )[0][0]
        if n:
            found.append(f"{schema}.{table}.{column}")
    return found


def test_erase_leaves_no_personal_data(site: tuple[Settings, int, int]) -> None:
    settings, uid, other = site
    email, name = f"user{uid}@example.invalid", f"Demo Lifter {uid}"
    assert _grep(settings, email) and _grep(settings, name)
    keys = [d["key"] for (d,) in sql(settings, "SELECT details FROM ops.archive_index")]
    others = sql(settings, "SELECT to_jsonb(t)::text FROM workouts t WHERE user_id = %s", (other,))
    plan = erase_user(settings, uid, dry_run=True)
    assert plan.rows["users"] == 1 and plan.archive_files == 1 and plan.rows["audit_log"] >= 6
    assert _grep(settings, email)  # a dry run changes nothing
    result = erase_user(settings, uid)
    assert result.rows == plan.rows | {"archive_index": 1}
    assert _grep(settings, email) == [] and _grep(settings, name) == []
    assert _grep(settings, "192.0.2.9") == [] and _grep(settings, "192.0.2.8") != []
    for table in ("workouts", "sessions", "consents", "user_totals", "exercises"):
        assert sql(settings, f"SELECT count(*) FROM {table} WHERE user_id = %s", (uid,)) == [(0,)]
    assert sql(settings, "SELECT count(*) FROM ops.archive_index WHERE user_id = %s", (uid,)) == [
        (0,)
    ]
    repo = open_archive(settings)
    assert [k for k in keys if repo.exists(k)] == []
    assert not list(repo.list(f"archive/users/{uid}/"))
    assert sql(settings, "SELECT user_id FROM exercises WHERE name = 'Zercher'") == [(None,)]
    assert (
        sql(settings, "SELECT to_jsonb(t)::text FROM workouts t WHERE user_id = %s", (other,))
        == others
    )
    kept = sql(
        settings,
        "SELECT new_value->>'email' FROM audit_log WHERE row_id = %s AND table_name = 'users'",
        (str(other),),
    )
    assert kept == [(f"user{other}@example.invalid",)]
    record = sql(settings, "SELECT details FROM audit_log WHERE action = 'GDPR_ERASE'")
    assert len(record) == 1 and record[0][0]["request_id"] == result.request_id
    text = json.dumps(record[0][0])
    assert "@" not in text and "user_id" not in text and name not in text
    with journal.connect(settings) as conn:
        events = journal.recent_events(conn, ("gdpr",), settings.server)
    assert events[0]["details"]["operation"] == "erase"


def test_consent_report_per_purpose(site: tuple[Settings, int, int]) -> None:
    settings, uid, _ = site
    with journal.connect(settings) as conn:
        before = {t.purpose: t for t in consent.report(conn)}
        expected = sql(
            settings,
            "SELECT purpose, count(*) FILTER (WHERE revoked_at IS NULL), "
            "count(*) FILTER (WHERE revoked_at IS NOT NULL) FROM consents GROUP BY 1",
        )
        assert {p: (t.granted, t.revoked) for p, t in before.items()} == {
            p: (g, r) for p, g, r in expected
        }
        consent.grant(conn, uid, "newsletter", "settings")
        consent.grant(conn, uid, "newsletter", "settings")  # already in force: no new row
        revoked = consent.revoke(conn, uid, "newsletter")
        conn.commit()
        after = {t.purpose: t for t in consent.report(conn)}
    assert revoked == 1 and after["newsletter"].revoked == 1 and after["newsletter"].granted == 0
    with pytest.raises(ParameterError), journal.connect(settings) as conn:
        consent.grant(conn, uid, " ")


def test_cli_erase_needs_yes_and_prints_no_personal_data(
    site: tuple[Settings, int, int], tmp_path: Path
) -> None:
    settings, uid, _ = site
    env = {"POWROPS_CONFIG": str(write_config(tmp_path / "powrops.toml", settings))}

    dry = run_cli("gdpr", "erase", str(uid), env=env)
    assert dry.returncode == 1 and "--yes" in dry.stdout
    assert sql(settings, "SELECT count(*) FROM users WHERE id = %s", (uid,)) == [(1,)]
    export = run_cli("gdpr", "export", str(uid), "--to", str(tmp_path / "exp"), env=env)
    assert export.returncode == 0, export.stderr
    refused = run_cli("gdpr", "export", str(uid), "--to", str(tmp_path / "exp"), env=env)
    assert refused.returncode == 3 and "not empty" in refused.stderr
    done = run_cli("gdpr", "erase", str(uid), "--yes", env=env)
    assert done.returncode == 0 and "request id" in done.stdout, done.stderr
    assert f"erased user {uid}: " in done.stdout and "nothing held" not in done.stdout
    redacted = "SELECT id, details->>'request' FROM audit_log WHERE details ? 'redacted' ORDER BY 1"
    evidence = sql(settings, redacted)
    again = run_cli("gdpr", "erase", str(uid), "--yes", env=env)  # or a typo'd id
    assert again.returncode == 0 and "request id" in again.stdout, again.stderr
    assert evidence and sql(settings, redacted) == evidence  # the first request's, not rewritten
    assert f"user {uid}: nothing held, no rows and no archive files" in again.stdout
    assert "erased user" not in again.stdout
    report = run_cli("gdpr", "consent-report", "--json", env=env)
    assert report.returncode == 0 and {"purpose", "granted"} <= set(json.loads(report.stdout)[0])
    for out in (dry, export, done, report):
        assert "@" not in out.stdout + out.stderr and "Demo Lifter" not in out.stdout
