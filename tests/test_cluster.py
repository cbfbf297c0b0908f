"""The local PostgreSQL cluster and the search for PostgreSQL programs, against real servers."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import psycopg
import pytest

from powrops.errors import BinariesError, ClusterError
from powrops.pg.access import blocking_dirs, check_reachable
from powrops.pg.binaries import embedded_bin_dir, find_binaries
from powrops.pg.cluster import LocalCluster, ensure_os_user

pytestmark = pytest.mark.pg

DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


def _show(cluster: LocalCluster, name: str) -> str:
    with psycopg.connect(**cluster.conninfo()) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
        assert row is not None
        return str(row[0])


def test_embedded_binaries_are_found_by_default() -> None:
    binaries = find_binaries()
    assert binaries.bin_dir == embedded_bin_dir()
    assert binaries.major >= 17
    assert binaries.has("pg_combinebackup") and binaries.has("pg_verifybackup")


def test_wrong_major_version_is_a_clear_error() -> None:
    with pytest.raises(BinariesError, match=r"no PostgreSQL 9 programs found .*postgres\.bin_dir"):
        find_binaries(9)


def test_bin_dir_that_is_not_postgres(tmp_path: Path) -> None:
    with pytest.raises(BinariesError, match="not a PostgreSQL bin directory"):
        find_binaries(bin_dir=tmp_path)


@pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed")
def test_configured_bin_dir_of_another_version_is_refused() -> None:
    assert find_binaries(15, DEBIAN_15).major == 15
    with pytest.raises(BinariesError, match="PostgreSQL 15"):
        find_binaries(18, DEBIAN_15)


def test_cluster_settings(pg_cluster: LocalCluster) -> None:
    assert _show(pg_cluster, "data_checksums") == "on"
    assert _show(pg_cluster, "wal_level") == "replica"
    assert _show(pg_cluster, "listen_addresses") == "127.0.0.1"
    assert _show(pg_cluster, "unix_socket_directories") == ""
    assert "pg_stat_statements" in _show(pg_cluster, "shared_preload_libraries")
    assert _show(pg_cluster, "password_encryption") == "scram-sha-256"
    if pg_cluster.binaries.major >= 17:
        assert _show(pg_cluster, "summarize_wal") == "on"


def test_password_is_required_and_stored_privately(pg_cluster: LocalCluster) -> None:
    info = pg_cluster.conninfo()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**{**info, "password": "wrong"}).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**{**info, "password": ""}).close()
    mode = stat.S_IMODE(pg_cluster.password_file.stat().st_mode)
    assert mode == 0o600
    hba = (pg_cluster.data_dir / "pg_hba.conf").read_text()
    rules = [line for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules and not any(" trust" in line for line in rules)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another OS user")
def test_runs_as_an_unprivileged_os_user(pg_cluster: LocalCluster) -> None:
    data = pg_cluster.data_dir.stat()
    assert data.st_uid != 0 and data.st_uid == pg_cluster.os_user.uid
    assert stat.S_IMODE(data.st_mode) == 0o700
    pid = int((pg_cluster.data_dir / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid == pg_cluster.os_user.uid


def test_restart_moves_to_a_free_port_when_its_port_is_taken(pg_tmp: Path) -> None:
    cluster = LocalCluster(pg_tmp / "c")
    try:
        cluster.start()
        first = cluster.port
        assert cluster.stop() is True
        assert cluster.stop() is False
        with socket.socket() as squatter:
            # the stopped server's connections may hold the port in TIME_WAIT: bind anyway
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", first))
            squatter.listen(1)
            cluster.start()
            assert cluster.port != first
        assert cluster.is_running()
        assert _show(cluster, "port") == str(cluster.port)
        with pytest.raises(ClusterError, match="already exists"):
            cluster.init()
    finally:
        cluster.destroy()
    assert not (pg_tmp / "c").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another OS user")
def test_unreachable_state_directory_is_a_clear_error(pg_tmp: Path) -> None:
    locked = pg_tmp / "locked"
    locked.mkdir(mode=0o700)
    user = ensure_os_user("powrops") if os.geteuid() == 0 else None
    if user is None or user.is_current:
        pytest.skip("needs root, which runs the server as another OS user")
    with pytest.raises(ClusterError, match=r"cannot enter .*locked.*mode 0o700"):
        check_reachable(locked / "c", user)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another OS user")
def test_the_archive_command_user_must_read_the_config_and_key_file(
    pg_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An s3:// primary: the archive command (as the OS user) reads the configuration for the
    credentials, and the encryption key file; a root-only file of either is said at once."""
    import subprocess

    from powrops.config import load_settings
    from powrops.pg.embedded import _check_readable
    from powrops.storage.spec import spec_of

    user = ensure_os_user("powrops")
    site = pg_tmp / "site"
    site.mkdir(mode=0o755)
    key, config = site / "backup.key", site / "powrops.toml"
    key.write_text("ab" * 32 + "\n")
    primary = '[backup.storage.primary]\nkind = "s3"\nurl = "s3://b/p"\n'
    config.write_text(
        primary + f'[backup.storage.encryption]\nenabled = true\nkey_file = "{key}"\n'
    )
    settings = load_settings(config, environ={})
    for mode in (0o600, 0o640, 0o644):
        key.chmod(mode)
        config.chmod(0o644 if mode == 0o600 else 0o600)
        _check_readable(settings, spec_of(settings), user)
        err = capsys.readouterr().err
        readable = subprocess.run(["runuser", "-u", user.name, "--", "test", "-r", str(key)])
        if mode == 0o644:
            assert readable.returncode == 0 and str(key) not in err, err
        else:
            assert readable.returncode == 1 and f"cannot read {key} (mode {oct(mode)}" in err, err
        if mode == 0o600:
            assert str(config) not in err, err
        else:
            assert f"cannot read {config} (mode 0o600" in err, err
    config.chmod(0o644)
    os.chown(key, 0, user.gid)  # the group's read bit
    key.chmod(0o640)
    _check_readable(settings, spec_of(settings), user)
    assert capsys.readouterr().err == ""


