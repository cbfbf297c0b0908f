"""A test fleet: one powrops.toml naming several servers, each an embedded cluster of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli_helpers import run_cli
from powrops.config import Settings, load_settings, to_toml
from powrops.pg import embedded
from powrops.pg.embedded import embedded_cluster
from powrops.schedule import command, job_environment, jobs, paths

#: The powrops command beside this interpreter, as the schedule writes it into jobs.
EXE = str(Path(sys.executable).parent / "powrops")


@dataclass
class Fleet:
    """A folder with one powrops.toml naming servers; ``started`` have an embedded cluster."""

    root: Path
    config: Path
    started: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls, servers: Mapping[str, Mapping[str, Any]], start: tuple[str, ...] | None = None
    ) -> Fleet:
        """Write the configuration (``servers``: name -> sections over the shared top level)
        and start an embedded cluster for each server in ``start`` (default: all)."""
        root = Path(tempfile.mkdtemp(prefix="powrops-fleet-", dir="/tmp"))
        os.chmod(root, 0o755)
        config = root / "powrops.toml"
        data: dict[str, Any] = {
            "state": {"dir": str(root / "state")},
            "reports": {"dir": str(root / "reports")},
            "notify": {"channels": [{"kind": "log"}]},
            "schedule": {
                "executable": EXE,
                "lock_dir": str(root / "locks"),
                "log_dir": str(root / "logs"),
                "run_as_roles": False,
            },
            "servers": {name: dict(sections) for name, sections in servers.items()},
        }
        config.write_text(to_toml(data))
        os.chmod(config, 0o644)
        (root / "locks").mkdir()
        site = cls(root, config)
        try:
            for server in servers if start is None else start:
                site.started.append(server)
                embedded.start(site.settings(server))
        except BaseException:
            site.destroy()
            raise
        return site

    def settings(self, server: str) -> Settings:
        return load_settings(self.config, environ={}, server=server)

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={"POWROPS_CONFIG": str(self.config), **(env or {})},
                       timeout=timeout)  # fmt: skip

    def job(self, server: str, name: str) -> tuple[list[str], dict[str, str], str]:
        """The scheduled job's command line, environment and lock file, as cron runs it."""
        settings = self.settings(server)
        where = paths(settings, self.config)
        job = next(j for j in jobs(settings) if j.name == name)
        return command(job, where, 2), job_environment(settings, job, where), where.lock(job)

    def destroy(self) -> None:
        for server in self.started:
            with contextlib.suppress(Exception):  # one that never started: the folder goes
                embedded_cluster(self.settings(server)).destroy()
        shutil.rmtree(self.root, ignore_errors=True)
