"""libpq's password file, read the way libpq reads it.

A job that runs under its role (``database.role``) gets the role's password from libpq
(``PGPASSWORD``, ``PGPASSFILE`` or ``~/.pgpass``). A restored copy of the cluster has the same
roles and passwords but listens on another port, where libpq's own lookup finds no line: the
restore looks the password up for the source and hands it over explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


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
