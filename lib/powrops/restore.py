"""Restoring a backup chain into a data directory, to the end of the archive or a point in time.

``restore`` combines the chain (``reconstruct``), gives the directory to the PostgreSQL OS user,
and configures recovery in ``postgresql.auto.conf`` (which wins over ``postgresql.conf`` and the
source's ``powrops.conf``): WAL comes from the repository through ``powrops wal fetch``, the
recovery target and ``recovery_target_action = 'promote'`` are set, and archiving is switched
off, so that the restored cluster's new timeline never reaches the source's archive. Started,
the server replays WAL while powrops prints its progress, and is done when it is promoted.

Beside the data directory ``DIR``, ``DIR.powrops/`` holds what powrops needs to run it: the
server log, the archive spec the restore command reads, the superuser password of the source
(for the embedded default) and cluster.json.

``test_restore`` is the verification's test restore: the newest backup into a scratch
directory, smoke queries, and teardown whatever happened.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from powrops.backup.model import BackupRecord
from powrops.backup.wal import format_lsn, parse_lsn
from powrops.errors import EXIT_CRITICAL, BackupError, ClusterError, ParameterError, PowropsError

if TYPE_CHECKING:
    from powrops.backup.catalog import Catalog
    from powrops.config import Settings
    from powrops.pg.binaries import PgBinaries
    from powrops.pg.cluster import LocalCluster, OsUser

Echo = Callable[[str], None]
TargetKind = Literal["latest", "time", "lsn", "xid", "name", "immediate"]

OPTION = {
    "time": "--target-time",
    "lsn": "--target-lsn",
    "xid": "--target-xid",
    "name": "--target-name",
    "immediate": "--immediate",
    "latest": "(no target)",
}
DEFAULT_SMOKE: tuple[str, ...] = ("SELECT 1",)
MARKER = "# powrops restore"
_NOT_FAILURES = ("the database system is starting up", "not yet accepting connections")
_TARGET_FAILURES = (
    "recovery ended before configured recovery target was reached",
    "requested recovery stop point is before consistent recovery point",
)


class RestoreFailed(BackupError):
    """A restore started and could not finish: nothing to restore from, or recovery failed."""

    exit_code = EXIT_CRITICAL


# -- the recovery target -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryTarget:
    """Where recovery stops: the end of the archive (latest), a time, LSN, xid, restore point
    name, or the first consistent point of the backup (immediate). Values are validated and
    normalised on creation; a bad one is a ParameterError naming the command-line option."""

    kind: TargetKind
    value: str | None = None

    def __post_init__(self) -> None:
        option = OPTION.get(self.kind)
        if option is None:
            raise ParameterError(f"unknown recovery target kind {self.kind!r}")
        if self.kind in ("latest", "immediate"):
            if self.value is not None:
                raise ParameterError(f"{option} takes no value")
            return
        text = (self.value or "").strip()
        if not text:
            raise ParameterError(f"{option} needs a value")
        object.__setattr__(self, "value", _normalise(self.kind, text, option))

    @property
    def time(self) -> datetime:
        assert self.kind == "time" and self.value is not None
        return datetime.fromisoformat(self.value)

    @property
    def lsn(self) -> int:
        assert self.kind == "lsn" and self.value is not None
        return parse_lsn(self.value)

    def describe(self) -> str:
        if self.kind == "latest":
            return "the end of the archived WAL (latest)"
        if self.kind == "immediate":
            return "the backup's consistency point (immediate)"
        return f"recovery target {self.kind} {self.value}"

    def settings(self) -> dict[str, str]:
        """The recovery target settings for postgresql.auto.conf (none for latest)."""
        if self.kind == "latest":
            return {}
        if self.kind == "immediate":
            found = {"recovery_target": "immediate"}
        else:
            found = {f"recovery_target_{self.kind}": str(self.value)}
        return {**found, "recovery_target_action": "promote"}

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_options(
        cls,
        *,
        time: str | None = None,
        lsn: str | None = None,
        xid: str | None = None,
        name: str | None = None,
        immediate: bool = False,
    ) -> RecoveryTarget:
        """The target from command-line options, at most one of which is set."""
        options: list[tuple[TargetKind, str | None]] = [
            ("time", time), ("lsn", lsn), ("xid", xid), ("name", name),
        ]  # fmt: skip
        given: list[tuple[TargetKind, str | None]] = [
            (kind, value) for kind, value in options if value is not None
        ]
        if immediate:
            given.append(("immediate", None))
        if len(given) > 1:
            raise ParameterError(
                "choose one recovery target: " + ", ".join(OPTION[k] for k, _ in given)
            )
        return cls(*given[0]) if given else cls("latest")


def _normalise(kind: str, text: str, option: str) -> str:
    if kind == "time":
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ParameterError(
                f"{option}: {text!r} is not an ISO-8601 time (e.g. 2026-11-26T06:15:00+00:00; "
                "without a zone it is UTC)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(sep=" ")
    if kind == "lsn":
        try:
            return format_lsn(parse_lsn(text))
        except ValueError:
            raise ParameterError(f"{option}: {text!r} is not an LSN (X/Y in hex)") from None
    if kind == "xid":
        if not text.isdigit() or int(text) < 3 or int(text) >= 2**64:
            raise ParameterError(f"{option}: {text!r} is not a transaction id (an integer >= 3)")
        return str(int(text))
    if len(text) > 63 or "'" in text:
        raise ParameterError(f"{option}: {text!r} is not a restore point name (<= 63 chars, no ')")
    return text


# -- choosing the backup -----------------------------------------------------------------------


def _restorable(records: Sequence[BackupRecord]) -> list[BackupRecord]:
    """The ok backups whose whole chain is present and ok, oldest first."""
    by_label = {r.label: r for r in records}
    usable = []
    for record in records:
        member: BackupRecord | None = record
        while member is not None and member.ok and member.parent:
            member = by_label.get(member.parent)
        if member is not None and member.ok:
            usable.append(record)
    return sorted(usable, key=lambda r: r.label)


def _reaches(record: BackupRecord, target: RecoveryTarget) -> bool:
    if target.kind == "time":
        return record.stop_time is not None and record.stop_time <= target.time
    if target.kind == "lsn":
        return record.stop_lsn is not None and parse_lsn(record.stop_lsn) <= target.lsn
    return True


def choose_backup(records: Sequence[BackupRecord], target: RecoveryTarget) -> BackupRecord:
    """The newest restorable backup that ends before ``target`` (the newest for other kinds)."""
    usable = _restorable(records)
    candidates = [r for r in usable if _reaches(r, target)]
    if candidates:
        return candidates[-1]
    if not usable:
        raise RestoreFailed(
            f"no backup can reach {target.describe()}: the repository holds no successful backup"
        )
    listing = "; ".join(f"{r.label} ended {r.stop_time} at LSN {r.stop_lsn}" for r in usable)
    raise RestoreFailed(
        f"no backup can reach {target.describe()}: every backup ends after it "
        f"(the oldest restorable backup, {usable[0].label}, ends at "
        f"{usable[0].stop_time} / LSN {usable[0].stop_lsn}). Backups: {listing}"
    )


def _pick(catalog: Catalog, label: str | None, target: RecoveryTarget) -> BackupRecord:
    records = catalog.records()
    if label is None:
        return choose_backup(records, target)
    found = [r for r in records if r.label == label]
    if not found:
        known = ", ".join(r.label for r in records) or "none"
        raise ParameterError(f"no backup {label!r} in {catalog.repo.url} (backups: {known})")
    record = found[0]
    if not record.ok:
        raise ParameterError(f"backup {label} failed ({record.error}); it cannot be restored")
    if not _reaches(record, target):
        raise RestoreFailed(
            f"backup {label} ends at {record.stop_time} / LSN {record.stop_lsn}, after "
            f"{target.describe()}: choose an older backup, or omit the label to let powrops choose"
        )
    return record


# -- the restored cluster ----------------------------------------------------------------------


@dataclass
class RestoredCluster:
    """A data directory restored by powrops, and the server running on it when started."""

    data_dir: Path
    label: str
    chain: tuple[str, ...]
    target: RecoveryTarget
    port: int | None
    cluster: LocalCluster | None
    timings: dict[str, float] = field(default_factory=dict)
    user: str = "postgres"
    database: str = "powr"
    timeline: int | None = None
    recovered_lsn: str | None = None
    last_replayed_xact: datetime | None = None

    @property
    def base_dir(self) -> Path:
        return base_dir_for(self.data_dir)

    def conninfo(self, dbname: str = "powr") -> dict[str, Any]:
        """libpq keywords for the restored server, with the source's credentials."""
        password_file = self.base_dir / "password"
        password = password_file.read_text().strip() if password_file.exists() else None
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": password,
            "dbname": dbname,
        }

    def start(self, *, timeout: float = 600, echo: Echo | None = print) -> None:
        """Start the server and wait until recovery reached its target and it is promoted."""
        if self.cluster is None:
            raise ClusterError(f"{self.data_dir} has no cluster to start")
        _Recovery(self, self.cluster, timeout, echo or _quiet).run()

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()

    def destroy(self) -> None:
        """Stop the server and remove the data directory and its powrops directory."""
        from powrops.pg.cluster import postmaster_pid

        if self.cluster is not None:
            self.cluster.destroy()
        elif (pid := postmaster_pid(self.data_dir)) is not None:
            raise ClusterError(f"{self.data_dir} is in use by a running server (pid {pid})")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def to_dict(self) -> dict[str, Any]:
        """What a report or ``--json`` shows (no password)."""
        return {
            "data_dir": str(self.data_dir),
            "base_dir": str(self.base_dir),
            "label": self.label,
            "chain": list(self.chain),
            "target": self.target.to_dict(),
            "port": self.port,
            "user": self.user,
            "database": self.database,
            "password_file": str(self.base_dir / "password"),
            "log_file": str(self.cluster.log_file) if self.cluster else None,
            "running": self.cluster.is_running() if self.cluster else False,
            "timeline": self.timeline,
            "recovered_lsn": self.recovered_lsn,
            "last_replayed_xact": (
                self.last_replayed_xact.isoformat() if self.last_replayed_xact else None
            ),
            "timings": dict(self.timings),
        }


