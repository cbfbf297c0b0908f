"""Backups (the strategy's BackupConfig and BackupProcedure) and how verification spreads
its reads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from powrops.config.base import (
    Section,
    absolute_file_url,
    absolute_path,
)
from powrops.config.model import (
    BeforeValidator,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from powrops.durations import Duration


class BackupSchedule(Section):
    full: Duration = Duration.parse("daily")
    incremental: Duration = Duration.parse("1h")
    logs: Duration = Duration.parse("15min")


class BackupRetention(Section):
    full: Duration = Duration.parse("30d")
    incremental: Duration = Duration.parse("7d")
    logs: Duration = Duration.parse("24h")


def _kind_only(value: Any) -> Any:
    """Accept the strategy's spelling ``primary = "s3"`` as a repository of that kind."""
    return {"kind": value} if isinstance(value, str) else value


class Repository(Section):
    kind: Literal["s3", "gcs", "file"]
    url: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.startswith(("file://", "s3://")):
            raise ValueError("expected a repository URL starting with file:// or s3://")
        return absolute_file_url(value, info)


class Encryption(Section):
    enabled: bool = False
    key_file: str | None = None
    key_env: str | None = None

    @field_validator("key_file")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else absolute_path(value, info)

    @model_validator(mode="after")
    def _key_source(self) -> Encryption:
        if self.enabled and not (self.key_file or self.key_env):
            raise ValueError("encryption is enabled but neither key_file nor key_env is set")
        return self


class BackupStorage(Section):
    primary: Annotated[Repository, BeforeValidator(_kind_only)] = Repository(kind="s3")
    secondary: Annotated[Repository | None, BeforeValidator(_kind_only)] = Repository(kind="gcs")
    encryption: Encryption = Encryption()


class PreSteps(Section):
    check_disk_space: bool = True
    check_connections: bool = True
    notify_team: bool = True


class DuringSteps(Section):
    monitor_progress: bool = True
    check_integrity: bool = True
    log_metadata: bool = True


class PostSteps(Section):
    verify_backup: bool = True
    update_registry: bool = True
    cleanup_old: bool = True


class BackupProcedure(Section):
    pre: PreSteps = PreSteps()
    during: DuringSteps = DuringSteps()
    post: PostSteps = PostSteps()


class BackupSettings(Section):
    schedule: BackupSchedule = BackupSchedule()
    retention: BackupRetention = BackupRetention()
    storage: BackupStorage = BackupStorage()
    procedure: BackupProcedure = BackupProcedure()


class VerificationSettings(Section):
    """How the daily verification spreads its reads (``powrops verify``)."""

    # Every stored object is read back at least this often; a seventh of the repository a day
    # by default, so bit rot is found within a week without reading everything every day.
    reread_every: Duration = Duration.parse("7 days")
    # Where an incremental chain is combined for pg_verifybackup; empty: in memory
    # (/dev/shm) when the copy fits in a quarter of the free memory, else the temp directory.
    scratch_dir: str | None = None

    @field_validator("reread_every")
    @classmethod
    def _finite(cls, value: Duration) -> Duration:
        if value.seconds is None or value.seconds < 86400:
            raise ValueError('expected a period of at least a day, such as "7 days"')
        return value
