"""A local PostgreSQL cluster that powrops creates and runs by itself.

Used for the embedded default (``powrops db start``), for the test suite, and for the scratch
clusters that restores and drills start. The cluster listens on 127.0.0.1 only, on a free port,
with no Unix socket, and requires a password (SCRAM) that is generated at initdb and stored in a
0600 file beside the data directory. PostgreSQL refuses to run as root, so when powrops runs as
root every server program runs as an unprivileged OS user (``postgres.os_user``), created on
first use, and the data directory belongs to that user with mode 0700.

Layout of a cluster's base directory::

    base/pgdata/          the data directory (owned by the OS user, 0700)
    base/log/             server log (postgresql.log)
    base/password         the superuser password (0600, owned by the invoking user)
    base/cluster.json     port, superuser, database, version, OS user

A cluster made elsewhere (a restored backup) keeps its data directory where it was put: pass
``data_dir`` and record it with ``adopt``; the base directory then holds only the log, the
password and cluster.json.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from powrops.errors import ClusterError
from powrops.pg.access import check_reachable, grant_traversal
from powrops.pg.binaries import PgBinaries, find_binaries

SUPERUSER = "postgres"
DEFAULT_DATABASE = "powr"
#: Every connection asks for UTF-8 text, so that a SQL_ASCII (or any other) server encoding
#: still gives str, never bytes, to the code that reads it.
CLIENT_ENCODING = "UTF8"
CONF_FILE = "powrops.conf"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class OsUser:
    """The account server programs run as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def current(cls) -> OsUser:
        entry = pwd.getpwuid(os.geteuid())
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()


def ensure_os_user(name: str) -> OsUser:
    """The unprivileged account to run PostgreSQL as, created when running as root."""
    if os.geteuid() != 0:
        return OsUser.current()
    if name == "root":
        raise ClusterError("postgres.os_user must not be root: PostgreSQL refuses to run as root")
    try:
        entry: pwd.struct_passwd | None = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is None:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: the name exists (a concurrent creation)
            raise ClusterError(
                f"could not create the OS user {name!r} to run PostgreSQL as: "
                f"{result.stderr.strip() or result.returncode}"
            )
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise ClusterError(f"OS user {name!r} has uid 0; PostgreSQL refuses to run as root")
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the postmaster running on ``data_dir``, or None when none runs.

    Reads ``postmaster.pid``; a stale file (its process is gone) counts as not running.
    """
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        pid = int(first)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, owned by another user
    return pid


def launching(data_dir: Path) -> bool:
    """Whether a process that may yet write ``data_dir``'s pid file is alive: one whose command
    line names the data directory (the ``runuser``, ``pg_ctl`` and shell that start a
    postmaster, and the postmaster itself), other than this process and those that started it.
    A process in the middle of an exec shows no command line for a moment, so one with none
    counts too. Without ``/proc`` every launch counts as under way."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    name, mine = os.fsencode(data_dir), _lineage()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes()
            if name in args or (not args and _user_process(entry)):
                return True
    return False


def _user_process(entry: Path) -> bool:
    """Whether ``/proc/PID`` is a live user process: not a zombie, nor a kernel thread (whose
    command lines are empty for good)."""
    status = _status(entry)
    return not status.get("State", "Z").startswith("Z") and status.get("PPid") not in ("0", "2")


def _lineage() -> set[int]:
    """This process and its ancestors (a shell that ran ``powrops restore --to DIR``)."""
    pids: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(_status(Path(f"/proc/{pid}")).get("PPid", "0"))
        except (OSError, ValueError):
            break
    return pids


def _status(entry: Path) -> dict[str, str]:
    """The fields of ``/proc/PID/status`` (``State``, ``PPid``...), by name."""
    lines = (entry / "status").read_text().splitlines()
    return {name: value.strip() for name, _, value in (line.partition(":") for line in lines)}


