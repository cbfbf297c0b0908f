"""Metrics snapshots against a real PostgreSQL: shape, stored history, WAL, statements,
integrity counts, and the CLI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from cli_helpers import libpq, run_cli
from powrops import metrics
from powrops.config import Settings, validate
from readable import machine_values
from scratch import scratch_dir

pytestmark = pytest.mark.pg

REPO = Path(__file__).resolve().parents[1]


def _settings(url: str) -> Settings:
    state = scratch_dir("powrops-metrics-")
    return validate({"database": {"url": libpq(url)}, "state": {"dir": state}})


def test_snapshot_shape_and_catalog_row_counts(migrated_db: str) -> None:
    url = libpq(migrated_db)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email) SELECT 'u' || g || '@example.invalid' "
            "FROM generate_series(1, 5000) g"
        )
        conn.execute("ANALYZE users")
        conn.execute("DELETE FROM users WHERE id % 10 = 0")
        conn.execute("SELECT pg_stat_force_next_flush()")
    snap = metrics.take_snapshot(_settings(migrated_db))
    m = snap.metrics
    assert snap.id is not None and m["version"] == metrics.VERSION
    assert m["database"]["total_bytes"] == snap.total_bytes > 1_000_000
    users = next(t for t in m["tables"] if (t["schema"], t["table"]) == ("public", "users"))
    assert users["rows"] == 5000  # reltuples from the ANALYZE, not a count(*)
    assert (
        users["total_bytes"] == users["table_bytes"] + users["index_bytes"] + users["toast_bytes"]
    )
    assert users["dead_tuples"] == 500
    assert users["dead_ratio"] == pytest.approx(500 / (users["live_tuples"] + 500))
    assert any(i["index"] == "idx_workouts_user_date" and i["valid"] for i in m["indexes"])
    assert 0 < m["cache"]["hit_rate"] <= 1
    assert m["wal"]["lsn_bytes"] > 0 and m["wal"]["since_previous_bytes"] is None
    assert m["statements"]["available"] is True and m["statements"]["slowest"]
    assert m["integrity"] == {
        "available": False,
        "note": "no integrity check has run yet",
        "counts": {},
    }
    assert m["volume"]["table_distribution"]["public.users"] == users["total_bytes"]
    assert m["performance"]["dead_tuples"] == m["dead_tuples"]["total"] >= 500
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT metrics FROM ops.metric_snapshots").fetchall()
    assert len(stored) == 1 and stored[0][0]["database"] == m["database"]


def test_wal_since_previous_and_integrity_of_latest_run(migrated_db: str) -> None:
    url = libpq(migrated_db)
    settings = _settings(migrated_db)
    metrics.take_snapshot(settings)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS t "
                     "FROM generate_series(1, 20000) g")  # fmt: skip
        conn.execute(
            "INSERT INTO ops.check_runs (kind, status, started_at, counts) VALUES "
            "('integrity', 'OK', now() - interval '1 day', '{\"weight_range\": 0}'), "
            "('integrity', 'CRITICAL', now(), "
            ' \'{"weight_range": 3, "orphaned_sets": 2, "user_totals": 0}\'), '
            "('alerts', 'OK', now(), '{}')"
        )
    second = metrics.take_snapshot(settings).metrics
    assert second["wal"]["since_previous_bytes"] > 20000 * 200
    integrity = second["integrity"]
    assert integrity["available"] and integrity["status"] == "CRITICAL"
    assert integrity["counts"] == {"weight_range": 3, "orphaned_sets": 2, "user_totals": 0}
    assert integrity["failed_checks"] == 2 and integrity["violations"] == 5
    with psycopg.connect(url) as conn:
        assert len(metrics.history(conn, settings.server)) == 2


def test_without_pg_stat_statements_degrades_with_a_note(migrated_db: str) -> None:
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
        data = metrics.collect(conn, server="default")
    block = data["statements"]
    assert block["available"] is False and "not created" in block["note"]
    assert block["slowest"] == [] and data["performance"]["mean_query_ms"] is None


def test_statement_text_is_redacted_and_cut() -> None:
    assert metrics.redact_query("ALTER ROLE x PASSWORD $1").startswith("[hidden")
    long = "SELECT " + ", ".join(f"c{i}" for i in range(400))
    assert len(metrics.redact_query(long)) == metrics.QUERY_TEXT_LIMIT
    assert metrics.lsn_bytes("1/10") == (1 << 32) + 16


def test_explain_gives_generic_plans_and_refuses_writes(migrated_db: str) -> None:
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        plan = metrics.explain(conn, "SELECT * FROM workouts WHERE user_id = $1")
        assert "workouts" in plan
        assert metrics.explain(conn, "VACUUM workouts").startswith("(no plan")
        refused = metrics.explain(conn, "DELETE FROM workouts", analyze=True)
        assert refused.startswith("(EXPLAIN ANALYZE is offered only")
        assert "actual time" in metrics.explain(conn, "SELECT 1", analyze=True)


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    state = scratch_dir("powrops-metrics-cli-")
    return run_cli(*args, env={"POWROPS_DATABASE_URL": libpq(url), "POWROPS_STATE_DIR": state})


def test_cli_snapshot_and_growth(migrated_db: str) -> None:
    result = _cli(migrated_db, "metrics", "snapshot", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] is not None and data["metrics"]["database"]["total_bytes"] > 0
    text = _cli(migrated_db, "metrics", "snapshot", "--no-store")
    assert text.returncode == 0 and "not stored" in text.stdout
    grown = _cli(migrated_db, "metrics", "growth", "--json")
    assert grown.returncode == 0, grown.stderr
    assert json.loads(grown.stdout)["source"] in ("timestamps", "none")
    said = _cli(migrated_db, "metrics", "growth")
    assert said.returncode == 0 and "database size" in said.stdout, said.stderr
    assert machine_values(said.stdout + text.stdout) == [], said.stdout + text.stdout
    assert not re.search(r"\d\.\d{3,}", said.stdout), said.stdout  # no raw float
    down = _cli("postgresql://nobody:x@127.0.0.1:1/none", "metrics", "snapshot")
    assert down.returncode == 3 and "cannot connect" in down.stderr
