"""A fleet in one configuration: two embedded clusters named as servers, each with its own
backups, verification, reports and locks; ``--server`` chooses, an unknown name exits 3."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from fleet_site import Fleet
from powrops.db import embedded_cluster

pytestmark = [pytest.mark.pg, pytest.mark.slow]

SERVERS = ("alpha", "beta")


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    site = Fleet.create(
        {
            "alpha": {"backup": {"retention": {"full": "14d"}}},
            "beta": {"database": {"application_name": "powrops-beta"}},
        }
    )
    yield site
    site.destroy()


def test_servers_deep_merge_over_the_top_level(fleet: Fleet) -> None:
    alpha, beta = fleet.settings("alpha"), fleet.settings("beta")
    assert (alpha.server, alpha.servers) == ("alpha", SERVERS)
    assert str(alpha.backup.retention.full) == "14d"
    assert str(beta.backup.retention.full) == "30d"  # the shared default
    assert beta.database.application_name == "powrops-beta"
    assert alpha.database.application_name == "powrops"
    assert alpha.state_dir == fleet.root / "state" / "alpha"
    assert alpha.runs_dir == fleet.root / "reports" / "alpha"
    assert alpha.reports_dir == beta.reports_dir == fleet.root / "reports"


def test_unknown_or_missing_server_exits_3_listing_the_names(fleet: Fleet) -> None:
    for args, env in (
        (("--server", "gamma", "backup", "list"), {}),
        (("backup", "list", "--server", "gamma"), {}),
        (("backup", "list"), {"POWROPS_SERVER": "gamma"}),
    ):
        result = fleet.cli(*args, env=env)
        assert result.returncode == 3, (args, result.stderr)
        assert "unknown server 'gamma'" in result.stderr
        assert "alpha, beta" in result.stderr
    several = fleet.cli("backup", "list")
    assert several.returncode == 3
    assert "several servers (alpha, beta)" in several.stderr


def _hold(lock: str) -> Any:
    handle = open(lock, "w")  # noqa: SIM115 (held across the calls below)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def test_backups_locks_verification_and_reports_per_server(fleet: Fleet) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    alpha_cmd, alpha_env, alpha_lock = fleet.job("alpha", "backup-full")
    beta_cmd, beta_env, beta_lock = fleet.job("beta", "backup-full")
    assert alpha_lock != beta_lock and "alpha" in alpha_lock and "beta" in beta_lock
    assert alpha_env["POWROPS_SERVER"] == "alpha"

    # beta's backup lock is held: alpha's backup runs, beta's waits and gives up
    held = _hold(beta_lock)
    try:
        ran = subprocess.run(alpha_cmd, env={**base, **alpha_env}, capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        blocked = subprocess.run(beta_cmd, env={**base, **beta_env}, capture_output=True,
                                 text=True, timeout=60, check=False)  # fmt: skip
        # flock -w timed out: powrops never started, UNKNOWN, and the output says why
        assert blocked.returncode == 3, blocked.stdout + blocked.stderr
        assert "timeout while waiting to get lock" in blocked.stderr
        assert "powrops" not in blocked.stdout + blocked.stderr.replace("powrops-", "")
    finally:
        held.close()
    ran = subprocess.run(beta_cmd, env={**base, **beta_env}, capture_output=True, text=True,
                         timeout=300, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr

    # each server's backup is in its own repository, seen only through its own --server
    listed = {}
    for server in SERVERS:
        result = fleet.cli("backup", "list", "--json", "--server", server)
        assert result.returncode == 0, result.stderr
        listed[server] = json.loads(result.stdout)
        assert len(listed[server]) == 1, listed[server]
        assert (fleet.root / "state" / server / "backups").is_dir()
    assert not (fleet.root / "state" / "backups").exists()

    # verification reports: one per server, in its own folder, recording its server
    ports = {s: embedded_cluster(fleet.settings(s)).port for s in SERVERS}
    alpha = fleet.cli("--server", "alpha", "report", "run", "backup_verification")
    beta = fleet.cli("report", "run", "backup_verification", env={"POWROPS_SERVER": "beta"})
    for server, result in (("alpha", alpha), ("beta", beta)):
        assert result.returncode in (0, 1), result.stdout + result.stderr
        runs = list((fleet.root / "reports" / server / "backup_verification").iterdir())
        assert len(runs) == 1
        recorded = json.loads((runs[0] / "result.json").read_text())
        assert recorded["server"] == server
        assert recorded["target"]["port"] == ports[server]
        assert recorded["error"] is None, recorded["error"]
        assert recorded["figures"], recorded
        assert recorded["every_s"] == 86400  # schedule.verification = daily
    assert not (fleet.root / "reports" / "backup_verification").exists()

    catalog = json.loads((fleet.root / "reports" / "catalog.json").read_text())
    assert sorted(r["server"] for r in catalog["runs"]) == ["alpha", "beta"]
    page = (fleet.root / "reports" / "index.html").read_text()
    fleet_table = page.split("id='fleet'", 1)[1].split("</table>", 1)[0]
    for server in SERVERS:
        assert f'<tr data-server="{server}"><th>{server}</th>' in fleet_table
        assert f'href="{server}/backup_verification/' in fleet_table
    assert 'class="stale"' not in fleet_table
