"""Configuration: the strategy's interfaces as typed settings, with its values as defaults.

An empty ``powrops.toml`` means the data management strategy as written. Values come from, in
order of precedence: environment overrides, the TOML file, the defaults below. The file is the
one given explicitly, else ``$POWROPS_CONFIG``, else ``./powrops.toml`` when it exists.

Environment overrides: ``POWROPS__SECTION__KEY=value`` sets any key (double underscores separate
levels, e.g. ``POWROPS__BACKUP__RETENTION__FULL=14d``); ``POWROPS_DATABASE_URL``,
``POWROPS_STATE_DIR`` and ``POWROPS_REPORTS_DIR`` are shortcuts for the most common ones.

Servers: ``[servers.<name>.<section>]`` tables name the servers of a fleet, each deep-merged
over the top level; ``load_settings(server=...)``, else ``$POWROPS_SERVER``, else the only one
picks which. Without them the configuration is one server named ``default``.

Unknown keys and bad values are errors naming the dotted key, the value and what was expected:
a typo in a retention period must never silently fall back to a default.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

# powrops uses no pydantic plugins; scanning every installed package's entry points for them
# costs a noticeable part of each command's start (WAL archiving runs one per segment).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from powrops.durations import Duration, Size
from powrops.errors import ConfigError

ENV_PREFIX = "POWROPS__"
ENV_SHORTCUTS = {
    "POWROPS_DATABASE_URL": ("database", "url"),
    "POWROPS_DATABASE_ROLE": ("database", "role"),
    "POWROPS_STATE_DIR": ("state", "dir"),
    "POWROPS_REPORTS_DIR": ("reports", "dir"),
}
DEFAULT_FILE = "powrops.toml"
#: The server a command acts on when ``--server`` is not given (see :func:`choose_server`).
SERVER_ENV = "POWROPS_SERVER"
#: The one server of a configuration without ``[servers.*]``: it keeps the unprefixed paths.
DEFAULT_SERVER = "default"


class Section(BaseModel):
    """Base of every settings section: strict about unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --- connection and local state -------------------------------------------------------------


#: The job roles the schema creates (migration 20241204090000_job_roles), by what they do.
JOB_ROLES = {"reporting": "powr_reporting", "backup": "powr_backup", "owner": "powr_owner"}


class DatabaseSettings(Section):
    url: SecretStr | None = None
    # Connect as this role instead of the URL's user (a scheduled job's least-privileged
    # role); its password then comes from libpq: ~/.pgpass, PGPASSFILE or PGPASSWORD.
    role: str | None = None
    connect_timeout: int = Field(10, ge=1)
    statement_timeout: Duration = Duration.parse("5min")
    application_name: str = "powrops"


class PostgresSettings(Section):
    bin_dir: str | None = None
    os_user: str = "powrops"
    port: int | None = Field(None, ge=1024, le=65535)

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


# --- backup (BackupConfig, BackupProcedure) --------------------------------------------------


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
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("file://", "s3://")):
            raise ValueError("expected a repository URL starting with file:// or s3://")
        return value


class Encryption(Section):
    enabled: bool = False
    key_file: str | None = None
    key_env: str | None = None

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


class NotifyChannel(Section):
    kind: Literal["log", "webhook", "command", "email"]
    url: SecretStr | None = None
    command: str | None = None
    # email: through the local MTA's sendmail interface (sendmail -t -oi)
    to: tuple[str, ...] = ()
    sender: str = "powrops@localhost"
    sendmail: str = "/usr/sbin/sendmail"

    @model_validator(mode="after")
    def _target(self) -> NotifyChannel:
        if self.kind == "webhook" and self.url is None:
            raise ValueError("a webhook channel needs url")
        if self.kind == "command" and not self.command:
            raise ValueError("a command channel needs command")
        if self.kind == "email" and not self.to:
            raise ValueError("an email channel needs to (a list of addresses)")
        return self


class NotifySettings(Section):
    channels: tuple[NotifyChannel, ...] = (NotifyChannel(kind="log"),)


# --- recovery (RecoveryPlan) -----------------------------------------------------------------

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


# --- retention, archival, cleanup ------------------------------------------------------------


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
    age: int = Field(365, ge=1, description="days since last access")
    size: int = Field(100_000, ge=1, description="record count threshold")
    user_request: bool = True


