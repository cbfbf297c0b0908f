"""A restored cluster, and starting it: the server replays WAL while powrops prints its
progress, and is done when it is promoted. A server that stops during recovery, or a
recovery that does not finish in time, is a RestoreFailed with the end of its log."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powrops.errors import ClusterError, PowropsError
from powrops.format import Echo
from powrops.pg.cluster import (
    CLIENT_ENCODING,
    free_port,
    launching,
    port_in_use,
    postmaster_pid,
)
from powrops.restore.errors import RestoreFailed
from powrops.restore.target import RecoveryTarget

#: How long a server just launched may take to write its pid file before it can be stopped.
LAUNCH_GRACE = 10.0

if TYPE_CHECKING:
    from powrops.pg.cluster import LocalCluster

_NOT_FAILURES = ("the database system is starting up", "not yet accepting connections")
_TARGET_FAILURES = (
    "recovery ended before configured recovery target was reached",
    "requested recovery stop point is before consistent recovery point",
)


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
            "client_encoding": CLIENT_ENCODING,
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


PROGRESS_EVERY = 5.0
POLL = 0.05  # seconds between checks: the RTO is measured to the moment it answers
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
        # the server launched is known to be down (stopped here, or seen running and gone):
        # nothing to wait for or stop again
        self.down = False

    def run(self) -> None:

        pid = postmaster_pid(self.restored.data_dir)
        if pid is not None:
            raise ClusterError(f"{self.restored.data_dir} is already running (pid {pid})")
        port = self._port()
        began = time.monotonic()
        self.say(f"start: {self.restored.data_dir} on 127.0.0.1:{port}")
        launched = False
        try:  # from the launch on, any interrupt stops the server (the say line included)
            self.cluster.launch(port)
            launched = True
            self.say(f"recovery: replaying WAL to {self.restored.target.describe()}")
            self._await(began)
        except BaseException as exc:
            if launched or not isinstance(exc, ClusterError):  # a failed launch left nothing
                self._stop()
            raise

    def _port(self) -> int:

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
        """Stop the server this recovery launched, even one still writing its pid file (an
        interrupt right after the launch would otherwise find nothing to stop, and leave it).
        A server already down is not waited for: a recovery that failed or timed out stopped
        it; one gone, or never started (a terminal's Ctrl-C reaches the whole process group,
        ``pg_ctl`` included), has no process left that could write a pid file."""
        data_dir = self.restored.data_dir
        deadline = time.monotonic() + LAUNCH_GRACE
        while not self.down and postmaster_pid(data_dir) is None:
            if not launching(data_dir):
                self.down = True  # nothing left that could write one
            elif time.monotonic() >= deadline:
                break
            else:
                time.sleep(0.05)
        if self.down:
            return
        for mode, timeout in (("fast", 30.0), ("immediate", 30.0)):
            try:
                self.cluster.stop(mode=mode, timeout=timeout)
                self.down = True
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

        if postmaster_pid(self.restored.data_dir) is not None:
            return True
        if seen_pid or elapsed > PID_GRACE:
            self.down = seen_pid  # it ran and ended; one never seen may still be starting
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
        except psycopg.OperationalError as exc:
            if any(text in str(exc) for text in _LOGIN_REFUSED):
                self._stop()
                raise RestoreFailed(
                    f"the restored server runs but refuses {info['user']!r}: "
                    f"{str(exc).strip()}. It has the source's roles and passwords: give the "
                    "password in database.url, or for database.role in a pgpass file line "
                    "for the source's host and port"
                ) from exc
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


#: A connection refused for who is connecting, not because the server is not ready yet.
_LOGIN_REFUSED = (
    "password authentication failed",
    "no password supplied",
    "does not exist",
    "pg_hba.conf rejects",
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
