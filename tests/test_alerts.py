"""Alert thresholds: pure judgements with thresholds from config, then real slow statements,
a real backup catalog and the ``powrops alerts`` exit codes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq, run_cli
from powrops import alerts
from powrops.backup.catalog import consecutive_failures
from powrops.config import Settings, validate
from powrops.findings import Finding, Severity, overall
from powrops.metrics.disk import Disk
from scratch import scratch_dir

pytestmark = pytest.mark.pg

GIB = 1 << 30


def _table(dead: int, live: int, name: str = "t") -> dict[str, Any]:
    return {"schema": "public", "table": name, "dead_tuples": dead, "live_tuples": live,
            "dead_ratio": dead / (dead + live)}  # fmt: skip


def _worst(findings: list[Finding], check: str) -> Severity:
    return overall(f for f in findings if f.check == check)


# --- pure, thresholds from config ------------------------------------------------------------


def test_disk_usage_thresholds_and_config() -> None:
    default = Settings().alerts.disk_usage
    for used, expected in ((70, Severity.OK), (85, Severity.WARNING), (95, Severity.CRITICAL)):
        [finding] = alerts.disk_findings(Disk(used * GIB, 100 * GIB, "test"), default)
        assert finding.severity == expected and finding.value == used
    stricter = validate({"alerts": {"disk_usage": {"warning": 60, "critical": 70}}})
    [finding] = alerts.disk_findings(Disk(70 * GIB, 100 * GIB, "t"), stricter.alerts.disk_usage)
    assert finding.severity == Severity.CRITICAL and finding.expected.startswith("< 60 %")
    [unknown] = alerts.disk_findings(None, default)
    assert unknown.severity == Severity.UNKNOWN and "disk_capacity" in (unknown.advice or "")


def test_dead_tuple_thresholds_and_config() -> None:
    default = Settings().alerts.dead_tuples
    tables = [_table(150, 850, "warn"), _table(250, 750, "crit"), _table(40, 10, "tiny"),
              _table(50, 950, "fine")]  # fmt: skip
    found = {f.object: f.severity for f in alerts.dead_tuple_findings(tables, default)}
    assert found == {"public.warn": Severity.WARNING, "public.crit": Severity.CRITICAL}
    looser = validate({"alerts": {"dead_tuples": {"warning": 20, "critical": 30}}})
    found = {
        f.object: f.severity for f in alerts.dead_tuple_findings(tables, looser.alerts.dead_tuples)
    }
    assert found == {"public.crit": Severity.WARNING}
    clean = alerts.dead_tuple_findings([_table(5, 995)], default)
    assert [f.severity for f in clean] == [Severity.OK]
    small, large = _table(300, 700, "small"), _table(300, 700, "large")
    small["table_bytes"], large["table_bytes"] = 512 << 10, 2 << 20
    minimum = Settings().alerts.dead_tuples_min_size.bytes
    found = {f.object: f.severity for f in alerts.dead_tuple_findings([small, large], default,
                                                                        minimum)}  # fmt: skip
    assert found == {"public.large": Severity.CRITICAL}


def _stmt(mean_s: float, max_s: float) -> dict[str, Any]:
    return {"queryid": "1", "query": "SELECT $1", "calls": 3, "mean_ms": mean_s * 1000,
            "max_ms": max_s * 1000}  # fmt: skip


def test_query_time_thresholds_and_config() -> None:
    s = Settings()
    cases = [((0.5, 0.6), Severity.OK), ((1.5, 2.0), Severity.WARNING),
             ((3.5, 4.0), Severity.CRITICAL), ((0.2, 5.0), Severity.WARNING)]  # fmt: skip
    for (mean, peak), expected in cases:
        assert (
            _worst(alerts.statement_findings([_stmt(mean, peak)], None, s), "query_time")
            == expected
        )
    slower = validate({"alerts": {"query_time": {"warning": "2s", "critical": "10s"}}})
    assert (
        _worst(alerts.statement_findings([_stmt(1.5, 2.0)], None, slower), "query_time")
        == Severity.OK
    )
    assert (
        _worst(alerts.statement_findings([_stmt(3.5, 4.0)], None, slower), "query_time")
        == Severity.WARNING
    )
    [missing] = alerts.statement_findings(None, "pg_stat_statements is not loaded", s)
    assert missing.severity == Severity.WARNING and "not loaded" in missing.message
    running = [{"pid": 7, "command": "SELECT", "seconds": 4.0, "query_id": None}]
    assert _worst(alerts.activity_findings(running, s), "running_query") == Severity.CRITICAL
    assert _worst(alerts.activity_findings(running, slower), "running_query") == Severity.WARNING


def test_failed_backups_count_consecutive_at_the_head() -> None:
    s = Settings()
    assert consecutive_failures(["failed", "ok", "failed", "failed"]) == 2
    cases = [
        ([], Severity.OK),
        (["ok"], Severity.OK),
        (["failed", "ok"], Severity.OK),
        (["ok", "failed"], Severity.WARNING),
        (["ok", "failed", "failed"], Severity.CRITICAL),
    ]
    for statuses, expected in cases:
        [f] = alerts.backup_findings(statuses, None, s)
        assert f.severity == expected, statuses
    tolerant = validate({"alerts": {"failed_backups": {"warning": 2, "critical": 3}}})
    [f] = alerts.backup_findings(["ok", "failed"], None, tolerant)
    assert f.severity == Severity.OK
    [f] = alerts.backup_findings(None, "bucket unreachable", s)
    assert f.severity == Severity.UNKNOWN and "bucket unreachable" in f.message


def test_table_and_index_size_limits_from_config() -> None:
    tables = [{"schema": "public", "table": "big", "table_bytes": 3 * GIB, "toast_bytes": GIB}]
    indexes = [{"schema": "public", "index": "big_idx", "bytes": GIB}]
    default = {f.check: f.severity for f in alerts.size_findings(tables, indexes, Settings())}
    assert default == {"table_size": Severity.OK, "index_size": Severity.OK}
    small = validate({"maintenance": {"alerts": {"table_size": "4GB", "index_size": "512MB"}}})
    found = alerts.size_findings(tables, indexes, small)
    assert {f.check: f.severity for f in found} == {"table_size": Severity.OK,
                                                   "index_size": Severity.WARNING}  # fmt: skip
    smaller = validate({"maintenance": {"alerts": {"table_size": "3GB"}}})
    assert _worst(alerts.size_findings(tables, indexes, smaller), "table_size") == Severity.WARNING


# --- against a real server -------------------------------------------------------------------


#: The session cluster has no backups and no archive_command: those checks are tested in
#: test_alerts_server.py and left out here, where the overall status is asserted.
UNSET_UP = "backup_freshness,archive_age,archive_ready,archive_failures"


def _settings(url: str, **extra: Any) -> Settings:
    state = scratch_dir("powrops-alerts-")
    extra.setdefault("alerts", {"skip": UNSET_UP})
    return validate({"database": {"url": libpq(url)}, "state": {"dir": state}, **extra})


def test_slow_statements_raise_warning_then_critical(migrated_db: str) -> None:
    url = libpq(migrated_db)
    settings = _settings(migrated_db)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        assert _worst(alerts.evaluate(settings).findings, "query_time") == Severity.OK
        conn.execute("SELECT pg_sleep(1.2)")
    report = alerts.evaluate(settings)
    [slow] = [f for f in report.findings if f.check == "query_time"]
    assert slow.severity == Severity.WARNING and "pg_sleep" in slow.details["query"]
    assert 1.2 <= slow.value < 3
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_sleep(3.1)")
    report = alerts.evaluate(settings)
    assert _worst(report.findings, "query_time") == Severity.CRITICAL
    assert report.status == Severity.CRITICAL and report.exit_code == 2
    with psycopg.connect(url) as conn:
        runs = conn.execute(
            "SELECT status, counts FROM ops.check_runs WHERE kind = 'alerts' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in runs] == ["OK", "WARNING", "CRITICAL"]
    assert runs[-1][1]["alerts"] >= 1 and runs[0][1]["alerts"] == 0


def test_running_statement_raises_while_it_runs(migrated_db: str) -> None:
    url = libpq(migrated_db)
    settings = _settings(migrated_db)
    sleeper = threading.Thread(
        target=lambda: psycopg.connect(url, autocommit=True).execute("SELECT pg_sleep(3.6)")
    )
    sleeper.start()
    try:
        time.sleep(1.3)
        first = alerts.evaluate(settings, record=False).findings
        time.sleep(2.0)
        second = alerts.evaluate(settings, record=False).findings
    finally:
        sleeper.join()
    assert _worst(first, "running_query") == Severity.WARNING
    assert _worst(second, "running_query") == Severity.CRITICAL
    assert _worst(alerts.evaluate(settings, record=False).findings, "running_query") == Severity.OK


def test_failed_backups_from_the_real_catalog(migrated_db: str) -> None:
    from powrops.backup import repos
    from powrops.backup.catalog import Catalog
    from powrops.backup.model import BackupRecord

    settings = _settings(migrated_db)
    catalog = Catalog(repos.primary(settings))
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def add(label: str, status: str, hours: int) -> None:
        when = start + timedelta(hours=hours)
        catalog.write(BackupRecord(label=label, kind="full", status=status,  # type: ignore[arg-type]
                                   start_time=when, stop_time=when))  # fmt: skip

    add("20260101T000000F", "ok", 0)
    add("20260101T010000F", "failed", 1)
    assert (
        _worst(alerts.evaluate(settings, record=False).findings, "failed_backups")
        == Severity.WARNING
    )
    add("20260101T020000F", "failed", 2)
    assert (
        _worst(alerts.evaluate(settings, record=False).findings, "failed_backups")
        == Severity.CRITICAL
    )
    add("20260101T030000F", "ok", 3)
    assert _worst(alerts.evaluate(settings, record=False).findings, "failed_backups") == Severity.OK


def test_disk_capacity_when_the_data_directory_is_not_local(migrated_db: str) -> None:
    remote = libpq(migrated_db).replace("127.0.0.1", "localhost.invalid")
    settings = validate({"database": {"url": remote}, "alerts": {"disk_capacity": "1MB"}})
    with psycopg.connect(libpq(migrated_db)) as conn:
        disk = alerts.disk_usage(settings, conn)
        assert (
            disk is not None and disk.capacity_bytes == 1 << 20 and "disk_capacity" in disk.source
        )
        assert (
            alerts.disk_findings(disk, settings.alerts.disk_usage)[0].severity == Severity.CRITICAL
        )
        unknown = validate({"database": {"url": remote}})
        assert alerts.disk_usage(unknown, conn) is None
        local = alerts.disk_usage(_settings(migrated_db), conn)
        assert local is not None and local.source.startswith("filesystem of ")


def _cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    state = scratch_dir("powrops-alerts-cli-")
    return run_cli(
        *args,
        env={"POWROPS_DATABASE_URL": libpq(url), "POWROPS_STATE_DIR": state,
             "POWROPS__ALERTS__SKIP": UNSET_UP, **env},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("warning", "critical", "code", "status"),
    [("99", "100", 0, "OK"), ("1", "100", 1, "WARNING"), ("1", "2", 2, "CRITICAL")],
)
def test_cli_exit_codes_follow_disk_thresholds(
    migrated_db: str, warning: str, critical: str, code: int, status: str
) -> None:
    result = _cli(migrated_db, "alerts", "--json", POWROPS__ALERTS__DISK_USAGE__WARNING=warning,
                  POWROPS__ALERTS__DISK_USAGE__CRITICAL=critical)  # fmt: skip
    assert result.returncode == code, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == status and data["exit_code"] == code
    disk = next(f for f in data["findings"] if f["check"] == "disk_usage")
    assert disk["severity"] == status


def test_cli_unknown_when_it_cannot_run(migrated_db: str) -> None:
    bad = _cli(migrated_db, "alerts", POWROPS__ALERTS__DISK_USAGE__WARNING="lots")
    assert bad.returncode == 3 and "alerts.disk_usage.warning" in bad.stderr
    down = _cli("postgresql://nobody:x@127.0.0.1:1/none", "alerts")
    assert down.returncode == 3 and "cannot connect" in down.stderr
    text = _cli(migrated_db, "alerts", "--no-record", POWROPS__ALERTS__DISK_USAGE__WARNING="99",
                POWROPS__ALERTS__DISK_USAGE__CRITICAL="100")  # fmt: skip
    assert text.returncode == 0 and "disk_usage" in text.stdout and "OK: 0 alert(s)" in text.stdout


def test_cli_unknown_on_an_unmigrated_database(fresh_db: str) -> None:
    result = _cli(fresh_db, "alerts")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "powrops migrate latest" in result.stderr and "Traceback" not in result.stderr


# --- OpenMetrics and the textfile collector ----------------------------------------------------


def test_openmetrics_rendering_parses_with_awkward_labels() -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    from prometheus_client.parser import text_string_to_metric_families as text_families

    findings = [
        Finding("dead_tuples", Severity.CRITICAL, "m", object='public."odd\\name"\nx', value=25.5),
        Finding("dead_tuples", Severity.WARNING, "m", object="public.b", value=12),
        Finding("query_time", Severity.OK, "fine"),
    ]
    report = alerts.AlertReport(findings, datetime(2026, 1, 1, tzinfo=UTC),
                                figures={"total_bytes": 1 << 20, "disk_percent": 42.5,
                                         "connections": {"used": 3, "max_connections": 100,
                                                         "reserved": 3}})  # fmt: skip
    text = alerts.openmetrics(report)
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    severity = {s.labels["object"]: s.value for s in families["powrops_alert_severity"].samples}
    assert severity == {'public."odd\\name"\nx': 2, "public.b": 1, "": 0}
    assert families["powrops_alerts_status"].samples[0].value == 2
    assert families["powrops_database_size_bytes"].unit == "bytes"
    assert families["powrops_disk_usage_ratio"].samples[0].value == pytest.approx(0.425)
    assert families["powrops_connections"].samples[0].value == 3
    plain = alerts.openmetrics(report, openmetrics=False)
    assert "# EOF" not in plain and "# UNIT" not in plain
    parsed = {f.name: f for f in text_families(plain)}
    assert parsed["powrops_alert_value"].samples[0].value == 25.5


def test_cli_openmetrics_and_textfile_keep_the_exit_code(migrated_db: str) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    from prometheus_client.parser import text_string_to_metric_families as text_families

    out = scratch_dir("powrops-textfile-")
    warn = {"POWROPS__ALERTS__DISK_USAGE__WARNING": "1",
            "POWROPS__ALERTS__DISK_USAGE__CRITICAL": "100"}  # fmt: skip
    result = _cli(migrated_db, "alerts", "--format", "openmetrics", "--textfile", out, **warn)
    assert result.returncode == 1, result.stdout + result.stderr
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    disk = [s for s in families["powrops_alert_severity"].samples
            if s.labels["check"] == "disk_usage"]  # fmt: skip
    assert [s.value for s in disk] == [1]
    assert families["powrops_alerts_status"].samples[0].value == 1
    checks = {s.labels["check"] for s in families["powrops_alert_severity"].samples}
    assert {"wraparound", "connections", "blocked", "wal_size"} <= checks
    files = sorted(p.name for p in pathlib.Path(out).iterdir())
    assert files == ["powrops.prom"]  # the temporary file was renamed, none left behind
    prom = (pathlib.Path(out) / "powrops.prom").read_text()
    assert {f.name for f in text_families(prom)} >= {"powrops_alert_severity",
                                                     "powrops_wal_directory_bytes"}  # fmt: skip
    as_json = _cli(migrated_db, "alerts", "--no-record", "--json", **warn)
    as_format = _cli(migrated_db, "alerts", "--no-record", "--format", "json", **warn)
    assert as_json.returncode == as_format.returncode == 1
    assert json.loads(as_json.stdout).keys() == json.loads(as_format.stdout).keys()
    clash = _cli(migrated_db, "alerts", "--json", "--format", "openmetrics")
    assert clash.returncode == 3 and "contradict" in clash.stderr
    missing = _cli(migrated_db, "alerts", "--textfile", out + "/nope")
    assert missing.returncode == 3 and "not a directory" in missing.stderr


def test_cli_notify_sends_once_per_change(migrated_db: str, tmp_path: pathlib.Path) -> None:
    from powrops.config import to_toml

    out = tmp_path / "messages.jsonl"
    command = (f"{sys.executable} -c \"import sys; open({str(out)!r}, 'a')"
               ".write(sys.stdin.read() + chr(10))\"")  # fmt: skip
    config = tmp_path / "powrops.toml"
    config.write_text(to_toml({"database": {"url": libpq(migrated_db)},
                               "state": {"dir": str(tmp_path / "state")},
                               "notify": {"channels": [{"kind": "command", "command": command}]},
                               "alerts": {"skip": UNSET_UP.split(",")}}))  # fmt: skip
    warn = {"POWROPS__ALERTS__DISK_USAGE__WARNING": "1",
            "POWROPS__ALERTS__DISK_USAGE__CRITICAL": "100"}  # fmt: skip

    def run(**env: str) -> int:
        return run_cli("--config", str(config), "alerts", "--notify", env=env).returncode

    def sent() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    assert run(**warn) == 1 and [m["severity"] for m in sent()] == ["WARNING"]
    assert run(**warn) == 1 and len(sent()) == 1  # unchanged: quiet
    assert run() == 0 and [m["severity"] for m in sent()] == ["WARNING", "OK"]
    assert sent()[1]["message"].startswith("resolved: disk_usage")
