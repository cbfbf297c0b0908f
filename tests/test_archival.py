"""Archival against a real PostgreSQL and real repositories (file:// and moto's S3 endpoint).

No row may ever be in neither place: every workout and set is either live or in an archive file
that reads back with the index's checksum.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq, write_config
from powrops.config import Settings, validate
from powrops.retention.archival import run_archival
from powrops.retention.errors import ArchiveValidationError, RetentionError
from powrops.retention.repository import open_archive
from powrops.retention.unarchive import restore_user
from powrops.storage.base import Repository

pytestmark = pytest.mark.pg

BUCKET = "powrops-archive-test"


def make_settings(url: str, root: Path, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": libpq(url)},
        "state": {"dir": str(root / "state")},
        **overrides,
    }
    return validate(data)


def sql(settings: Settings, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    from powrops.db import target

    with psycopg.connect(target(settings).libpq_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def seed(url: str, users: int = 8, weeks: int = 3, seed_value: int = 5) -> None:
    from powrops.demo.data import generate, load

    load(libpq(url), generate(users=users, weeks=weeks, seed=seed_value))


def live_texts(settings: Settings) -> dict[str, set[str]]:
    """Every workout and set as PostgreSQL renders it (what archive files hold verbatim)."""
    return {
        table: {r[0] for r in sql(settings, f"SELECT to_jsonb(t)::text FROM {table} t")}
        for table in ("workouts", "workout_sets")
    }


def read_file(repo: Repository, key: str) -> tuple[bytes, dict[str, set[str]]]:
    """An archive file's stored bytes and its rows, parsed independently of the library."""
    data = repo.get_bytes(key)
    text = gzip.decompress(data).decode() if key.endswith(".gz") else data.decode()
    lines = text.splitlines()
    assert json.loads(lines[0])["format"] == "powrops-archive/1"
    rows: dict[str, set[str]] = {"workouts": set(), "workout_sets": set()}
    for line in lines[1:]:
        table, row = line.split("\t", 1)
        rows[table].add(row)
    return data, rows


def archived_texts(settings: Settings, *, include_restored: bool = False) -> dict[str, set[str]]:
    """Rows in indexed archive files, each file checked against its index checksum."""
    found: dict[str, set[str]] = {"workouts": set(), "workout_sets": set()}
    entries = sql(settings, "SELECT sha256, details FROM ops.archive_index")
    for sha, details in entries:
        if details.get("restored_at") and not include_restored:
            continue
        repo = open_archive(settings, details["repository"])
        data, rows = read_file(repo, details["key"])
        assert hashlib.sha256(data).hexdigest() == sha
        for table in found:
            assert not found[table] & rows[table]
            found[table] |= rows[table]
    return found


def assert_nothing_lost(settings: Settings, before: dict[str, set[str]]) -> None:
    live, archived = live_texts(settings), archived_texts(settings)
    for table, rows in before.items():
        assert not live[table] & archived[table], f"{table}: rows both live and archived"
        assert live[table] | archived[table] == rows, f"{table}: rows lost or changed"


def due_by_age(settings: Settings) -> set[int]:
    rows = sql(
        settings,
        "SELECT DISTINCT u.id FROM users u JOIN workouts w ON w.user_id = u.id "
        "WHERE u.deleted_at IS NULL AND w.deleted_at IS NULL "
        "AND COALESCE(u.last_active_at, u.created_at) < now() - interval '365 days'",
    )
    return {r[0] for r in rows}


@pytest.fixture
def seeded(migrated_db: str, tmp_path: Path) -> Settings:
    seed(migrated_db)
    return make_settings(migrated_db, tmp_path)


