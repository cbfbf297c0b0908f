"""Restoring a backup chain into a data directory, up to the point where the server can start.

Nothing is written until the destination, the backup, the programs, the OS user's access
and the free space are checked. Then the chain is combined (``reconstruct``), the directory
is given to the PostgreSQL OS user, and recovery is configured in ``postgresql.auto.conf``
(which wins over ``postgresql.conf`` and the source's ``powrops.conf``): WAL comes from the
repository through ``powrops wal fetch``, the recovery target and
``recovery_target_action = 'promote'`` are set, and archiving is switched off, so that the
restored cluster's new timeline never reaches the source's archive. The restore command is
run once as the OS user before the server starts.

Beside the data directory ``DIR``, ``DIR.powrops/`` holds what powrops needs to run it: the
server log, the archive spec the restore command reads, the superuser password of the source
(for the embedded default) and cluster.json.

Interrupted (SIGINT, SIGTERM: ``Interrupted``), a restore stops at once and says what it left:
while the backup is unpacked, ``wal warm`` is stopped and both directories are removed; during
recovery the server is stopped and ``DIR`` is kept, prepared, named with the command that
starts it again (recovery resumes where it stopped).
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.model import BackupRecord
from powrops.backup.reconstruct import chain_of, reconstruct
from powrops.backup.wal.archive import KEEP, MISSING
from powrops.db import target
from powrops.errors import INTERRUPTED_CHILD, ClusterError, Interrupted, ParameterError
from powrops.format import Echo
from powrops.pg.access import check_reachable
from powrops.pg.binaries import find_binaries
from powrops.pg.cluster import LocalCluster, chown_tree, ensure_os_user, free_port, postmaster_pid
from powrops.pg.embedded import embedded_cluster
from powrops.pg.pgpass import lookup
from powrops.restore.choose import _pick
from powrops.restore.errors import RestoreFailed
from powrops.restore.recovery import RestoredCluster, _adopt, _quiet, base_dir_for
from powrops.restore.target import LATEST, RecoveryTarget
from powrops.storage.spec import write_spec

if TYPE_CHECKING:
    from powrops.backup.catalog import Catalog
    from powrops.config import Settings
    from powrops.pg.binaries import PgBinaries
    from powrops.pg.cluster import LocalCluster, OsUser

MARKER = "# powrops restore"
WARM_TIMEOUT = 600.0  # seconds ``wal warm`` may take to fill the spool
FLUSH_PAUSE_S = 0.1  # between two syncfs() calls while a backup is unpacked


def restore(
    settings: Settings,
    *,
    to: Path,
    label: str | None = None,
    target: RecoveryTarget = LATEST,
    start: bool = True,
    timeout: float = 600,
    echo: Echo | None = print,
) -> RestoredCluster:
    """Restore backup ``label`` (or the one ``target`` needs) into the empty directory ``to``.

    Nothing is written until every check passed (target directory, backup, programs, the OS
    user's access, free space). With ``start`` the server is started and recovery awaited.
    """

    future = target.not_yet()
    if future is not None:
        raise future
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
    except KeyboardInterrupt as exc:
        _remove_partial(to, created)
        gone = f"{to} {'removed' if created else 'emptied'} and {base_dir_for(to)} removed"
        raise Interrupted.of(exc).leaving(
            f"restore of {record.label} stopped while preparing: {gone}"
        ) from None
    except BaseException:
        _remove_partial(to, created)
        raise
    restored.timings["total_s"] = round(time.monotonic() - began, 3)
    try:
        if not start:
            say(f"ready to start: {_cluster(restored).ctl_command('start')}")
            say("  recovery runs when it starts; it fetches WAL through `powrops wal fetch`")
            return restored
        restored.start(timeout=timeout, echo=say)
    except KeyboardInterrupt as exc:
        raise Interrupted.of(exc).leaving(left_prepared(restored)) from None
    restored.timings["total_s"] = round(time.monotonic() - began, 3)
    return restored


def _cluster(restored: RestoredCluster) -> LocalCluster:
    assert restored.cluster is not None
    return restored.cluster


def left_prepared(restored: RestoredCluster) -> str:
    """What an interrupted recovery leaves: the server stopped (or, if it would not stop,
    running) and the prepared directory, with the command that resumes it."""
    cluster = _cluster(restored)
    to, base = restored.data_dir, restored.base_dir
    if cluster.is_running():
        return (
            f"the restored server on {to} did not stop and still runs: "
            f"{cluster.ctl_command('stop')}; then remove {to} and {base}"
        )
    return (
        f"restore of {restored.label} stopped before recovery finished; the server is not "
        f"running; {to} is kept, prepared: `{cluster.ctl_command('start')}` resumes recovery, "
        f"or remove {to} and {base}"
    )


def _major(record: BackupRecord) -> int | None:
    match = re.match(r"\d+", record.server_version or "")
    return int(match.group(0)) if match else None


def _chain(catalog: Catalog, record: BackupRecord) -> list[BackupRecord]:

    return chain_of(catalog, record)


#: The target directory as the command (``--to``) and the restore runbook name it.
DESTINATION = {"option": "--to", "parameter": "target_dir"}


def _check_destination(to: Path, user: OsUser) -> None:
    """Refuse a target directory that is in use, not empty, or out of the OS user's reach
    (the command's ``--to``, the restore runbook's ``target_dir``: the error names both)."""
    check_target_dir(to)
    try:
        check_reachable(to, user)
        check_reachable(Path(sys.executable), user)
    except ClusterError as exc:
        raise ParameterError(f"{{name}} {to}: {exc}", **DESTINATION) from None


def check_target_dir(to: Path) -> None:
    """Refuse a target directory that is in use, not empty or has no parent: what can be
    told before a restore starts (``powrops runbook -p target_dir`` checks it too)."""
    to = to.absolute()
    for directory in (to, *to.parents):
        pid = postmaster_pid(directory)
        if pid is not None:
            where = "is the data directory" if directory == to else f"is inside {directory}, the"
            raise ParameterError(
                f"{{name}} {to} {where} of a running PostgreSQL (postmaster pid {pid}): refusing "
                "to restore over it",
                **DESTINATION,
            )
    if to.exists() and not to.is_dir():
        raise ParameterError(f"{{name}} {to} exists and is not a directory", **DESTINATION)
    if to.is_dir() and any(to.iterdir()):
        raise ParameterError(
            f"{{name}} {to} is not empty: refusing to restore over it; choose a new or empty "
            "directory",
            **DESTINATION,
        )
    base = base_dir_for(to)
    if base.exists() and (not base.is_dir() or any(base.iterdir())):
        raise ParameterError(
            f"{base} (where powrops keeps the restored cluster's log and password) is not empty: "
            "remove it or choose another {name}",
            **DESTINATION,
        )
    if not to.parent.is_dir():
        raise ParameterError(
            f"{{name}} {to}: its parent directory {to.parent} does not exist", **DESTINATION
        )


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

    timings: dict[str, float] = {}
    base = base_dir_for(to)
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    cluster = LocalCluster(base, binaries=binaries, os_user=settings.postgres.os_user, data_dir=to)
    spec, spool = base / "archive.json", base / "wal-spool"
    write_spec(settings, spec)
    spool.mkdir(mode=0o700, exist_ok=True)
    chown_tree(spool, cluster.os_user)
    warming = _Warming(cluster, spec, spool, record)  # the restore command's check, meanwhile

    try:
        mark = time.monotonic()
        say("reconstruct: extracting" + (" and combining the chain" if record.parent else ""))
        with _Flushing(to.parent):
            result = reconstruct(catalog, record.label, to, binaries, stop=warming.failed)
        timings["reconstruct_s"] = round(time.monotonic() - mark, 3)
        say(f"reconstruct: done in {timings['reconstruct_s']:.1f} s")

        mark = time.monotonic()
        port = free_port()
        user, password = _credentials(settings)
        _adopt(cluster, port, record.database or "powr", result.chain, target)
        _write_private(base / "password", (password or "") + "\n")
        _configure(to, binaries.major, port, restore_command(spec, spool), target, record.label)
        chown_tree(to, cluster.os_user)
        os.chmod(to, 0o700)
    except KeyboardInterrupt:  # stopped, not failed: no diagnosis of the restore command
        warming.stop()
        raise
    except BaseException:  # nothing is removed while the spool is still being written
        warming.join()
        warming.raise_failure()  # the cause, when the restore command cannot work
        raise
    warming.join()
    warming.raise_failure()
    timings["configure_s"] = round(time.monotonic() - mark, 3)
    timings["warm_s"] = warming.seconds
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


def restore_command(spec: Path, spool: Path) -> str:
    """Answer from the spool in the shell: move a spooled segment into place, copy a kept file,
    say "not archived" for a history file the repository lacked when the spool was warmed.
    Otherwise start ``powrops wal fetch``, which fetches the file and spools the next ones."""
    spooled = shlex.quote(str(spool)) + "/%f"
    kept = shlex.quote(str(spool / KEEP)) + "/%f"
    fetch = (
        f"{shlex.quote(sys.executable)} -m powrops wal fetch --spec {shlex.quote(str(spec))} "
        f"--spool {shlex.quote(str(spool))} %f %p"
    )
    return (
        f"{{ test -f {spooled} && mv -f {spooled} %p; }} || "
        f"{{ test -f {kept} && cp {kept} %p; }} || "
        f"{{ test -f {kept}{MISSING} && exit 1; }} || {fetch}"
    )


def _credentials(settings: Settings) -> tuple[str, str | None]:
    """Who connects to the restored copy, with the source's credentials: the embedded cluster's
    superuser, or the configured URL's user (or ``database.role``) and its password, from the
    URL or libpq's password file."""
    if settings.database.url is None:
        source = embedded_cluster(settings)
        return "postgres", source.password if source.password_file.exists() else None
    parts = urlsplit(target(settings).libpq_url)
    user = unquote(parts.username or "postgres")
    if parts.password:
        return user, unquote(parts.password)
    dbname = parts.path.lstrip("/") or user
    return user, lookup(parts.hostname or "localhost", parts.port or 5432, dbname, user)


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
    if major >= 14 and sys.platform == "linux":
        # Recovery first makes the unpacked files durable: one syncfs() per file system
        # instead of an fsync() per file, seconds less on a large data directory.
        settings["recovery_init_sync_method"] = "syncfs"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"\n{MARKER} of {label} at {stamp}: these settings win over the ones above\n"]
    lines += [f"{key} = {_quote(value)}\n" for key, value in settings.items()]
    with (data / "postgresql.auto.conf").open("a") as handle:
        handle.write("".join(lines))
    (data / "recovery.signal").write_text("")


