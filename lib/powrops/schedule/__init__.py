"""The schedule: one job per configured task, as cron lines or systemd units (``jobs``)."""

from __future__ import annotations

from powrops.schedule.jobs import (
    DAY,
    QUARTER_MONTHS,
    ROLE_OF,
    WEEKDAYS,
    Calendar,
    Field,
    Job,
    Paths,
    Step,
    calendar,
    command,
    cron_entry,
    crontab,
    job_environment,
    jobs,
    paths,
    service_unit,
    systemd_units,
    timer_unit,
    unit_name,
)

__all__ = [
    "DAY",
    "QUARTER_MONTHS",
    "ROLE_OF",
    "WEEKDAYS",
    "Calendar",
    "Field",
    "Job",
    "Paths",
    "Step",
    "calendar",
    "command",
    "cron_entry",
    "crontab",
    "job_environment",
    "jobs",
    "paths",
    "service_unit",
    "systemd_units",
    "timer_unit",
    "unit_name",
]
