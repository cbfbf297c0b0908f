"""Servers that share one database's ``ops``: every history row records its server, and each
server's history (growth, integrity runs, alert state, quarterly evidence) reads only its own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq
from powrops import alerts, growth, integrity, journal, metrics, migrate
from powrops.alerts import state as alert_state
from powrops.config import Settings, load_settings, to_toml
from powrops.findings import Severity
from powrops.growth.gather import snapshot_history
from powrops.quarterly.evidence import gather
from powrops.quarterly.model import Quarter
from powrops.retention import cleanup
from powrops.retention import journal as retention_journal

pytestmark = pytest.mark.pg

SERVERS = ("alpha", "beta")
HISTORY = ("ops.check_runs", "ops.events", "ops.metric_snapshots", "ops.alert_state")
BEFORE_SERVERS = "20250110090000"


def shared(tmp_path: Path, url: str) -> dict[str, Settings]:
    """Two named servers whose ``database.url`` is the same database."""
    config = tmp_path / "powrops.toml"
    data: dict[str, Any] = {
        "state": {"dir": str(tmp_path / "state")},
        "reports": {"dir": str(tmp_path / "reports")},
        "servers": {name: {"database": {"url": libpq(url)}} for name in SERVERS},
    }
    config.write_text(to_toml(data))
    return {name: load_settings(config, environ={}, server=name) for name in SERVERS}


def rows(url: str, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute(query, params).fetchall()


def by_server(url: str, table: str) -> dict[str, int]:
    query = f"SELECT server, count(*) FROM {table} GROUP BY server"
    return {str(server): int(n) for server, n in rows(url, query)}


def test_servers_sharing_ops_write_and_read_their_own_history(
    migrated_db: str, tmp_path: Path
) -> None:
    fleet = shared(tmp_path, migrated_db)
    alpha, beta = fleet["alpha"], fleet["beta"]
    assert alpha.database.url == beta.database.url
    # alpha: two snapshots, an integrity run, an alerts run, a retention event; beta: one each
    for settings, snapshots in ((alpha, 2), (beta, 1)):
        for _ in range(snapshots):
            metrics.take_snapshot(settings)
        assert integrity.run(settings).run_id is not None
        assert alerts.evaluate(settings).run_id is not None
        retention_journal.record_run(settings, "cleanup", {"server": settings.server})
    # beta's snapshots hold a size alpha never had: alpha's growth must not fit it
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        for weeks, size in ((3, 10**12), (2, 2 * 10**12)):
            conn.execute(
                "INSERT INTO ops.metric_snapshots (taken_at, metrics, server) "
                "VALUES (now() - %s * interval '1 week', %s, 'beta')",
                (weeks, json.dumps({"database": {"total_bytes": size}})),
            )

    assert by_server(migrated_db, "ops.metric_snapshots") == {"alpha": 2, "beta": 3}
    cleanups = rows(migrated_db, "SELECT server FROM ops.events WHERE kind = 'cleanup' ORDER BY 1")
    assert cleanups == [("alpha",), ("beta",)]
    runs = rows(migrated_db, "SELECT server, kind FROM ops.check_runs ORDER BY server, kind")
    assert runs == [
        ("alpha", "alerts"),
        ("alpha", "integrity"),
        ("beta", "alerts"),
        ("beta", "integrity"),
    ]
    states = rows(migrated_db, "SELECT DISTINCT server FROM ops.alert_state ORDER BY 1")
    assert states == [("alpha",), ("beta",)]

    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        assert len(metrics.history(conn, "alpha")) == 2
        assert [b for _, b in metrics.history(conn, "beta")][:2] == [10**12, 2 * 10**12]
        assert metrics.latest(conn, "alpha") is not None
        assert growth.analyze(conn, server="alpha", disk=None).current_bytes < 10**12
        for_alpha = growth.analyze(conn, server="alpha", disk=None)
        for_beta = growth.analyze(conn, server="beta", disk=None)
    assert for_beta.source == "snapshots" and abs(for_beta.rate_per_day or 0) > 10**10
    assert abs(for_alpha.rates["snapshots"] or 0) < 10**9  # beta's terabytes are not alpha's
    assert len(snapshot_history(alpha)) == 2 and len(snapshot_history(beta)) == 3
    assert [r["run_id"] for r in integrity.history(alpha)] == [
        i for (i,) in rows(migrated_db, "SELECT id FROM ops.check_runs "
                           "WHERE server = 'alpha' AND kind = 'integrity'")
    ]  # fmt: skip
    assert len(integrity.history(beta)) == 1

    # alert state: one baseline per server under the same name
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        assert alert_state.save(conn, alpha, "probe", {"n": 1}) == "database"
        assert alert_state.save(conn, beta, "probe", {"n": 2}) == "database"
        assert alert_state.load(conn, alpha, "probe") == {"n": 1}
        assert alert_state.load(conn, beta, "probe") == {"n": 2}

    # the quarterly evidence of each server reads its own rows only
    now = datetime.now(UTC) + timedelta(seconds=1)
    for settings, snapshots in ((alpha, 2), (beta, 3)):
        ev = gather(settings, Quarter.of(now), now)
        assert not ev.problems, ev.problems
        assert len(ev.snapshots) == snapshots, settings.server
        assert sorted(r.kind for r in ev.check_runs) == ["alerts", "integrity"]
        assert [e.details for e in ev.events if e.kind == "cleanup"] == [
            {"server": settings.server}
        ]


def test_journal_writes_on_a_schema_before_the_server_column(fresh_db: str) -> None:
    """A rollback below the revision still records itself; a check run says to migrate."""
    migrate.upgrade(fresh_db, BEFORE_SERVERS)
    with psycopg.connect(libpq(fresh_db), autocommit=True) as conn:
        assert not journal.has_server_column(conn, "ops.events")
        assert journal.record(conn, "migration", {"direction": "rollback"}, server="alpha") > 0
        run_id, note = journal.try_record_check_run(
            conn, "alerts", "OK", datetime.now(UTC), None, {}, [], server="alpha"
        )
    assert run_id is None and note is not None and note.severity == Severity.WARNING
    assert "migrate latest" in (note.advice or "")
    migrate.upgrade(fresh_db, "head")
    older = by_server(fresh_db, "ops.events")  # rows before the revision: the default server
    with psycopg.connect(libpq(fresh_db), autocommit=True) as conn:
        assert journal.has_server_column(conn, "ops.events")
        journal.record(conn, "migration", {}, server="alpha")
    assert list(older) == ["default"]
    assert by_server(fresh_db, "ops.events") == {**older, "alpha": 1}
    migrate.downgrade(fresh_db, BEFORE_SERVERS)
    assert rows(fresh_db, "SELECT count(*) FROM ops.events") == [(older["default"] + 1,)]


def test_cleanup_keeps_each_servers_history_by_its_own_retention(
    migrated_db: str, tmp_path: Path
) -> None:
    """Two servers share one ops: alpha keeps its events 30 days, beta a year. alpha's cleanup
    deletes alpha's old events and snapshots only; beta's stay until beta's own cleanup, which
    keeps what its year allows."""
    config = tmp_path / "powrops.toml"
    data: dict[str, Any] = {
        "state": {"dir": str(tmp_path / "state")},
        "servers": {
            "alpha": {"database": {"url": libpq(migrated_db)},
                      "cleanup": {"history": {"events": "30d", "metric_snapshots": "30d"}}},
            "beta": {"database": {"url": libpq(migrated_db)},
                     "cleanup": {"history": {"events": "1y", "metric_snapshots": "1y"}}},
        },
    }  # fmt: skip
    config.write_text(to_toml(data))
    alpha, beta = (load_settings(config, environ={}, server=n) for n in ("alpha", "beta"))
    old = datetime.now(UTC) - timedelta(days=60)
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        conn.execute("DELETE FROM ops.events WHERE kind = 'planted-old'")
        conn.execute("DELETE FROM ops.metric_snapshots WHERE metrics ? 'planted'")
        for server in ("alpha", "beta"):
            conn.execute(
                "INSERT INTO ops.events (kind, details, server, at) "
                "VALUES ('planted-old', '{}', %s, %s)", (server, old),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO ops.metric_snapshots (taken_at, metrics, server) "
                "VALUES (%s, '{\"planted\": true}', %s)", (old, server),
            )  # fmt: skip

    def planted() -> dict[str, tuple[int, int]]:
        found = {}
        for server in ("alpha", "beta"):
            [(events,)] = rows(migrated_db, "SELECT count(*) FROM ops.events WHERE "
                               "kind = 'planted-old' AND server = %s", (server,))  # fmt: skip
            [(snaps,)] = rows(migrated_db, "SELECT count(*) FROM ops.metric_snapshots WHERE "
                              "metrics ? 'planted' AND server = %s", (server,))  # fmt: skip
            found[server] = (int(events), int(snaps))
        return found

    assert planted() == {"alpha": (1, 1), "beta": (1, 1)}
    due = {r["target"]: r["rows due"] for r in cleanup.history_due(alpha)}
    assert due["events"] >= 1
    cleanup.run_cleanup(alpha, dry_run=False)
    assert planted() == {"alpha": (0, 0), "beta": (1, 1)}
    cleanup.run_cleanup(beta, dry_run=False)
    assert planted() == {"alpha": (0, 0), "beta": (1, 1)}
