"""libpq's password file, read the way libpq reads it, and written for the job roles.

A job that runs under its role (``database.role``) gets the role's password from libpq
(``PGPASSWORD``, ``PGPASSFILE`` or ``~/.pgpass``). A restored copy of the cluster has the same
roles and passwords but listens on another port, where libpq's own lookup finds no line: the
restore looks the password up for the source and hands it over explicitly. The embedded
cluster's job roles get their passwords from a file written here (:func:`write`), mode 0600 as
libpq demands (it ignores a file that its group or others may read).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Every field of a line but the password: ``*`` matches any value.
ANY = "*"


def _fields(line: str) -> list[str]:
    """hostname:port:database:username:password, with ``\\:`` and ``\\\\`` escaped."""
    fields: list[str] = []
    current: list[str] = []
    escaped = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":" and len(fields) < 4:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def lookup(
    host: str, port: int, dbname: str, user: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """The password libpq would use for this connection, or None."""
    env = os.environ if environ is None else environ
    if env.get("PGPASSWORD"):
        return env["PGPASSWORD"]
    path = Path(env.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        text = path.read_text()
    except OSError:
        return None
    wanted = (host, str(port), dbname, user)
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = _fields(line)
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields[:4], wanted, strict=True)):
            return fields[4]
    return None


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")


def entry(host: str, port: int | str, dbname: str, user: str, password: str) -> str:
    """One line of a password file, with ``:`` and ``\\`` escaped as libpq reads them."""
    fields = (host, str(port), dbname, user, password)
    return ":".join(f if f == ANY else _escape(f) for f in fields)


def passwords(path: Path) -> dict[str, str]:
    """User name -> password of every line in the file (none when it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = _fields(line)
        if line.strip() and not line.startswith("#") and len(fields) == 5:
            found.setdefault(fields[3], fields[4])
    return found


def write(path: Path, lines: list[str], uid: int, gid: int) -> None:
    """Replace the file with ``lines``: mode 0600, owned by ``uid``:``gid`` (who reads it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    os.chmod(tmp, 0o600)
    if (uid, gid) != (os.geteuid(), os.getegid()):
        os.chown(tmp, uid, gid)
    tmp.replace(path)
