"""Backups end to end: real clusters archiving WAL through `powrops wal push`, real repositories
(file:// and s3:// on moto_server, an S3 API emulator), data directories reconstructed from the
repository and checked by pg_verifybackup."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_site import Site
from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.model import DATA_FILE
from powrops.backup.reconstruct import reconstruct, verify_directory
from powrops.pg.binaries import find_binaries
from powrops.pg.embedded import embedded_cluster
from readable import machine_values

pytestmark = pytest.mark.pg

BUCKET = "powrops-backups"


@pytest.fixture
def make_site() -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(**overrides: Any) -> Site:
        site = Site.create(**overrides)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.destroy()


def s3_repo(server: Any, prefix: str, endpoint: str | None = None) -> dict[str, Any]:
    from s3server import S3Server

    return {
        "kind": "s3",
        "url": f"s3://{BUCKET}/{prefix}",
        "endpoint_url": endpoint or server.endpoint_url,
        "region": S3Server.REGION,
        **S3Server.CREDENTIALS,
    }


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> str:
    s3_server.create_bucket(BUCKET)
    return BUCKET


def _write_rows(site: Site, n: int) -> None:
    site.sql("CREATE TABLE IF NOT EXISTS lifts (id serial PRIMARY KEY, kg numeric, note text)")
    site.sql(
        "INSERT INTO lifts (kg, note) SELECT g * 2.5, md5(g::text) FROM generate_series(1, %s) g",
        (n,),
    )


def _verify_from(site: Site, label: str, repo: Any, tmp: Path) -> tuple[str, ...]:
    binaries = find_binaries(
        int(site.sql("SHOW server_version_num")[0][0]) // 10000, site.settings.postgres.bin_dir
    )
    result = reconstruct(Catalog(repo), label, tmp / f"restore-{label}", binaries)
    report = verify_directory(binaries, result.path)
    assert "backup successfully verified" in report
    return result.chain


def test_full_then_incremental_on_a_file_repository(
    make_site: Callable[..., Site], pg_tmp: Path
) -> None:
    site = make_site()
    _write_rows(site, 1000)
    full = site.cli("backup", "full")
    assert full.returncode == 0, full.stderr + full.stdout
    for phase_step in (
        "pre    server settings",
        "pre    disk space",
        "during stream",
        "post   verify",
        "post   register",
        "post   expire",
    ):
        assert phase_step in full.stdout
    _write_rows(site, 5000)
    site.switch_wal()
    inc = site.cli("backup", "incremental")
    assert inc.returncode == 0, inc.stderr + inc.stdout
    _write_rows(site, 100)
    site.switch_wal()

    rows = site.backups()
    assert [r["kind"] for r in rows] == ["full", "incremental"]
    assert all(r["status"] == "ok" and r["where"] == ["primary"] for r in rows)
    assert rows[1]["parent"] == rows[0]["label"] and rows[1]["chain"] == [rows[0]["label"]]
    for row in rows:  # what pgBackRest's info shows: times, sizes, WAL range, recovery window
        assert row["start_wal"] and row["stop_wal"] and row["age_s"] >= 0, row
        window = row["recovery_window"]
        assert window["start_lsn"] == row["stop_lsn"] and window["stopped_by"] is None, window
    listing = site.cli("backup", "list")
    assert listing.returncode == 0 and machine_values(listing.stdout) == [], listing.stdout
    assert listing.stdout.count("to the newest archived WAL") == 2, listing.stdout
    assert f"WAL {rows[1]['start_wal']} .. {rows[1]['stop_wal']}" in listing.stdout

    shown = json.loads(site.cli("backup", "show", rows[1]["label"], "--json").stdout)
    for key in (
        "label",
        "kind",
        "parent",
        "start_lsn",
        "stop_lsn",
        "timeline",
        "start_time",
        "stop_time",
        "raw_size",
        "stored_size",
        "server_version",
        "system_identifier",
        "tool_version",
    ):
        assert shown[key] not in (None, ""), key
    assert {f["name"] for f in shown["files"]} == {"base.tar.zst", "backup_manifest"}
    assert all(len(f["sha256"]) == 64 for f in shown["files"])
    assert shown["stored_size"] < shown["raw_size"]

    repo = repos.primary(site.settings)
    assert _verify_from(site, rows[0]["label"], repo, pg_tmp) == (rows[0]["label"],)
    assert _verify_from(site, rows[1]["label"], repo, pg_tmp) == (
        rows[0]["label"],
        rows[1]["label"],
    )

    archiver = site.sql("SELECT archived_count, failed_count FROM pg_stat_archiver")[0]
    assert archiver[0] >= 2 and archiver[1] == 0
    wal = Catalog(repo).wal()
    assert len(wal) >= 2
    root = Path(repos.primary_url(site.settings).removeprefix("file://"))
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_s3_primary_and_file_secondary(
    make_site: Callable[..., Site], s3_server: Any, bucket: str, pg_tmp: Path
) -> None:
    site = make_site(
        backup={
            "storage": {
                "primary": s3_repo(s3_server, "site-a"),
                "secondary": {"kind": "file", "url": f"file://{pg_tmp}/secondary"},
            }
        }
    )
    _write_rows(site, 2000)
    site.switch_wal()
    result = site.cli("backup", "full")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "secondary copy" in result.stdout and "checksums read back" in result.stdout
    rows = site.backups()
    assert len(rows) == 1 and rows[0]["where"] == ["primary", "secondary"]
    objects = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="site-a/")["Contents"]
    keys = {o["Key"] for o in objects}
    assert f"site-a/backups/{rows[0]['label']}/backup.json" in keys
    assert any(k.startswith("site-a/wal/") for k in keys), "WAL was not archived to S3"
    secondary = repos.secondary(site.settings)
    assert secondary is not None
    _verify_from(site, rows[0]["label"], secondary, pg_tmp)
    _verify_from(site, rows[0]["label"], repos.primary(site.settings), pg_tmp / "p")
    copy = site.cli("backup", "copy")  # catches up the WAL archived since (no backup is missing)
    assert copy.returncode == 0, copy.stderr
    assert copy.stdout.startswith(("nothing missing", "copied 0 backups and"))
    primary_wal = {o.key for o in repos.primary(site.settings).list("wal/")}
    assert primary_wal <= {o.key for o in secondary.list("wal/")}


def test_wal_pushed_twice(make_site: Callable[..., Site], pg_tmp: Path) -> None:
    site = make_site()
    segment = pg_tmp / "000000010000000000000099"
    segment.write_bytes(os.urandom(1024) * 16)
    first = site.cli("wal", "push", str(segment), "-v")
    assert first.returncode == 0 and "archived" in first.stdout
    again = site.cli("wal", "push", str(segment), "-v")
    assert again.returncode == 0 and "already archived" in again.stdout
    original = segment.read_bytes()
    segment.write_bytes(b"X" + original[1:])
    conflict = site.cli("wal", "push", str(segment))
    assert conflict.returncode != 0
    assert "DIFFERENT content" in conflict.stderr
    restored = pg_tmp / "restored"
    fetched = site.cli("wal", "fetch", segment.name, str(restored))
    assert fetched.returncode == 0 and restored.read_bytes() == original
    missing = site.cli("wal", "fetch", "0000000100000000000000AA", str(pg_tmp / "none"))
    assert missing.returncode == 1 and not (pg_tmp / "none").exists()
    for name in (
        "00000002.history",
        "000000010000000000000099.partial",
        "000000010000000000000099.00000028.backup",
    ):
        (pg_tmp / name).write_text("x")
        assert site.cli("wal", "push", str(pg_tmp / name)).returncode == 0
        assert site.cli("wal", "fetch", name, str(pg_tmp / f"got-{name}")).returncode == 0
    bad = site.cli("wal", "push", str(pg_tmp / "restored"))
    assert bad.returncode == 3 and "not a WAL file name" in bad.stderr


def test_wal_push_path_imports_no_heavy_modules(
    make_site: Callable[..., Site], pg_tmp: Path
) -> None:
    site = make_site()
    spec = site.root / "state" / "archive.json"
    segment = pg_tmp / "0000000100000000000000A0"
    segment.write_bytes(b"\0" * 1024)
    heavy = ("pandas", "sqlalchemy", "matplotlib", "powrops.config.settings", "boto3", "argparse")
    probe = (
        f"import sys; sys.argv = ['powrops', 'wal', 'push', '--spec', {str(spec)!r}, "
        f"{str(segment)!r}]\n"
        "from powrops.__main__ import main\n"
        "code = main()\n"
        f"print(code, [m for m in {heavy!r} if m in sys.modules])\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 []", out.stdout + out.stderr


def _streaming(root: Path) -> bool:
    """A backup's data object is being written under ``root``: some bytes of it stored. Its
    empty temporary file comes just before pg_basebackup starts and Python first looks for
    its temporary folder, whose probe file a kill at that moment could leave there."""
    for path in root.rglob(f"*{DATA_FILE}*"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > 0:
                return True
    return False


def test_killed_backup_leaves_nothing_that_claims_success(
    make_site: Callable[..., Site], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed outright mid-stream (no handler runs): no record claims success, the dead run's
    lock does not block the next one, and a full backup left nothing in the temporary folder."""
    site = make_site()
    _write_rows(site, 300_000)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    proc = site.popen("backup", "full")
    root = Path(repos.primary_url(site.settings).removeprefix("file://")) / "backups"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _streaming(root):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert list(scratch.iterdir()) == []
    rows = site.backups()
    assert all(r["status"] != "ok" for r in rows)
    assert site.cli("backup", "full").returncode == 0  # the dead run's lock does not block
    rows = site.backups()
    assert [r["status"] for r in rows].count("ok") == 1


