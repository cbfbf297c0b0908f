"""The embedded cluster's lifecycle: the one module that creates, starts, stops it and sets up
its WAL archiving.

Only the commands that say they change the cluster call the changing functions here
(``powrops db start | stop | configure-archiving`` and ``powrops demo``). Everything else
finds the cluster with :func:`embedded_cluster` and reads: a stopped cluster stays stopped,
and an archive spec that no longer matches the configuration is reported
(:func:`archive_spec_findings`), never rewritten.
"""

from __future__ import annotations

import os
import pwd
import secrets as tokens
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import powrops
from powrops.config import Settings
from powrops.errors import BackupError, ClusterError
from powrops.findings import Finding, Severity
from powrops.pg import pgpass
from powrops.pg.access import check_reachable, grant_traversal, unreadable_by
from powrops.pg.binaries import find_binaries
from powrops.pg.cluster import LocalCluster, OsUser
from powrops.storage.local import path_from_url
from powrops.storage.spec import SPEC_FILE, read_spec, spec_differences, spec_of, write_spec

START_HINT = "start it with `powrops db start`"


def embedded_cluster(settings: Settings) -> LocalCluster:
    """The local cluster of the embedded default (found, not created or started)."""

    binaries = (
        find_binaries(bin_dir=settings.postgres.bin_dir) if settings.postgres.bin_dir else None
    )
    return LocalCluster(
        settings.state_dir / "cluster", binaries=binaries, os_user=settings.postgres.os_user
    )


def spec_path(settings: Settings) -> Path:
    """The archive spec the embedded cluster's ``archive_command`` reads."""
    return settings.state_dir / SPEC_FILE


def cluster_settings(settings: Settings, archive_command: str | None = None) -> dict[str, str]:
    """Server settings the embedded cluster gets from powrops' configuration."""
    conf = {
        "archive_mode": "on",
        "archive_timeout": settings.backup.schedule.logs.postgres(),
    }
    if archive_command:
        conf["archive_command"] = "'" + archive_command.replace("'", "''") + "'"
    return conf


def archive_command(settings: Settings) -> str:
    """``archive_command`` for a server this machine runs: powrops on this interpreter."""
    spec = shlex.quote(str(spec_path(settings)))
    return f"{shlex.quote(sys.executable)} -m powrops wal push --spec {spec} %p"


@dataclass(frozen=True)
class Archiving:
    """What :func:`configure_archiving` wrote: where WAL goes now, and where it went before."""

    spec: Path
    url: str
    previous: str | None
    command: str | None
    reloaded: bool

    def describe(self) -> list[str]:
        """One line per change, for the command that made them."""
        if self.command is None:
            return ["WAL archiving not configured: archive_command left unset"]
        was = f" (was {self.previous})" if self.previous not in (None, self.url) else ""
        lines = [f"archive spec {self.spec}: WAL goes to {self.url}{was}"]
        lines.append(f"archive_command = {self.command}")
        if self.reloaded:
            lines.append("the running server re-read its settings")
        return lines


def configure_archiving(settings: Settings, cluster: LocalCluster) -> Archiving:
    """Write the archive spec and the server's ``archive_command`` from ``settings``; a
    running server re-reads its settings when they changed. The cluster must exist."""
    if not cluster.exists():
        raise ClusterError(
            f"no embedded cluster in {cluster.base_dir}: create it with `powrops db start`"
        )
    before = _spec_url(settings)
    command = _prepare_archiving(settings, cluster)
    reloaded = _apply(cluster, cluster_settings(settings, command))
    return _archiving(settings, before, command, reloaded)


def start(settings: Settings) -> tuple[LocalCluster, bool, Archiving]:
    """Create (the first time) and start the embedded cluster, archiving WAL as ``settings``
    say; the cluster, whether it was created, and what archiving now does."""
    cluster = embedded_cluster(settings)
    created = not cluster.exists()
    before = _spec_url(settings)
    command = _prepare_archiving(settings, cluster)
    conf = cluster_settings(settings, command)
    reloaded = False if created else _apply(cluster, conf)
    cluster.start(conf if created else None, port=settings.postgres.port)
    return cluster, created, _archiving(settings, before, command, reloaded)


def stop(settings: Settings) -> bool:
    """Stop the embedded cluster; False when it was not running."""
    return embedded_cluster(settings).stop()


def _apply(cluster: LocalCluster, conf: dict[str, str]) -> bool:
    """Write the server settings; True when a running server re-read changed ones."""
    if not cluster.configure(conf) or not cluster.is_running():
        return False
    cluster.reload()
    return True


def _spec_url(settings: Settings) -> str | None:
    """Where the spec on disk sends WAL; None without one (or an unreadable one, which the
    caller is about to replace)."""
    try:
        spec = read_spec(spec_path(settings))
    except BackupError:
        return None
    return None if spec is None else str(spec.get("url"))


def _archiving(
    settings: Settings, previous: str | None, command: str | None, reloaded: bool
) -> Archiving:
    url = str(spec_of(settings)["url"])
    return Archiving(spec_path(settings), url, previous, command, reloaded)


def _prepare_archiving(settings: Settings, cluster: LocalCluster) -> str | None:
    """Write the archive spec and give a local primary repository to the server's OS user
    (which runs the archive command); the ``archive_command``. None, with a warning, when
    that user cannot run this interpreter (e.g. a virtualenv under /root): archiving then
    stays off and the readiness report says so."""
    user = cluster.os_user
    settings.make_state_dir()
    try:
        for needed in (Path(sys.executable), Path(powrops.__file__)):
            grant_traversal(needed, user, say=_say)
            check_reachable(needed, user)
    except ClusterError as exc:
        _say(f"warning: WAL archiving not configured: {exc}")
        return None
    spec = write_spec(settings, spec_path(settings))
    _check_readable(settings, spec, user)
    url = str(spec["url"])
    if url.startswith("file://"):
        root = path_from_url(url)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not user.is_current:
            os.chown(root, user.uid, user.gid)
    return archive_command(settings)