def base_dir_for(data_dir: Path) -> Path:
    """``DIR.powrops``: the log, password, archive spec and cluster.json of a restored DIR."""
    return data_dir.with_name(data_dir.name + ".powrops")


def _quiet(_: str) -> None:
    return None


# -- restore -----------------------------------------------------------------------------------


def restore(
    settings: Settings,
    *,
    to: Path,
    label: str | None = None,
    target: RecoveryTarget = RecoveryTarget("latest"),
    start: bool = True,
    timeout: float = 600,
    echo: Echo | None = print,
) -> RestoredCluster:
    """Restore backup ``label`` (or the one ``target`` needs) into the empty directory ``to``.

    Nothing is written until every check passed (target directory, backup, programs, the OS
    user's access, free space). With ``start`` the server is started and recovery awaited.
    """
    from powrops.backup import repos
    from powrops.backup.catalog import Catalog
    from powrops.pg.binaries import find_binaries
    from powrops.pg.cluster import ensure_os_user

    say = echo or _quiet
    began = time.monotonic()
    to = Path(to).absolute()
    catalog = Catalog(repos.primary(settings))
    record = _pick(catalog, label, target)
    binaries = find_binaries(_major(record), settings.postgres.bin_dir)
    user = ensure_os_user(settings.postgres.os_user)
    _check_destination(to, user)
    chain = _chain(catalog, record)
    _check_space(to, chain)
    chain_text = " <- ".join(reversed([m.label for m in chain]))
    say(f"restore {record.label} (chain {chain_text}) to {target.describe()} into {to}")
    created = not to.exists()
    try:
        restored = _prepare(settings, catalog, record, binaries, to, target, say)
    except BaseException:
        _remove_partial(to, created)
        raise
    restored.timings["total_s"] = round(time.monotonic() - began, 3)
    if not start:
        assert restored.cluster is not None
        say(f"ready to start: {restored.cluster.ctl_command('start')}")
        say("  recovery runs when it starts; it fetches WAL through `powrops wal fetch`")
        return restored
    restored.start(timeout=timeout, echo=say)
    restored.timings["total_s"] = round(time.monotonic() - began, 3)
    return restored


