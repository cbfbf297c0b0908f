"""The generated schedule logs in on the embedded default, as generated.

``powrops db start`` gives the job roles (powr_reporting, powr_backup, powr_owner) generated
passwords kept in a pgpass file under the state directory, and every generated job names it
with ``PGPASSFILE``. One job of each role is taken from the generated job table (its command
line and environment, as cron runs it) and run as a subprocess against the embedded cluster.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import run_cli
from powrops.config import Settings, load_settings, to_toml
from powrops.db import embedded_cluster
from powrops.schedule import command, job_environment, jobs, paths

pytestmark = [pytest.mark.pg]

#: One job of each role: reporting, backup, owner.
ONE_OF_EACH = ("alerts", "backup-full", "maintenance-analyze")


class Site:
    """A folder with powrops.toml for the embedded default and nothing else set up."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="powrops-logins-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.config = self.root / "powrops.toml"
        data = {
            "state": {"dir": str(self.root / "state")},
            "reports": {"dir": str(self.root / "reports")},
            "notify": {"channels": [{"kind": "log"}]},
            "schedule": {
                "executable": str(Path(sys.executable).parent / "powrops"),
                "lock_dir": str(self.root),
                "log_dir": str(self.root),
            },
        }
        self.config.write_text(to_toml(data))

    @property
    def settings(self) -> Settings:
        return load_settings(self.config, environ={})

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = run_cli("-c", str(self.config), *args, timeout=300)
        assert done.returncode == 0, f"powrops {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def run_job(self, name: str) -> subprocess.CompletedProcess[str]:
        """The job as cron starts it: its command line and environment, nothing inherited
        but PATH and HOME."""
        settings = self.settings
        where = paths(settings, self.config)
        job = next(j for j in jobs(settings) if j.name == name)
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
               **job_environment(settings, job, where)}  # fmt: skip
        return subprocess.run(
            command(job, where, 60), env=env, capture_output=True, text=True, timeout=600,
            check=False,
        )  # fmt: skip

    def destroy(self) -> None:
        embedded_cluster(self.settings).destroy()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    try:
        yield site
    finally:
        site.destroy()


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock (util-linux) is not installed")
def test_one_generated_job_of_each_role_logs_in(site: Site) -> None:
    first = site.cli("db", "start")
    missing = "job roles not in the database yet: powr_reporting, powr_backup, powr_owner"
    assert missing in first.stdout, first.stdout
    site.cli("migrate", "latest")
    started = site.cli("db", "start")  # now that the schema made the roles: their passwords
    settings = site.settings
    roles = {job.name: settings.schedule.roles[job.role] for job in jobs(settings)}
    assert {roles[name] for name in ONE_OF_EACH} == {"powr_reporting", "powr_backup", "powr_owner"}
    outcomes = {}
    for name in ONE_OF_EACH:
        ran = site.run_job(name)
        output = ran.stdout + ran.stderr
        assert "no password" not in output, f"{name} ({roles[name]}): {output}"
        assert ran.returncode in (0, 1, 2), f"{name} ({roles[name]}): exit {ran.returncode}"
        outcomes[name] = ran.returncode
    assert outcomes["backup-full"] == 0  # it logged in and took the backup
    # the owner role maintains what it may (its tables; every table with pg_maintain), never
    # failing on a table another role owns
    assert outcomes["maintenance-analyze"] == 0
    pgpass = settings.state_dir / "pgpass"
    assert f"job roles' passwords in {pgpass}" in started.stdout, started.stdout
    mode = pgpass.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o600 and mode.st_uid == os.geteuid()
