"""A test "site": an embedded cluster archiving WAL through powrops into configured repositories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from cli_helpers import run_cli
from powrops.config import Settings, load_settings, merge, to_toml
from powrops.pg import embedded
from powrops.pg.embedded import embedded_cluster

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Site:
    """A directory with powrops.toml, the embedded cluster and its repositories."""

    root: Path
    config: Path
    data: dict[str, Any]

    @classmethod
    def create(cls, **overrides: Any) -> Site:
        root = Path(tempfile.mkdtemp(prefix="powrops-site-", dir="/tmp"))
        os.chmod(root, 0o755)
        data = merge(
            {
                "state": {"dir": str(root / "state")},
                "reports": {"dir": str(root / "reports")},
                "notify": {"channels": [{"kind": "log"}]},
            },
            overrides,
        )
        site = cls(root, root / "powrops.toml", data)
        site.write_config()
        embedded.start(site.settings)  # creates and starts the cluster, archiving on
        return site

    def write_config(self, **overrides: Any) -> None:
        self.data = merge(self.data, overrides)
        self.config.write_text(to_toml(self.data))
        os.chmod(self.config, 0o644)

    @property
    def settings(self) -> Settings:
        return load_settings(self.config, environ={})

    def seed(self, *, users: int, weeks: int, seed: int) -> None:
        """Migrate to head and load demo data: what drills and runbooks need."""
        from powrops import migrate
        from powrops.db import engine
        from powrops.demo.data import generate, load

        eng = engine(self.settings)
        try:
            migrate.upgrade(eng)
            load(eng, generate(users=users, weeks=weeks, seed=seed))
        finally:
            eng.dispose()

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        cluster = embedded_cluster(self.settings)
        with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={"POWROPS_CONFIG": str(self.config), **(env or {})},
                       timeout=timeout)  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
        return subprocess.Popen(
            [sys.executable, "-m", "powrops.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**base, "POWROPS_CONFIG": str(self.config)},
        )

    def backups(self) -> list[dict[str, Any]]:
        result = self.cli("backup", "list", "--json")
        assert result.returncode == 0, result.stderr
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows

    def switch_wal(self) -> str:
        """Force a WAL switch and wait until the finished segment is archived."""
        import time

        name = self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            last = self.sql("SELECT last_archived_wal, failed_count FROM pg_stat_archiver")[0]
            if last[0] is not None and last[0] >= name:
                return str(name)
            time.sleep(0.2)
        raise AssertionError(
            f"{name} was not archived: {self.sql('SELECT * FROM pg_stat_archiver')}"
        )

    def destroy(self) -> None:
        embedded_cluster(self.settings).destroy()
        shutil.rmtree(self.root, ignore_errors=True)