class _Flushing:
    """While the backup is unpacked, what is unpacked so far is written to disk (``syncfs`` of
    the target's file system, again as soon as one finishes): the disk writes overlap the
    unpacking instead of all waiting for the server's start, which makes the directory durable
    before recovery (``recovery_init_sync_method``) and then finds little left to write."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="restore-flush", daemon=True)

    def _run(self) -> None:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None:  # not Linux: the server's own sync does it all at its start
            return
        try:
            fd = os.open(self.where, os.O_RDONLY)
        except OSError:
            return
        try:
            while not self._done.wait(FLUSH_PAUSE_S):
                syncfs(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> _Flushing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


class _Warming:
    """``powrops wal warm`` run once as the OS user while the backup is unpacked: it fills the
    spool recovery starts from, and it is the restore command's check. A restore command that
    cannot start or cannot read the repository fails the restore now (and stops the unpacking)
    rather than ending recovery early and quietly."""

    def __init__(self, cluster: LocalCluster, spec: Path, spool: Path, record: BackupRecord):
        self.cluster, self.spec, self.spool, self.record = cluster, spec, spool, record
        self.error: str | None = None
        self.seconds = 0.0
        self._proc: subprocess.Popen[str] | None = None
        self._stopping = False
        self._guard = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-warm", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        try:
            self.error = self._warm()
        except BaseException as exc:  # reported by the restore, never lost in the thread
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.seconds = round(time.monotonic() - began, 3)
            self._done.set()

    def _warm(self) -> str | None:
        first, last = self.record.start_wal, self.record.stop_wal or self.record.start_wal
        if not first or not last:
            return None
        argv = [sys.executable, "-m", "powrops", "wal", "warm", "--spec", str(self.spec),
                "--spool", str(self.spool), first, last]  # fmt: skip
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            with self._guard:
                if self._stopping:
                    return None
                self._proc = self.cluster.spawn(argv, out, err)
            try:
                code = self._proc.wait(timeout=WARM_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                return f"wal warm did not finish within {WARM_TIMEOUT:.0f} s"
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if self._stopping or code in INTERRUPTED_CHILD:
            return None  # stopped by the restore's interrupt, or by the same signal
        if code == 0 or (code == 1 and not stderr.strip()):
            return None
        return (
            f"the restore command cannot fetch WAL as OS user {self.cluster.os_user.name} "
            f"(exit {code}): {(stderr or stdout).strip()[-1500:]}"
        )

    def failed(self) -> bool:
        return self._done.is_set() and self.error is not None

    def join(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        """The restore was interrupted: end ``wal warm`` now and wait for its thread."""
        with self._guard:
            self._stopping = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
        self._thread.join()

    def raise_failure(self) -> None:
        if self.error is not None:
            raise RestoreFailed(self.error)


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
