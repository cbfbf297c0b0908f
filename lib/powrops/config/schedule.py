"""The job schedule (``powrops schedule``): cron, systemd and Apache Airflow."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Annotated, Any, Literal

from powrops.config.base import (
    Section,
)
from powrops.config.connection import (
    JOB_ROLES,
)
from powrops.config.model import (
    BeforeValidator,
    Field,
    field_validator,
)
from powrops.durations import Duration


def _clock(value: Any) -> Any:
    if isinstance(value, str):
        try:
            dt.time.fromisoformat(value)
        except ValueError:
            raise ValueError('expected a time of day as "HH:MM"') from None
    return value


class AirflowSettings(Section):
    """How ``powrops schedule --format airflow`` writes the jobs as Airflow tasks."""

    # Exit 1 (WARNING) ends the task as a success with a log line; true fails it instead.
    warning_fails: bool = False
    # Retries of a job whose retry is safe (reads, backups, maintenance), after an UNKNOWN
    # exit (3: unreachable database, a crash); CRITICAL findings are never retried.
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay: Duration = Duration.parse("10min")
    # A task is stopped after its interval or this, whichever is shorter.
    max_runtime: Duration = Duration.parse("6h")


class ScheduleSettings(Section):
    """When the scheduled jobs run and how cron or systemd starts them (``powrops schedule``).

    The cadences of backups, integrity, cleanup and maintenance come from their own sections;
    these are the times of day they are anchored to and the cadences of the reports.
    """

    daily_at: Annotated[str, BeforeValidator(_clock)] = "01:00"
    weekly_on: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "sun"
    monthly_on: int = Field(default=1, ge=1, le=28)
    timezone: str = "UTC"
    executable: str | None = None
    config: str | None = None
    log_dir: str = "/var/log/powrops"
    lock_dir: str = "/run/lock"
    lock_wait: Duration = Duration.parse("2h")
    user: str | None = None
    mailto: str | None = None
    verification: Duration = Duration.parse("daily")
    readiness: Duration = Duration.parse("daily")
    growth: Duration = Duration.parse("weekly")
    drill: Duration = Duration.parse("monthly")
    review: Duration = Duration.parse("quarterly")
    alerts: Duration = Duration.parse("5min")
    # node_exporter's textfile directory: the alerts job writes its metrics there
    textfile: str | None = None
    # The role each job runs under, by what it does (reports and checks, backups, the changes
    # an owner makes); run_as_roles = false runs every job as the configured URL's user.
    run_as_roles: bool = True
    roles: dict[str, str] = Field(default_factory=lambda: dict(JOB_ROLES))
    airflow: AirflowSettings = AirflowSettings()

    @field_validator("roles")
    @classmethod
    def _role_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(JOB_ROLES))
        if unknown:
            raise ValueError(f"unknown job kind {unknown[0]!r}; expected {', '.join(JOB_ROLES)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError('expected a time zone name such as "UTC" or "Europe/Berlin"') from None
        return value

    @field_validator("executable", "config", "log_dir", "lock_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path (cron and systemd start jobs from /)")
        return value