class ArchivalProcess(Section):
    compress: bool = True
    validate_: bool = Field(True, alias="validate")
    index: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ArchivalSettings(Section):
    triggers: ArchivalTriggers = ArchivalTriggers()
    process: ArchivalProcess = ArchivalProcess()
    repository: str | None = None


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
    batch_size: int = Field(5000, ge=1)


# --- integrity and audit ---------------------------------------------------------------------


class NumberRule(Section):
    type: Literal["decimal", "integer"]
    min: float
    max: float
    required: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> NumberRule:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


def _date_bound(value: Any) -> Any:
    if isinstance(value, dt.date) or value == "today":
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError('expected a date as YYYY-MM-DD or "today"')


class DateRule(Section):
    type: Literal["date"] = "date"
    min: Annotated[dt.date | Literal["today"], BeforeValidator(_date_bound)]
    max: Annotated[dt.date | Literal["today"], BeforeValidator(_date_bound)]
    required: bool = True

    def bounds(self, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
        today = today or dt.date.today()
        low = today if self.min == "today" else self.min
        high = today if self.max == "today" else self.max
        assert isinstance(low, dt.date) and isinstance(high, dt.date)
        return low, high


class WorkoutValidation(Section):
    weight: NumberRule = NumberRule(type="decimal", min=0, max=1000)
    reps: NumberRule = NumberRule(type="integer", min=1, max=100)
    date: DateRule = DateRule(min=dt.date(2020, 1, 1), max="today")


class ValidationSettings(Section):
    workout: WorkoutValidation = WorkoutValidation()


class ConsistencyChecks(Section):
    referential_integrity: bool = True
    calculated_fields: bool = True
    user_totals: bool = True


class ConsistencyRepair(Section):
    auto_fix: bool = True
    notification: bool = True
    logging: bool = True
    # A class of fix that would change more rows than this stops, changes nothing and says
    # so: that many bad rows is an incident to look at, not a routine repair.
    max_rows: int = Field(1000, ge=1)


class ConsistencySettings(Section):
    schedule: Duration = Duration.parse("daily")
    checks: ConsistencyChecks = ConsistencyChecks()
    repair: ConsistencyRepair = ConsistencyRepair()
    statement_timeout: Duration = Duration.parse("15min")
    heapallindexed: bool = False


class AuditEvents(Section):
    data_modification: bool = True
    access_patterns: bool = True
    system_changes: bool = True


class AuditMetadata(Section):
    timestamp: bool = True
    user_id: bool = True
    action: bool = True
    old_value: bool = True
    new_value: bool = True


class AuditSettings(Section):
    events: AuditEvents = AuditEvents()
    metadata: AuditMetadata = AuditMetadata()
    # audit_log rows older than this are deleted by ``powrops cleanup`` (one year: the
    # strategy's system log retention for security events; "indefinite" keeps them all)
    retention: Duration = Duration.parse("1y")


# --- performance, maintenance, alerts --------------------------------------------------------


class Pagination(Section):
    default_limit: int = Field(20, ge=1)
    max_limit: int = Field(100, ge=1)
    use_keyset: bool = True

    @model_validator(mode="after")
    def _limits(self) -> Pagination:
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit is greater than max_limit")
        return self


class Caching(Section):
    strategy: Literal["write-through", "write-back", "write-around"] = "write-through"
    ttl: Duration = Duration.parse("1h")
    invalidation: Literal["selective", "full"] = "selective"


class QuerySettings(Section):
    pagination: Pagination = Pagination()
    caching: Caching = Caching()


class MaintenanceAlerts(Section):
    table_size: Size = Size.parse("10GB")
    index_size: Size = Size.parse("2GB")
    query_time: Duration = Duration.parse("1s")


class MaintenanceSettings(Section):
    vacuum: Duration = Duration.parse("weekly")
    analyze: Duration = Duration.parse("daily")
    reindex: Duration = Duration.parse("monthly")
    alerts: MaintenanceAlerts = MaintenanceAlerts()


class PercentThreshold(Section):
    warning: float = Field(ge=0, le=100)
    critical: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> PercentThreshold:
        if self.warning > self.critical:
            raise ValueError(f"warning ({self.warning}) is above critical ({self.critical})")
        return self


class DurationThreshold(Section):
    warning: Duration
    critical: Duration

    @model_validator(mode="after")
    def _ordered(self) -> DurationThreshold:
        if self.warning.timedelta > self.critical.timedelta:
            raise ValueError(f"warning ({self.warning}) is above critical ({self.critical})")
        return self


class CountThreshold(Section):
    warning: int = Field(ge=1)
    critical: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> CountThreshold:
        if self.warning > self.critical:
            raise ValueError(f"warning ({self.warning}) is above critical ({self.critical})")
        return self


class RatioThreshold(Section):
    """Percent of a server limit; may exceed 100 (pg_wal beyond max_wal_size, ages beyond
    autovacuum_freeze_max_age)."""

    warning: float = Field(gt=0)
    critical: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RatioThreshold:
        if self.warning > self.critical:
            raise ValueError(f"warning ({self.warning}) is above critical ({self.critical})")
        return self


class SizeThreshold(Section):
    warning: Size
    critical: Size

    @model_validator(mode="after")
    def _ordered(self) -> SizeThreshold:
        if self.warning.bytes > self.critical.bytes:
            raise ValueError(f"warning ({self.warning}) is above critical ({self.critical})")
        return self


def _durations(warning: str, critical: str) -> DurationThreshold:
    return DurationThreshold(warning=Duration.parse(warning), critical=Duration.parse(critical))


#: Every check ``powrops alerts`` makes (monitoring/alerts.py and monitoring/server_checks.py).
ALERT_CHECKS = (
    "disk_usage", "dead_tuples", "query_time", "running_query", "failed_backups",
    "backup_freshness", "read_only", "table_size", "index_size", "wraparound", "connections",
    "blocked", "idle_in_transaction", "long_transaction", "replication_slot",
    "replication_lag", "wal_size", "checkpoints", "archive_ready", "archive_failures",
    "archive_age", "table_bloat", "index_bloat", "notify",
)  # fmt: skip


def _check_names(value: Any) -> Any:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    for name in value if isinstance(value, list | tuple) else ():
        if name not in ALERT_CHECKS:
            raise ValueError(f"unknown check {name!r}; expected some of {', '.join(ALERT_CHECKS)}")
    return value


class AlertNotify(Section):
    # A finding that stays WARNING or CRITICAL is sent again after this long (PagerDuty and
    # Alertmanager's repeat_interval default: 4h); "indefinite" never reminds.
    remind_every: Duration = Duration.parse("4h")


class AlertSettings(Section):
    disk_usage: PercentThreshold = PercentThreshold(warning=80, critical=90)
    dead_tuples: PercentThreshold = PercentThreshold(warning=10, critical=20)
    # Tables smaller than this are not judged by their dead-tuple percentage: 1 MB is 128
    # pages, which a sequential scan reads in a millisecond whatever its dead rows (the
    # autovacuum base threshold of 50 dead rows applies as well).
    dead_tuples_min_size: Size = Size.parse("1MB")
    query_time: DurationThreshold = _durations("1s", "3s")
    failed_backups: CountThreshold = CountThreshold(warning=1, critical=2)
    disk_capacity: Size | None = None
    # The checks of check_postgres / postgres_exporter. Defaults and where they come from:
    # xid and multixact age in % of autovacuum_freeze_max_age / autovacuum_multixact_freeze_
    # max_age. At 100 % autovacuum must already be forcing an anti-wraparound vacuum, so an
    # age past it means something holds it back; 500 % is 1 billion xids at the default
    # 200 million, half the 2^31 horizon where PostgreSQL stops accepting writes
    # (check_postgres txn_wraparound: 1.3 / 1.4 billion).
    wraparound: RatioThreshold = RatioThreshold(warning=100, critical=500)
    # Client connections in % of max_connections - superuser_reserved_connections
    # (pgMonitor and postgres_exporter mixins alert at 80 % / 90 %).
    connections: PercentThreshold = PercentThreshold(warning=80, critical=90)
    # How long a session has waited on a lock held by another (pg_blocking_pids);
    # 1 min is a typical lock_timeout budget, 5 min an outage for an interactive app.
    blocked: DurationThreshold = _durations("1min", "5min")
    # Idle in transaction: holds locks and the xmin horizon (pgMonitor: 5 min; check_postgres
    # txn_idle examples use minutes). Long transactions: xact_start age (check_postgres
    # txn_time examples: 30 min; 2 h keeps nightly maintenance out of the critical band).
    idle_in_transaction: DurationThreshold = _durations("5min", "15min")
    long_transaction: DurationThreshold = _durations("30min", "2h")
    # replay_lag of each standby (pgMonitor: 5 min critical; one minute is a standby a
    # failover would lose data from under synchronous_commit = on's promises).
    replication_lag: DurationThreshold = _durations("1min", "5min")
    # WAL a replication slot keeps (pg_current_wal_lsn - restart_lsn); an inactive slot is
    # at least a WARNING (check_postgres replication_slots: 1GB / 10GB as examples).
    slot_retained_wal: SizeThreshold = SizeThreshold(
        warning=Size.parse("1GB"), critical=Size.parse("10GB")
    )
    # Table bloat estimated from catalog statistics (wasted bytes), judged where at least
    # bloat_min_percent of the table is waste (check_postgres bloat: 1GB / 5GB by default;
    # a fillfactor's free space is not counted).
    table_bloat: SizeThreshold = SizeThreshold(
        warning=Size.parse("1GB"), critical=Size.parse("5GB")
    )
    index_bloat: SizeThreshold = SizeThreshold(
        warning=Size.parse("1GB"), critical=Size.parse("5GB")
    )
    bloat_min_percent: float = Field(30, ge=0, le=100)
    # pg_wal in % of max_wal_size, a soft limit checkpoints keep it near: 150 % means WAL is
    # held (archiver, slot, wal_keep_size); 300 % threatens the disk.
    wal_size: RatioThreshold = RatioThreshold(warning=150, critical=300)
    # Requested (not timed) checkpoints in % of checkpoints since the last run, judged from
    # min_checkpoints on; the PostgreSQL manual (WAL configuration) wants most checkpoints
    # timed: requested ones mean max_wal_size is too small for the write load.
    checkpoints_requested: PercentThreshold = PercentThreshold(warning=20, critical=50)
    min_checkpoints: int = Field(3, ge=1)
    # The .ready archive backlog in segments (check_postgres archive_ready: 10 / 25 is the
    # documented example).
    archive_ready: CountThreshold = CountThreshold(warning=10, critical=25)
    # Roles whose statements are powrops' own work, left out of query_time (the job roles and
    # the configured URL's user when it is one of them).
    own_roles: tuple[str, ...] = tuple(JOB_ROLES.values())
    notify: AlertNotify = AlertNotify()
    # Checks not to make (a comma-separated string in the environment), e.g. backup_freshness
    # where another tool makes the backups, or replication_lag on a server without standbys.
    skip: Annotated[tuple[str, ...], BeforeValidator(_check_names)] = ()


# --- the job schedule (`powrops schedule`) ---------------------------------------------------


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
    retries: int = Field(2, ge=0, le=10)
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
    monthly_on: int = Field(1, ge=1, le=28)
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
        import zoneinfo

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


class Settings(Section):
    """Everything powrops is configured with."""

    database: DatabaseSettings = DatabaseSettings()
    postgres: PostgresSettings = PostgresSettings()
    state: StateSettings = StateSettings()
    reports: ReportSettings = ReportSettings()
    backup: BackupSettings = BackupSettings()
    verification: VerificationSettings = VerificationSettings()
    notify: NotifySettings = NotifySettings()
    recovery: RecoverySettings = RecoverySettings()
    retention: RetentionSettings = RetentionSettings()
    archival: ArchivalSettings = ArchivalSettings()
    cleanup: CleanupSettings = CleanupSettings()
    validation: ValidationSettings = ValidationSettings()
    consistency: ConsistencySettings = ConsistencySettings()
    audit: AuditSettings = AuditSettings()
    query: QuerySettings = QuerySettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    alerts: AlertSettings = AlertSettings()
    schedule: ScheduleSettings = ScheduleSettings()

    # Where this configuration came from, and the folder its relative paths resolve against
    # (not settings).
    source: str | None = Field(None, exclude=True)
    base_dir: str | None = Field(None, exclude=True)
    config_file: str | None = Field(None, exclude=True)
    # The server these settings describe, and every server the configuration names.
    server: str = Field(DEFAULT_SERVER, exclude=True)
    servers: tuple[str, ...] = Field((DEFAULT_SERVER,), exclude=True)

    def _resolve(self, path: str) -> Path:
        folder = Path(self.base_dir) if self.base_dir else Path.cwd()
        return (folder / path).absolute()

    @property
    def named_server(self) -> bool:
        """True for a server of ``[servers.*]``; False for the one ``default`` server."""
        return self.server != DEFAULT_SERVER

    @property
    def state_dir(self) -> Path:
        """``state.dir``; relative to the config file's folder, else to the project root.

        A named server keeps its state (embedded cluster, default backup repository, archive
        spec) in ``<state.dir>/<server>``, so servers of one configuration never share it.
        """
        folder = self._resolve(self.state.dir)
        return folder / self.server if self.named_server else folder

    @property
    def reports_dir(self) -> Path:
        """``reports.dir``, the root of the archive and its fleet page; relative to the config
        file's folder, else to the project root."""
        return self._resolve(self.reports.dir)

    @property
    def runs_dir(self) -> Path:
        """Where this server's runs are archived: ``reports.dir`` for ``default``,
        ``<reports.dir>/<server>`` for a named server."""
        return self.reports_dir / self.server if self.named_server else self.reports_dir


# --- loading ---------------------------------------------------------------------------------


def config_path(
    explicit: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The config file to read, or None for the strategy's defaults.

    ``--config``, else ``$POWROPS_CONFIG``, else the nearest ``powrops.toml`` in the working
    directory or a folder above it, so that a notebook whose kernel runs in ``runbooks/``
    finds the project's file.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit).absolute()
    if env.get("POWROPS_CONFIG"):
        return Path(env["POWROPS_CONFIG"]).absolute()
    start = (cwd or Path.cwd()).absolute()
    for folder in (start, *start.parents):
        if (folder / DEFAULT_FILE).is_file():
            return folder / DEFAULT_FILE
    return None


def project_root(cwd: Path | None = None) -> Path:
    """Where relative paths resolve when there is no config file: the nearest folder at or
    above the working directory holding a ``.powrops`` state directory or a powrops checkout
    (``pyproject.toml`` beside ``runbooks/``); else the working directory itself."""
    start = (cwd or Path.cwd()).absolute()
    for folder in (start, *start.parents):
        if (folder / ".powrops").is_dir():
            return folder
        if (folder / "pyproject.toml").is_file() and (folder / "runbooks").is_dir():
            return folder
    return start


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested settings from ``POWROPS__A__B=value`` variables and the shortcuts."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ENV_SHORTCUTS:
            path: tuple[str, ...] = ENV_SHORTCUTS[name]
        elif name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        else:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[path[-1]] = value
    return tree


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, nested tables merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _describe(error: Mapping[str, Any]) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    key = ".".join(p for p in loc if not p.startswith(("Repository", "NotifyChannel")))
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        return (
            f"{key}: unknown key (value {value!r}); "
            "check the spelling against `powrops config show`"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        shown = "<missing>"
    elif isinstance(value, Mapping):
        shown = "{...}"
    else:
        shown = repr(value)
    return f"{key} = {shown}: {message}"


def validate(
    data: Mapping[str, Any], source: str | None = None, base_dir: Path | None = None
) -> Settings:
    """Settings from a nested mapping, or ConfigError listing every problem by dotted key.

    The mapping is laid over the defaults first, so a file that sets only
    ``alerts.disk_usage.warning`` keeps the default critical threshold.
    """
    defaults = Settings().model_dump(by_alias=True, exclude={"source", "base_dir"})
    folder = str(base_dir) if base_dir is not None else None
    try:
        return Settings.model_validate(
            {**merge(defaults, data), "source": source, "base_dir": folder}
        )
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        where = f" in {source}" if source else ""
        raise ConfigError(f"invalid configuration{where}", problems=problems) from None


def server_tables(data: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """The ``[servers.<name>]`` tables of a configuration, checked: name -> overrides."""
    tables = data.get("servers")
    if tables is None:
        return {}
    where = f" in {source}" if source else ""
    if not isinstance(tables, Mapping) or not tables:
        raise ConfigError(
            f"invalid configuration{where}",
            problems=["servers: expected tables [servers.<name>.<section>]"],
        )
    problems = []
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            problems.append(f"servers.{name}: expected a table of sections")
        if name == DEFAULT_SERVER or not _SERVER_NAME.fullmatch(name):
            problems.append(
                f"servers.{name}: a server name is letters, digits, '-' and '_', starts with a "
                f"letter and is not {DEFAULT_SERVER!r}"
            )
    if problems:
        raise ConfigError(f"invalid configuration{where}", problems=problems)
    return dict(tables)


_SERVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")


def server_names(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The servers the configuration names, in file order; ``["default"]`` without any."""
    env = os.environ if environ is None else environ
    file = config_path(path, env)
    data = read_toml(file) if file else {}
    return list(server_tables(data, str(file) if file else None)) or [DEFAULT_SERVER]


def choose_server(names: list[str], requested: str | None) -> str:
    """The server to act on: the requested one, else the only one; ConfigError otherwise."""
    listed = ", ".join(names)
    if requested:
        if requested not in names:
            raise ConfigError(f"unknown server {requested!r}; configured servers: {listed}")
        return requested
    if len(names) == 1:
        return names[0]
    raise ConfigError(
        f"the configuration names several servers ({listed}): "
        f"pass --server NAME or set {SERVER_ENV}"
    )


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    server: str | None = None,
) -> Settings:
    """The effective settings of one server: defaults, then the config file's top level, then
    its ``[servers.<server>]`` tables, then the environment.

    The server is ``server``, else ``$POWROPS_SERVER``, else the configuration's only one.
    """
    env = os.environ if environ is None else environ
    file = config_path(path, env)
    data = read_toml(file) if file else {}
    source = str(file) if file else "defaults"
    tables = server_tables(data, source)
    names = list(tables) or [DEFAULT_SERVER]
    chosen = choose_server(names, server or env.get(SERVER_ENV) or None)
    top = {key: value for key, value in data.items() if key != "servers"}
    merged = merge(top, tables[chosen]) if tables else top
    overrides = env_overrides(env)
    if tables:
        source += f" [servers.{chosen}]"
    if overrides:
        source += " + environment"
    base_dir = file.parent if file else project_root()
    loaded = validate(merge(merged, overrides), source, base_dir)
    return loaded.model_copy(
        update={
            "server": chosen,
            "servers": tuple(names),
            "config_file": str(file) if file else None,
        }
    )


def settings(config_path: str | Path | None = None, server: str | None = None) -> Settings:
    """The settings of a notebook or runbook run: the one entry point notebooks call.

    ``config_path`` is the notebook's ``config_path`` parameter: an empty string means "not
    given" (papermill parameters have no None), so the usual search applies. The server is
    ``server``, else ``$POWROPS_SERVER`` (which ``powrops report run`` sets for the kernel).
    """
    return load_settings(config_path or None, server=server or None)


# --- showing ---------------------------------------------------------------------------------

REDACTED = "********"


def redacted_dict(settings: Settings) -> dict[str, Any]:
    """Settings as plain data, every secret replaced by a fixed mask."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return REDACTED if value.get_secret_value() else ""
        if isinstance(value, BaseModel):
            return {
                (field.alias or name): walk(getattr(value, name))
                for name, field in type(value).model_fields.items()
                if not field.exclude
            }
        if isinstance(value, (tuple, list)):
            return [walk(v) for v in value]
        if isinstance(value, (Duration, Size)):
            return str(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    result: dict[str, Any] = walk(settings)
    return result


def secret_values(settings: Settings) -> list[str]:
    """Every secret's plain value (for redacting rendered output)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if secret:
                found.append(secret)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)

    walk(settings)
    return found


def to_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for settings (scalars, lists, nested tables)."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        if isinstance(value, Mapping):
            return (
                "{ "
                + ", ".join(f"{k} = {scalar(v)}" for k, v in value.items() if v is not None)
                + " }"
            )
        raise TypeError(f"cannot write {type(value).__name__} as TOML")

    def table(prefix: str, node: Mapping[str, Any]) -> None:
        simple = {k: v for k, v in node.items() if not isinstance(v, Mapping)}
        nested = {k: v for k, v in node.items() if isinstance(v, Mapping)}
        if prefix and simple:
            lines.append(f"\n[{prefix}]")
        for key, value in simple.items():
            if value is None:
                lines.append(f"# {key} is not set")
            else:
                lines.append(f"{key} = {scalar(value)}")
        for key, value in nested.items():
            table(f"{prefix}.{key}" if prefix else key, value)

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"
