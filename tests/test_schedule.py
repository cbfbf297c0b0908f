"""``powrops schedule``: cron lines and systemd units that parse, match the config, fail loudly."""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from powrops.cli.main import build_parser
from powrops.config import Settings, validate
from powrops.errors import ConfigError
from powrops.pg.pgpass import ANY, entry, lookup, passwords, write
from powrops.reports.spec import discover
from powrops.schedule.airflow import job_specs
from powrops.schedule.jobs import crontab, jobs, systemd_units

REPO = Path(__file__).resolve().parents[1]
EXE = "/opt/powrops/bin/powrops"
CONFIG = "/etc/powrops/powrops.toml"


def settings(**sections: Any) -> Settings:
    base: dict[str, Any] = {"schedule": {"executable": EXE, "config": CONFIG}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return validate(base)


# --- a strict parser for the five crontab fields ------------------------------------------

RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
FIELD = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


def parse_field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        match = FIELD.match(part)
        assert match, f"bad cron field part {part!r}"
        span, step = match.group(1), int(match.group(2) or 1)
        assert step >= 1
        if span == "*":
            start, end = low, high
        elif "-" in span:
            start, end = (int(x) for x in span.split("-"))
        else:
            start = end = int(span)
            assert match.group(2) is None, f"a step needs a range: {part!r}"
        assert low <= start <= end <= high, f"{part!r} outside {low}-{high}"
        values.update(range(start, end + 1, step))
    return values


def parse_entry(line: str) -> tuple[list[set[int]], list[str], str]:
    fields = line.split(None, 5)
    assert len(fields) == 6, f"not a crontab entry: {line!r}"
    sets = [parse_field(f, lo, hi) for f, (lo, hi) in zip(fields[:5], RANGES, strict=True)]
    if 7 in sets[4]:
        sets[4] = (sets[4] - {7}) | {0}
    return sets, fields[:5], fields[5]


def cron_next(sets: list[set[int]], fields: list[str], after: datetime, count: int) -> list[str]:
    """The next ``count`` times a crontab entry fires after ``after`` (cron's day rule)."""
    minute, hour, day, month, weekday = sets
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    found: list[str] = []
    while len(found) < count:
        dow = (moment.weekday() + 1) % 7
        if fields[2] != "*" and fields[4] != "*":
            day_ok = moment.day in day or dow in weekday
        else:
            day_ok = moment.day in day and dow in weekday
        if moment.month in month and day_ok and moment.hour in hour and moment.minute in minute:
            found.append(moment.strftime("%Y-%m-%d %H:%M"))
        moment += timedelta(minutes=1)
    return found


def entries(text: str) -> dict[str, str]:
    """Job name (from the comment above it) -> crontab line."""
    result: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line.startswith("# ") and ":" in line and not line.startswith("# WAL"):
            name = line[2:].split(":", 1)[0]
        elif line and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line):
            assert name, f"entry without its comment: {line!r}"
            result[name] = line
            name = None
    return result


# --- cron ----------------------------------------------------------------------------------


def test_each_job_runs_under_its_role_unless_roles_are_off() -> None:
    s = settings()
    roles = {job.name: job.role for job in jobs(s)}
    assert roles["alerts"] == roles["backup-verification"] == roles["integrity-report"]
    assert roles["alerts"] == "reporting"
    assert roles["backup-full"] == roles["backup-incremental"] == "backup"
    assert roles["maintenance-vacuum"] == roles["retention-apply"] == roles["cleanup"] == "owner"
    off = validate({"schedule": {"config": CONFIG, "executable": EXE, "run_as_roles": False}})
    assert "POWROPS_DATABASE_ROLE" not in crontab(off)
    with pytest.raises(ConfigError, match="unknown job kind"):
        validate({"schedule": {"roles": {"admin": "postgres"}}})


def test_jobs_on_the_embedded_default_name_the_job_password_file() -> None:
    s = settings(state={"dir": "/var/lib/powrops"})
    passfile = "/var/lib/powrops/pgpass"
    lines = entries(crontab(s))
    units = systemd_units(s)
    for job in jobs(s):
        assert f" PGPASSFILE={passfile} " in lines[job.name], job.name
        assert f"Environment=PGPASSFILE={passfile}\n" in units[f"powrops-{job.name}.service"]
    url = settings(database={"url": "postgresql://powrops@db.internal/powr"})
    assert "PGPASSFILE" not in crontab(url)  # a configured server: libpq's ~/.pgpass
    off = settings(schedule={"run_as_roles": False})
    assert "PGPASSFILE" not in crontab(off)  # the URL's user, with the URL's password
    named = s.model_copy(update={"server": "west", "servers": ("east", "west")})
    assert f" PGPASSFILE={passfile} " in crontab(named)  # one file: the fleet review reads all