def _major(record: BackupRecord) -> int | None:
    match = re.match(r"\d+", record.server_version or "")
    return int(match.group(0)) if match else None


def _chain(catalog: Catalog, record: BackupRecord) -> list[BackupRecord]:
    from powrops.backup.reconstruct import chain_of

    return chain_of(catalog, record)


def _check_destination(to: Path, user: OsUser) -> None:
    """Refuse a target directory that is in use, not empty, or out of the OS user's reach."""
    from powrops.pg.cluster import check_reachable, postmaster_pid

    for directory in (to, *to.parents):
        pid = postmaster_pid(directory)
        if pid is not None:
            where = "is the data directory" if directory == to else f"is inside {directory}, the"
            raise ParameterError(
                f"--to {to} {where} of a running PostgreSQL (postmaster pid {pid}): refusing to "
                "restore over it"
            )
    if to.exists() and not to.is_dir():
        raise ParameterError(f"--to {to} exists and is not a directory")
    if to.is_dir() and any(to.iterdir()):
        raise ParameterError(
            f"--to {to} is not empty: refusing to restore over it; choose a new or empty directory"
        )
    base = base_dir_for(to)
    if base.exists() and (not base.is_dir() or any(base.iterdir())):
        raise ParameterError(
            f"{base} (where powrops keeps the restored cluster's log and password) is not empty: "
            "remove it or choose another --to"
        )
    if not to.parent.is_dir():
        raise ParameterError(f"--to {to}: its parent directory {to.parent} does not exist")
    try:
        check_reachable(to, user)
        check_reachable(Path(sys.executable), user)
    except ClusterError as exc:
        raise ParameterError(f"--to {to}: {exc}") from None


