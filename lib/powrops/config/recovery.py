"""The recovery plan (the strategy's RecoveryPlan) and its objectives."""

from __future__ import annotations

from powrops.config.base import (
    Section,
)
from powrops.config.model import (
    field_validator,
)
from powrops.durations import Duration

RECOVERY_STEPS = (
    "Stop application",
    "Restore latest full backup",
    "Apply incremental backups",
    "Verify data integrity",
    "Update configurations",
    "Restart application",
)


class RecoveryVerification(Section):
    data_integrity: bool = True
    application_state: bool = True
    user_access: bool = True


class RecoveryApplication(Section):
    stop_command: str | None = None
    configure_command: str | None = None
    start_command: str | None = None


class RecoveryObjectives(Section):
    rto: Duration = Duration.parse("1h")
    rpo: Duration = Duration.parse("15min")


class RecoverySettings(Section):
    steps: tuple[str, ...] = RECOVERY_STEPS
    verification: RecoveryVerification = RecoveryVerification()
    application: RecoveryApplication = RecoveryApplication()
    objectives: RecoveryObjectives = RecoveryObjectives()

    @field_validator("steps")
    @classmethod
    def _plan(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if tuple(value) != RECOVERY_STEPS:
            raise ValueError("the recovery plan's steps are fixed: " + "; ".join(RECOVERY_STEPS))
        return value
