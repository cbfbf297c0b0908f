"""Pure logic of the alerts: statement intervals, notification changes, replication and slot
judgements (no server: the planted checks are in test_alerts_server.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from powrops.alerts import intervals
from powrops.config import Settings
from powrops.findings import Finding, Severity


def test_interval_arithmetic() -> None:
    now = {"stats_reset": "r1", "texts": {"1:7:t": "SELECT"},
           "entries": {"1:7:t": [12, 14000.0, 3000.0], "1:8:t": [5, 5.0, 1.0]}}  # fmt: skip
    before = {"stats_reset": "r1", "entries": {"1:7:t": [10, 1000.0, 3000.0]}}
    [row], since = intervals.interval(now, before, 1000.0)
    assert since == "since the previous run"
    assert row["calls"] == 2 and row["mean_ms"] == 6500.0 and row["queryid"] == "7"
    reset = {**before, "stats_reset": "r0"}
    [row], since = intervals.interval(now, reset, 1000.0)
    assert since.startswith("since the statistics") and row["calls"] == 12
    assert intervals.interval(now, {**before, "entries": {"1:7:t": [12, 14000.0, 3000.0]}},
                              1000.0)[0] == []  # fmt: skip


def test_notify_reminds_what_stays_critical_and_retries_undelivered() -> None:
    from powrops.alerts import notifications as alert_notify
    from powrops.durations import Duration

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    crit = [Finding("wal_size", Severity.CRITICAL, "big")]
    warn = [Finding("connections", Severity.WARNING, "many")]
    every = Duration.parse("4h")
    [new] = alert_notify.changes(crit + warn[:0], {}, t0, every)
    state = alert_notify.apply({}, [new])
    assert alert_notify.changes(crit, state, t0 + timedelta(hours=3), every) == []
    [remind] = alert_notify.changes(crit, state, t0 + timedelta(hours=4), every)
    assert remind.event.details["reminder"] and remind.event.message.startswith("still CRITICAL")
    never = alert_notify.changes(crit, state, t0 + timedelta(days=9), Duration.parse("indefinite"))
    assert never == []
    state = alert_notify.apply({}, alert_notify.changes(warn, {}, t0, every))
    assert alert_notify.changes(warn, state, t0 + timedelta(days=1), every) == []  # no WARNING nag
    # undelivered: the state is unchanged, so the next run sends it again
    assert len(alert_notify.changes(crit, alert_notify.apply({}, []), t0, every)) == 1


def test_replication_lag_and_lost_slots_judged() -> None:
    from powrops.alerts import server_checks

    s = Settings()
    standbys = [{"application_name": "replica1", "client_addr": "10.0.0.2", "lag_seconds": 90.0},
                {"application_name": "replica2", "client_addr": "10.0.0.3",
                 "lag_seconds": 2.0}]  # fmt: skip
    [lag] = server_checks.replication_findings(standbys, s)
    assert lag.severity == Severity.WARNING and lag.object == "replica1"
    standbys[0]["lag_seconds"] = 301.0
    assert server_checks.replication_findings(standbys, s)[0].severity == Severity.CRITICAL
    slots = [{"slot_name": "gone", "slot_type": "physical", "active": True, "retained": 0,
              "wal_status": "lost"}]  # fmt: skip
    [lost] = server_checks.slot_findings(slots, s)
    assert lost.severity == Severity.CRITICAL
