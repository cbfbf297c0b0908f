"""Cleanup against a real PostgreSQL: exactly the expired rows go, in batches, and are logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq
from powrops.config import Settings, validate
from powrops.retention.cleanup import history_due, run_cleanup

pytestmark = pytest.mark.pg

SHORT_LIVED = ("temp_data", "cache_entries", "sessions")


@pytest.fixture
def settings(migrated_db: str, tmp_path: Path) -> Settings:
    return validate(
        {
            "database": {"url": libpq(migrated_db)},
            "state": {"dir": str(tmp_path / "state")},
            "cleanup": {"batch_size": 2},
        }
    )


def _sql(settings: Settings, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    assert settings.database.url is not None
    with psycopg.connect(settings.database.url.get_secret_value(), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _plant(settings: Settings) -> None:
    """Rows just inside and just past every target's lifetime (5 minutes either side)."""
    _sql(settings, "INSERT INTO users (id, email) VALUES (1, 'a@example.invalid')")
    _sql(
        settings,
        "INSERT INTO temp_data (key, created_at) VALUES "
        "('keep-1', now() - interval '24 hours' + interval '5 min'), "
        "('keep-2', now()), "
        "('due-1', now() - interval '24 hours' - interval '5 min'), "
        "('due-2', now() - interval '3 days'), ('due-3', now() - interval '30 hours')",
    )
    _sql(
        settings,
        "INSERT INTO cache_entries (key, created_at, expires_at) VALUES "
        "('keep-fresh', now() - interval '55 min', now() + interval '5 min'), "
        "('due-expired', now() - interval '30 min', now() - interval '1 min'), "
        "('due-ttl', now() - interval '65 min', now() + interval '1 hour')",
    )
    _sql(
        settings,
        "INSERT INTO sessions (user_id, created_at, expires_at, last_seen_at) VALUES "
        # still valid, unused for 20 days: kept (it can still log somebody in)
        "(1, now() - interval '30 days', now() + interval '1 day', now() - interval '20 days'), "
        # expired, last used just inside 14 days: kept
        "(1, now() - interval '20 days', now() - interval '6 days', "
        " now() - interval '14 days' + interval '5 min'), "
        # expired, last used just past 14 days: due
        "(1, now() - interval '20 days', now() - interval '6 days', "
        " now() - interval '14 days' - interval '5 min'), "
        # expired, never seen, created 15 days ago: due
        "(1, now() - interval '15 days', now() - interval '1 day', NULL)",
    )


def test_dry_run_counts_and_deletes_nothing(settings: Settings) -> None:
    _plant(settings)
    result = run_cleanup(settings, dry_run=True)
    due = {r["target"]: r["rows due"] for r in result.rows() if r["target"] in SHORT_LIVED}
    assert due == {"temp_data": 3, "cache_entries": 2, "sessions": 2}
    assert result.deleted == 0 and result.bytes > 0
    assert _sql(settings, "SELECT count(*) FROM temp_data")[0][0] == 5
    events = _sql(settings, "SELECT kind, details FROM ops.events WHERE kind = 'cleanup'")
    assert len(events) == 1 and events[0][1]["dry_run"] is True
    assert _sql(settings, "SELECT count(*) FROM audit_log WHERE action = 'CLEANUP'")[0][0] == 0