def _check_space(to: Path, chain: Sequence[BackupRecord]) -> None:
    """Refuse when the file system cannot hold the extracted chain and its combination."""
    need = sum(member.raw_size for member in chain)
    if len(chain) > 1:
        need += chain[0].raw_size  # pg_combinebackup writes a full-size copy beside the parts
    free = shutil.disk_usage(to.parent).free
    if free < need:
        raise RestoreFailed(
            f"{to.parent} has {free / 2**30:.2f} GiB free; restoring {chain[-1].label} needs "
            f"about {need / 2**30:.2f} GiB: free space or choose another --to"
        )


def _prepare(
    settings: Settings,
    catalog: Catalog,
    record: BackupRecord,
    binaries: PgBinaries,
    to: Path,
    target: RecoveryTarget,
    say: Echo,
) -> RestoredCluster:
    from powrops.backup.archive_spec import write_spec
    from powrops.backup.reconstruct import reconstruct
    from powrops.pg.cluster import LocalCluster, chown_tree, free_port

    timings: dict[str, float] = {}
    mark = time.monotonic()
    say("reconstruct: extracting" + (" and combining the chain" if record.parent else ""))
    result = reconstruct(catalog, record.label, to, binaries)
    timings["reconstruct_s"] = round(time.monotonic() - mark, 3)
    say(f"reconstruct: done in {timings['reconstruct_s']:.1f} s")

    mark = time.monotonic()
    base = base_dir_for(to)
    cluster = LocalCluster(base, binaries=binaries, os_user=settings.postgres.os_user, data_dir=to)
    port = free_port()
    user, password = _credentials(settings)
    _adopt(cluster, port, record.database or "powr", result.chain, target)
    _write_private(base / "password", (password or "") + "\n")
    spec = base / "archive.json"
    write_spec(settings, spec)
    restore_command = (
        f"{shlex.quote(sys.executable)} -m powrops.cli wal fetch "
        f"--spec {shlex.quote(str(spec))} %f %p"
    )
    _configure(to, binaries.major, port, restore_command, target, record.label)
    chown_tree(to, cluster.os_user)
    os.chmod(to, 0o700)
    _check_restore_command(cluster, spec, record)
    timings["configure_s"] = round(time.monotonic() - mark, 3)
    say(f"configure: recovery to {target.describe()}, archiving off, port {port}")
    return RestoredCluster(
        data_dir=to,
        label=record.label,
        chain=result.chain,
        target=target,
        port=port,
        cluster=cluster,
        timings=timings,
        user=user,
        database=record.database or "powr",
    )


