"""The job schedule: the configured cadences as crontab lines or systemd timer and service units.

One table of jobs (:func:`jobs`) says what runs, how often (a config key whose value is a
:class:`~powrops.durations.Duration`), at what offset from ``schedule.daily_at`` and under which
lock; :func:`crontab` and :func:`systemd_units` render it. Nothing here runs a job.

Failures are visible: every job's output is appended to ``<log_dir>/<job>.log``; in cron a
non-zero exit (1 WARNING, 2 CRITICAL, 3 UNKNOWN) is sent to syslog with ``logger -t powrops``
and printed to stderr, which cron mails to ``MAILTO``; in systemd the oneshot service ends
*failed* (``systemctl --failed``, ``journalctl -u``). Jobs of one lock group never overlap:
each command runs under ``flock -w <lock_wait>`` on the group's lock file; a job whose group
stays busy longer does not run, exits 3 (UNKNOWN), and its log says flock gave up.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from datetime import time
from pathlib import Path

from powrops.config import DEFAULT_SERVER, Settings
from powrops.durations import Duration
from powrops.errors import ConfigError
from powrops.pg.embedded import job_passfile

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 = Sunday
QUARTER_MONTHS = (1, 4, 7, 10)
DAY = 86400


@dataclass(frozen=True)
class Step:
    """Every ``step`` units from ``start`` (cron ``start-max/step``, systemd ``start/step``)."""

    start: int
    step: int


Field = int | Step | None  # None: every value


@dataclass(frozen=True)
class Calendar:
    """When a job runs, in the fields cron and systemd share."""

    minute: int | Step
    hour: Field = None
    day: int | None = None
    months: tuple[int, ...] | None = None
    weekday: int | None = None  # 0 = Sunday

    def cron(self) -> str:
        """The five crontab fields."""

        def field(value: Field, top: int) -> str:
            if value is None:
                return "*"
            if isinstance(value, Step):
                return (
                    f"*/{value.step}" if value.start == 0 else f"{value.start}-{top}/{value.step}"
                )
            return str(value)

        months = ",".join(str(m) for m in self.months) if self.months else "*"
        weekday = "*" if self.weekday is None else str(self.weekday)
        return " ".join(
            [field(self.minute, 59), field(self.hour, 23), field(self.day, 31), months, weekday]
        )

    def on_calendar(self, timezone: str) -> str:
        """A systemd ``OnCalendar=`` expression."""

        def field(value: Field) -> str:
            if value is None:
                return "*"
            if isinstance(value, Step):
                return f"{value.start:02d}/{value.step}"
            return f"{value:02d}"

        months = ",".join(f"{m:02d}" for m in self.months) if self.months else "*"
        date = f"*-{months}-{field(self.day)}"
        clock = f"{field(self.hour)}:{field(self.minute)}:00"
        weekday = "" if self.weekday is None else WEEKDAYS[self.weekday].capitalize() + " "
        return f"{weekday}{date} {clock} {timezone}"


@dataclass(frozen=True)
class Job:
    """One scheduled command."""

    name: str
    args: tuple[str, ...]
    key: str  # the config key its cadence comes from
    every: Duration
    offset_min: int  # minutes after schedule.daily_at (or after the hour for hourly jobs)
    lock: str
    description: str

    @property
    def role(self) -> str:
        """What the job does, which names the role it runs under (``schedule.roles``)."""
        return ROLE_OF.get(self.name, "reporting")


#: The kind of role each job needs: ``reporting`` (read POWR data, record powrops' own
#: history), ``backup`` (replication, the backup functions), ``owner`` (VACUUM, REINDEX,
#: retention, cleanup and repairs, which change or own the POWR tables).
ROLE_OF = {
    "backup-full": "backup",
    "backup-expire": "backup",
    "backup-copy": "backup",
    "backup-incremental": "backup",
    "integrity-repair": "owner",
    "maintenance-analyze": "owner",
    "maintenance-vacuum": "owner",
    "maintenance-reindex": "owner",
    "retention-apply": "owner",
    "cleanup": "owner",
}


def job_environment(settings: Settings, job: Job, where: Paths) -> dict[str, str]:
    """The environment a job starts with: its config file, the role it runs under and, on
    the embedded default, the file holding the roles' passwords (``powrops db start``)."""
    env = {"POWROPS_CONFIG": where.config}
    if settings.named_server:
        env["POWROPS_SERVER"] = settings.server
    role = settings.schedule.roles.get(job.role)
    if settings.schedule.run_as_roles and role:
        env["POWROPS_DATABASE_ROLE"] = role
        passfile = job_passfile(settings)
        if passfile is not None:
            env["PGPASSFILE"] = str(passfile)
    return env