def test_cleanup_removes_only_expired_rows_in_batches(settings: Settings) -> None:
    _plant(settings)
    result = run_cleanup(settings, dry_run=False)
    assert result.errors == []
    deleted = {r["target"]: r["rows deleted"] for r in result.rows() if r["rows deleted"]}
    assert deleted == {"temp_data": 3, "cache_entries": 2, "sessions": 2}
    assert {r[0] for r in _sql(settings, "SELECT key FROM temp_data")} == {"keep-1", "keep-2"}
    assert {r[0] for r in _sql(settings, "SELECT key FROM cache_entries")} == {"keep-fresh"}
    kept = _sql(settings, "SELECT expires_at > now() FROM sessions ORDER BY 1")
    assert kept == [(False,), (True,)]
    by_target = {t.target: t for t in result.targets}
    assert by_target["temp_data"].batches == 2  # batch_size 2: 2 + 1
    assert all(t.bytes > 0 for t in result.targets if t.target in SHORT_LIVED)
    events = _sql(settings, "SELECT details FROM ops.events WHERE kind = 'cleanup'")
    assert events[0][0]["deleted"] == 7 and events[0][0]["tables"]["sessions"]["deleted"] == 2
    audit = _sql(settings, "SELECT action, actor, details FROM audit_log WHERE action = 'CLEANUP'")
    assert len(audit) == 1 and audit[0][0] == "CLEANUP" and audit[0][1] == "powrops:retention"
    assert "example.invalid" not in json.dumps(audit[0][2])
    again = run_cleanup(settings, dry_run=False)
    assert again.deleted == 0 and again.due == 0


def test_locked_rows_are_skipped_not_waited_for(settings: Settings) -> None:
    _plant(settings)
    assert settings.database.url is not None
    with psycopg.connect(settings.database.url.get_secret_value()) as holder:
        holder.execute("SELECT * FROM temp_data WHERE key = 'due-1' FOR UPDATE")
        result = run_cleanup(settings, dry_run=False)
        holder.rollback()
    assert result.errors == []
    assert {r[0] for r in _sql(settings, "SELECT key FROM temp_data")} == {
        "keep-1",
        "keep-2",
        "due-1",
    }
    assert run_cleanup(settings, dry_run=False).deleted == 1


def test_history_is_bounded_and_audit_retention_applies(settings: Settings) -> None:
    """Rows just past each history lifetime go, rows inside it stay (defaults: alerts runs
    92 d, other check runs and events 395 d, snapshots 2 y, audit_log 1 y)."""
    _sql(settings, "INSERT INTO ops.check_runs (kind, status, started_at) VALUES "
         "('alerts', 'OK', now() - interval '93 days'), "
         "('alerts', 'OK', now() - interval '91 days'), "
         "('integrity', 'OK', now() - interval '93 days'), "
         "('integrity', 'OK', now() - interval '396 days')")  # fmt: skip
    _sql(settings, "INSERT INTO ops.events (kind, at) VALUES ('x', now() - interval '396 days'), "
         "('keep', now() - interval '394 days')")  # fmt: skip
    _sql(settings, "INSERT INTO ops.metric_snapshots (taken_at, metrics) VALUES "
         "(now() - interval '731 days', '{}'), (now() - interval '700 days', '{}')")  # fmt: skip
    _sql(settings, "INSERT INTO audit_log (action, occurred_at) VALUES "
         "('OLD', now() - interval '366 days'), "
         "('RECENT', now() - interval '300 days')")  # fmt: skip
    events_before = _sql(settings, "SELECT count(*) FROM ops.events")
    shown = {r["target"]: r["rows due"] for r in history_due(settings)}
    assert _sql(settings, "SELECT count(*) FROM ops.events") == events_before  # reads only
    dry = {r["target"]: r["rows due"] for r in run_cleanup(settings, dry_run=True).rows()}
    history = {k: dry[k] for k in ("check_runs", "alert_runs", "events", "metric_snapshots",
                                   "audit_log")}  # fmt: skip
    assert {k: shown[k] for k in history} == history
    assert history == {"check_runs": 1, "alert_runs": 1, "events": 1, "metric_snapshots": 1,
                       "audit_log": 1}  # fmt: skip
    result = run_cleanup(settings, dry_run=False)
    assert result.errors == []
    runs = _sql(settings, "SELECT kind, (now() - started_at) < interval '100 days' "
                "FROM ops.check_runs ORDER BY 1, 2")  # fmt: skip
    assert runs == [("alerts", True), ("integrity", True)]
    assert _sql(settings, "SELECT count(*) FROM ops.events WHERE kind = 'x'") == [(0,)]
    assert _sql(settings, "SELECT count(*) FROM ops.events WHERE kind = 'keep'") == [(1,)]
    assert _sql(settings, "SELECT count(*) FROM ops.metric_snapshots") == [(1,)]
    actions = {r[0] for r in _sql(settings, "SELECT action FROM audit_log")}
    assert "OLD" not in actions and "RECENT" in actions
    assert settings.database.url is not None
    keep_all = validate({"database": {"url": settings.database.url.get_secret_value()},
                         "state": {"dir": str(settings.state_dir)},
                         "audit": {"retention": "indefinite"}})  # fmt: skip
    assert "audit_log" not in {t.target for t in run_cleanup(keep_all, dry_run=True).targets}