def test_the_job_password_file_reads_back_as_libpq_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    odd = "a:b\\c*"  # the separator and the escape character in a password
    lines = [entry("127.0.0.1", ANY, ANY, "powr_backup", odd),
             entry("127.0.0.1", ANY, ANY, "powr_owner", "plain")]  # fmt: skip
    write(path, lines, os.geteuid(), os.getegid())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # libpq ignores a file others may read
    env = {"PGPASSFILE": str(path)}
    assert lookup("127.0.0.1", 5432, "powr", "powr_backup", env) == odd
    assert lookup("127.0.0.1", 61234, "other", "powr_owner", env) == "plain"
    assert lookup("10.0.0.1", 5432, "powr", "powr_owner", env) is None
    assert passwords(path) == {"powr_backup": odd, "powr_owner": "plain"}
    assert passwords(tmp_path / "missing") == {}


def test_every_cron_entry_parses_and_is_wired() -> None:
    s = settings(database={"url": "postgresql://powrops@db.internal/powr"})
    text = crontab(s)
    lines = entries(text)
    assert set(lines) == {job.name for job in jobs(s)}
    assert "CRON_TZ=UTC" in text.splitlines()
    assert "archive_timeout = 900s" in text  # the WAL note, not a job
    for job in jobs(s):
        sets, _fields, command = parse_entry(lines[job.name])
        assert all(sets), job.name
        log = f"/var/log/powrops/{job.name}.log"
        role = {"reporting": "powr_reporting", "backup": "powr_backup", "owner": "powr_owner"}
        env = f"POWROPS_CONFIG={CONFIG} POWROPS_DATABASE_ROLE={role[job.role]}"
        assert f"{env} /usr/bin/flock --verbose -E 3 -w 7200 " in command
        assert f"{EXE} {' '.join(job.args)} >>{log} 2>&1 || " in command
        assert "logger -t powrops -p user.err" in command
        assert re.search(r"(?<!\\)%", command) is None, "unescaped % in a cron command"


def test_cron_times_follow_the_config() -> None:
    default = entries(crontab(settings()))
    assert default["backup-full"].startswith("0 1 * * * ")
    assert default["backup-incremental"].startswith("30 * * * * ")
    assert default["alerts"].startswith("*/5 * * * * ")
    assert default["maintenance-vacuum"].startswith("0 5 * * 0 ")  # weekly, Sunday
    assert default["maintenance-reindex"].startswith("30 5 1 * * ")  # monthly, on the 1st
    assert default["quarterly-review"].startswith("0 9 1 1,4,7,10 * ")
    assert "integrity-repair" in default

    changed = entries(
        crontab(
            settings(
                schedule={"daily_at": "02:15", "weekly_on": "wed", "alerts": "15min"},
                backup={"schedule": {"incremental": "2h", "full": "weekly"}},
                maintenance={"vacuum": "daily"},
                consistency={"repair": {"auto_fix": False}},
            )
        )
    )
    assert changed["backup-full"].startswith("15 2 * * 3 ")
    assert changed["backup-incremental"].startswith("45 */2 * * * ")
    assert changed["maintenance-vacuum"].startswith("15 6 * * * ")
    assert changed["alerts"].startswith("*/15 * * * * ")
    assert "integrity-repair" not in changed
    assert changed != default


def test_a_cadence_cron_cannot_express_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        crontab(settings(backup={"schedule": {"incremental": "7min"}}))
    assert "backup.schedule.incremental = '7min'" in "\n".join(caught.value.problems)
    with pytest.raises(ConfigError):
        validate({"schedule": {"daily_at": "25:00"}})
    with pytest.raises(ConfigError):
        validate({"schedule": {"log_dir": "relative/logs"}})