def test_a_checkout_in_a_0700_home_gets_just_the_traversal_it_needs(
    pg_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As root, a clone under /root (0700) works: one ACL entry, user:powrops:--x."""
    if os.geteuid() != 0:
        pytest.skip("needs root, which runs the server as another OS user")
    locked = pg_tmp / "home"
    locked.mkdir(mode=0o700)
    cluster = LocalCluster(locked / "c")
    try:
        cluster.init()
        user = cluster.os_user
        assert blocking_dirs(locked / "c", user) == []
        assert "traversal of" in capsys.readouterr().err
        assert stat.S_IMODE(locked.stat().st_mode) & 0o007 == 0  # others still locked out
        acl = os.getxattr(locked, "system.posix_acl_access")
        entries = [acl[4 + 8 * i : 12 + 8 * i] for i in range((len(acl) - 4) // 8)]
        named = [e for e in entries if int.from_bytes(e[:2], "little") == 0x02]
        assert [(int.from_bytes(e[2:4], "little"), int.from_bytes(e[4:], "little"))
                for e in named] == [(0o1, user.uid)]  # fmt: skip
        cluster.start()
        assert cluster.status()["running"]
    finally:
        cluster.destroy()


def test_refuses_a_foreign_non_empty_data_directory(tmp_path: Path) -> None:
    (tmp_path / "c" / "pgdata").mkdir(parents=True)
    (tmp_path / "c" / "pgdata" / "precious.txt").write_text("keep me")
    with pytest.raises(ClusterError, match="not empty"):
        LocalCluster(tmp_path / "c").init()
    assert (tmp_path / "c" / "pgdata" / "precious.txt").read_text() == "keep me"
