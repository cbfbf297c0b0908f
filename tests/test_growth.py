"""Growth rate and forecast: pure arithmetic on known histories, then the real sources and the
weekly report and the two response runbooks executed against a real database."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq
from powrops import alerts, growth
from powrops.config import Settings, validate
from powrops.findings import Severity, worst
from powrops.growth.forecast import (
    Disk,
    Growth,
    days_until,
    from_snapshots,
    linear_fit,
    timestamp_points,
)
from powrops.growth.gather import snapshot_and_report
from powrops.reports.html import external_resources
from powrops.reports.runner import run_report
from scratch import scratch_dir

pytestmark = pytest.mark.pg

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIB = 1 << 20
GIB = 1 << 30


# --- pure ------------------------------------------------------------------------------------


def test_exact_line_gives_its_slope_and_no_band() -> None:
    times = [T0 + timedelta(days=d) for d in range(30)]
    fit = linear_fit(times, [100 * MIB + d * MIB for d in range(30)])
    assert fit is not None
    assert fit.slope == pytest.approx(MIB)
    mean, low, high = fit.predict(T0 + timedelta(days=60))
    assert mean == pytest.approx(160 * MIB)
    assert low == pytest.approx(mean) and high == pytest.approx(mean)


def test_noisy_history_recovers_rate_and_band_contains_truth() -> None:
    noise = [0.3, -0.2, 0.5, -0.4, 0.1, -0.3, 0.2, 0.4, -0.5, 0.0] * 3  # MiB, mean ~0
    times = [T0 + timedelta(days=d) for d in range(30)]
    fit = linear_fit(times, [(50 + 2 * d + noise[d]) * MIB for d in range(30)])
    assert fit is not None
    assert fit.slope / MIB == pytest.approx(2.0, abs=0.05)
    near = fit.predict(T0 + timedelta(days=31))
    far = fit.predict(T0 + timedelta(days=300))
    assert near[1] < (50 + 62) * MIB < near[2]
    assert far[1] < (50 + 600) * MIB < far[2]
    assert far[2] - far[1] > near[2] - near[1] > 0  # the band widens away from the data


def test_too_few_points() -> None:
    assert linear_fit([T0], [1.0]) is None
    assert linear_fit([T0, T0], [1.0, 2.0]) is None
    with pytest.raises(ValueError):
        linear_fit([T0], [1.0, 2.0])


def test_snapshot_history_needs_enough_points_over_enough_days() -> None:
    three_hours = [(T0 + timedelta(hours=h), 100 + h) for h in range(3)]
    assert from_snapshots(three_hours) is None
    two = [(T0, 100), (T0 + timedelta(days=10), 200)]
    assert from_snapshots(two) is None
    weekly = [(T0 + timedelta(days=7 * w), 1000 + 700 * w) for w in range(5)]
    fit = from_snapshots(weekly)
    assert fit is not None and fit.slope == pytest.approx(100.0)


def test_days_until() -> None:
    assert days_until(70, 80, 1) == pytest.approx(10)
    assert days_until(85, 80, 1) == 0.0
    assert days_until(70, 80, 0) is None
    assert days_until(70, 80, -5) is None


def _growth(rate_gib: float, used_gib: float = 70, capacity_gib: float = 100) -> Growth:
    now = T0 + timedelta(days=29)
    times = [T0 + timedelta(days=d) for d in range(30)]
    values = [(10 + rate_gib * d) * GIB for d in range(30)]
    return Growth(
        source="snapshots",
        points=list(zip(times, values, strict=True)),
        fit=linear_fit(times, values),
        current_bytes=int(values[-1]),
        now=now,
        disk=Disk(int(used_gib * GIB), int(capacity_gib * GIB), "test"),
    )


def test_forecast_and_threshold_dates() -> None:
    g = _growth(rate_gib=1.0)
    data = g.to_dict()
    assert data["rate_bytes_per_day"] == pytest.approx(GIB)
    assert data["days_to_warning"] == pytest.approx(10)  # 70 -> 80 GiB at 1 GiB/day
    assert data["days_to_critical"] == pytest.approx(20)
    assert data["date_warning"] == (g.now + timedelta(days=10)).date().isoformat()
    assert data["size_in_a_year_bytes"] == pytest.approx(g.current_bytes + 365 * GIB)
    assert data["needed_in_a_year_bytes"] == pytest.approx((70 + 365) * GIB)
    forecast = g.forecast(steps=4)
    assert forecast[0][1] == pytest.approx(g.current_bytes)  # anchored at the current size
    assert forecast[-1][1] == pytest.approx(g.current_bytes + 365 * GIB)


def test_thresholds_follow_the_configured_percentages() -> None:
    g = _growth(rate_gib=1.0)
    g.warning_pct, g.critical_pct = 75.0, 95.0
    assert g.thresholds()["days_to_warning"] == pytest.approx(5)
    assert g.thresholds()["days_to_critical"] == pytest.approx(25)


def test_no_growth_never_crosses() -> None:
    data = _growth(rate_gib=0.0).to_dict()
    assert data["days_to_warning"] is None and data["date_warning"] is None


def test_timestamp_points_accumulate_to_the_current_size() -> None:
    monthly = {
        "workouts": {T0: 100.0, datetime(2026, 2, 1, tzinfo=UTC): 200.0},
        "workout_sets": {T0: 1000.0, datetime(2026, 2, 1, tzinfo=UTC): 3000.0},
    }
    per_row = {"workouts": 100.0, "workout_sets": 50.0}
    now = datetime(2026, 2, 15, tzinfo=UTC)
    stamped = 300 * 100 + 4000 * 50
    points = timestamp_points(monthly, per_row, 1_000_000 - stamped, now)
    assert [p[0] for p in points] == [datetime(2026, 2, 1, tzinfo=UTC), now]
    assert points[0][1] == pytest.approx(1_000_000 - stamped + 100 * 100 + 1000 * 50)
    assert points[-1][1] == pytest.approx(1_000_000)


# --- against a real database -----------------------------------------------------------------


def _settings(url: str) -> Settings:
    state = scratch_dir("powrops-growth-")
    return validate({"database": {"url": libpq(url)}, "state": {"dir": state}})


def test_rows_per_month_from_creation_times(migrated_db: str) -> None:
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, created_at) SELECT 'u' || g || '@example.invalid', "
            "timestamptz '2025-01-10' + (g % 3) * interval '1 month' "
            "FROM generate_series(1, 3000) g"
        )
        conn.execute("ANALYZE users")
        exact = growth.monthly_rows(conn)["users"]
        assert sorted(exact.values()) == [1000, 1000, 1000]
        assert min(exact) == datetime(2025, 1, 1, tzinfo=UTC)
        sampled_before = growth.SAMPLE_ROWS
        growth.SAMPLE_ROWS = 600  # sample ~20 % of the pages, scaled back to the row estimate
        try:
            sampled = growth.monthly_rows(conn)["users"]
        finally:
            growth.SAMPLE_ROWS = sampled_before
        assert sum(sampled.values()) == pytest.approx(3000, rel=0.01)
        assert all(v == pytest.approx(1000, rel=0.5) for v in sampled.values())


def test_analyze_falls_back_to_timestamps_then_uses_snapshots(migrated_db: str) -> None:
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, created_at) SELECT 'u' || g || '@example.invalid', "
            "now() - (g % 90) * interval '1 day' FROM generate_series(1, 2000) g"
        )
        conn.execute("ANALYZE users")
        first = growth.analyze(conn, server="default", disk=None)
        assert first.source == "timestamps" and first.rate_per_day and first.rate_per_day > 0
        assert first.rates["snapshots"] is None
        for weeks, size in ((5, 1_000_000), (3, 1_700_000), (1, 2_400_000)):
            conn.execute(
                "INSERT INTO ops.metric_snapshots (taken_at, metrics) VALUES "
                "(now() - %s * interval '1 week', %s)",
                (weeks, json.dumps({"database": {"total_bytes": size}})),
            )
        second = growth.analyze(conn, server="default", disk=None)
        assert second.source == "snapshots"
        assert second.rate_per_day == pytest.approx(50_000, rel=1e-6)


def test_the_growth_report_leaves_the_alerts_baseline_alone(migrated_db: str) -> None:
    """The report shows the alerts as of now, but the next ``powrops alerts`` run still judges
    everything since the previous alerts run: a slow statement seen by the report still pages."""
    settings = _settings(migrated_db)
    with psycopg.connect(libpq(migrated_db), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        alerts.evaluate(settings)  # the scheduled alerts run: its baseline
        conn.execute("SELECT pg_sleep(1.2)")
    report = snapshot_and_report(settings, take_snapshot=False)
    shown = worst(f.severity for f in report.alerts.findings if f.check == "query_time")
    assert shown == Severity.WARNING
    paged = alerts.evaluate(settings, record=False).findings
    assert worst(f.severity for f in paged if f.check == "query_time") == Severity.WARNING


@pytest.fixture(scope="module")
def seeded_url(pg_cluster: Any) -> Any:
    """A migrated database with small demo data, shared by the notebook tests."""
    from powrops import migrate
    from powrops.demo.data import generate, load

    name = "growth_" + os.urandom(4).hex()
    with psycopg.connect(**pg_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_cluster.url(name)
    migrate.upgrade(url, "head")
    load(url, generate(users=10, weeks=4, seed=5))
    yield url
    with psycopg.connect(**pg_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(url: str, tmp: Path) -> dict[str, str]:
    return {"POWROPS_DATABASE_URL": libpq(url), "POWROPS_STATE_DIR": str(tmp / "state")}


def test_growth_report_runs_with_inline_plots(seeded_url: str, tmp_path: Path) -> None:
    run = run_report(
        "growth_report", {}, reports_dir=tmp_path / "reports", root=REPO, timeout=300,
        env=_env(seeded_url, tmp_path),
    )  # fmt: skip
    result = run.result
    assert result["failed"] is False, result["error"]
    figures = result["figures"]
    assert figures["total_bytes"] > 1_000_000
    assert figures["growth_source"] == "timestamps" and figures["growth_bytes_per_day"] > 0
    checks = {f["check"] for f in result["findings"]}
    assert {"disk_usage", "dead_tuples", "query_time", "failed_backups"} <= checks
    assert "strategy_index" in checks
    html = (run.path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    assert "Size over time and forecast" in html and "Growth and capacity" in html
    assert external_resources(html) == []
    assert "gather.snapshot_and_report" not in html  # a scheduled report hides its code
    with psycopg.connect(libpq(seeded_url)) as conn:
        kinds = conn.execute(
            "SELECT (SELECT count(*) FROM ops.metric_snapshots), "
            "(SELECT count(*) FROM ops.check_runs WHERE kind = 'alerts')"
        ).fetchone()
    assert kinds is not None and kinds[0] >= 1 and kinds[1] == 0  # not an alerts run


def test_runbooks_with_defaults_change_nothing(seeded_url: str, tmp_path: Path) -> None:
    url = libpq(seeded_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS idle_rows (id int) WITH (autovacuum_enabled = off)"
        )
        conn.execute("INSERT INTO idle_rows SELECT generate_series(1, 1000)")
        conn.execute("DELETE FROM idle_rows WHERE id <= 500")
        conn.execute(
            "INSERT INTO temp_data (key, payload, created_at) "
            "SELECT 'k' || g, '{}', now() - interval '3 days' FROM generate_series(1, 20) g"
        )
        conn.execute("SELECT pg_sleep(1.1)")
        conn.execute("SELECT pg_stat_force_next_flush()")
    before = _state(url)
    for name in ("disk_space_response", "performance_response"):
        run = run_report(name, {}, reports_dir=tmp_path / "r", root=REPO, timeout=300,
                         env=_env(seeded_url, tmp_path))  # fmt: skip
        assert run.result["failed"] is False, (name, run.result["error"])
        html = (run.path / "report.html").read_text()
        assert "Not confirmed" in html
        assert "data:image/png;base64," in html or name == "performance_response"
    assert _state(url) == before
    perf = (run.path / "report.html").read_text()
    assert "pg_sleep" in perf and "Result" in perf  # the slow statement and its EXPLAIN plan


def _state(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM temp_data), (SELECT count(*) FROM idle_rows), "
            "(SELECT last_vacuum IS NULL AND last_analyze IS NULL FROM pg_stat_user_tables "
            " WHERE relname = 'idle_rows')"
        ).fetchone()
    assert row is not None
    return tuple(row)
