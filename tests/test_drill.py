"""Recovery drills end to end: markers around the target, RTO/RPO, verification, teardown."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_site import Site
from powrops import migrate
from powrops.backup import repos
from powrops.config import to_toml
from powrops.pg.embedded import embedded_cluster

pytestmark = pytest.mark.pg

DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


def _prepared(**overrides: object) -> Site:
    site = Site.create(**overrides)
    site.seed(users=12, weeks=4, seed=7)
    return site


@pytest.fixture
def site() -> Iterator[Site]:
    s = _prepared()
    yield s
    s.destroy()


def _drill(site: Site, *args: str) -> tuple[int, dict[str, object]]:
    proc = site.cli("drill", "--json", *args, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_drill_restores_exactly_to_the_target(site: Site) -> None:
    assert site.cli("backup", "full").returncode == 0
    site.sql("INSERT INTO users (email) VALUES ('late-row@example.invalid')")
    assert site.cli("backup", "incremental").returncode == 0
    code, result = _drill(site)
    assert code == 0, result
    steps = result["steps"]
    assert [s["name"] for s in steps] == [  # type: ignore[index]
        "Stop application",
        "Restore latest full backup",
        "Apply incremental backups",
        "Verify data integrity",
        "Update configurations",
        "Restart application",
    ]
    assert [s["status"] for s in steps] == ["skipped", "ok", "ok", "ok", "skipped", "skipped"]  # type: ignore[index]
    assert "production application is not touched" in steps[0]["message"]  # type: ignore[index]
    assert len(result["chain"]) == 2  # type: ignore[arg-type]
    integrity = result["verification"]["data_integrity"]  # type: ignore[index]
    assert integrity["marker_before_present"] is True
    assert integrity["marker_after_absent"] is True
    assert integrity["row_counts_match"] is True and integrity["amcheck"]["ok"] is True
    assert result["verification"]["application_state"]["revision"] == migrate.heads()[0]  # type: ignore[index]
    assert all(r["ok"] for r in result["verification"]["user_access"]["roles"].values())  # type: ignore[index]
    assert 0 < result["rto_s"] < 600 and 0 <= result["rpo_s"] < 5  # type: ignore[operator]
    kept = site.sql("SELECT details FROM ops.events WHERE kind = 'drill'")
    assert [k[0]["drill_id"] for k in kept] == [result["drill_id"]]
    drills = site.root / "state" / "drills"
    assert not any(drills.iterdir()), "the scratch cluster was not torn down"
    wal = [o.key for o in repos.primary(site.settings).list("wal/")]
    assert not [k for k in wal if "/00000002" in k], "the drill's timeline reached the archive"


def test_drill_without_the_wal_it_needs_fails_clearly(site: Site) -> None:
    assert site.cli("backup", "full").returncode == 0
    site.sql("INSERT INTO users (email) VALUES ('gone@example.invalid')")
    site.switch_wal()
    repo = repos.primary(site.settings)
    record = json.loads(repo.get_bytes(f"backups/{site.backups()[0]['label']}/backup.json"))
    needed = [
        o.key for o in repo.list("wal/") if o.key.rsplit("/", 1)[-1][:24] > record["stop_wal"]
    ]
    for key in needed:
        repo.delete(key)
    code, result = _drill(site)
    assert code == 2
    messages = " ".join(f["message"] for f in result["findings"])  # type: ignore[union-attr]
    assert "drill failed" in messages or "MISSING" in messages or "PRESENT" in messages


@pytest.mark.pg15
@pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed")
def test_drill_on_postgresql_15() -> None:
    site = _prepared(postgres={"bin_dir": str(DEBIAN_15)})
    try:
        assert site.cli("backup", "full").returncode == 0
        code, result = _drill(site)
        assert code == 0, result
        assert result["verification"]["data_integrity"]["marker_after_absent"] is True  # type: ignore[index]
    finally:
        site.destroy()


def test_a_drill_with_a_0700_state_directory_restores_where_the_server_can_enter(
    site: Site,
) -> None:
    """On a database host the state directory is root's, 0700, and the server's OS user may
    not enter it: the drill restores into the temp dir instead, as the test restore does,
    rather than failing CRITICAL on a folder its server cannot reach."""
    assert site.cli("backup", "full").returncode == 0
    host = site.root / "host-state"
    host.mkdir(mode=0o700)
    url = embedded_cluster(site.settings).url(driver="postgresql")
    repo = repos.primary(site.settings).url
    config = site.root / "host.toml"
    primary = {"primary": {"kind": "file", "url": repo}}
    config.write_text(
        to_toml({"database": {"url": url}, "state": {"dir": str(host)},
                 "backup": {"storage": primary}})
    )  # fmt: skip
    proc = site.cli("drill", "--json", env={"POWROPS_CONFIG": str(config)}, timeout=600)
    code, result = proc.returncode, json.loads(proc.stdout)
    assert code == 0, result["findings"]
    assert stat.S_IMODE(host.stat().st_mode) == 0o700


def test_a_drill_that_fails_leaves_no_scratch_directory(site: Site) -> None:
    """A drill whose restore fails (a target before every backup) is CRITICAL and removes its
    scratch directory, as a drill that succeeds or is interrupted does."""
    assert site.cli("backup", "full").returncode == 0
    code, result = _drill(site, "--target-time", "2020-01-01T00:00:00+00:00")
    assert code == 2, result
    assert "the drill failed" in json.dumps(result["findings"])
    drills = site.settings.state_dir / "drills"
    assert not drills.exists() or list(drills.iterdir()) == []


def test_a_drill_by_hand_out_of_order_is_not_ok_and_leaves_no_scratch_restore(
    site: Site,
) -> None:
    """The drill runbook's working copy run by hand: the restore cell run twice, then the
    result cell with the steps between skipped. The earlier scratch restore is removed when
    the restore runs again (nothing is left in the state directory), and a drill whose
    restored server was never verified is not graded OK."""
    import nbformat

    from by_hand import run_by_hand
    from test_interactive import open_runbook

    assert site.cli("backup", "full").returncode == 0
    copy = open_runbook("recovery_drill", site.config)
    nb = nbformat.read(copy, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    restore = next(c for c in code if "drill.restore_full(" in c.source)
    upto = code[: code.index(restore) + 1]
    again = nbformat.v4.new_code_cell(restore.source)  # type: ignore[no-untyped-call]
    nb.cells = [*upto, again, next(c for c in code if "drill.finish()" in c.source)]
    nbformat.write(nb, copy)  # type: ignore[no-untyped-call]
    replies = run_by_hand(copy, [])
    assert [r["status"] for r in replies] == ["ok"] * len(nb.cells)
    drills = site.settings.state_dir / "drills"
    assert not drills.exists() or list(drills.iterdir()) == []
    result = json.loads((copy.parent / "result.json").read_text())
    assert result["status"] == "UNKNOWN" and result["recorded"] is True
    assert any(f["check"] == "verify" and "not verified" in f["message"]
               for f in result["findings"])  # fmt: skip


def test_a_drill_by_hand_whose_kernel_ends_half_way_leaves_no_scratch_server(
    site: Site,
) -> None:
    """The drill runbook's working copy run by hand up to the step that starts the scratch
    server, then its kernel shut down (the DBA's Kernel > Shut Down, or the culling of a
    kernel whose tab was closed, which both ask it to exit): the scratch server is stopped
    and its directory removed, as an interrupt does, instead of running on unrecorded."""
    import nbformat
    from jupyter_client.manager import KernelManager

    from test_interactive import open_runbook

    assert site.cli("backup", "full").returncode == 0
    copy = open_runbook("recovery_drill", site.config)
    code = [c.source for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code"]
    started = next(i for i, c in enumerate(code) if "drill.apply_incrementals()" in c)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    manager = KernelManager(kernel_name=nbformat.read(copy, as_version=4).metadata.kernelspec.name)
    manager.start_kernel(cwd=str(copy.parent), env=env)
    client = manager.client()
    client.start_channels()
    drills = site.settings.state_dir / "drills"
    try:
        client.wait_for_ready(timeout=60)
        for source in code[: started + 1]:
            reply = client.execute_interactive(source, timeout=300, output_hook=lambda m: None)
            assert reply["content"]["status"] == "ok", reply["content"]
        [pid_file] = drills.glob("*/pgdata/postmaster.pid")
        pid = int(pid_file.read_text().split()[0])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)  # asked to exit, as Jupyter Server does
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid)
    assert not drills.exists() or list(drills.iterdir()) == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    )
