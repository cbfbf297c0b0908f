"""Where things go: relative repository URLs resolve against the configuration file's folder
(and are written absolute where the server reads them), the state directory is created on
first use, an explicit repository on a missing mount is refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backup_site import Site
from cli_helpers import libpq
from conftest import traversable_dir
from powrops.backup.catalog import Catalog
from powrops.config import load_settings, to_toml
from powrops.db import embedded_cluster
from powrops.errors import ConfigError, StorageError
from powrops.restore.smoke import test_restore
from powrops.retention.repository import open_archive
from powrops.storage.local import FileRepository
from powrops.storage.spec import SPEC_FILE, primary, write_spec


def _cli_in(cwd: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``powrops -c CONFIG *args`` run in ``cwd``, no POWROPS* variable inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    return subprocess.run(
        [sys.executable, "-m", "powrops.cli", "-c", str(config), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


RELATIVE = """
[backup.storage.primary]
kind = "file"
url = "file://relrepo"
[backup.storage.secondary]
kind = "file"
url = "file://./copies/second"
[backup.storage.encryption]
enabled = true
key_file = "keys/backup.key"
[archival]
repository = "file://archive"
[reports]
archive_url = "file://report-archive"
"""


def test_relative_repository_urls_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    config = folder / "powrops.toml"
    config.write_text(RELATIVE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    s = load_settings(config, environ={})
    storage = s.backup.storage
    assert storage.primary.url == (folder / "relrepo").as_uri()
    assert storage.secondary is not None
    assert storage.secondary.url == (folder / "copies" / "second").as_uri()
    assert storage.encryption.key_file == str(folder / "keys" / "backup.key")
    assert s.archival.repository == (folder / "archive").as_uri()
    assert s.reports.archive_url is not None
    assert s.reports.archive_url.get_secret_value() == (folder / "report-archive").as_uri()
    spec = write_spec(s, tmp_path / SPEC_FILE)  # what the server's archive_command reads
    assert spec["url"] == (folder / "relrepo").as_uri()
    assert spec["encryption"]["key_file"] == str(folder / "keys" / "backup.key")

    env = {"POWROPS__BACKUP__STORAGE__PRIMARY__URL": "file://from-env"}
    assert load_settings(config, environ=env).backup.storage.primary.url == (
        (folder / "from-env").as_uri()
    )
    kept = ("file:///srv/powr", "file://localhost/srv/powr", "s3://bucket/powr")
    for url in kept:
        same = load_settings(config, environ={"POWROPS__BACKUP__STORAGE__SECONDARY__URL": url})
        assert same.backup.storage.secondary is not None
        assert same.backup.storage.secondary.url == url


def test_without_a_config_file_relative_urls_resolve_against_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".powrops").mkdir()
    below = tmp_path / "runbooks" / "deep"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    s = load_settings(environ={"POWROPS__ARCHIVAL__REPOSITORY": "file://arch"})
    assert s.archival.repository == (tmp_path / "arch").as_uri()
    assert s.state_dir == tmp_path / ".powrops"


@pytest.mark.pg
def test_relative_repository_is_found_from_any_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Backups and the server's WAL both go to ``<config folder>/relrepo``; ``backup list``
    run elsewhere finds them. Then the disk pre-check of the next full backup is sized from
    the newest full backup, not from the incremental taken after it."""
    scratch = traversable_dir("cwd")
    monkeypatch.chdir(scratch)  # a leak into the working directory shows here, not in the tree
    site = Site.create(backup={"storage": {"primary": {"kind": "file", "url": "file://relrepo"}}})
    try:
        repo_dir = site.root / "relrepo"
        spec = json.loads((site.settings.state_dir / SPEC_FILE).read_text())
        assert spec["url"] == repo_dir.as_uri()

        full = _cli_in(scratch, site.config, "backup", "full", "--json")
        assert full.returncode == 0, full.stderr + full.stdout
        first = json.loads(full.stdout)
        site.sql("CREATE TABLE lifts AS SELECT g AS id FROM generate_series(1, 1000) g")
        segment = site.switch_wal()
        pgdata = embedded_cluster(site.settings).data_dir
        assert not (scratch / "relrepo").exists() and not (pgdata / "relrepo").exists()
        catalog = Catalog(FileRepository(repo_dir))
        assert [r.label for r in catalog.records()] == [first["label"]]
        assert segment in {w.name for w in catalog.wal()}

        listing = _cli_in(site.root / "state", site.config, "backup", "list", "--json")
        assert listing.returncode == 0, listing.stderr
        assert [row["label"] for row in json.loads(listing.stdout)] == [first["label"]]

        inc = _cli_in(scratch, site.config, "backup", "incremental", "--json")
        assert inc.returncode == 0, inc.stderr + inc.stdout
        assert json.loads(inc.stdout)["stored_size"] < first["stored_size"]
        again = _cli_in(scratch, site.config, "backup", "full", "--json")
        assert again.returncode == 0, again.stderr + again.stdout
        disk = [s for s in json.loads(again.stdout)["steps"] if s["name"] == "disk space"]
        assert disk[0]["details"]["estimate"] == first["stored_size"], disk
    finally:
        site.destroy()
        os.chdir("/")
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