def test_archive_by_age_then_restore_loses_nothing(seeded: Settings) -> None:
    settings = seeded
    before = live_texts(settings)
    totals = sql(settings, "SELECT user_id, workout_count, total_volume FROM user_totals")
    expected = due_by_age(settings)
    assert expected, "the demo data has inactive users with workouts"
    plan = run_archival(settings, dry_run=True)
    assert {c.user_id for c in plan.candidates} == expected and plan.archived == []
    assert live_texts(settings) == before
    result = run_archival(settings, dry_run=False)
    assert {a.user_id for a in result.archived} == expected and result.errors == []
    assert_nothing_lost(settings, before)
    left = sql(
        settings,
        "SELECT count(*) FROM workouts WHERE user_id = ANY(%s) AND deleted_at IS NULL",
        (list(expected),),
    )
    assert left == [(0,)]
    index = sql(settings, "SELECT user_id, rows, date_from <= date_to FROM ops.archive_index")
    assert {r[0] for r in index} == expected and all(r[1] > 0 and r[2] for r in index)
    audit = sql(settings, "SELECT count(*) FROM audit_log WHERE action = 'ARCHIVE'")
    assert audit == [(len(expected),)]
    assert sql(settings, "SELECT count(*) FROM audit_log WHERE action = 'DELETE'") == [(0,)]
    event = sql(settings, "SELECT details FROM ops.events WHERE kind = 'archive' ORDER BY id")
    assert event[-1][0]["archived_users"] == len(expected) and event[-1][0]["rows"] == sum(
        r[1] for r in index
    )
    user = min(expected)
    restored = restore_user(settings, user)
    assert restored.rows["workouts"] > 0
    assert live_texts(settings)["workouts"] >= {
        t for t in before["workouts"] if json.loads(t)["user_id"] == user
    }
    assert_nothing_lost(settings, before)
    now = sql(settings, "SELECT user_id, workout_count, total_volume FROM user_totals")
    assert [r for r in now if r[0] == user] == [r for r in totals if r[0] == user]
    with pytest.raises(RetentionError, match="no archived data"):
        restore_user(settings, user)


def _corrupt(repo: Repository, key: str) -> None:
    """Change one row's weight inside the compressed file (a valid gzip, wrong content)."""
    text = gzip.decompress(repo.get_bytes(key)).decode()
    head, sep, rest = text.partition('"weight": ')
    assert sep, "the file holds sets with a weight"
    repo.put_bytes(key, gzip.compress((head + sep + "9" + rest).encode()))


def test_corrupted_archive_file_stops_the_run_and_deletes_nothing(seeded: Settings) -> None:
    settings = seeded
    before = live_texts(settings)
    with pytest.raises(ArchiveValidationError, match="failed validation"):
        run_archival(settings, dry_run=False, after_write=_corrupt)
    assert live_texts(settings) == before
    assert sql(settings, "SELECT count(*) FROM ops.archive_index") == [(0,)]
    assert sql(settings, "SELECT count(*) FROM audit_log WHERE action = 'ARCHIVE'") == [(0,)]
    event = sql(settings, "SELECT details FROM ops.events WHERE kind = 'archive'")
    assert "failed validation" in event[-1][0]["errors"][0]


def _truncate(repo: Repository, key: str) -> None:
    repo.put_bytes(key, repo.get_bytes(key)[:-40])


def test_truncated_archive_file_stops_the_run(seeded: Settings) -> None:
    before = live_texts(seeded)
    with pytest.raises(ArchiveValidationError):
        run_archival(seeded, dry_run=False, after_write=_truncate)
    assert live_texts(seeded) == before


@pytest.fixture
def config_file(seeded: Settings, tmp_path: Path) -> Path:
    return write_config(tmp_path / "powrops.toml", seeded)


