"""The whole schedule under its documented roles, against Debian's PostgreSQL 15.

Each job of ``powrops schedule`` runs as ``powrops`` would under cron: its config file and
``POWROPS_DATABASE_ROLE`` (powr_reporting, powr_backup or powr_owner), the role's password from
a pgpass file, never the superuser. The database is configured by URL, as a production server
is. PostgreSQL 15 has no incremental backups: that job refuses with exit 3 and says why.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from backup_site import Site
from powrops.config import JOB_ROLES
from powrops.db import embedded_cluster
from powrops.schedule.jobs import jobs
from versions import DEBIAN_15

pytestmark = [
    pytest.mark.pg,
    pytest.mark.pg15,
    pytest.mark.slow,
    pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed"),
]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    site = Site.create(postgres={"bin_dir": str(DEBIAN_15)})
    try:
        secondary = (site.root / "secondary").as_uri()
        site.write_config(backup={"storage": {"secondary": {"kind": "file", "url": secondary}}})
        cluster = embedded_cluster(site.settings)
        site.write_config(database={"url": cluster.url(driver="postgresql")})
        for args in (("migrate", "latest"), ("seed", "--users", "10", "--weeks", "3")):
            run = site.cli(*args)
            assert run.returncode == 0, run.stderr
        lines = []
        for role in JOB_ROLES.values():
            password = secrets.token_urlsafe(16)
            site.sql(f"ALTER ROLE {role} PASSWORD '{password}'")
            lines.append(f"127.0.0.1:{cluster.port}:*:{role}:{password}")
        pgpass = site.root / "pgpass"
        pgpass.write_text("\n".join(lines) + "\n")
        os.chmod(pgpass, 0o600)
        # From here on, no job knows the superuser's password.
        site.write_config(database={"url": f"postgresql://postgres@127.0.0.1:{cluster.port}/powr"})
        yield site
    finally:
        site.destroy()


def _as(site: Site, role: str, *args: str) -> tuple[int, str]:
    env = {"POWROPS_DATABASE_ROLE": role, "PGPASSFILE": str(site.root / "pgpass")}
    run = site.cli(*args, env=env, timeout=600)
    return run.returncode, run.stdout + run.stderr


def test_every_scheduled_job_runs_under_its_role(site: Site) -> None:
    settings = site.settings
    scheduled = jobs(settings)
    assert {job.role for job in scheduled} == set(JOB_ROLES)
    order = sorted(scheduled, key=lambda job: job.name != "backup-full")  # a backup first
    outcomes = {}
    for job in order:
        code, output = _as(site, settings.schedule.roles[job.role], *job.args)
        outcomes[job.name] = code
        assert "permission denied" not in output.lower(), f"{job.name}: {output}"
        assert "Traceback" not in output and "internal error" not in output, f"{job.name}: {output}"
        if job.name == "backup-incremental":
            assert code == 3 and "PostgreSQL 17" in output, output
        else:
            assert code in (0, 1, 2), f"{job.name} ({job.role}) exit {code}: {output}"
    assert outcomes["backup-full"] == 0


def test_the_roles_cannot_do_each_others_jobs(site: Site) -> None:
    """Reporting may not vacuum: PostgreSQL only skips the table with a WARNING, which powrops
    turns into a failed target instead of reporting the table as vacuumed."""
    code, output = _as(site, JOB_ROLES["reporting"], "maintenance", "vacuum")
    assert code == 2 and "run maintenance as the tables' owner" in output, output
