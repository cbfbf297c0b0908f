"""Retention policies, archival of workouts, cleanup of short-lived data and of powrops' history."""

from __future__ import annotations

from powrops.config.base import (
    Section,
    absolute_file_url,
)
from powrops.config.model import (
    Field,
    ValidationInfo,
    field_validator,
)
from powrops.durations import Duration


class UserAccountRetention(Section):
    active: Duration = Duration.parse("indefinite")
    inactive: Duration = Duration.parse("2 years")
    deleted: Duration = Duration.parse("30 days")


class WorkoutDataRetention(Section):
    active: Duration = Duration.parse("indefinite")
    archived: Duration = Duration.parse("5 years")
    deleted: Duration = Duration.parse("90 days")


class SystemLogRetention(Section):
    security: Duration = Duration.parse("1 year")
    performance: Duration = Duration.parse("3 months")
    debug: Duration = Duration.parse("7 days")


class RetentionSettings(Section):
    user_account: UserAccountRetention = UserAccountRetention()
    workout_data: WorkoutDataRetention = WorkoutDataRetention()
    system_logs: SystemLogRetention = SystemLogRetention()


class ArchivalTriggers(Section):
    age: int = Field(default=365, ge=1, description="days since last access")
    size: int = Field(default=100_000, ge=1, description="record count threshold")
    user_request: bool = True


class ArchivalProcess(Section):
    compress: bool = True
    # "validate" in the file; ``validate_`` in code, where either name is taken
    validate_: bool = Field(default=True, alias="validate")
    index: bool = True


class ArchivalSettings(Section):
    triggers: ArchivalTriggers = ArchivalTriggers()
    process: ArchivalProcess = ArchivalProcess()
    repository: str | None = None

    @field_validator("repository")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else absolute_file_url(value, info)


class CleanupTargets(Section):
    temp_data: Duration = Duration.parse("24h")
    cache_ttl: Duration = Duration.parse("1h")
    sessions: Duration = Duration.parse("14d")


class CleanupLogging(Section):
    deleted_records: bool = True
    space_reclaimed: bool = True
    errors: bool = True


class HistoryRetention(Section):
    """How long powrops keeps its own history (``powrops cleanup`` deletes what is older)."""

    # check runs other than alerts (verification, integrity, readiness): 13 months, so a
    # year-over-year comparison and the quarterly review always have their period
    check_runs: Duration = Duration.parse("395d")
    # alerts runs (every 5 min: ~105,000 a year): a quarter and a day, what the quarterly
    # review counts alerts over
    alert_runs: Duration = Duration.parse("92d")
    events: Duration = Duration.parse("395d")
    # growth forecasts fit on the snapshot history: two years of it, downsampled: snapshots
    # older than a day keep the first of each hour, older than a week the first of each day
    metric_snapshots: Duration = Duration.parse("2y")
    snapshots_hourly_after: Duration = Duration.parse("1d")
    snapshots_daily_after: Duration = Duration.parse("7d")


class CleanupSettings(Section):
    schedule: Duration = Duration.parse("weekly")
    targets: CleanupTargets = CleanupTargets()
    history: HistoryRetention = HistoryRetention()
    logging: CleanupLogging = CleanupLogging()
    batch_size: int = Field(default=5000, ge=1)