def _reader_gone(site: Site, *args: str) -> tuple[int, str]:
    """``powrops *args`` whose output's reader is gone before its first line (``| head``
    that has had its line): its exit code and what it said on stderr."""
    proc = site.popen(*args)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=300), err


def test_a_reader_gone_neither_fails_a_backup_nor_changes_a_verdict(
    make_site: Callable[..., Site],
) -> None:
    site = make_site()
    code, err = _reader_gone(site, "backup", "full")
    assert code == 0 and err == "", err
    assert [r["status"] for r in site.backups()] == ["ok"]
    site.sql("ALTER SYSTEM SET summarize_wal = off")
    site.sql("SELECT pg_reload_conf()")
    assert site.cli("backup", "incremental").returncode == 2  # a failed run: a warning
    assert site.cli("verify").returncode == 1
    code, err = _reader_gone(site, "verify")
    assert code == 1 and "pipe" not in err.lower(), err


@pytest.mark.parametrize("redirect", [">/dev/full", ">&-", ">&- 2>&-"])
def test_output_that_cannot_be_written_does_not_fail_a_backup(
    make_site: Callable[..., Site], redirect: str
) -> None:
    """A job's log on a full disk, or a command started without its standard streams."""
    site = make_site()
    base = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    command = f"{shlex.quote(sys.executable)} -m powrops.cli backup full {redirect}"
    run = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=300,
        env={**base, "POWROPS_CONFIG": str(site.config)},
    )  # fmt: skip
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert [r["status"] for r in site.backups()] == ["ok"]


