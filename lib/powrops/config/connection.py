"""Connection and local state: the database, the PostgreSQL programs, the state and report
folders."""

from __future__ import annotations

from urllib.parse import urlsplit

from powrops.config.backup import (
    Repository,
)
from powrops.config.base import (
    Section,
    absolute_file_url,
)
from powrops.config.model import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from powrops.durations import Duration

#: The job roles the schema creates (migration 20241204090000_job_roles), by what they do.
JOB_ROLES = {"reporting": "powr_reporting", "backup": "powr_backup", "owner": "powr_owner"}


#: The URL schemes ``database.url`` may have: libpq's two, and SQLAlchemy's spelling of psycopg.
DATABASE_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class DatabaseSettings(Section):
    url: SecretStr | None = None
    # Connect as this role instead of the URL's user (a scheduled job's least-privileged
    # role); its password then comes from libpq: ~/.pgpass, PGPASSFILE or PGPASSWORD.
    role: str | None = None
    connect_timeout: int = Field(default=10, ge=1)
    statement_timeout: Duration = Duration.parse("5min")
    application_name: str = "powrops"

    @field_validator("url")
    @classmethod
    def _postgresql(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        if not value.get_secret_value().startswith(DATABASE_SCHEMES):
            raise ValueError("expected a PostgreSQL URL starting with postgresql:// or postgres://")
        try:  # a port every command can name (and connect to), not a crash when it does
            port = urlsplit(value.get_secret_value()).port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("expected a PostgreSQL URL with a port from 1 to 65535")
        return value


class PostgresSettings(Section):
    bin_dir: str | None = None
    os_user: str = "powrops"
    port: int | None = Field(default=None, ge=1024, le=65535)

    @field_validator("os_user")
    @classmethod
    def _not_root(cls, value: str) -> str:
        if value == "root":
            raise ValueError("must not be root: PostgreSQL refuses to run as root")
        return value


class StateSettings(Section):
    dir: str = ".powrops"


class ReportSettings(Section):
    dir: str = "reports"
    archive_url: SecretStr | None = None
    # How to reach an s3:// archive (endpoint, region, credentials), as in backup.storage.*;
    # unset, the backup repository's s3/gcs connection is used.
    archive_storage: Repository | None = None
    retention: Duration = Duration.parse("indefinite")
    timeout: Duration = Duration.parse("30min")

    @field_validator("archive_url")
    @classmethod
    def _absolute(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        return SecretStr(absolute_file_url(value.get_secret_value(), info))