def test_snapshots_are_downsampled_hourly_then_daily(settings: Settings) -> None:
    _sql(settings, "INSERT INTO ops.metric_snapshots (taken_at, metrics) SELECT t, '{}' FROM "
         "unnest(ARRAY[now() - interval '10 min', now() - interval '5 min', "
         # two days ago, one hour: the first stays
         "date_trunc('hour', now() - interval '2 days') + interval '1 min', "
         "date_trunc('hour', now() - interval '2 days') + interval '20 min', "
         "date_trunc('hour', now() - interval '2 days') + interval '40 min', "
         # ten days ago, one day at three hours: the first stays
         "date_trunc('day', now() - interval '10 days') + interval '1 hour', "
         "date_trunc('day', now() - interval '10 days') + interval '5 hours', "
         "date_trunc('day', now() - interval '10 days') + interval '9 hours']) t")  # fmt: skip
    dry = {r["target"]: r["rows due"] for r in run_cleanup(settings, dry_run=True).rows()}
    assert dry["snapshots_daily"] == 2 and dry["snapshots_hourly"] >= 2
    run_cleanup(settings, dry_run=False)
    kept = _sql(settings, "SELECT (now() - taken_at) < interval '1 hour', "
                "(now() - taken_at) BETWEEN interval '1 day' AND interval '3 days', "
                "(now() - taken_at) > interval '9 days' FROM ops.metric_snapshots")  # fmt: skip
    assert sum(r[0] for r in kept) == 2  # the last day: every snapshot
    assert sum(r[1] for r in kept) == 1  # two days ago: one of the hour
    assert sum(r[2] for r in kept) == 1  # ten days ago: one of the day


def test_downsampling_keeps_each_servers_first_snapshot(settings: Settings) -> None:
    """Servers sharing one ops: each one's cleanup downsamples only its own snapshots, keeping
    the first of the day; another server's cleanup leaves them alone."""
    _sql(settings, "INSERT INTO ops.metric_snapshots (taken_at, metrics, server) SELECT "
         "date_trunc('day', now() - interval '20 days') + h * interval '1 hour', '{}', s "
         "FROM unnest(ARRAY['alpha', 'beta']) s, unnest(ARRAY[1, 5, 9]) h")  # fmt: skip

    def kept() -> list[tuple[str, int]]:
        return _sql(settings, "SELECT server, extract(hour FROM taken_at - date_trunc('day', "
                    "taken_at))::int FROM ops.metric_snapshots WHERE server <> 'default' "
                    "ORDER BY 1, 2")  # fmt: skip

    run_cleanup(settings, dry_run=False)  # the default server's: not theirs
    assert kept() == [("alpha", 1), ("alpha", 5), ("alpha", 9), ("beta", 1), ("beta", 5),
                      ("beta", 9)]  # fmt: skip
    run_cleanup(settings.model_copy(update={"server": "alpha"}), dry_run=False)
    assert kept() == [("alpha", 1), ("beta", 1), ("beta", 5), ("beta", 9)]
    run_cleanup(settings.model_copy(update={"server": "beta"}), dry_run=False)
    assert kept() == [("alpha", 1), ("beta", 1)]