def test_two_backups_at_once(make_site: Callable[..., Site]) -> None:
    site = make_site()
    _write_rows(site, 300_000)
    first = site.popen("backup", "full")
    lock = Path(repos.primary_url(site.settings).removeprefix("file://")) / "locks" / "backup.lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not lock.exists():
        time.sleep(0.01)
    second = site.cli("backup", "full")
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 3
    assert (
        "another backup holds" in second.stderr
        and "only one backup runs at a time" in second.stderr
    )
    assert [r["status"] for r in site.backups()] == ["ok"]


def test_wrong_encryption_key(make_site: Callable[..., Site], pg_tmp: Path) -> None:
    right, wrong = pg_tmp / "right.key", pg_tmp / "wrong.key"
    right.write_text(os.urandom(32).hex())
    wrong.write_text(os.urandom(32).hex())
    for key in (right, wrong):
        os.chmod(key, 0o644)  # the server's OS user reads it to archive WAL
    site = make_site(backup={"storage": {"encryption": {"enabled": True, "key_file": str(right)}}})
    _write_rows(site, 100)
    site.switch_wal()
    assert site.cli("backup", "full").returncode == 0
    stored = next((site.root / "state" / "backups" / "backups").rglob("backup.json")).read_bytes()
    assert stored.startswith(b"POWRENC1") and b'"label"' not in stored
    site.write_config(backup={"storage": {"encryption": {"enabled": True, "key_file": str(wrong)}}})
    listing = site.cli("backup", "list")
    assert listing.returncode == 3
    assert "different key" in listing.stderr
    wal = Catalog(repos.primary(site.settings)).repo.list("wal/")
    name = next(o.key for o in wal).rsplit("/", 1)[-1].removesuffix(".zst")
    fetch = site.cli("wal", "fetch", name, str(pg_tmp / "x"))
    assert fetch.returncode == 128 and "different key" in fetch.stderr


def test_s3_cut_in_the_middle_of_an_upload(
    make_site: Callable[..., Site], s3_server: Any, bucket: str
) -> None:
    from s3server import Relay

    relay = Relay(int(s3_server.endpoint_url.rsplit(":", 1)[1]))
    site = make_site(
        backup={"storage": {"primary": s3_repo(s3_server, "site-cut", relay.endpoint_url)}}
    )
    _write_rows(site, 200_000)
    site.switch_wal()
    proc = site.popen("backup", "full")
    start = relay.bytes_up
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and relay.bytes_up - start < 1_000_000:
        time.sleep(0.005)
    relay.cut()
    cut_at = time.monotonic()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, out + err
    assert time.monotonic() - cut_at < 90
    assert "failed" in err and relay.endpoint_url.split("//")[1] in err
    objects = (
        s3_server.client()
        .list_objects_v2(Bucket=bucket, Prefix="site-cut/backups/")
        .get("Contents", [])
    )
    assert not [o for o in objects if o["Key"].endswith("backup.json")]
    assert not [o for o in objects if o["Key"].endswith("base.tar.zst")]


DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


@pytest.mark.pg15
@pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed")
def test_postgresql_15_full_and_wal_and_incremental_refused(
    make_site: Callable[..., Site], pg_tmp: Path
) -> None:
    site = make_site(postgres={"bin_dir": str(DEBIAN_15)})
    assert site.sql("SHOW server_version_num")[0][0].startswith("15")
    _write_rows(site, 1000)
    site.switch_wal()
    full = site.cli("backup", "full")
    assert full.returncode == 0, full.stderr + full.stdout
    inc = site.cli("backup", "incremental")
    assert inc.returncode == 3  # refused before anything started: could not judge
    assert "incremental backups need PostgreSQL 17 or newer" in inc.stderr
    rows = site.backups()
    assert [(r["kind"], r["status"]) for r in rows] == [("full", "ok")]  # no failed run
    _verify_from(site, rows[0]["label"], repos.primary(site.settings), pg_tmp)
    assert site.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0


def _age_record(site: Site, label: str, new_label: str, days: float) -> None:
    """Copy a real backup under a new label, as if it had been taken ``days`` ago."""
    from datetime import UTC, datetime, timedelta

    repo = repos.primary(site.settings)
    record = json.loads(repo.get_bytes(f"backups/{label}/backup.json"))
    when = datetime.now(UTC) - timedelta(days=days)
    record.update(label=new_label, start_time=when.isoformat(), stop_time=when.isoformat())
    for name in ("base.tar.zst", "backup_manifest"):
        repo.put_bytes(f"backups/{new_label}/{name}", repo.get_bytes(f"backups/{label}/{name}"))
    repo.put_bytes(f"backups/{new_label}/backup.json", json.dumps(record).encode())


def test_expire_dry_run_then_real(make_site: Callable[..., Site], pg_tmp: Path) -> None:
    site = make_site()
    _write_rows(site, 100)
    assert site.cli("backup", "full").returncode == 0
    newest = site.backups()[0]["label"]
    _age_record(site, newest, "20200101T000000F", days=45)  # past 30d: goes
    _age_record(site, newest, "20200102T000000F", days=10)  # within 30d: stays
    dry = site.cli("backup", "expire", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    deleted = {
        d["item"] for d in plan["decisions"] if d["action"] == "delete" and d["kind"] == "backup"
    }
    assert deleted == {"20200101T000000F"}
    assert len(site.backups()) == 3  # a dry run deletes nothing
    text = site.cli("backup", "expire").stdout
    assert "20200101T000000F" in text and "30d" in text
    assert [r["label"] for r in site.backups()] == ["20200102T000000F", newest]
    assert _verify_from(site, newest, repos.primary(site.settings), pg_tmp) == (newest,)


def test_a_replication_role_without_execute_on_pg_control_system_backs_up(
    make_site: Callable[..., Site],
) -> None:
    """A hardened server revokes pg_control_system() from PUBLIC: a backup's role, which has
    REPLICATION, reads the system identifier as pg_basebackup does (IDENTIFY_SYSTEM), and the
    incremental still finds its parent by it; a role with neither is told both ways."""
    site = make_site()
    site.sql("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    site.sql("CREATE ROLE t_repl LOGIN REPLICATION PASSWORD 'repl'")
    site.sql("CREATE ROLE t_plain LOGIN PASSWORD 'plain'")
    port = embedded_cluster(site.settings).conninfo()["port"]
    [[identifier]] = site.sql("SELECT system_identifier::text FROM pg_control_system()")

    def backup(kind: str, role: str) -> subprocess.CompletedProcess[str]:
        url = f"postgresql://{role}@127.0.0.1:{port}/powr"
        return site.cli("backup", kind, env={"POWROPS_DATABASE_URL": url})

    for kind in ("full", "incremental"):
        done = backup(kind, "t_repl:repl")
        assert done.returncode == 0, done.stdout + done.stderr
        _write_rows(site, 100)
        site.switch_wal()
    rows = site.backups()
    assert [(r["kind"], r["status"]) for r in rows] == [("full", "ok"), ("incremental", "ok")]
    assert rows[1]["parent"] == rows[0]["label"]
    for row in rows:
        shown = json.loads(site.cli("backup", "show", row["label"], "--json").stdout)
        assert shown["system_identifier"] == identifier

    refused = backup("full", "t_plain:plain")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "may not execute pg_control_system()" in refused.stdout + refused.stderr
