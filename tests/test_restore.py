"""Restore with point-in-time targets, against real clusters archiving through powrops.

One site (an embedded cluster archiving into a file:// repository) gets a full backup, marker
row A, a recorded time/LSN/xid/restore point, marker row B, an incremental backup, marker row C,
and its WAL is archived. Each restore must contain exactly the markers its target allows, the
chain must restore to the latest row, and a restored cluster must never archive into the
source's repository. The `powrops restore` command runs in process on the CLI's own parser.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from backup_site import Site
from powrops import restore as restoring
from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.model import BackupRecord
from powrops.cli.main import build_parser
from powrops.cli.restore import register
from powrops.errors import Interrupted, ParameterError, PowropsError
from powrops.restore import RecoveryTarget, RestoredCluster, RestoreFailed, choose_backup
from powrops.restore.recovery import LAUNCH_GRACE

pytestmark = pytest.mark.pg

# -- helpers ---------------------------------------------------------------------------------


def restore_cli(site: Site, *argv: str) -> tuple[int, str, str]:
    """``powrops restore ...`` in process (exit code, stdout, stderr), as cli.main runs it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "restore" not in sub.choices:
        register(sub)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            args = parser.parse_args(["-c", str(site.config), "restore", *argv])
            code = int(args.func(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        except PowropsError as exc:
            print(f"powrops: error: {exc}", file=err)
            code = exc.exit_code
    return code, out.getvalue(), err.getvalue()


def markers(info: dict[str, Any]) -> list[str]:
    with psycopg.connect(**info, autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM markers ORDER BY name")]


def query(info: dict[str, Any], text: str) -> Any:
    with psycopg.connect(**info, autocommit=True) as conn:
        row = conn.execute(text).fetchone()
        return row[0] if row else None


def conf_state(data: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of a data directory's top-level files (the configuration among them)."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns)
        for p in data.iterdir()
        if p.is_file() and p.name != "postmaster.pid"
    }


@dataclass
class Pitr:
    """The shared site, its two backups, and the points recorded between markers A and B."""

    site: Site
    time_between: datetime
    lsn_between: str
    xid_a: str
    full: BackupRecord
    incremental: BackupRecord


@pytest.fixture(scope="module")
def pitr() -> Iterator[Pitr]:
    """full backup, A, (time, LSN, xid, restore point), B, incremental backup, C, WAL archived."""
    site = Site.create()
    try:
        assert site.cli("migrate", "latest").returncode == 0
        site.sql("CREATE TABLE markers (name text PRIMARY KEY)")
        # The source also archives through postgresql.auto.conf (ALTER SYSTEM), which a restore
        # inherits: the restore's own settings must still win.
        command = site.sql("SHOW archive_command")[0][0]
        site.sql(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(command)))
        site.sql("ALTER SYSTEM SET archive_mode = 'on'")
        site.sql("SELECT pg_reload_conf()")
        full = site.cli("backup", "full")
        assert full.returncode == 0, full.stderr + full.stdout
        xid = site.sql("INSERT INTO markers VALUES ('A') RETURNING pg_current_xact_id()::text")
        between = site.sql("SELECT clock_timestamp(), pg_current_wal_lsn()::text")[0]
        site.sql("SELECT pg_create_restore_point('before_b')")
        time.sleep(1.1)
        site.sql("INSERT INTO markers VALUES ('B')")
        site.sql("CREATE TABLE lifts AS SELECT g AS id FROM generate_series(1, 5000) g")
        inc = site.cli("backup", "incremental")
        assert inc.returncode == 0, inc.stderr + inc.stdout
        site.sql("INSERT INTO markers VALUES ('C')")
        site.sql("INSERT INTO lifts SELECT g FROM generate_series(5001, 5700) g")
        site.switch_wal()  # the last commits must be archived for recovery to reach them
        records = Catalog(repos.primary(site.settings)).records()
        assert [r.kind for r in records] == ["full", "incremental"]
        yield Pitr(site, between[0], between[1], xid[0][0], records[0], records[1])
    finally:
        site.destroy()


@pytest.fixture
def restored_clusters() -> Iterator[list[RestoredCluster]]:
    made: list[RestoredCluster] = []
    yield made
    for cluster in made:
        cluster.destroy()


def do_restore(pitr: Pitr, to: Path, target: RecoveryTarget, **kwargs: Any) -> RestoredCluster:
    return restoring.restore(pitr.site.settings, to=to, target=target, echo=None, **kwargs)


def _destroy_dir(to: Path, pitr: Pitr) -> None:
    from powrops.pg.cluster import LocalCluster

    LocalCluster(
        restoring.base_dir_for(to), os_user=pitr.site.settings.postgres.os_user, data_dir=to
    ).destroy()
    assert not to.exists() and not restoring.base_dir_for(to).exists()


# -- point in time ---------------------------------------------------------------------------


def test_target_time_restores_exactly_the_first_marker(pitr: Pitr, pg_tmp: Path) -> None:
    to = pg_tmp / "at-time"
    code, out, err = restore_cli(
        pitr.site, "--to", str(to), "--target-time", pitr.time_between.isoformat(), "--start",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    restored = RestoredCluster(
        to, data["label"], tuple(data["chain"]), RecoveryTarget("latest"), data["port"], None,
        user=data["user"], database=data["database"],
    )  # fmt: skip
    try:
        assert markers(restored.conninfo()) == ["A"]
        # The incremental ends after the target: the full is the backup that reaches it.
        assert data["label"] == pitr.full.label and data["timeline"] == 2
        assert data["target"]["kind"] == "time"
        for phase in ("reconstruct", "configure", "start", "recovery", "promoted"):
            assert f"{phase}:" in err, phase  # progress goes to stderr with --json
        assert {"reconstruct_s", "start_s", "recovery_s", "total_s"} <= set(data["timings"])
        data_dir = to.stat()
        assert stat.S_IMODE(data_dir.st_mode) == 0o700
        if os.geteuid() == 0:
            assert data_dir.st_uid != 0
    finally:
        _destroy_dir(to, pitr)


def test_lsn_xid_and_name_targets(
    pitr: Pitr, pg_tmp: Path, restored_clusters: list[RestoredCluster]
) -> None:
    # An LSN target chooses the full by itself; an xid or a name cannot be placed against the
    # backups, so the full is named (the newest, the incremental, was taken after them).
    for target, label in (
        (RecoveryTarget("lsn", pitr.lsn_between), None),
        (RecoveryTarget("xid", pitr.xid_a), pitr.full.label),
        (RecoveryTarget("name", "before_b"), pitr.full.label),
    ):
        restored = do_restore(pitr, pg_tmp / target.kind, target, label=label)
        assert restored.label == pitr.full.label
        restored_clusters.append(restored)
        assert markers(restored.conninfo()) == ["A"], target
        assert query(restored.conninfo(), "SELECT pg_is_in_recovery()") is False
        restored.destroy()


def test_latest_restores_the_incremental_chain_with_every_row(
    pitr: Pitr, pg_tmp: Path, restored_clusters: list[RestoredCluster]
) -> None:
    """And the restored cluster, promoted to timeline 2, never archives into the source."""
    restored = do_restore(pitr, pg_tmp / "latest", RecoveryTarget("latest"))
    restored_clusters.append(restored)
    info = restored.conninfo()
    assert restored.chain == (pitr.full.label, pitr.incremental.label)
    assert markers(info) == ["A", "B", "C"]
    assert query(info, "SELECT count(*) FROM lifts") == 5700

    assert restored.timeline == 2
    assert (restored.data_dir / "pg_wal" / "00000002.history").exists()
    assert query(info, "SHOW archive_mode") == "off"
    assert (
        query(
            info,
            "SELECT setting FROM pg_file_settings WHERE name = 'archive_command' AND applied",
        )
        == ""
    )  # the source's archive_command (postgresql.auto.conf) is overridden
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute("INSERT INTO markers VALUES ('written on the restored cluster')")
        conn.execute("SELECT pg_switch_wal()")
    time.sleep(3)  # an archiver, if one ran, pushes within a second
    names = [key.rsplit("/", 1)[-1] for key in _wal_keys(pitr.site)]
    assert "00000002.history.zst" not in names
    assert not [n for n in names if n.startswith("00000002")]
    assert pitr.site.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0


def _wal_keys(site: Site) -> list[str]:
    return [o.key for o in repos.primary(site.settings).list("wal/")]


def test_immediate_stops_at_the_backup_and_prepare_only_then_start(
    pitr: Pitr, pg_tmp: Path, restored_clusters: list[RestoredCluster]
) -> None:
    to = pg_tmp / "immediate"
    code, out, err = restore_cli(pitr.site, pitr.full.label, "--to", str(to), "--immediate")
    assert code == 0, err
    assert "ready to start:" in out and "pg_ctl" in out and str(to) in out
    assert (to / "recovery.signal").exists() and not (to / "postmaster.pid").exists()
    auto = (to / "postgresql.auto.conf").read_text()
    assert "recovery_target = 'immediate'" in auto and "archive_mode = 'off'" in auto
    assert auto.rindex("archive_mode = 'off'") > auto.rindex("archive_mode = 'on'")
    assert "restore_command = " in auto and "wal fetch --spec" in auto
    # Prepared only: start it the way a drill does, through the library.
    from powrops.pg.cluster import LocalCluster

    cluster = LocalCluster(
        restoring.base_dir_for(to), os_user=pitr.site.settings.postgres.os_user, data_dir=to
    )
    restored = RestoredCluster(
        to, pitr.full.label, (pitr.full.label,), RecoveryTarget("immediate"), cluster.port,
        cluster,
    )  # fmt: skip
    restored_clusters.append(restored)
    restored.start(echo=None)
    assert markers(restored.conninfo()) == []
    assert restored.timeline == 2 and restored.timings["recovery_s"] >= 0


def test_unreachable_target_is_reported_with_postgresql_own_words(
    pitr: Pitr, pg_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A future time is refused before anything is restored (tested on its own); here the
    # server's own refusal is what is checked, so the pre-check is taken out of the way.
    monkeypatch.setattr(RecoveryTarget, "not_yet", lambda self, now=None: None)
    future = datetime.now(UTC) + timedelta(hours=1)
    to = pg_tmp / "future"
    began = time.monotonic()
    with pytest.raises(RestoreFailed) as caught:
        do_restore(
            pitr, to, RecoveryTarget("time", future.isoformat()), timeout=120,
            label=pitr.full.label,
        )  # fmt: skip
    # the server ended on its own: the failure is said at once, not after waiting for a
    # server that has gone to write its pid file again
    assert time.monotonic() - began < LAUNCH_GRACE
    message = str(caught.value)
    assert "not reachable with the archived WAL" in message
    assert "recovery ended before configured recovery target was reached" in message
    from powrops.pg.cluster import postmaster_pid

    assert postmaster_pid(to) is None  # the server is not left running
    _destroy_dir(to, pitr)


def test_recovery_timeout_stops_the_server_and_quotes_its_log(pitr: Pitr, pg_tmp: Path) -> None:
    to = pg_tmp / "slow"
    began = time.monotonic()
    with pytest.raises(RestoreFailed) as caught:
        do_restore(pitr, to, RecoveryTarget("latest"), timeout=0.2, label=pitr.full.label)
    assert time.monotonic() - began < LAUNCH_GRACE  # stopped once, not waited for again
    message = str(caught.value)
    assert "recovery did not finish within 0.2 s" in message and "the server was stopped" in message
    assert "Last lines of" in message and "LOG:" in message
    from powrops.pg.cluster import postmaster_pid

    assert postmaster_pid(to) is None
    _destroy_dir(to, pitr)


# -- refusals --------------------------------------------------------------------------------


def test_refuses_a_non_empty_directory_and_one_a_running_cluster_uses(
    pitr: Pitr, pg_tmp: Path
) -> None:
    occupied = pg_tmp / "occupied"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("keep me")
    code, _, err = restore_cli(pitr.site, "--to", str(occupied), "--start")
    assert code == 3 and "is not empty" in err
    assert [p.name for p in occupied.iterdir()] == ["precious.txt"]
    assert not restoring.base_dir_for(occupied).exists()

    from powrops.db import embedded_cluster

    live = embedded_cluster(pitr.site.settings).data_dir
    before = conf_state(live)
    for args in (["--to", str(live)], ["--to", str(live / "base" / "inside")]):
        code, _, err = restore_cli(pitr.site, *args)
        assert code == 3 and "running PostgreSQL" in err and "postmaster pid" in err
    assert conf_state(live) == before
    assert not (live / "recovery.signal").exists() and not (live / "base" / "inside").exists()
    assert not restoring.base_dir_for(live).exists()


def test_bad_arguments_exit_3_naming_the_option(pitr: Pitr, pg_tmp: Path) -> None:
    to = pg_tmp / "never"
    code, _, err = restore_cli(pitr.site, "--to", str(to), "--target-time", "last tuesday")
    assert code == 3 and "--target-time" in err and "ISO-8601" in err
    code, _, err = restore_cli(pitr.site, "--to", str(to), "--target-lsn", "12345")
    assert code == 3 and "--target-lsn" in err
    code, _, err = restore_cli(pitr.site, "--to", str(to), "--target-xid", "-4")
    assert code == 3 and "--target-xid" in err
    code, _, err = restore_cli(
        pitr.site, "--to", str(to), "--target-time", "2026-01-01", "--immediate"
    )
    assert code == 3 and "not allowed with argument" in err
    code, _, err = restore_cli(pitr.site, "NOSUCHLABEL", "--to", str(to))
    assert code == 3 and "no backup 'NOSUCHLABEL'" in err and pitr.full.label in err
    assert not to.exists()


def test_target_before_the_oldest_backup_is_a_clear_error(pitr: Pitr, pg_tmp: Path) -> None:
    to = pg_tmp / "too-early"
    code, _, err = restore_cli(pitr.site, "--to", str(to), "--target-time", "2001-01-01")
    assert code == 2
    assert "no backup can reach recovery target time 2001-01-01 00:00:00+00:00" in err
    assert pitr.full.label in err and pitr.incremental.label in err
    assert not to.exists()
    code, _, err = restore_cli(
        pitr.site, pitr.incremental.label, "--to", str(to), "--target-time",
        pitr.time_between.isoformat(),
    )  # fmt: skip
    assert code == 2 and "choose an older backup" in err
    assert not to.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another OS user")
def test_unreachable_parent_directory_is_refused(pitr: Pitr, pg_tmp: Path) -> None:
    locked = pg_tmp / "locked"
    locked.mkdir(mode=0o700)
    code, _, err = restore_cli(pitr.site, "--to", str(locked / "data"))
    assert code == 3 and "cannot enter" in err and str(locked) in err
    assert list(locked.iterdir()) == []


def test_a_restore_command_that_cannot_read_the_archive_stops_the_restore(
    pitr: Pitr, pg_tmp: Path
) -> None:
    """The spool is warmed as the OS user while the backup is unpacked: when that user cannot
    read the WAL archive, the restore fails before any server starts, and leaves nothing."""
    wal = Path(repos.primary(pitr.site.settings).url.removeprefix("file://")) / "wal"
    to = pg_tmp / "no-archive"
    if os.geteuid() != 0:
        pytest.skip("needs root: the OS user would own the archive")
    owner = wal.stat()
    os.chown(wal, 0, 0)
    wal.chmod(0o700)
    try:
        code, _, err = restore_cli(pitr.site, pitr.full.label, "--to", str(to), "--immediate",
                                   "--start")  # fmt: skip
    finally:
        wal.chmod(0o755)
        os.chown(wal, owner.st_uid, owner.st_gid)
    assert code == 2 and "the restore command cannot fetch WAL as OS user" in err, err
    assert not to.exists() and not restoring.base_dir_for(to).exists()


# -- the verification's test restore -----------------------------------------------------------


def _scratch_processes() -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "powrops-test-restore-" in cmdline:
            found.append(cmdline)
    return found


def test_test_restore_runs_smoke_queries_and_leaves_nothing(pitr: Pitr) -> None:
    settings = pitr.site.settings
    result = restoring.test_restore(settings, smoke=("SELECT 1", "SELECT count(*) FROM markers"))
    assert result["ok"] is True, result
    assert result["label"] == pitr.incremental.label
    assert result["chain"] == [pitr.full.label, pitr.incremental.label]
    by_sql = {q["sql"]: q for q in result["queries"]}
    assert by_sql["SELECT 1"]["rows"] == [[1]]
    assert by_sql["SELECT count(*) FROM markers"]["rows"] == [[3]]
    assert by_sql['SELECT count(*) FROM public."workouts"']["rows"] == [[0]]
    version = pitr.site.sql("SELECT version_num FROM ops.alembic_version")[0][0]
    assert by_sql["SELECT version_num FROM ops.alembic_version"]["rows"] == [[version]]
    assert {"reconstruct_s", "start_s", "recovery_s", "total_s"} <= set(result["timings"])
    scratch = settings.state_dir / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []
    assert _scratch_processes() == []


def test_an_interrupt_during_the_test_restores_teardown_still_removes_its_scratch(
    pitr: Pitr, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C just after the smoke queries, while the scratch server stops: the teardown
    still removes the restored copy, then the interrupt says so."""

    def cut_short(self: RestoredCluster) -> None:
        self.stop()  # the server stops; the interrupt arrives before its directories go
        raise Interrupted("SIGINT")

    monkeypatch.setattr(RestoredCluster, "destroy", cut_short)
    settings = pitr.site.settings
    with pytest.raises(Interrupted) as caught:
        restoring.test_restore(settings)
    assert "the test restore was stopped and" in str(caught.value), caught.value
    assert str(caught.value).endswith("removed"), caught.value
    scratch = settings.state_dir / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []
    assert _scratch_processes() == []


# -- PostgreSQL 15 -----------------------------------------------------------------------------

DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


@pytest.mark.pg15
@pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed")
def test_postgresql_15_full_and_wal_to_a_point_in_time(pg_tmp: Path) -> None:
    site = Site.create(postgres={"bin_dir": str(DEBIAN_15)})
    try:
        site.sql("CREATE TABLE markers (name text PRIMARY KEY)")
        assert site.cli("backup", "full").returncode == 0
        site.sql("INSERT INTO markers VALUES ('A')")
        between = site.sql("SELECT clock_timestamp()")[0][0]
        time.sleep(1.1)
        site.sql("INSERT INTO markers VALUES ('B')")
        site.switch_wal()
        restored = restoring.restore(
            site.settings, to=pg_tmp / "pg15", target=RecoveryTarget("time", between.isoformat()),
            echo=None,
        )  # fmt: skip
        try:
            info = restored.conninfo()
            assert query(info, "SHOW server_version_num").startswith("15")
            assert markers(info) == ["A"]
            assert query(info, "SHOW archive_mode") == "off"
        finally:
            restored.destroy()
    finally:
        site.destroy()


# -- choosing the backup and parsing targets (no server) -------------------------------------


def _record(label: str, stop: str, *, parent: str | None = None, ok: bool = True) -> BackupRecord:
    when = datetime.fromisoformat(stop)
    return BackupRecord(
        label=label, kind="incremental" if parent else "full", status="ok" if ok else "failed",
        start_time=when - timedelta(minutes=5), stop_time=when, parent=parent,
        stop_lsn=f"0/{int(when.timestamp()) % 10**6 * 16:X}",
    )  # fmt: skip


def test_choose_backup_picks_the_newest_that_ends_before_the_target() -> None:
    records = [
        _record("20260101T100000F", "2026-01-01T10:00:00+00:00"),
        _record("20260101T110000I", "2026-01-01T11:00:00+00:00", parent="20260101T100000F"),
        _record("20260101T120000F", "2026-01-01T12:00:00+00:00"),
        _record("20260101T123000F", "2026-01-01T12:30:00+00:00", ok=False),
        _record("20260101T130000I", "2026-01-01T13:00:00+00:00", parent="20260101T123000F"),
        _record("20260101T140000I", "2026-01-01T14:00:00+00:00", parent="20251231T000000F"),
    ]

    def pick(target: RecoveryTarget) -> str:
        return choose_backup(records, target).label

    assert pick(RecoveryTarget("time", "2026-01-01T11:30:00Z")) == "20260101T110000I"
    assert pick(RecoveryTarget("time", "2026-01-01T11:00:00+00:00")) == "20260101T110000I"
    assert pick(RecoveryTarget("time", "2026-01-01T12:59:00+01:00")) == "20260101T110000I"
    assert pick(RecoveryTarget("time", "2026-01-01 12:15:00")) == "20260101T120000F"  # UTC
    # The failed full and the incrementals whose chain is broken are never chosen.
    assert pick(RecoveryTarget("time", "2026-01-02T00:00:00Z")) == "20260101T120000F"
    assert pick(RecoveryTarget("latest")) == "20260101T120000F"
    assert pick(RecoveryTarget("immediate")) == "20260101T120000F"
    lsn = records[1].stop_lsn
    assert lsn is not None and pick(RecoveryTarget("lsn", lsn)) == "20260101T110000I"
    with pytest.raises(RestoreFailed) as caught:
        pick(RecoveryTarget("time", "2026-01-01T09:00:00Z"))
    message = str(caught.value)
    assert "recovery target time 2026-01-01 09:00:00+00:00" in message
    assert "20260101T100000F" in message and "20260101T120000F" in message
    with pytest.raises(RestoreFailed, match="no successful backup"):
        choose_backup([records[3]], RecoveryTarget("latest"))


@pytest.mark.parametrize(
    ("kind", "value", "normalised"),
    [
        ("time", "2026-03-01T10:00:00", "2026-03-01 10:00:00+00:00"),
        ("time", "2026-03-01T10:00:00Z", "2026-03-01 10:00:00+00:00"),
        ("time", "2026-03-01 12:00:00.5+02:00", "2026-03-01 10:00:00.500000+00:00"),
        ("lsn", "0/3000028", "0/3000028"),
        ("lsn", "a/b0", "A/B0"),
        ("xid", "742", "742"),
        ("name", "before_migration", "before_migration"),
    ],
)
def test_recovery_target_values_are_normalised(kind: Any, value: str, normalised: str) -> None:
    assert RecoveryTarget(kind, value).value == normalised


@pytest.mark.parametrize(
    ("kind", "value", "option"),
    [
        ("time", "yesterday", "--target-time"),
        ("time", "", "--target-time"),
        ("lsn", "0x3000028", "--target-lsn"),
        ("xid", "12abc", "--target-xid"),
        ("xid", "1", "--target-xid"),
        ("name", "x" * 64, "--target-name"),
        ("immediate", "now", "--immediate"),
    ],
)
def test_bad_recovery_target_values_name_the_option(kind: Any, value: str, option: str) -> None:
    with pytest.raises(ParameterError, match=option):
        RecoveryTarget(kind, value)


def test_recovery_target_settings() -> None:
    assert RecoveryTarget("latest").settings() == {}
    assert RecoveryTarget("immediate").settings() == {
        "recovery_target": "immediate",
        "recovery_target_action": "promote",
    }
    assert RecoveryTarget("lsn", "0/10").settings() == {
        "recovery_target_lsn": "0/10",
        "recovery_target_action": "promote",
    }
    assert RecoveryTarget.from_options(xid="900") == RecoveryTarget("xid", "900")
    assert RecoveryTarget.from_options() == RecoveryTarget("latest")
    with pytest.raises(ParameterError, match="choose one recovery target"):
        RecoveryTarget.from_options(xid="900", immediate=True)


def test_a_target_time_not_reached_yet_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A future target has no WAL to replay, whatever is archived: the restore's plan says so
    (not 'force a WAL switch and wait'), and a drill stops before it writes or restores."""
    from powrops.config import Settings
    from powrops.drill.run import run_drill
    from powrops.errors import ParameterError
    from powrops.restore import planning

    soon = datetime.now(UTC) + timedelta(hours=1)
    future = RecoveryTarget("time", soon.isoformat())
    assert future.not_yet() is not None and "is in the future" in str(future.not_yet())
    assert future.not_yet(now=soon + timedelta(seconds=1)) is None
    assert RecoveryTarget("time", "2020-01-01 00:00:00+00").not_yet() is None
    assert RecoveryTarget("latest").not_yet() is None
    reachable, why = planning._reachable(future, datetime.now(UTC))
    assert not reachable and "is in the future" in why and "pg_switch_wal" not in why
    lines: list[str] = []
    with pytest.raises(ParameterError, match="is in the future"):
        run_drill(Settings(), target_time=soon, echo=lines.append)
    assert lines == []  # no step ran, no marker was written
    with pytest.raises(ParameterError, match="is in the future"):
        restoring.restore(Settings(), to=tmp_path / "restored", target=future, echo=lines.append)
    assert lines == [] and not (tmp_path / "restored").exists()
