"""``Settings``: every section together, and the paths derived from them."""

from __future__ import annotations

from pathlib import Path

from powrops.config.alerts import (
    AlertSettings,
)
from powrops.config.audit import AuditSettings
from powrops.config.backup import (
    BackupSettings,
    VerificationSettings,
)
from powrops.config.base import (
    DEFAULT_SERVER,
    Section,
)
from powrops.config.connection import (
    DatabaseSettings,
    PostgresSettings,
    ReportSettings,
    StateSettings,
)
from powrops.config.integrity import (
    ConsistencySettings,
    ValidationSettings,
)
from powrops.config.maintenance import MaintenanceSettings
from powrops.config.model import (
    Field,
)
from powrops.config.notify import NotifySettings
from powrops.config.query import QuerySettings
from powrops.config.recovery import (
    RecoverySettings,
)
from powrops.config.retention import (
    ArchivalSettings,
    CleanupSettings,
    RetentionSettings,
)
from powrops.config.schedule import ScheduleSettings
from powrops.errors import ConfigError


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
    source: str | None = Field(default=None, exclude=True)
    base_dir: str | None = Field(default=None, exclude=True)
    config_file: str | None = Field(default=None, exclude=True)
    # The server these settings describe, and every server the configuration names.
    server: str = Field(default=DEFAULT_SERVER, exclude=True)
    servers: tuple[str, ...] = Field(default=(DEFAULT_SERVER,), exclude=True)

    def _resolve(self, path: str) -> Path:
        folder = Path(self.base_dir) if self.base_dir else Path.cwd()
        return (folder / path).absolute()

    @property
    def named_server(self) -> bool:
        """True for a server of ``[servers.*]``; False for the one ``default`` server."""
        return self.server != DEFAULT_SERVER

    @property
    def state_root(self) -> Path:
        """``state.dir`` itself, resolved: the folder powrops creates on first use (0700); its
        parent must exist."""
        return self._resolve(self.state.dir)

    def make_state_dir(self, *parts: str) -> Path:
        """``<state dir>/<parts>``, with whatever of it is missing created, mode 0700, as
        pgBackRest and Barman create theirs. ``state.dir``'s parent must exist: a missing one
        is a ConfigError naming it (a mount point that is not mounted)."""
        root = self.state_root
        if not root.parent.is_dir():
            raise ConfigError(
                f"state.dir {root}: its parent folder {root.parent} does not exist; create it "
                "or set state.dir to a folder whose parent exists"
            )
        path = self.state_dir.joinpath(*parts)
        folder = root.parent
        for name in path.relative_to(root.parent).parts:
            folder = folder / name
            folder.mkdir(mode=0o700, exist_ok=True)
        return path

    @property
    def state_dir(self) -> Path:
        """``state.dir``; relative to the config file's folder, else to the project root.

        A named server keeps its state (embedded cluster, default backup repository, archive
        spec) in ``<state.dir>/<server>``, so servers of one configuration never share it.
        """
        folder = self.state_root
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
