"""Configuration: the strategy's values as defaults, strict validation, overrides, redaction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from powrops.config import (
    RECOVERY_STEPS,
    load_settings,
    redacted_dict,
    secret_values,
    to_toml,
    validate,
)
from powrops.durations import Duration, Size
from powrops.errors import ConfigError


def test_empty_config_is_the_strategy_as_written() -> None:
    s = load_settings(environ={})
    assert [
        str(x)
        for x in (s.backup.schedule.full, s.backup.schedule.incremental, s.backup.schedule.logs)
    ] == [
        "daily",
        "1h",
        "15min",
    ]
    assert s.backup.schedule.logs.timedelta == dt.timedelta(minutes=15)
    assert [x.days for x in (s.backup.retention.full, s.backup.retention.incremental)] == [30, 7]
    assert s.backup.retention.logs.timedelta == dt.timedelta(hours=24)
    assert (
        s.backup.storage.primary.kind,
        s.backup.storage.secondary and s.backup.storage.secondary.kind,
    ) == ("s3", "gcs")
    assert s.recovery.steps == RECOVERY_STEPS and len(RECOVERY_STEPS) == 6
    assert s.retention.user_account.active.indefinite
    assert s.retention.user_account.inactive.days == 730
    assert s.retention.user_account.deleted.days == 30
    assert s.retention.workout_data.archived.days == 5 * 365
    assert s.retention.workout_data.deleted.days == 90
    assert [
        s.retention.system_logs.security.days,
        s.retention.system_logs.performance.days,
        s.retention.system_logs.debug.days,
    ] == [365, 90, 7]
    assert s.cleanup.targets.temp_data.timedelta == dt.timedelta(hours=24)
    assert s.cleanup.targets.cache_ttl.timedelta == dt.timedelta(hours=1)
    assert s.cleanup.targets.sessions.days == 14
    w = s.validation.workout
    assert (w.weight.type, w.weight.min, w.weight.max, w.weight.required) == (
        "decimal",
        0,
        1000,
        True,
    )
    assert (w.reps.type, w.reps.min, w.reps.max) == ("integer", 1, 100)
    assert w.date.bounds(dt.date(2026, 1, 2)) == (dt.date(2020, 1, 1), dt.date(2026, 1, 2))
    assert s.query.pagination.default_limit == 20 and s.query.pagination.max_limit == 100
    assert s.query.caching.strategy == "write-through"
    assert (str(s.maintenance.vacuum), str(s.maintenance.analyze), str(s.maintenance.reindex)) == (
        "weekly",
        "daily",
        "monthly",
    )
    assert s.maintenance.alerts.table_size.bytes == 10 * 1024**3
    assert s.maintenance.alerts.index_size.bytes == 2 * 1024**3
    a = s.alerts
    assert (a.disk_usage.warning, a.disk_usage.critical) == (80, 90)
    assert (a.dead_tuples.warning, a.dead_tuples.critical) == (10, 20)
    assert (a.query_time.warning.seconds, a.query_time.critical.seconds) == (1, 3)
    assert (a.failed_backups.warning, a.failed_backups.critical) == (1, 2)
    assert all(
        [
            s.audit.events.data_modification,
            s.audit.events.access_patterns,
            s.audit.events.system_changes,
        ]
    )
    assert s.consistency.checks.referential_integrity and s.consistency.repair.auto_fix


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("1h", 3600),
        ("15min", 900),
        ("24h", 86400),
        ("2 years", 730 * 86400),
        ("3 months", 90 * 86400),
        ("7 days", 7 * 86400),
        ("daily", 86400),
        ("weekly", 7 * 86400),
        ("monthly", 30 * 86400),
        ("1s", 1),
        ("1000 years", 1000 * 365 * 86400),
        ("indefinite", None),
    ],
)
def test_durations_in_the_strategys_spellings(text: str, seconds: float | None) -> None:
    assert Duration.parse(text).seconds == seconds


def test_an_indefinite_duration_turns_a_postgres_timeout_off() -> None:
    assert Duration.parse("15min").postgres() == "900s"
    assert Duration.parse("indefinite").postgres() == "0"
    assert (
        validate(
            {"consistency": {"statement_timeout": "never"}}
        ).consistency.statement_timeout.postgres()
        == "0"
    )


@pytest.mark.parametrize(
    "text", ["30x", "", "d30", "-1d", "soon", "1.5.2h", "99999999999years", "1001 years", 1e20]
)
def test_bad_durations_are_refused(text: str | float) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        Duration.parse(text)


def test_sizes() -> None:
    assert Size.parse("10GB").bytes == 10 * 1024**3
    assert Size.parse("512MB").bytes == 512 * 1024**2
    with pytest.raises(ValueError, match="expected a size"):
        Size.parse("ten gigs")


def _problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(data, "test.toml")
    assert "test.toml" in str(info.value)
    return info.value.problems


def test_unknown_key_is_named_by_its_dotted_path() -> None:
    problems = _problems({"backup": {"retention": {"ful": "30d"}}})
    assert len(problems) == 1
    assert problems[0].startswith("backup.retention.ful: unknown key")


def test_bad_value_names_key_value_and_expectation() -> None:
    problems = _problems({"backup": {"retention": {"full": "30x"}}})
    assert problems == [
        'backup.retention.full = \'30x\': expected a duration such as "30d", "24h", "15min", '
        '"2 years", "3 months", "daily", "weekly" or "indefinite"'
    ]


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        {
            "alerts": {"disk_usage": {"warning": 95}},
            "validation": {
                "workout": {"date": {"min": "yesterday"}, "reps": {"min": 10, "max": 5}}
            },
            "postgres": {"os_user": "root"},
        }
    )
    text = "\n".join(problems)
    assert "alerts.disk_usage" in text and "warning (95.0) is above critical (90.0)" in text
    assert "validation.workout.date.min = 'yesterday'" in text
    assert "validation.workout.reps" in text and "min (10.0) is greater than max (5.0)" in text
    assert "postgres.os_user = 'root'" in text
    assert len(problems) == 4


def test_partial_section_keeps_other_defaults() -> None:
    s = validate({"alerts": {"disk_usage": {"warning": 70}}})
    assert (s.alerts.disk_usage.warning, s.alerts.disk_usage.critical) == (70, 90)


def test_strategy_spelling_for_storage_kind() -> None:
    s = validate(
        {
            "backup": {
                "storage": {"primary": "file", "secondary": {"kind": "gcs", "url": "s3://b/p"}}
            }
        }
    )
    assert s.backup.storage.primary.kind == "file"
    assert s.backup.storage.secondary is not None and s.backup.storage.secondary.url == "s3://b/p"
    assert any(
        "backup.storage.primary.kind = 'ftp'" in p
        for p in _problems({"backup": {"storage": {"primary": "ftp"}}})
    )


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    path = tmp_path / "powrops.toml"
    path.write_text('[backup.retention]\nfull = "14d"\nincremental = "3d"\n')
    env = {
        "POWROPS_CONFIG": str(path),
        "POWROPS__BACKUP__RETENTION__INCREMENTAL": "2d",
        "POWROPS_STATE_DIR": str(tmp_path / "st"),
    }
    s = load_settings(environ=env)
    assert s.backup.retention.full.days == 14
    assert s.backup.retention.incremental.days == 2
    assert s.state_dir == tmp_path / "st"
    assert s.source == f"{path} + environment"


def test_unknown_environment_override_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"POWROPS__BACKUP__RETENTON__FULL": "1d"})
    assert any(p.startswith("backup.retenton: unknown key") for p in info.value.problems)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[backup\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})


@pytest.mark.parametrize("port", ["99999", "0", "54x2"])
def test_a_database_url_with_a_port_out_of_range_is_refused(port: str) -> None:
    """Named as every bad value is, its secret hidden; not a crash (ValueError) of every
    command that names the server once it fails to connect."""
    url = f"postgresql://app:hunter2-secret@db.example:{port}/powr"
    with pytest.raises(ConfigError, match=r"database.url = \*+: .* port from 1 to 65535") as info:
        validate({"database": {"url": url}})
    assert "hunter2" not in str(info.value)


def test_secrets_are_redacted_and_collected() -> None:
    s = validate(
        {
            "database": {"url": "postgresql://app:hunter2-secret@db.example/powr"},
            "backup": {
                "storage": {
                    "primary": {"kind": "gcs", "url": "s3://b", "secret_access_key": "GCSKEY123"}
                }
            },
        }
    )
    shown = to_toml(redacted_dict(s))
    assert "hunter2-secret" not in shown and "GCSKEY123" not in shown
    assert shown.count("********") == 2
    assert sorted(secret_values(s)) == [
        "GCSKEY123",
        "postgresql://app:hunter2-secret@db.example/powr",
    ]


def test_shown_configuration_reads_back_to_the_same_settings(tmp_path: Path) -> None:
    s = validate(
        {"backup": {"retention": {"full": "45d"}}, "alerts": {"dead_tuples": {"warning": 5}}}
    )
    path = tmp_path / "round.toml"
    path.write_text(to_toml(redacted_dict(s)))
    again = load_settings(path, environ={})
    assert redacted_dict(again) == redacted_dict(s)


FLEET = """
[backup.retention]
full = "30d"
[state]
dir = "st"
[servers.east.backup.retention]
full = "7d"
[servers.west.database]
application_name = "west-app"
"""


def test_servers_are_deep_merged_and_chosen(tmp_path: Path) -> None:
    config = tmp_path / "powrops.toml"
    config.write_text(FLEET)
    east = load_settings(config, environ={}, server="east")
    west = load_settings(config, environ={"POWROPS_SERVER": "west"})
    assert (east.server, east.servers) == ("east", ("east", "west"))
    assert str(east.backup.retention.full) == "7d" and str(west.backup.retention.full) == "30d"
    assert str(east.backup.retention.incremental) == "7d"  # the rest of the table stays
    assert west.database.application_name == "west-app"
    assert east.state_dir == tmp_path / "st" / "east"
    assert (
        east.runs_dir == tmp_path / "reports" / "east" and east.reports_dir == tmp_path / "reports"
    )
    with pytest.raises(ConfigError, match=r"several servers \(east, west\)"):
        load_settings(config, environ={})
    with pytest.raises(
        ConfigError, match=r"unknown server 'north'; configured servers: east, west"
    ):
        load_settings(config, environ={"POWROPS_SERVER": "north"})
    bad = tmp_path / "bad.toml"
    bad.write_text('[servers.default.database]\napplication_name = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(bad, environ={})
    assert "servers.default: a server name" in caught.value.problems[0]


def test_without_servers_the_default_server_keeps_its_paths(tmp_path: Path) -> None:
    config = tmp_path / "powrops.toml"
    config.write_text('[state]\ndir = "st"\n')
    s = load_settings(config, environ={})
    assert (s.server, s.servers, s.named_server) == ("default", ("default",), False)
    assert s.state_dir == tmp_path / "st" and s.runs_dir == s.reports_dir == tmp_path / "reports"
    assert load_settings(config, environ={"POWROPS_SERVER": "default"}).server == "default"


def test_config_check_validates_every_server(tmp_path: Path) -> None:
    from cli_helpers import run_cli

    config = tmp_path / "powrops.toml"
    config.write_text(FLEET)
    ok = run_cli("config", "check", str(config))
    assert ok.returncode == 0, ok.stderr
    assert "[servers.east]" in ok.stdout and "[servers.west]" in ok.stdout
    config.write_text(FLEET + '[servers.west.backup.retention]\nfull = "30x"\n')
    bad = run_cli("config", "check", str(config))
    assert bad.returncode == 3
    assert "[servers.west]" in bad.stderr and "backup.retention.full = '30x'" in bad.stderr
    only_east = run_cli("--server", "east", "config", "check", str(config))
    assert only_east.returncode == 0, only_east.stderr