@pytest.mark.pg
def test_a_new_configuration_takes_its_first_backup(pg_url: str, tmp_path: Path) -> None:
    """A folder holding only powrops.toml with database.url: the state directory is created
    (0700) by the first backup; an explicit repository on a missing mount is refused."""
    folder = tmp_path / "new"
    folder.mkdir()
    config = folder / "powrops.toml"
    config.write_text(to_toml({"database": {"url": libpq(pg_url)}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    took = _cli_in(elsewhere, config, "backup", "full", "--json")
    assert took.returncode in (0, 1), took.stderr + took.stdout
    state = folder / ".powrops"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    label = json.loads(took.stdout)["label"]
    assert [r.label for r in Catalog(FileRepository(state / "backups")).records()] == [label]
    assert list(elsewhere.iterdir()) == []

    unmounted = tmp_path / "mnt" / "backups"
    config.write_text(
        to_toml(
            {
                "database": {"url": libpq(pg_url)},
                "backup": {"storage": {"primary": {"kind": "file", "url": unmounted.as_uri()}}},
            }
        )
    )
    refused = _cli_in(elsewhere, config, "backup", "full")
    assert refused.returncode == 3, refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
    assert f"its parent {tmp_path / 'mnt'} does not exist" in refused.stderr, refused.stderr
    assert not (tmp_path / "mnt").exists()


def test_the_state_directory_is_created_on_first_write(tmp_path: Path) -> None:
    """Opening and listing the default repositories creates nothing; the first write creates
    ``state.dir`` and the server's folder in it, 0700; a ``state.dir`` whose parent is missing
    is refused, naming it."""
    config = tmp_path / "powrops.toml"
    config.write_text('[state]\ndir = "st"\n[servers.east.database]\napplication_name = "e"\n')
    s = load_settings(config, environ={}, server="east")
    repo = primary(s)
    assert list(repo.list()) == [] and repo.stat("k") is None
    open_archive(s)
    assert not (tmp_path / "st").exists()
    repo.put_bytes("k", b"x")
    open_archive(s).put_bytes("a", b"y")
    for folder in ("st", "st/east", "st/east/backups", "st/east/archive"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o700, folder

    config.write_text('[state]\ndir = "missing/st"\n')
    lost = primary(load_settings(config, environ={}))
    with pytest.raises(StorageError, match=f"its parent {tmp_path / 'missing'} does not exist"):
        lost.put_bytes("k", b"x")
    assert not (tmp_path / "missing").exists()


def test_the_state_directory_is_made_0700_below_an_existing_parent(tmp_path: Path) -> None:
    """Every writer of the state directory (db start, alerts' state, rollback files) makes
    what is missing of it 0700; a state.dir whose parent is missing is refused, naming it."""
    config = tmp_path / "powrops.toml"
    config.write_text(to_toml({"servers": {"primary": {"state": {"dir": "var/state"}}}}))
    (tmp_path / "var").mkdir()
    settings = load_settings(config, environ={}, server="primary")
    made = settings.make_state_dir("alerts")
    assert made == tmp_path / "var" / "state" / "primary" / "alerts" and made.is_dir()
    for folder in (made, made.parent, made.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    config.write_text(to_toml({"state": {"dir": "missing/state"}}))
    with pytest.raises(ConfigError, match=r"state.dir .*missing/state: its parent folder"):
        load_settings(config, environ={}).make_state_dir()
    assert not (tmp_path / "missing").exists()


def test_a_test_restore_makes_the_state_directory_0700_below_an_existing_parent(
    tmp_path: Path,
) -> None:
    """The verification's test restore, the first writer on a new host (a scheduled
    backup_verification), makes the state directory as every other writer does, and never
    the missing parent of a state.dir (a mount point not mounted)."""
    (tmp_path / "var").mkdir()
    config = tmp_path / "powrops.toml"
    repo = {"backup": {"storage": {"primary": {"kind": "file", "url": "file://repo"}}}}
    config.write_text(to_toml({"state": {"dir": "var/state"}, **repo}))
    tried = test_restore(load_settings(config, environ={}))
    assert "no successful backup" in tried["error"]
    assert stat.S_IMODE((tmp_path / "var" / "state").stat().st_mode) == 0o700
    config.write_text(to_toml({"state": {"dir": "missing/state"}, **repo}))
    assert "no successful backup" in test_restore(load_settings(config, environ={}))["error"]
    assert not (tmp_path / "missing").exists()