def chown_tree(path: Path, user: OsUser) -> None:
    """Give a directory tree to ``user`` (no-op when it is the current user)."""
    if user.is_current:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.uid, user.gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.uid, user.gid)


class LocalCluster:
    """A PostgreSQL cluster in ``base_dir``, managed through its own programs."""

    def __init__(
        self,
        base_dir: str | Path,
        *,
        binaries: PgBinaries | None = None,
        os_user: str = "powrops",
        data_dir: str | Path | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.data_dir = Path(data_dir).absolute() if data_dir else self.base_dir / "pgdata"
        self.log_file = self.base_dir / "log" / "postgresql.log"
        self.password_file = self.base_dir / "password"
        self.meta_file = self.base_dir / "cluster.json"
        self._binaries = binaries
        self._os_user_name = os_user
        self._os_user: OsUser | None = None

    # -- facts ---------------------------------------------------------------------------

    @property
    def binaries(self) -> PgBinaries:
        if self._binaries is None:
            meta = self._read_meta()
            bin_dir = meta.get("bin_dir")
            major = meta.get("major")
            if bin_dir and Path(bin_dir).is_dir():
                self._binaries = find_binaries(major, bin_dir)
            else:
                self._binaries = find_binaries(major)
        return self._binaries

    @property
    def os_user(self) -> OsUser:
        if self._os_user is None:
            self._os_user = ensure_os_user(self._os_user_name)
        return self._os_user

    def exists(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and self.meta_file.exists()

    def _read_meta(self) -> dict[str, Any]:
        if not self.meta_file.exists():
            return {}
        try:
            data: dict[str, Any] = json.loads(self.meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise ClusterError(f"cluster metadata {self.meta_file} is unreadable: {exc}") from exc
        return data

    def _meta(self, port: int, database: str) -> dict[str, Any]:
        """What cluster.json records about a cluster powrops manages."""
        return {
            "port": port,
            "superuser": SUPERUSER,
            "database": database,
            "version": self.binaries.version,
            "major": self.binaries.major,
            "bin_dir": str(self.binaries.bin_dir),
            "os_user": self.os_user.name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _write_meta(self, meta: Mapping[str, Any]) -> None:
        tmp = self.meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(meta), indent=2, sort_keys=True) + "\n")
        tmp.replace(self.meta_file)

    @property
    def port(self) -> int:
        port = self._read_meta().get("port")
        if not port:
            raise ClusterError(f"no cluster in {self.base_dir}: run `powrops db start` first")
        return int(port)

    @property
    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise ClusterError(
                f"cannot read the cluster password {self.password_file}: {exc}"
            ) from exc

    def conninfo(self, database: str = DEFAULT_DATABASE, user: str = SUPERUSER) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": user,
            "password": self.password,
            "dbname": database,
            "client_encoding": CLIENT_ENCODING,
        }

    def url(self, database: str = DEFAULT_DATABASE, driver: str = "postgresql+psycopg") -> str:
        return (
            f"{driver}://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/"
            f"{database}"
        )

    # -- running programs ----------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        timeout: float = 120,
        check: bool = True,
        what: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a program as the cluster's OS user (its environment, cwd the base directory).

        Output goes to temp files: pg_ctl's postmaster inherits pipes and keeps them open.
        """
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                proc = subprocess.run(
                    [str(a) for a in argv],
                    stdout=out,
                    stderr=err,
                    text=True,
                    timeout=timeout,
                    check=False,
                    stdin=subprocess.DEVNULL,
                    **self._as_os_user(),
                )
            except subprocess.TimeoutExpired as exc:
                raise ClusterError(
                    f"{what or argv[0]} did not finish within {timeout:.0f} s"
                ) from exc
            except OSError as exc:
                raise ClusterError(f"could not run {argv[0]}: {exc}") from exc
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
        if check and result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip())[-2000:]
            raise ClusterError(
                f"{what or Path(str(argv[0])).name} failed ({result.returncode}): {detail}"
            )
        return result

    def spawn(
        self, argv: Sequence[str | Path], out: IO[str], err: IO[str]
    ) -> subprocess.Popen[str]:
        """Start a program as the cluster's OS user, as ``run`` does, without waiting for it.

        It runs in a session of its own: a Ctrl-C at the terminal reaches powrops, which
        stops it (``terminate``), and not the program, whose death would read as its failure.
        """
        try:
            return subprocess.Popen(
                [str(a) for a in argv],
                stdout=out,
                stderr=err,
                text=True,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self._as_os_user(),
            )
        except OSError as exc:
            raise ClusterError(f"could not run {argv[0]}: {exc}") from exc

    def _as_os_user(self) -> dict[str, Any]:
        """subprocess arguments that run a program as the OS user, in its environment, in the
        base directory."""
        user = self.os_user
        env = {
            "PATH": f"{self.binaries.bin_dir}:/usr/bin:/bin",
            "HOME": str(self.base_dir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
        }
        kwargs: dict[str, Any] = {"env": env, "cwd": self.base_dir}
        if not user.is_current:
            kwargs.update(user=user.uid, group=user.gid, extra_groups=[])
        return kwargs

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise init/start/stop of one cluster across processes."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with open(self.base_dir / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- lifecycle -----------------------------------------------------------------------

    def init(
        self, settings: Mapping[str, str] | None = None, database: str = DEFAULT_DATABASE
    ) -> None:
        """initdb with data checksums and SCRAM password authentication."""
        with self._lock():
            if self.exists():
                raise ClusterError(f"a cluster already exists in {self.data_dir}")
            if self.data_dir.exists() and any(self.data_dir.iterdir()):
                raise ClusterError(
                    f"{self.data_dir} is not empty but holds no powrops cluster; "
                    "move it away or choose another state directory"
                )
            self._init_locked(settings or {}, database)

    def _init_locked(
        self, settings: Mapping[str, str], database: str, port: int | None = None
    ) -> None:
        user = self.os_user
        self.base_dir.mkdir(parents=True, exist_ok=True)
        grant_traversal(self.base_dir, user, say=_say)
        check_reachable(self.base_dir, user)
        os.chmod(self.base_dir, 0o755)
        self.log_file.parent.mkdir(exist_ok=True)
        chown_tree(self.log_file.parent, user)
        password = secrets.token_urlsafe(24)
        old_umask = os.umask(0o077)
        try:
            self.password_file.write_text(password + "\n")
        finally:
            os.umask(old_umask)
        os.chmod(self.password_file, 0o600)
        pwfile = self.base_dir / ".initdb-pw"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if not user.is_current:
            os.chown(pwfile, user.uid, user.gid)
        try:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            chown_tree(self.data_dir, user)
            self.run(
                [
                    self.binaries.path("initdb"),
                    "-D",
                    self.data_dir,
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--data-checksums",
                ],
                what="initdb",
                timeout=300,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        port = port or free_port()
        self._write_meta(self._meta(port, database))
        self._write_conf(port, settings)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# powrops settings\ninclude_if_exists = '{CONF_FILE}'\n")

    def base_settings(self, port: int) -> dict[str, str]:
        """Server settings every powrops cluster has."""
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": "''",
            "password_encryption": "'scram-sha-256'",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all",
            "track_io_timing": "on",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "timezone": "'UTC'",
        }
        if self.binaries.major >= 17:
            settings["summarize_wal"] = "on"
        return settings

    def _write_conf(self, port: int, settings: Mapping[str, str]) -> bool:
        """Write powrops.conf; True when its content changed."""
        merged = self.base_settings(port)
        merged.update(settings)
        lines = ["# Written by powrops; edit powrops.toml instead.\n"]
        lines += [f"{key} = {value}\n" for key, value in merged.items()]
        path = self.data_dir / CONF_FILE
        text = "".join(lines)
        if path.exists() and path.read_text() == text:
            return False
        path.write_text(text)
        if not self.os_user.is_current:
            os.chown(path, self.os_user.uid, self.os_user.gid)
        os.chmod(path, 0o600)
        return True

    def configure(self, settings: Mapping[str, str]) -> bool:
        """Rewrite powrops.conf with ``settings`` over the base settings (takes effect at the
        next start or reload); True when its content changed."""
        return self._write_conf(self.port, settings)

    def is_running(self) -> bool:
        """Whether a postmaster runs on the data directory: what ``pg_ctl status`` checks
        (``postmaster.pid`` and its process), without starting a program for it."""
        return self.exists() and postmaster_pid(self.data_dir) is not None

    def start(
        self,
        settings: Mapping[str, str] | None = None,
        timeout: float = 60,
        port: int | None = None,
    ) -> None:
        """Start the cluster (initialising it first if needed) and wait until it accepts logins.

        On ``port`` when given (a configured port: ClusterError when another program listens
        there), else on its own port, moved to a free one when that is taken."""
        with self._lock():
            if not self.exists():
                self._init_locked(settings or {}, DEFAULT_DATABASE, port)
                changed = False
            else:
                changed = settings is not None and self._write_conf(self.port, settings)
            if self.is_running():
                if changed:
                    self.reload()
                if port is not None and port != self.port:
                    raise ClusterError(
                        f"the cluster runs on port {self.port}, not on port {port} "
                        "(postgres.port): stop it and start it again to move it"
                    )
                return
            port = self._listen_port(port)
            self._apply_port(port)
            self.run(
                [
                    self.binaries.path("pg_ctl"),
                    "start",
                    "-D",
                    self.data_dir,
                    "-l",
                    self.log_file,
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-o",
                    f"-p {port}",
                ],
                what="pg_ctl start",
                timeout=timeout + 30,
            )
            self._ensure_database(self._read_meta().get("database", DEFAULT_DATABASE))

    def adopt(self, port: int, database: str = DEFAULT_DATABASE, **facts: Any) -> None:
        """Record a data directory made elsewhere (e.g. a restored backup) as this cluster.

        Writes cluster.json and the log directory; the data directory's configuration is the
        caller's business. ``facts`` are kept in cluster.json as they are.
        """
        user = self.os_user
        check_reachable(self.base_dir, user)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base_dir, 0o755)
        self.log_file.parent.mkdir(exist_ok=True)
        chown_tree(self.log_file.parent, user)
        self._write_meta({**facts, **self._meta(port, database), "data_dir": str(self.data_dir)})

    def launch(self, port: int | None = None, timeout: float = 60) -> None:
        """Start the server without waiting for it to accept connections.

        For a cluster in recovery, which accepts no connection until it is consistent and no
        write until it is promoted: the caller watches it (``postmaster_pid``, the log).
        """
        with self._lock():
            argv: list[str | Path] = [
                self.binaries.path("pg_ctl"), "start", "-D", self.data_dir,
                "-l", self.log_file, "-W",
            ]  # fmt: skip
            if port is not None:
                argv += ["-o", f"-p {port}"]
            self.run(argv, what="pg_ctl start", timeout=timeout)

    def ctl_command(self, action: str) -> str:
        """The shell command a DBA runs to start or stop this cluster by hand."""
        argv = [str(self.binaries.path("pg_ctl")), action, "-D", str(self.data_dir)]
        if action == "start":
            argv += ["-l", str(self.log_file)]
        text = shlex.join(argv)
        return text if self.os_user.is_current else f"runuser -u {self.os_user.name} -- {text}"

    def reload(self) -> None:
        """Make a running server re-read its configuration files."""
        self.run(
            [self.binaries.path("pg_ctl"), "reload", "-D", self.data_dir], what="pg_ctl reload"
        )

    def _listen_port(self, wanted: int | None) -> int:
        """The port to start on, kept in cluster.json: ``wanted`` (refused when taken), else
        the cluster's own, or a free one when something else took it meanwhile."""
        port = wanted or self.port
        if port_in_use(port):
            if wanted is not None:
                raise ClusterError(
                    f"port {port} (postgres.port) is in use by another program: stop it, or "
                    "configure another port"
                )
            port = free_port()
        if port != self.port:
            meta = self._read_meta()
            meta["port"] = port
            self._write_meta(meta)
        return port

    def _apply_port(self, port: int) -> None:
        path = self.data_dir / CONF_FILE
        if not path.exists():
            return
        lines = [
            f"port = {port}\n" if line.startswith("port =") else line
            for line in path.read_text().splitlines(keepends=True)
        ]
        path.write_text("".join(lines))

    def _ensure_database(self, database: str) -> None:
        import psycopg  # here, not at the top: commands that never connect start without it
        from psycopg import sql

        info = self.conninfo("postgres")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(**info, autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
                    ).fetchone()
                    if not exists:
                        create = sql.SQL("CREATE DATABASE {database}")
                        conn.execute(create.format(database=sql.Identifier(database)))
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"cluster started but refuses connections: {exc}") from exc
                time.sleep(0.2)

    def set_passwords(self, passwords: Mapping[str, str]) -> list[str]:
        """Give each existing login role its password (SCRAM-hashed by the server, as
        ``password_encryption`` says); the roles that do not exist are left out of the list
        returned."""
        import psycopg
        from psycopg import sql

        alter = sql.SQL("ALTER ROLE {role} PASSWORD {password}")
        with psycopg.connect(**self.conninfo(), autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) AND rolcanlogin",
                (list(passwords),),
            ).fetchall()
            present = {str(row[0]) for row in rows}
            for role in (name for name in passwords if name in present):
                conn.execute(
                    alter.format(role=sql.Identifier(role), password=sql.Literal(passwords[role]))
                )
        return [name for name in passwords if name in present]

    def grant_maintenance(self, role: str) -> bool:
        """``GRANT pg_maintain TO role`` (PostgreSQL 17+: VACUUM, ANALYZE and REINDEX of every
        table): on the embedded default the superuser that ran the migrations owns the tables,
        and the owner job role maintains them. False where there is no pg_maintain or no role."""
        import psycopg
        from psycopg import sql

        grant = sql.SQL("GRANT pg_maintain TO {role}").format(role=sql.Identifier(role))
        with psycopg.connect(**self.conninfo(), autocommit=True, connect_timeout=10) as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname IN ('pg_maintain', %s)", (role,)
            ).fetchone()
            if found is None or int(found[0]) < 2:
                return False
            conn.execute(grant)
        return True

    def stop(self, mode: str = "fast", timeout: float = 60) -> bool:
        """Stop the cluster; False when it was not running."""
        with self._lock():
            if not self.is_running():
                return False
            self.run(
                [
                    self.binaries.path("pg_ctl"),
                    "stop",
                    "-D",
                    self.data_dir,
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    str(int(timeout)),
                ],
                what="pg_ctl stop",
                timeout=timeout + 30,
            )
            return True

    def destroy(self) -> None:
        """Stop the cluster if needed and remove its base directory."""
        with contextlib.suppress(ClusterError):
            self.stop(mode="immediate")
        if self.base_dir not in self.data_dir.parents:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        meta = self._read_meta()
        return {
            "base_dir": str(self.base_dir),
            "data_dir": str(self.data_dir),
            "exists": self.exists(),
            "running": self.is_running(),
            "port": meta.get("port"),
            "version": meta.get("version"),
            "bin_dir": meta.get("bin_dir"),
            "os_user": meta.get("os_user"),
            "database": meta.get("database"),
            "log_file": str(self.log_file),
        }

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "".join(
                self.log_file.read_text(errors="replace").splitlines(keepends=True)[-lines:]
            )
        except OSError:
            return ""


def _say(line: str) -> None:
    print(f"powrops: {line}", file=sys.stderr)