def _credentials(settings: Settings) -> tuple[str, str | None]:
    """The source's superuser and password: the embedded cluster's, or the configured URL's."""
    if settings.database.url is None:
        from powrops.db import embedded_cluster

        source = embedded_cluster(settings)
        return "postgres", source.password if source.password_file.exists() else None
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(settings.database.url.get_secret_value())
    password = unquote(parts.password) if parts.password else None
    return unquote(parts.username or "postgres"), password


def _write_private(path: Path, text: str) -> None:
    old = os.umask(0o077)
    try:
        path.write_text(text)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _configure(
    data: Path, major: int, port: int, restore_command: str, target: RecoveryTarget, label: str
) -> None:
    """Recovery settings appended to postgresql.auto.conf, recovery.signal, no stale pid."""
    for stale in ("postmaster.pid", "postmaster.opts", "standby.signal"):
        (data / stale).unlink(missing_ok=True)
    if not (data / "postgresql.conf").exists():  # e.g. Debian keeps it in /etc
        (data / "postgresql.conf").write_text("# written by powrops restore: none in the backup\n")
    if not (data / "pg_hba.conf").exists():
        (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    settings: dict[str, str] = {
        "restore_command": restore_command,
        **target.settings(),
        # A restored cluster must never archive into the source's repository.
        "archive_mode": "off",
        "archive_command": "",
        # Nor follow or wait for the source's replication partners.
        "primary_conninfo": "",
        "synchronous_standby_names": "",
        "hot_standby": "on",
        "port": str(port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": "",
        "logging_collector": "off",
    }
    if major >= 15:
        settings["archive_library"] = ""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"\n{MARKER} of {label} at {stamp}: these settings win over the ones above\n"]
    lines += [f"{key} = {_quote(value)}\n" for key, value in settings.items()]
    with (data / "postgresql.auto.conf").open("a") as handle:
        handle.write("".join(lines))
    (data / "recovery.signal").write_text("")


def _check_restore_command(cluster: LocalCluster, spec: Path, record: BackupRecord) -> None:
    """Run ``wal fetch`` once as the OS user, so that a restore command that cannot start or
    cannot read the repository fails now rather than ending recovery early and quietly."""
    if not record.start_wal:
        return
    probe = cluster.log_file.parent / "restore-command-check"
    argv = [sys.executable, "-m", "powrops.cli", "wal", "fetch", "--spec", str(spec),
            record.start_wal, str(probe)]  # fmt: skip
    result = cluster.run(argv, check=False, timeout=120, what="wal fetch")
    probe.unlink(missing_ok=True)
    if result.returncode == 0 or (result.returncode == 1 and not result.stderr.strip()):
        return
    raise RestoreFailed(
        f"the restore command cannot fetch WAL as OS user {cluster.os_user.name} "
        f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()[-1500:]}"
    )