def test_a_cadence_of_never_leaves_the_job_out() -> None:
    """Before PostgreSQL 17 ``backup incremental`` refuses (exit 3): such a server sets
    ``backup.schedule.incremental = "never"`` and gets no hourly job bound to fail."""
    never = settings(backup={"schedule": {"incremental": "never"}})
    names = [job.name for job in jobs(never)]
    assert "backup-incremental" not in names and "backup-full" in names
    assert "backup-incremental" not in entries(crontab(never))
    assert "backup-full" in entries(crontab(never))
    units = systemd_units(never)
    assert "powrops-backup-incremental.timer" not in units
    assert "powrops-backup-incremental.timer" not in units["README"]
    assert "powrops-backup-full.timer" in units
    assert "backup-incremental" not in [spec["name"] for spec in job_specs(never, CONFIG)]
    no_review = settings(schedule={"review": "never"})
    assert "quarterly-review" not in [spec["name"] for spec in job_specs(no_review, CONFIG)]
    assert "backup-incremental" in entries(crontab(settings()))


def test_the_crontab_says_whose_crontab_it_belongs_in() -> None:
    """The header names schedule.user (the jobs' OS user, systemd's User=), not a fixed one."""
    header = crontab(settings(schedule={"user": "postgres"})).split("SHELL=")[0]
    assert "crontab FILE (as\n# the 'postgres' OS user)" in header
    assert "powrops OS user" not in header
    assert "the jobs' OS user" in crontab(settings()).split("SHELL=")[0]