def _check_readable(settings: Settings, spec: dict[str, Any], user: OsUser) -> None:
    """Warn when the archive command, run as ``user``, cannot read a file it needs: the
    configuration (what an object store or credentials need, see ``open_from_spec``) or the
    encryption key file; every WAL segment would fail to archive until it can."""
    local = str(spec["url"]).startswith("file://") and not spec["has_keys"]
    needed = [] if local else [settings.config_file]
    encryption = settings.backup.storage.encryption
    needed.append(encryption.key_file if encryption.enabled else None)
    for path in (Path(p) for p in needed if p):
        why = unreadable_by(path, user)
        if why is not None:
            _say(
                f"warning: the archive command runs as {user.name!r} and cannot read {path} "
                f"({why}): every WAL segment will fail to archive until it can "
                f"(setfacl -m u:{user.name}:r {path}, or chgrp and chmod g+r)"
            )


# --- reading: what the archive spec says against the configuration ---------------------------


def archive_spec_findings(settings: Settings) -> list[Finding]:
    """The embedded cluster's archive spec against ``settings``: OK when WAL goes to the
    configured primary repository, CRITICAL when the spec sends it elsewhere (the configured
    repository then misses that WAL for good). None for a configured server or without a
    spec. Reads only: ``powrops db configure-archiving`` is what rewrites the spec."""
    if settings.database.url is not None:
        return []
    path = spec_path(settings)
    try:
        on_disk = read_spec(path)
    except BackupError as exc:
        return [Finding("archive_spec", Severity.UNKNOWN, str(exc), object=str(path))]
    if on_disk is None:
        return []
    expected = spec_of(settings)
    differ = spec_differences(on_disk, expected)
    if not differ:
        return [
            Finding(
                "archive_spec",
                Severity.OK,
                f"WAL is archived to the configured primary repository {expected['url']}",
                object=str(path),
                value=expected["url"],
            )
        ]
    return [_disagreement(path, on_disk, expected, differ)]


def _disagreement(
    path: Path, on_disk: dict[str, object], expected: dict[str, object], differ: list[str]
) -> Finding:
    written_by = on_disk.get("config") or "the defaults"
    return Finding(
        "archive_spec",
        Severity.CRITICAL,
        f"the embedded server archives WAL to {on_disk.get('url')}, not to this "
        f"configuration's primary repository {expected['url']}: {path} differs in "
        f"{', '.join(differ)}",
        object=str(path),
        value=on_disk.get("url"),
        expected=expected["url"],
        advice=f"the spec was written from {written_by}; run `powrops db configure-archiving` "
        "with the configuration whose repository should receive WAL",
        details={"differs_in": differ, "written_from": on_disk.get("config")},
    )


def archive_warning(settings: Settings) -> str | None:
    """The line a command prints when the archive spec and ``settings`` disagree."""
    problems = [f for f in archive_spec_findings(settings) if f.severity != Severity.OK]
    return problems[0].message if problems else None


def _say(line: str) -> None:
    print(f"powrops: {line}", file=sys.stderr)


#: The job roles' password file under the state directory (libpq's pgpass format).
JOB_PASSFILE = "pgpass"


def job_passfile(settings: Settings) -> Path | None:
    """The password file the scheduled jobs log in with: the embedded clusters', when the
    jobs run under their roles; None with ``database.url`` (libpq's own lookup, ~/.pgpass).
    One file in ``state.dir`` for every server of the configuration, so that the fleet's
    review, which reads each server, logs in to each."""
    if settings.database.url is not None or not settings.schedule.run_as_roles:
        return None
    root = settings.state_dir.parent if settings.named_server else settings.state_dir
    return root / JOB_PASSFILE


@dataclass(frozen=True)
class JobPasswords:
    """What :func:`set_job_passwords` did: the file, the roles given their password, and the
    roles the database does not have yet (the schema's migrations create them)."""

    passfile: Path
    roles: list[str]
    missing: list[str]


def set_job_passwords(settings: Settings) -> JobPasswords | None:
    """Give the embedded cluster's job roles their passwords, generated once and kept in the
    job password file (0600, owned by the jobs' OS user). None with ``database.url`` or
    without job roles. Only ``powrops db start`` and ``powrops demo`` call this."""
    passfile = job_passfile(settings)
    roles = list(dict.fromkeys(settings.schedule.roles.values()))
    if passfile is None or not roles:
        return None
    kept = pgpass.passwords(passfile)
    passwords = {role: kept.get(role) or tokens.token_urlsafe(24) for role in roles}
    lines = [pgpass.entry("127.0.0.1", pgpass.ANY, pgpass.ANY, r, p) for r, p in passwords.items()]
    pgpass.write(passfile, lines, *_jobs_owner(settings))
    cluster = embedded_cluster(settings)
    done = cluster.set_passwords(passwords)
    owner = settings.schedule.roles.get("owner")
    if owner in done:  # the maintenance jobs run as the owner role; the superuser owns the tables
        cluster.grant_maintenance(owner)
    return JobPasswords(passfile, done, [role for role in roles if role not in done])


def _jobs_owner(settings: Settings) -> tuple[int, int]:
    """uid and gid of the jobs' OS user: ``schedule.user`` when root writes the file for an
    account this host has, else whoever runs powrops (who installs the crontab)."""
    name = settings.schedule.user
    if os.geteuid() == 0 and name:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            pass
        else:
            return entry.pw_uid, entry.pw_gid
    return os.geteuid(), os.getegid()