def _remove_partial(to: Path, created: bool) -> None:
    """Remove what a failed preparation wrote (the directory was empty or absent before)."""
    if created:
        shutil.rmtree(to, ignore_errors=True)
    elif to.is_dir():
        for child in to.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    shutil.rmtree(base_dir_for(to), ignore_errors=True)
    shutil.rmtree(to.parent / f".{to.name}.chain", ignore_errors=True)


def _adopt(
    cluster: LocalCluster,
    port: int,
    database: str,
    chain: Sequence[str],
    target: RecoveryTarget,
) -> None:
    cluster.adopt(
        port, database, restored_from=chain[-1], chain=list(chain), target=target.to_dict()
    )


# -- starting and awaiting recovery ------------------------------------------------------------

PROGRESS_EVERY = 5.0
POLL = 0.3
PID_GRACE = 15.0


class _Recovery:
    """Start a restored cluster and watch it until it is promoted, fails, or times out."""

    def __init__(
        self, restored: RestoredCluster, cluster: LocalCluster, timeout: float, say: Echo
    ) -> None:
        self.restored = restored
        self.cluster = cluster
        self.timeout = timeout
        self.say = say
        self.lsn: str | None = None

    def run(self) -> None:
        from powrops.pg.cluster import postmaster_pid

        pid = postmaster_pid(self.restored.data_dir)
        if pid is not None:
            raise ClusterError(f"{self.restored.data_dir} is already running (pid {pid})")
        port = self._port()
        began = time.monotonic()
        self.say(f"start: {self.restored.data_dir} on 127.0.0.1:{port}")
        self.cluster.launch(port)
        self.say(f"recovery: replaying WAL to {self.restored.target.describe()}")
        try:
            self._await(began)
        except BaseException:
            self._stop()
            raise

    def _port(self) -> int:
        from powrops.pg.cluster import free_port, port_in_use

        restored = self.restored
        if restored.port is not None and not port_in_use(restored.port):
            return restored.port
        port = free_port()
        with (restored.data_dir / "postgresql.auto.conf").open("a") as handle:
            handle.write(f"port = '{port}'\n")
        _adopt(self.cluster, port, restored.database, restored.chain, restored.target)
        restored.port = port
        return port

    def _stop(self) -> None:
        for mode, timeout in (("fast", 30.0), ("immediate", 30.0)):
            try:
                self.cluster.stop(mode=mode, timeout=timeout)
                return
            except PowropsError:
                continue

    def _await(self, began: float) -> None:
        import psycopg

        conn: psycopg.Connection[Any] | None = None
        seen_pid = False
        reachable_at: float | None = None
        last_said = began
        try:
            while True:
                now = time.monotonic()
                seen_pid = self._check_alive(seen_pid, now - began)
                conn = conn or self._connect()
                state = self._poll(conn) if conn is not None else None
                if state is None and conn is not None:
                    conn.close()
                    conn = None
                if state is not None and reachable_at is None:
                    reachable_at = now
                    self.restored.timings["start_s"] = round(now - began, 3)
                    self.say(f"start: accepting connections after {now - began:.1f} s")
                    if state:
                        self.say(f"recovery: consistent at {self.lsn}, still replaying")
                if state is not None and not state:
                    assert conn is not None
                    self._promoted(conn, began, reachable_at or now)
                    return
                if now - began > self.timeout:
                    raise self._timed_out()
                if now - last_said >= PROGRESS_EVERY:
                    last_said = now
                    where = f"replayed up to {self.lsn}" if self.lsn else "not yet consistent"
                    self.say(f"recovery: {where}, {now - began:.0f} s")
                time.sleep(POLL)
        finally:
            if conn is not None:
                conn.close()

    def _check_alive(self, seen_pid: bool, elapsed: float) -> bool:
        from powrops.pg.cluster import postmaster_pid

        if postmaster_pid(self.restored.data_dir) is not None:
            return True
        if seen_pid or elapsed > PID_GRACE:
            raise self._failed()
        return False

    def _connect(self) -> Any:
        """A connection once the postmaster says it accepts them (no log noise before)."""
        import psycopg

        if _pm_status(self.restored.data_dir) not in ("ready", "standby"):
            return None
        info = self.restored.conninfo(self.restored.database)
        try:
            return psycopg.connect(**info, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError:
            return None

    def _poll(self, conn: Any) -> bool | None:
        """True while in recovery, False once promoted, None when the connection broke."""
        import psycopg

        try:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
            ).fetchone()
        except psycopg.Error:
            return None
        if row[1]:
            self.lsn = row[1]
        return bool(row[0])

    def _promoted(self, conn: Any, began: float, reachable_at: float) -> None:
        row = conn.execute(
            "SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(), "
            "pg_walfile_name(pg_current_wal_lsn())"
        ).fetchone()
        restored = self.restored
        done = time.monotonic()
        restored.timings.setdefault("start_s", round(reachable_at - began, 3))
        restored.timings["recovery_s"] = round(done - reachable_at, 3)
        restored.recovered_lsn = row[0]
        restored.last_replayed_xact = row[1]
        restored.timeline = int(row[2][:8], 16)
        last = f", last transaction {row[1]:%Y-%m-%d %H:%M:%S%z}" if row[1] else ""
        self.say(
            f"promoted: timeline {restored.timeline}, recovered to LSN {row[0]}{last}, "
            f"{done - began:.1f} s after start; accepting connections on 127.0.0.1:{restored.port}"
        )

    def _log(self) -> tuple[list[str], str]:
        tail = self.cluster.log_tail(80)
        return tail.splitlines(), tail

    def _failed(self) -> RestoreFailed:
        lines, tail = self._log()
        where = (
            f"the data directory {self.restored.data_dir} and the server log "
            f"{self.cluster.log_file} are kept for inspection"
        )
        for line in lines:
            if any(text in line for text in _TARGET_FAILURES):
                hint = ""
                if self.restored.target.kind in ("xid", "name"):
                    hint = (
                        ". A backup taken after an xid or restore point cannot reach it, and "
                        "without a label powrops uses the newest: name an older backup"
                    )
                return RestoreFailed(
                    f"{self.restored.target.describe()} is not reachable with the archived WAL "
                    f"(backup {self.restored.label}): PostgreSQL reported "
                    f"{line.strip()!r}; the server stopped, {where}{hint}"
                )
        fatal = [
            line for line in lines
            if ("FATAL:" in line or "PANIC:" in line) and not any(t in line for t in _NOT_FAILURES)
        ]  # fmt: skip
        reason = fatal[-1].strip() if fatal else "no FATAL message in its log"
        return RestoreFailed(
            f"the restored server stopped during recovery: {reason}; {where}. "
            f"Last lines of its log:\n{_last(tail)}"
        )

    def _timed_out(self) -> RestoreFailed:
        self._stop()
        _, tail = self._log()
        return RestoreFailed(
            f"recovery did not finish within {self.timeout:g} s "
            f"(replayed up to {self.lsn or 'nothing yet'}); the server was stopped. "
            f"Last lines of {self.cluster.log_file}:\n{_last(tail)}"
        )