def _run_entry(
    line: str, tmp: Path, exit_code: int, env_path: str
) -> subprocess.CompletedProcess[str]:
    _, _, command = parse_entry(line)
    return subprocess.run(
        ["/bin/sh", "-c", command.replace("\\%", "%")],
        env={"PATH": env_path, "HOME": str(tmp), "FAKE_EXIT": str(exit_code)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock (util-linux) is not installed")
def test_a_failing_job_is_logged_and_reported(tmp_path: Path) -> None:
    """Run a real generated line through /bin/sh with a stand-in powrops that exits 2."""
    fake = tmp_path / "powrops"
    fake.write_text('#!/bin/sh\necho "ran: $*"\nexit "$FAKE_EXIT"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "logger.calls"
    (bin_dir / "logger").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    for script in (fake, bin_dir / "logger"):
        script.chmod(0o755)
    s = settings(schedule={"executable": str(fake), "log_dir": str(tmp_path),
                           "lock_dir": str(tmp_path), "lock_wait": "1s"})  # fmt: skip
    line = entries(crontab(s))["backup-full"]
    path = f"{bin_dir}:/usr/bin:/bin"

    ok = _run_entry(line, tmp_path, 0, path)
    assert ok.returncode == 0 and ok.stderr == "" and not calls.exists()
    failed = _run_entry(line, tmp_path, 2, path)
    log = (tmp_path / "backup-full.log").read_text()
    assert log.count("ran: backup full") == 2 and log.count("backup-full\n") == 2
    assert "backup-full failed with exit 2" in calls.read_text()
    assert "backup-full failed with exit 2" in failed.stderr  # what cron mails to MAILTO

    # The backup lock is held (a backup still running): the job waits, then fails visibly.
    with (tmp_path / "powrops-backup.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        blocked = _run_entry(line, tmp_path, 0, path)
    assert "backup-full failed with exit 3" in blocked.stderr  # it did not run: UNKNOWN
    assert "flock: timeout while waiting to get lock" in (tmp_path / "backup-full.log").read_text()
    assert log.count("ran: backup full") == (tmp_path / "backup-full.log").read_text().count(
        "ran: backup full"
    ), "the job ran although its lock was held"


# --- systemd -------------------------------------------------------------------------------


def test_systemd_units_are_complete_and_start_real_subcommands(tmp_path: Path) -> None:
    s = settings(schedule={"user": "powrops"})
    units = systemd_units(s)
    parser = build_parser()
    reports = discover()
    for job in jobs(s):
        service = units[f"powrops-{job.name}.service"]
        timer = units[f"powrops-{job.name}.timer"]
        assert "Type=oneshot" in service and "SuccessExitStatus" not in service
        assert f"Environment=POWROPS_CONFIG={CONFIG}" in service and "User=powrops" in service
        assert f"StandardOutput=append:/var/log/powrops/{job.name}.log" in service
        assert "Persistent=true" in timer and f"Unit=powrops-{job.name}.service" in timer
        exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", service, re.M).group(1))  # type: ignore[union-attr]
        assert exec_start[:5] == ["/usr/bin/flock", "--verbose", "-E", "3", "-w"]
        assert exec_start[7] == EXE
        args = exec_start[8:]
        assert tuple(args) == job.args
        parser.parse_args(args)  # exits 3 (SystemExit) when a subcommand or flag is unknown
        if args[:2] == ["report", "run"]:
            assert args[2] in reports, f"{job.name} runs an unknown report {args[2]}"


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_every_on_calendar_validates_and_agrees_with_cron() -> None:
    s = settings(schedule={"daily_at": "01:40"}, backup={"schedule": {"incremental": "3h"}})
    units = systemd_units(s)
    lines = entries(crontab(s))
    base = datetime(2026, 3, 30, 12, 7, tzinfo=UTC)
    for job in jobs(s):
        expression = re.search(r"^OnCalendar=(.*)$", units[f"powrops-{job.name}.timer"], re.M)
        assert expression is not None
        run = subprocess.run(
            [SYSTEMD_ANALYZE or "", "calendar", "--iterations=3",
             f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", expression.group(1)],
            capture_output=True, text=True, check=False, env={**os.environ, "TZ": "UTC"},
        )  # fmt: skip
        assert run.returncode == 0, f"{job.name}: {expression.group(1)}: {run.stderr}"
        elapses = re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d):00 UTC", run.stdout)
        sets, fields, _ = parse_entry(lines[job.name])
        assert elapses[:3] == cron_next(sets, fields, base, 3), job.name


def test_cli_prints_and_writes(tmp_path: Path) -> None:
    config = tmp_path / "powrops.toml"
    config.write_text(f'[schedule]\nexecutable = "{EXE}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    cli = [sys.executable, "-m", "powrops.cli", "-c", str(config), "schedule"]
    printed = subprocess.run(cli, capture_output=True, text=True, env=env, check=False)
    assert printed.returncode == 0, printed.stderr
    assert f"POWROPS_CONFIG={config} " in printed.stdout
    out = tmp_path / "units"
    wrote = subprocess.run([*cli, "--format", "systemd", "--output", str(out)],
                           capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    assert (out / "powrops-backup-full.timer").is_file()
    assert len(list(out.glob("*.timer"))) == len(list(out.glob("*.service"))) > 10
    config.write_text('[backup.schedule]\nincremental = "7min"\n')
    bad = subprocess.run(cli, capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 3 and "backup.schedule.incremental" in bad.stderr


# --- the fleet -----------------------------------------------------------------------------


def test_the_fleet_review_runs_once_after_the_servers_reviews() -> None:
    one = settings()
    assert "fleet-review" not in {job.name for job in jobs(one)}
    east = one.model_copy(update={"server": "east", "servers": ("east", "west")})
    west = one.model_copy(update={"server": "west", "servers": ("east", "west")})
    assert "fleet-review" not in {job.name for job in jobs(west)}  # the first server runs it
    lines = entries(crontab(east))
    review = parse_entry(lines["quarterly-review"])[1]
    fleet, command = parse_entry(lines["fleet-review"])[1:]
    assert fleet == ["30", "9", "1", "1,4,7,10", "*"] and review == ["0", "9", "1", "1,4,7,10", "*"]
    assert f"{EXE} report run quarterly_review -p servers all >>" in command
    assert "POWROPS_SERVER=east " in command and "/powrops-east-report.lock " in command
    unit = systemd_units(east)["powrops-east-fleet-review.service"]
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert exec_start is not None
    args = shlex.split(exec_start.group(1))[8:]
    assert args == ["report", "run", "quarterly_review", "-p", "servers", "all"]
    build_parser().parse_args(args)  # exits 3 (SystemExit) when an argument is unknown
    timer = systemd_units(east)["powrops-east-fleet-review.timer"]
    assert "OnCalendar=*-01,04,07,10-01 09:30:00 UTC" in timer


def test_the_alerts_job_writes_the_textfile_that_schedule_textfile_names() -> None:
    """cron, systemd and Airflow all run ``alerts --textfile DIR``: the shipped Prometheus
    rules read what it writes there, and page when it stops."""
    folder = "/var/lib/node exporter/textfile"
    s = settings(schedule={"textfile": folder})
    cron = shlex.split(entries(crontab(s))["alerts"].split(" ", 5)[5])
    unit = systemd_units(s)["powrops-alerts.service"]
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))  # type: ignore[union-attr]
    [spec] = [j for j in job_specs(s, None) if j["name"] == "alerts"]
    for argv in (cron, exec_start, spec["argv"]):
        args = argv[argv.index(EXE) + 1 :][:3]  # cron's line goes on: >>log 2>&1 || ...
        assert args[:3] == ["alerts", "--textfile", folder], argv
        assert build_parser().parse_args(args).textfile == Path(folder)
    assert "--textfile" not in entries(crontab(settings()))["alerts"]