def _cli(config: Path, *args: str, pause: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    env["POWROPS_CONFIG"] = str(config)
    if pause:
        env["POWROPS_ARCHIVE_PAUSE_AT"] = pause
    return subprocess.Popen(
        [sys.executable, "-m", "powrops.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stderr_lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stderr is not None
    yield from proc.stderr


@pytest.mark.parametrize("stage", ["written", "validated", "committed"])
def test_killed_archival_run_leaves_every_row_somewhere(
    seeded: Settings, config_file: Path, stage: str
) -> None:
    before = live_texts(seeded)
    proc = _cli(config_file, "archive", "run", pause=stage)
    try:
        for line in _stderr_lines(proc):
            if f"paused at {stage}" in line:
                break
        else:
            raise AssertionError(f"the run never reached {stage}: exit {proc.wait()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert_nothing_lost(seeded, before)
    indexed = sql(seeded, "SELECT count(*) FROM ops.archive_index")[0][0]
    assert indexed == (1 if stage == "committed" else 0)
    again = _cli(config_file, "archive", "run", "--json")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert_nothing_lost(seeded, before)
    assert live_texts(seeded)["workouts"] < before["workouts"]


@pytest.mark.parametrize("stage", ["written", "validated"])
def test_ctrl_c_before_the_commit_removes_the_unindexed_file(
    seeded: Settings, config_file: Path, stage: str
) -> None:
    before = live_texts(seeded)
    proc = _cli(config_file, "archive", "run", pause=stage)
    assert proc.stderr is not None  # read directly: closing _stderr_lines closes the pipe
    for line in proc.stderr:
        if f"paused at {stage}" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("powrops: interrupted by SIGINT: archive file ") and "removed" in line
    assert sql(seeded, "SELECT count(*) FROM ops.archive_index") == [(0,)]
    assert list(open_archive(seeded).list()) == []  # no file the index does not name
    assert_nothing_lost(seeded, before)
    events = sql(seeded, "SELECT details->'errors' FROM ops.events WHERE kind = 'archive'")
    assert events == [(["interrupted by SIGINT"],)], events  # not recorded as a clean run
    again = _cli(config_file, "archive", "run")
    assert again.wait(timeout=120) == 0
    assert_nothing_lost(seeded, before)


def test_ctrl_c_during_retention_apply_records_the_run_as_interrupted(
    seeded: Settings, config_file: Path
) -> None:
    proc = _cli(config_file, "retention", "apply", pause="written")  # in the archival policy
    assert proc.stderr is not None
    for line in proc.stderr:
        if "paused at written" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "Traceback" not in err, err
    events = sql(seeded, "SELECT details->'errors' FROM ops.events WHERE kind = 'retention'")
    assert events == [(["archival: interrupted by SIGINT"],)], events
    again = _cli(config_file, "retention", "apply")
    assert again.wait(timeout=120) == 0


def test_ctrl_c_during_an_erasure_says_how_to_finish_it(
    seeded: Settings, config_file: Path
) -> None:
    from powrops.db import target

    user = min(due_by_age(seeded))
    assert _cli(config_file, "archive", "run", "--user", str(user)).wait(timeout=120) == 0
    with psycopg.connect(target(seeded).libpq_url) as holder:  # the erasure waits on its row
        holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user,))
        proc = _cli(config_file, "gdpr", "erase", str(user), "--yes")
        while not sql(seeded, "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted")[0][0]:
            assert proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert f"the erasure of user {user} is not finished" in line, line
    assert f"`powrops gdpr erase {user} --yes` finishes it" in line, line
    assert sql(seeded, "SELECT count(*) FROM users WHERE id = %s", (user,)) == [(1,)]
    assert _cli(config_file, "gdpr", "erase", str(user), "--yes").wait(timeout=120) == 0
    assert sql(seeded, "SELECT count(*) FROM users WHERE id = %s", (user,)) == [(0,)]
    assert list(open_archive(seeded).list()) == []


def test_cli_list_and_restore(seeded: Settings, config_file: Path) -> None:
    run = _cli(config_file, "archive", "run", "--dry-run")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "dry run" in out and sql(seeded, "SELECT count(*) FROM ops.archive_index") == [(0,)]
    user = min(due_by_age(seeded))
    run = _cli(config_file, "archive", "run", "--user", str(user))
    assert run.wait(timeout=120) == 0
    listing = _cli(config_file, "archive", "list", "--json")
    out, _ = listing.communicate(timeout=120)
    entries = json.loads(out)
    assert [e["user_id"] for e in entries] == [user] and entries[0]["details"][
        "trigger"
    ] == "request"
    assert "@" not in out
    restore = _cli(config_file, "archive", "restore", "--user", str(user))
    out, err = restore.communicate(timeout=120)
    assert restore.returncode == 0, err
    assert f"of user {user}" in out
    missing = _cli(config_file, "archive", "restore", "--user", "999999")
    _, err = missing.communicate(timeout=120)
    assert missing.returncode == 3 and "no archived data" in err


def test_archive_to_s3(migrated_db: str, tmp_path: Path, s3_server: Any) -> None:
    from s3server import S3Server

    s3_server.create_bucket(BUCKET)
    seed(migrated_db)
    primary = {
        "kind": "s3",
        "url": f"s3://{BUCKET}/backups",
        "region": S3Server.REGION,
        "endpoint_url": s3_server.endpoint_url,
        **S3Server.CREDENTIALS,
    }
    settings = make_settings(
        migrated_db,
        tmp_path,
        backup={"storage": {"primary": primary, "secondary": None}},
        archival={"repository": f"s3://{BUCKET}/archive-a"},
    )
    before = live_texts(settings)
    user = min(due_by_age(settings))
    result = run_archival(settings, dry_run=False, user_id=user)
    assert result.repository.startswith("s3://") and len(result.archived) == 1
    objects = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix="archive-a/")["Contents"]
    assert [o["Key"] for o in objects] == ["archive-a/" + result.archived[0].key]
    assert_nothing_lost(settings, before)
    restore_user(settings, user)
    assert live_texts(settings) == before