def calendar(settings: Settings, job: Job) -> Calendar:
    """The job's cadence as a calendar, or ConfigError naming the key when it has none."""
    seconds = job.every.seconds
    anchor = time.fromisoformat(settings.schedule.daily_at)
    total = anchor.hour * 60 + anchor.minute + job.offset_min
    minute, hour = total % 60, (total // 60) % 24
    if seconds is not None and seconds == int(seconds) and seconds > 0:
        whole = int(seconds)
        if whole < 3600 and whole % 60 == 0 and 3600 % whole == 0:
            step = whole // 60
            return Calendar(minute=Step(minute % step, step))
        if whole < DAY and whole % 3600 == 0 and DAY % whole == 0:
            hours = whole // 3600
            return Calendar(minute=minute, hour=None if hours == 1 else Step(hour % hours, hours))
        weekday = WEEKDAYS.index(settings.schedule.weekly_on)
        day = settings.schedule.monthly_on
        by_length = {
            DAY: Calendar(minute, hour),
            7 * DAY: Calendar(minute, hour, weekday=weekday),
            30 * DAY: Calendar(minute, hour, day=day),
            91 * DAY: Calendar(minute, hour, day=day, months=QUARTER_MONTHS),
            365 * DAY: Calendar(minute, hour, day=day, months=(1,)),
        }
        if whole in by_length:
            return by_length[whole]
    raise ConfigError(
        "cannot schedule a job",
        problems=[
            f"{job.key} = {str(job.every)!r}: cannot be scheduled; expected a divisor of an hour "
            '("5min", "15min"), of a day ("1h", "6h"), "daily", "weekly", "monthly", "quarterly" '
            'or "yearly"'
        ],
    )


#: The fleet's quarterly review (``-p servers all``), run by :func:`fleet_runner`'s server.
FLEET_REVIEW = "fleet-review"


def fleet_runner(settings: Settings) -> bool:
    """Whether this server's schedule runs the fleet's review: the first of several
    configured servers does, so that the fleet is reviewed once."""
    servers = settings.servers
    return len(servers) > 1 and settings.server == servers[0]


def jobs(settings: Settings) -> list[Job]:
    """Every scheduled job, from the configuration; a job whose cadence is "never" is left
    out (``backup.schedule.incremental = "never"`` on a server before PostgreSQL 17, where
    ``backup incremental`` refuses: an hourly job bound to fail)."""
    return [job for job in _every_job(settings) if job.every.seconds is not None]


def _every_job(settings: Settings) -> list[Job]:
    s, sched = settings, settings.schedule
    backup = s.backup.schedule
    integrity: list[Job] = []
    if s.consistency.repair.auto_fix:
        integrity.append(
            Job("integrity-repair", ("check", "integrity", "--repair"), "consistency.schedule",
                s.consistency.schedule, 150, "db", "integrity checks with automatic repairs")
        )  # fmt: skip
    fleet: list[Job] = []
    if fleet_runner(settings):  # the fleet's review, once, after this server's own
        fleet.append(
            Job(FLEET_REVIEW, ("report", "run", "quarterly_review", "-p", "servers", "all"),
                "schedule.review", sched.review, 510, "report",
                "the fleet's quarterly review: every server of the configuration")
        )  # fmt: skip
    copy: list[Job] = []
    secondary = s.backup.storage.secondary
    if secondary is not None and secondary.url is not None:  # nothing to copy to otherwise
        copy.append(
            Job("backup-copy", ("backup", "copy"), "backup.schedule.full", backup.full, 70,
                "backup", "copy what the secondary repository lacks")
        )  # fmt: skip
    return [
        Job("backup-full", ("backup", "full"), "backup.schedule.full", backup.full, 0,
            "backup", "full base backup"),
        Job("backup-expire", ("backup", "expire"), "backup.schedule.full", backup.full, 60,
            "backup", "apply backup.retention after the full backup"),
        *copy,
        Job("backup-incremental", ("backup", "incremental"), "backup.schedule.incremental",
            backup.incremental, 30, "backup", "incremental base backup"),
        Job("backup-verification", ("report", "run", "backup_verification"),
            "schedule.verification", sched.verification, 120, "backup",
            "backup verification report"),
        *integrity,
        Job("integrity-report", ("report", "run", "integrity_report"), "consistency.schedule",
            s.consistency.schedule, 180, "db", "integrity report"),
        Job("maintenance-analyze", ("maintenance", "analyze"), "maintenance.analyze",
            s.maintenance.analyze, 210, "db", "ANALYZE: update planner statistics"),
        Job("maintenance-vacuum", ("maintenance", "vacuum"), "maintenance.vacuum",
            s.maintenance.vacuum, 240, "db", "VACUUM: clean up dead tuples"),
        Job("maintenance-reindex", ("maintenance", "reindex", "--yes"), "maintenance.reindex",
            s.maintenance.reindex, 270, "db", "REINDEX: rebuild bloated indexes"),
        Job("retention-apply", ("retention", "apply"), "cleanup.schedule", s.cleanup.schedule,
            300, "db", "archive and delete data past its retention"),
        Job("cleanup", ("cleanup",), "cleanup.schedule", s.cleanup.schedule, 330, "db",
            "remove expired temp data, cache entries and sessions"),
        Job("retention-report", ("report", "run", "retention_report"), "cleanup.schedule",
            s.cleanup.schedule, 360, "db", "retention report"),
        Job("growth-report", ("report", "run", "growth_report"), "schedule.growth", sched.growth,
            390, "db", "growth report and forecast"),
        Job("readiness-report", ("report", "run", "readiness_report"), "schedule.readiness",
            sched.readiness, 420, "db", "readiness report"),
        Job("recovery-drill", ("report", "run", "recovery_drill"), "schedule.drill", sched.drill,
            450, "backup", "recovery drill into a scratch cluster (RTO, RPO)"),
        Job("quarterly-review", ("report", "run", "quarterly_review"), "schedule.review",
            sched.review, 480, "report", "the quarterly review"),
        *fleet,
        Job("alerts", _alerts_args(sched.textfile), "schedule.alerts", sched.alerts, 0, "alerts",
            "alert thresholds (disk, dead tuples, query time, failed backups)"),
    ]  # fmt: skip


def _alerts_args(textfile: str | None) -> tuple[str, ...]:
    """``alerts``, writing node_exporter's textfile when ``schedule.textfile`` names its
    directory (what the shipped Prometheus rules read)."""
    return ("alerts",) if textfile is None else ("alerts", "--textfile", textfile)


def report_intervals(settings: Settings) -> dict[str, float]:
    """Report name -> its scheduled interval in seconds, for the reports the schedule runs
    (the fleet page judges a run stale against it)."""
    found: dict[str, float] = {}
    for job in jobs(settings):
        seconds = job.every.seconds
        if job.args[:2] == ("report", "run") and seconds:
            found[job.args[2]] = float(seconds)
    return found


# --- paths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Absolute paths written into every job."""

    executable: str
    config: str
    log_dir: str
    lock_dir: str
    server: str = DEFAULT_SERVER

    @property
    def prefix(self) -> str:
        """``<server>-`` for a named server, so that servers share no log, lock or unit."""
        return "" if self.server == DEFAULT_SERVER else f"{self.server}-"

    def log(self, job: Job) -> str:
        return f"{self.log_dir}/{self.prefix}{job.name}.log"

    def lock(self, job: Job) -> str:
        return f"{self.lock_dir}/powrops-{self.prefix}{job.lock}.lock"


def paths(settings: Settings, config_file: str | Path | None) -> Paths:
    """The executable and config file for the jobs; ConfigError when either is unknown."""
    sched = settings.schedule
    executable = sched.executable or _installed_executable()
    config = sched.config or (str(Path(config_file).absolute()) if config_file else None)
    if executable is None:
        raise ConfigError(
            "cannot write the schedule",
            problems=["schedule.executable: not set and no powrops next to this Python; "
                      "set it to the absolute path of the powrops command"],
        )  # fmt: skip
    if config is None:
        raise ConfigError(
            "cannot write the schedule",
            problems=["schedule.config: not set and no config file in use; jobs need "
                      "POWROPS_CONFIG (pass -c FILE, set POWROPS_CONFIG or schedule.config)"],
        )  # fmt: skip
    return Paths(executable, config, sched.log_dir, sched.lock_dir, settings.server)


def _installed_executable() -> str | None:
    candidate = Path(sys.executable).absolute().parent / "powrops"
    return str(candidate) if candidate.is_file() else None


#: flock's exit when the lock stayed busy past the wait: the job did not run, UNKNOWN.
LOCK_TIMEOUT_EXIT = 3


def command(job: Job, where: Paths, wait_s: int) -> list[str]:
    """The job's command line: powrops under flock on its group's lock. flock says in the
    job's log how long it waited, or that it gave up (the job did not run: exit 3)."""
    return ["/usr/bin/flock", "--verbose", "-E", str(LOCK_TIMEOUT_EXIT), "-w", str(wait_s),
            where.lock(job), where.executable, *job.args]  # fmt: skip


def _wait(settings: Settings) -> int:
    return int(settings.schedule.lock_wait.timedelta.total_seconds())


# --- cron ----------------------------------------------------------------------------------


def _cron_escape(text: str) -> str:
    """cron turns an unescaped ``%`` into a newline."""
    return text.replace("%", r"\%")


def cron_entry(settings: Settings, job: Job, where: Paths) -> str:
    """One crontab line (no user field: for ``crontab FILE``)."""
    log = shlex.quote(where.log(job))
    run = shlex.join(command(job, where, _wait(settings)))
    stamp = 'echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) ' + job.name + '" >>' + log
    said = f"{job.name} failed with exit $rc (see {where.log(job)})"
    failed = f'rc=$?; logger -t powrops -p user.err "{said}"; echo "powrops {said}" >&2'
    env = " ".join(
        f"{name}={shlex.quote(value)}"
        for name, value in job_environment(settings, job, where).items()
    )
    body = f"{stamp}; {env} {run} >>{log} 2>&1 || {{ {failed}; }}"
    return f"{calendar(settings, job).cron()} {_cron_escape(body)}"


def crontab(settings: Settings, config_file: str | Path | None = None) -> str:
    """The whole crontab: header, one commented line per job, the WAL note."""
    where = paths(settings, config_file)
    sched = settings.schedule
    user = f"the {sched.user!r} OS user" if sched.user else "the jobs' OS user"
    lines = [
        "# powrops schedule — generated by `powrops schedule --format cron`; do not edit,",
        "# regenerate after changing the configuration. Install: crontab FILE (as",
        f"# {user}). Logs: {where.log_dir}/<job>.log. A non-zero exit (1 WARNING, 2 CRITICAL,",
        "# 3 UNKNOWN) goes to syslog (logger -t powrops) and to stderr, which cron mails to",
        "# MAILTO. Jobs sharing a lock never overlap (flock). Times are in CRON_TZ (cronie);",
        "# cron daemons without CRON_TZ use the system time zone: keep it the same.",
        "SHELL=/bin/sh",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        f"CRON_TZ={sched.timezone}",
    ]
    if sched.mailto:
        lines.append(f"MAILTO={sched.mailto}")
    lines.append(_wal_note(settings, "#"))
    for job in jobs(settings):
        lines.append("")
        lines.append(f"# {job.name}: {job.description} ({job.key} = {job.every})")
        lines.append(cron_entry(settings, job, where))
    return "\n".join(lines) + "\n"


def _wal_note(settings: Settings, comment: str) -> str:
    logs = settings.backup.schedule.logs
    return (
        f"{comment} WAL: not a job. The server archives WAL itself (archive_command = "
        f"'powrops --config FILE wal push %p') and switches segments at archive_timeout = "
        f"{logs.postgres()} (backup.schedule.logs = {logs}); backup verification and alerts "
        "check it is current."
    )


# --- systemd -------------------------------------------------------------------------------


def unit_name(job: Job, server: str = DEFAULT_SERVER) -> str:
    return f"powrops-{job.name}" if server == DEFAULT_SERVER else f"powrops-{server}-{job.name}"


def service_unit(settings: Settings, job: Job, where: Paths) -> str:
    """A oneshot service: exit 1, 2 and 3 leave it failed."""
    sched = settings.schedule
    lines = [
        "[Unit]",
        f"Description=powrops {where.prefix}{job.name}: {job.description}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
    ]
    if sched.user:
        lines.append(f"User={sched.user}")
    lines += [
        *(
            f"Environment={name}={value}"
            for name, value in job_environment(settings, job, where).items()
        ),
        f"ExecStart={shlex.join(command(job, where, _wait(settings)))}",
        f"StandardOutput=append:{where.log(job)}",
        f"StandardError=append:{where.log(job)}",
        "SyslogIdentifier=powrops",
    ]
    return "\n".join(lines) + "\n"


def timer_unit(settings: Settings, job: Job) -> str:
    return (
        "\n".join(
            [
                "[Unit]",
                f"Description=powrops {job.name} ({job.key} = {job.every})",
                "",
                "[Timer]",
                f"OnCalendar={calendar(settings, job).on_calendar(settings.schedule.timezone)}",
                "Persistent=true",
                "AccuracySec=1min",
                f"Unit={unit_name(job, settings.server)}.service",
                "",
                "[Install]",
                "WantedBy=timers.target",
            ]
        )
        + "\n"
    )


def systemd_units(settings: Settings, config_file: str | Path | None = None) -> dict[str, str]:
    """File name -> content: a ``.service`` and a ``.timer`` per job, and a README."""
    where = paths(settings, config_file)
    units: dict[str, str] = {}
    for job in jobs(settings):
        units[f"{unit_name(job, settings.server)}.service"] = service_unit(settings, job, where)
        units[f"{unit_name(job, settings.server)}.timer"] = timer_unit(settings, job)
    timers = " ".join(f"{unit_name(j, settings.server)}.timer" for j in jobs(settings))
    units["README"] = (
        "\n".join(
            [
                "powrops systemd units, generated by `powrops schedule --format systemd`.",
                "Install: copy the files to /etc/systemd/system, then",
                "  systemctl daemon-reload && systemctl enable --now " + timers,
                f"Logs: {where.log_dir}/<job>.log (create it, writable by the job user).",
                "A job that exits 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN) leaves its service",
                "failed: `systemctl --failed`, `journalctl -u powrops-<job>`; OnFailure= can page.",
                _wal_note(settings, ""),
            ]
        )
        + "\n"
    )
    return units
