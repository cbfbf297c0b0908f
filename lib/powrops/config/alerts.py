"""The alert thresholds and the server checks' thresholds."""

from __future__ import annotations

from typing import Annotated, Any

from powrops.config.base import (
    Section,
)
from powrops.config.connection import (
    JOB_ROLES,
)
from powrops.config.model import (
    BeforeValidator,
    Field,
    model_validator,
)
from powrops.durations import Duration, Size


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

    @property
    def seconds(self) -> tuple[float, float]:
        """(warning, critical) in seconds, as ``findings.grade`` takes them."""
        return self.warning.timedelta.total_seconds(), self.critical.timedelta.total_seconds()

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


class DaysThreshold(Section):
    """Days left until something runs out: fewer is worse, so warning >= critical."""

    warning: float = Field(gt=0)
    critical: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DaysThreshold:
        if self.warning < self.critical:
            raise ValueError(f"warning ({self.warning}) is below critical ({self.critical})")
        return self


def _durations(warning: str, critical: str) -> DurationThreshold:
    return DurationThreshold(warning=Duration.parse(warning), critical=Duration.parse(critical))


#: Every check ``powrops alerts`` makes (monitoring/alerts.py and monitoring/server_checks.py).
ALERT_CHECKS = (
    "disk_usage", "dead_tuples", "query_time", "running_query", "failed_backups",
    "backup_freshness", "read_only", "table_size", "index_size", "wraparound", "connections",
    "blocked", "idle_in_transaction", "long_transaction", "replication_slot",
    "replication_lag", "wal_size", "checkpoints", "archive_ready", "archive_failures",
    "archive_age", "table_bloat", "index_bloat", "notify", "sequences",
    "prepared_transactions", "pending_restart", "checksum_failures", "disk_forecast",
    "system_identifier",
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
    bloat_min_percent: float = Field(default=30, ge=0, le=100)
    # pg_wal in % of max_wal_size, a soft limit checkpoints keep it near: 150 % means WAL is
    # held (archiver, slot, wal_keep_size); 300 % threatens the disk.
    wal_size: RatioThreshold = RatioThreshold(warning=150, critical=300)
    # Requested (not timed) checkpoints in % of checkpoints since the last run, judged from
    # min_checkpoints on; the PostgreSQL manual (WAL configuration) wants most checkpoints
    # timed: requested ones mean max_wal_size is too small for the write load.
    checkpoints_requested: PercentThreshold = PercentThreshold(warning=20, critical=50)
    min_checkpoints: int = Field(default=3, ge=1)
    # The .ready archive backlog in segments (check_postgres archive_ready: 10 / 25 is the
    # documented example).
    archive_ready: CountThreshold = CountThreshold(warning=10, critical=25)
    # The checks of alerts/peer_checks.py. Sequences: % of the range used (pgMonitor's
    # ccp_sequence_exhaustion pages from 75 %; check_postgres sequence defaults to 85 / 95 %):
    # 90 % still leaves time to rewrite a column to bigint.
    sequences: PercentThreshold = PercentThreshold(warning=75, critical=90)
    # Prepared transactions by age (check_postgres prepared_txns: 1 s / 30 s by default, for
    # a transaction manager that commits within seconds); a prepared transaction holds locks
    # and the xmin horizon as an idle one does, so the idle_in_transaction bands apply.
    prepared_transactions: DurationThreshold = _durations("5min", "15min")
    # Days until the data directory's filesystem is full at the forecast's growth rate (the
    # node-exporter mixin's NodeFilesystemSpaceFillingUp pages at 24 h / 4 h on an hourly
    # trend; a days-long data trend gives a month to buy disk, a week to act).
    disk_full_days: DaysThreshold = DaysThreshold(warning=30, critical=7)
    # How long a change seen once (a data checksum failure, a new system identifier) stays
    # CRITICAL: a day, so that Prometheus' `for:` and the next morning's reading both see it
    # (pgMonitor pages on checksum failures without a delay).
    change_hold: Duration = Duration.parse("1d")
    # Roles whose statements are powrops' own work, left out of query_time (the job roles and
    # the configured URL's user when it is one of them).
    own_roles: tuple[str, ...] = tuple(JOB_ROLES.values())
    notify: AlertNotify = AlertNotify()
    # Checks not to make (a comma-separated string in the environment), e.g. backup_freshness
    # where another tool makes the backups, or replication_lag on a server without standbys.
    skip: Annotated[tuple[str, ...], BeforeValidator(_check_names)] = ()
