"""The restore point of a data corruption, derived from the audit trail on a real server: bad
changes planted after good ones, each found as the change that made its rows fail."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq
from powrops import integrity, migrate
from powrops.config import Settings, validate
from powrops.demo.data import generate, load
from powrops.findings import Severity
from powrops.integrity import restore_point
from powrops.integrity import view as integrity_view
from powrops.pg.cluster import LocalCluster

pytestmark = pytest.mark.pg

USER = 7


def _sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _audited_at(url: str, table: str, row_id: Any, action: str) -> datetime:
    rows = _sql(
        url,
        "SELECT occurred_at FROM audit_log WHERE table_name = %s AND row_id = %s AND action = %s",
        (table, str(row_id), action),
    )
    assert len(rows) == 1, rows
    return rows[0][0]


def _settings(url: str) -> Settings:
    return validate({"database": {"url": libpq(url)}})


@pytest.fixture
def seeded(pg_cluster: LocalCluster) -> Iterator[str]:
    """A migrated database seeded without defects (seeding writes no audit rows)."""
    name = "rp_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**pg_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_cluster.url(name)
    migrate.upgrade(url)
    load(url, generate(users=10, weeks=2, seed=5, defects=False))
    yield url
    with psycopg.connect(**pg_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _derive(url: str) -> restore_point.RestorePoint:
    settings = _settings(url)
    report = integrity.run(settings, store=False, full=True)
    return restore_point.derive(settings, report, datetime.now(UTC) - timedelta(hours=1))


GOOD_WORKOUT = """
WITH w AS (
    INSERT INTO workouts (user_id, date, total_volume) VALUES (%(user)s, CURRENT_DATE, 500)
    RETURNING id
)
INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps)
SELECT w.id, (SELECT min(id) FROM exercises), 1, 50, 10 FROM w RETURNING workout_id
"""


def test_the_target_lies_before_the_bad_update_not_the_earlier_insert(seeded: str) -> None:
    """A good workout inserted, later a bad UPDATE of its user's volumes by app-bug: the UPDATE
    is the first bad change, the target lies between the two, and the cost is the writes since."""
    with psycopg.connect(libpq(seeded), autocommit=True) as conn, conn.transaction():
        conn.execute("UPDATE user_totals SET workout_count = workout_count + 1, "
                     "total_volume = total_volume + 500 WHERE user_id = %s", (USER,))  # fmt: skip
        row = conn.execute(GOOD_WORKOUT, {"user": USER}).fetchone()
    assert row is not None
    workout = row[0]
    inserted = _audited_at(seeded, "workouts", workout, "INSERT")
    time.sleep(0.05)
    with psycopg.connect(libpq(seeded), autocommit=True) as conn:
        conn.execute("SET powrops.actor = 'app-bug'")
        conn.execute("UPDATE workouts SET total_volume = 0 WHERE user_id = %s", (USER,))
    updated = _audited_at(seeded, "workouts", workout, "UPDATE")
    time.sleep(0.05)
    later = {2: None, 10: None, 3: None}  # writes after the bad one, by users 2, 10 and 3
    for user in later:
        _sql(seeded, "UPDATE workouts SET notes = 'later' WHERE id = "
             "(SELECT min(id) FROM workouts WHERE user_id = %s)", (user,))  # fmt: skip

    point = _derive(seeded)
    first = point.first_bad_change
    assert first is not None
    assert (first.action, first.table, first.actor) == ("UPDATE", "workouts", "app-bug")
    assert first.time == updated
    assert point.target is not None and inserted < point.target < updated
    assert point.target == updated - restore_point.BEFORE
    (blame,) = point.blames
    assert blame.check == "workout_total_volume" and blame.unexplained == 0
    bad = _sql(seeded, "SELECT count(*) FROM workouts WHERE user_id = %s AND total_volume = 0 "
               "AND EXISTS (SELECT 1 FROM workout_sets s WHERE s.workout_id = workouts.id "
               "AND s.weight * s.reps > 0)", (USER,))[0][0]  # fmt: skip
    assert blame.explained == bad > 1
    assert all(e.change.actor == "app-bug" for e in blame.evidence)
    owned = {r[0] for r in _sql(seeded, "SELECT id FROM workouts WHERE user_id = %s", (USER,))}
    assert {int(e.row_id) for e in blame.evidence} <= owned
    writes = {w.table: w for w in point.discarded}
    assert set(writes) == {"workouts"}
    changed = _sql(seeded, "SELECT count(*) FROM audit_log WHERE table_name = 'workouts' "
                   "AND action = 'UPDATE' AND actor = 'app-bug'")[0][0]  # fmt: skip
    assert writes["workouts"].updates == changed + len(later)
    assert writes["workouts"].inserts == 0  # the good INSERT is kept
    assert point.users == [2, 3, USER, 10]  # as numbers, not as text
    assert point.status == Severity.OK
    shown = integrity_view.restore_point_rows(point)
    assert any("app-bug" in str(r["value"]) for r in shown)
    evidence = integrity_view.evidence_rows(point)
    assert sum(r["first bad change"] == "yes" for r in evidence) >= 1
    assert point.to_dict()["first_bad_change"]["actor"] == "app-bug"


def test_a_row_born_bad_an_orphan_and_no_guess(seeded: str) -> None:
    """A set inserted with reps 500 is blamed on its INSERT; sets orphaned by deleting their
    workout, and the user totals that delete broke, on the DELETE. The earliest is the first
    bad change. Once a row fails that no recorded change explains, no target is given."""
    workout, owner = _sql(seeded, "SELECT id, user_id FROM workouts WHERE total_volume > 0 "
                          "ORDER BY id LIMIT 1")[0]  # fmt: skip
    with psycopg.connect(libpq(seeded), autocommit=True) as conn, conn.transaction():
        row = conn.execute(
            "INSERT INTO workout_sets (workout_id, exercise_id, set_number, weight, reps) "
            "VALUES (%s, (SELECT min(id) FROM exercises), 99, 10, 500) RETURNING id",
            (workout,),
        ).fetchone()
        conn.execute("UPDATE workouts SET total_volume = total_volume + 5000 WHERE id = %s",
                     (workout,))  # fmt: skip
        conn.execute("UPDATE user_totals SET total_volume = total_volume + 5000 "
                     "WHERE user_id = %s", (owner,))  # fmt: skip
    assert row is not None
    bad_set = row[0]
    inserted = _audited_at(seeded, "workout_sets", bad_set, "INSERT")
    time.sleep(0.05)
    # a later change to the bad row that leaves it failing: it did not make it fail
    _sql(seeded, "UPDATE workout_sets SET set_number = 98 WHERE id = %s", (bad_set,))
    parent, parent_owner = _sql(seeded, "SELECT w.id, w.user_id FROM workouts w WHERE "
                                "w.user_id <> %s AND EXISTS (SELECT 1 FROM workout_sets s "
                                "WHERE s.workout_id = w.id) ORDER BY w.id DESC LIMIT 1",
                                (owner,))[0]  # fmt: skip
    _sql(seeded, "ALTER TABLE workout_sets DROP CONSTRAINT workout_sets_workout_id_fkey")
    _sql(seeded, "DELETE FROM workouts WHERE id = %s", (parent,))
    deleted = _audited_at(seeded, "workouts", parent, "DELETE")

    point = _derive(seeded)
    blames = {b.check: b for b in point.blames}
    assert set(blames) == {"reps_range", "orphan_workout_sets", "user_totals"}
    (born,) = blames["reps_range"].evidence
    assert born.row_id == str(bad_set)
    assert (born.change.action, born.change.time) == ("INSERT", inserted)
    orphans = blames["orphan_workout_sets"]
    assert orphans.explained > 0 and orphans.unexplained == 0
    assert {(e.change.action, e.change.table, e.change.row_id) for e in orphans.evidence} == {
        ("DELETE", "workouts", str(parent))
    }
    (totals,) = blames["user_totals"].evidence
    assert totals.row_id == str(parent_owner)
    assert (totals.change.action, totals.change.time) == ("DELETE", deleted)
    first = point.first_bad_change
    assert first is not None and (first.action, first.table) == ("INSERT", "workout_sets")
    assert point.target == inserted - restore_point.BEFORE

    # a set made bad with the row trigger silenced: nothing recorded explains it
    victim, weight = _sql(seeded, "SELECT id, weight FROM workout_sets ORDER BY id LIMIT 1")[0]
    _sql(seeded, "BEGIN; SET LOCAL session_replication_role = replica; "
         f"UPDATE workout_sets SET weight = 2000 WHERE id = {int(victim)}; COMMIT;")  # fmt: skip
    guessed = _derive(seeded)
    assert guessed.first_bad_change == first  # still the earliest explained change, shown
    assert guessed.target is None and guessed.discarded == [] and guessed.users == []
    assert guessed.status == Severity.WARNING
    assert "weight_range" in guessed.findings[-1].message
    assert "cannot be derived" in integrity_view.restore_point_rows(guessed)[1]["value"]

    # the row trigger switched off on a table the failing rows depend on
    _sql(seeded, "UPDATE workout_sets SET weight = %s WHERE id = %s", (weight, victim))
    assert _derive(seeded).target is not None
    _sql(seeded, "ALTER TABLE workouts DISABLE TRIGGER powrops_audit_row")
    off = _derive(seeded)
    assert off.trail_off == ["workouts"] and off.target is None
    assert "audit trail is off on workouts" in off.findings[-1].message