def _pm_status(data_dir: Path) -> str | None:
    """The postmaster's own status line in postmaster.pid: starting, ready, standby, stopping."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    return lines[7].strip() if len(lines) > 7 else None


def _last(tail: str, lines: int = 20) -> str:
    return "\n".join(tail.splitlines()[-lines:])


# -- the verification's test restore -----------------------------------------------------------


def test_restore(
    settings: Settings,
    *,
    label: str | None = None,
    smoke: Sequence[str] = DEFAULT_SMOKE,
    target: RecoveryTarget = RecoveryTarget("latest"),
    timeout: float = 600,
    echo: Echo | None = None,
) -> dict[str, Any]:
    """Restore a backup (the newest by default) into a scratch directory, run smoke queries,
    and tear the scratch cluster down whatever happened.

    The queries are ``smoke``, then ``count(*)`` of each POWR table the restored database has,
    then the alembic revision from ``ops.alembic_version`` when it exists. ``ok`` is true when
    the restore succeeded and every query returned.
    """
    scratch = _scratch_dir(settings)
    result: dict[str, Any] = {"label": label, "chain": [], "ok": False, "queries": [],
                              "timings": {}}  # fmt: skip
    restored: RestoredCluster | None = None
    try:
        restored = restore(
            settings, to=scratch / "pgdata", label=label, target=target, timeout=timeout,
            echo=echo,
        )  # fmt: skip
        result.update(label=restored.label, chain=list(restored.chain))
        result["queries"] = run_smoke(restored, smoke)
        result["ok"] = all("error" not in q for q in result["queries"])
        result["recovered_lsn"] = restored.recovered_lsn
        result["timeline"] = restored.timeline
    except (ParameterError, KeyboardInterrupt):
        raise
    except PowropsError as exc:
        result["error"] = str(exc)
    finally:
        if restored is not None:
            result["timings"] = dict(restored.timings)
            restored.destroy()
        _destroy_scratch(scratch, settings)
    return result


test_restore.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _scratch_dir(settings: Settings) -> Path:
    """A new directory the OS user can enter: under the state directory, else the temp dir."""
    from powrops.pg.cluster import check_reachable, ensure_os_user

    user = ensure_os_user(settings.postgres.os_user)
    for parent in (settings.state_dir / "scratch", Path(tempfile.gettempdir())):
        try:
            if not parent.exists():
                parent.mkdir(mode=0o755, parents=True)
            check_reachable(parent / "x", user)
        except (OSError, ClusterError):
            continue
        path = Path(tempfile.mkdtemp(prefix="powrops-test-restore-", dir=parent))
        os.chmod(path, 0o755)
        return path
    raise ClusterError(
        f"no scratch directory the PostgreSQL OS user {user.name!r} can enter: neither "
        f"{settings.state_dir / 'scratch'} nor {tempfile.gettempdir()}"
    )


def _destroy_scratch(scratch: Path, settings: Settings) -> None:
    from powrops.pg.cluster import LocalCluster, postmaster_pid

    data = scratch / "pgdata"
    if postmaster_pid(data) is not None:  # a failure left a server behind: stop it first
        LocalCluster(base_dir_for(data), os_user=settings.postgres.os_user, data_dir=data).destroy()
    shutil.rmtree(scratch, ignore_errors=True)


def smoke_queries(conn: Any, extra: Sequence[str]) -> list[str]:
    """``extra``, then a row count per POWR table present, then the alembic revision."""
    from powrops.schema import OPS_SCHEMA, PUBLIC_TABLES, VERSION_TABLE

    queries = list(extra)
    for name in PUBLIC_TABLES:
        if conn.execute("SELECT to_regclass(%s)", (f'public."{name}"',)).fetchone()[0]:
            queries.append(f'SELECT count(*) FROM public."{name}"')
    version = f"{OPS_SCHEMA}.{VERSION_TABLE}"
    if conn.execute("SELECT to_regclass(%s)", (version,)).fetchone()[0]:
        queries.append(f"SELECT version_num FROM {version}")
    return queries


def run_smoke(restored: RestoredCluster, extra: Sequence[str]) -> list[dict[str, Any]]:
    """Run the smoke queries on a restored, promoted cluster; each with its rows or error."""
    import psycopg

    results: list[dict[str, Any]] = []
    with psycopg.connect(
        **restored.conninfo(restored.database), autocommit=True, connect_timeout=10
    ) as conn:
        conn.execute("SET statement_timeout = '60s'")
        for sql in smoke_queries(conn, extra):
            try:
                rows = conn.execute(sql).fetchall()
            except psycopg.Error as exc:
                results.append({"sql": sql, "error": str(exc).strip()})
                continue
            results.append({"sql": sql, "rows": [[_plain(v) for v in row] for row in rows]})
    return results


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)
