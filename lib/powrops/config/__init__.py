"""Configuration: the strategy's interfaces as typed settings, with its values as defaults.

An empty ``powrops.toml`` means the data management strategy as written. Values come from, in
order of precedence: environment overrides, the TOML file, the defaults of the settings
models (one module per feature's settings, :mod:`.settings` gathers them). The file is the
one given explicitly, else ``$POWROPS_CONFIG``, else ``./powrops.toml`` when it exists. A
process powrops starts receives the configuration its starter loaded (``handoff_env``).

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

from powrops.config.alerts import (
    ALERT_CHECKS,
    AlertNotify,
    AlertSettings,
    CountThreshold,
    DaysThreshold,
    DurationThreshold,
    PercentThreshold,
    RatioThreshold,
    SizeThreshold,
)
from powrops.config.audit import AuditEvents, AuditMetadata, AuditSettings
from powrops.config.backup import (
    BackupProcedure,
    BackupRetention,
    BackupSchedule,
    BackupSettings,
    BackupStorage,
    DuringSteps,
    Encryption,
    PostSteps,
    PreSteps,
    Repository,
    VerificationSettings,
)
from powrops.config.base import (
    BASE_DIR_ENV,
    CONFIG_ENV,
    DEFAULT_FILE,
    DEFAULT_SERVER,
    ENV_PREFIX,
    ENV_SHORTCUTS,
    SERVER_ENV,
    Section,
)
from powrops.config.connection import (
    JOB_ROLES,
    DatabaseSettings,
    PostgresSettings,
    ReportSettings,
    StateSettings,
)
from powrops.config.integrity import (
    ConsistencyChecks,
    ConsistencyRepair,
    ConsistencySettings,
    DateRule,
    NumberRule,
    ValidationSettings,
    WorkoutValidation,
)
from powrops.config.load import (
    choose_server,
    config_path,
    env_overrides,
    handoff_env,
    load_settings,
    merge,
    project_root,
    read_toml,
    server_names,
    server_tables,
    settings,
    validate,
)
from powrops.config.maintenance import MaintenanceAlerts, MaintenanceSettings
from powrops.config.notify import NotifyChannel, NotifySettings
from powrops.config.query import Caching, Pagination, QuerySettings
from powrops.config.recovery import (
    RECOVERY_STEPS,
    RecoveryApplication,
    RecoveryObjectives,
    RecoverySettings,
    RecoveryVerification,
)
from powrops.config.retention import (
    ArchivalProcess,
    ArchivalSettings,
    ArchivalTriggers,
    CleanupLogging,
    CleanupSettings,
    CleanupTargets,
    HistoryRetention,
    RetentionSettings,
    SystemLogRetention,
    UserAccountRetention,
    WorkoutDataRetention,
)
from powrops.config.schedule import AirflowSettings, ScheduleSettings
from powrops.config.settings import Settings
from powrops.config.show import REDACTED, redacted_dict, secret_values, to_toml

__all__ = [
    "ALERT_CHECKS",
    "BASE_DIR_ENV",
    "CONFIG_ENV",
    "DEFAULT_FILE",
    "DEFAULT_SERVER",
    "ENV_PREFIX",
    "ENV_SHORTCUTS",
    "JOB_ROLES",
    "RECOVERY_STEPS",
    "REDACTED",
    "SERVER_ENV",
    "AirflowSettings",
    "AlertNotify",
    "AlertSettings",
    "ArchivalProcess",
    "ArchivalSettings",
    "ArchivalTriggers",
    "AuditEvents",
    "AuditMetadata",
    "AuditSettings",
    "BackupProcedure",
    "BackupRetention",
    "BackupSchedule",
    "BackupSettings",
    "BackupStorage",
    "Caching",
    "CleanupLogging",
    "CleanupSettings",
    "CleanupTargets",
    "ConsistencyChecks",
    "ConsistencyRepair",
    "ConsistencySettings",
    "CountThreshold",
    "DatabaseSettings",
    "DateRule",
    "DaysThreshold",
    "DurationThreshold",
    "DuringSteps",
    "Encryption",
    "HistoryRetention",
    "MaintenanceAlerts",
    "MaintenanceSettings",
    "NotifyChannel",
    "NotifySettings",
    "NumberRule",
    "Pagination",
    "PercentThreshold",
    "PostSteps",
    "PostgresSettings",
    "PreSteps",
    "QuerySettings",
    "RatioThreshold",
    "RecoveryApplication",
    "RecoveryObjectives",
    "RecoverySettings",
    "RecoveryVerification",
    "ReportSettings",
    "Repository",
    "RetentionSettings",
    "ScheduleSettings",
    "Section",
    "Settings",
    "SizeThreshold",
    "StateSettings",
    "SystemLogRetention",
    "UserAccountRetention",
    "ValidationSettings",
    "VerificationSettings",
    "WorkoutDataRetention",
    "WorkoutValidation",
    "choose_server",
    "config_path",
    "env_overrides",
    "handoff_env",
    "load_settings",
    "merge",
    "project_root",
    "read_toml",
    "redacted_dict",
    "secret_values",
    "server_names",
    "server_tables",
    "settings",
    "to_toml",
    "validate",
]
