"""A privilege the connected role lacks: what it is, and the GRANT that gives it.

A monitor runs under a role with as little as CONNECT and SELECT. Each read that such a role
may be refused runs through :func:`guarded`, in its own transaction (a savepoint inside one),
so that a "permission denied" leaves the connection usable for the next read and comes back
as a :class:`Denied` instead of an exception: the check it feeds is then UNKNOWN, naming the
privilege and the GRANT, and every other check is still evaluated.

What PostgreSQL refuses, and what fixes it:

* a setting only ``pg_read_all_settings`` may examine (``shared_preload_libraries``,
  ``data_directory``): ``GRANT pg_monitor`` (it includes ``pg_read_all_settings``);
* a function granted to ``pg_monitor`` only (``pg_ls_waldir``, ``pg_ls_archive_statusdir``):
  ``GRANT pg_monitor``;
* a detail naming a predefined role (PostgreSQL 16 and later: "Only roles with privileges of
  the "pg_read_all_settings" role may ..."): that role;
* a table, view or schema: ``GRANT SELECT ON`` it, or ``GRANT USAGE ON SCHEMA``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from powrops.findings import Finding, Severity

T = TypeVar("T")

#: The predefined role a monitor is given when PostgreSQL names none.
MONITOR_ROLE = "pg_monitor"
#: What ``pg_monitor`` brings that a monitor's reads need.
_MONITOR_ROLES = ("pg_read_all_settings", "pg_read_all_stats", "pg_stat_scan_tables")

_PREDEFINED = re.compile(r'"(pg_[a-z_]+)"')
_OBJECT = re.compile(r"permission denied for (table|view|relation|sequence|schema) (\S+)")


@dataclass(frozen=True)
class Denied:
    """A read the role was refused: PostgreSQL's words, the privilege and the GRANT."""

    reason: str
    privilege: str
    grant: str

    def finding(self, check: str) -> Finding:
        """``check`` UNKNOWN: it could not read what it judges."""
        return Finding(
            check,
            Severity.UNKNOWN,
            f"not evaluated: {self.reason}; this role lacks {self.privilege}",
            expected=f"a role with {self.privilege}",
            advice=f"{self.grant}; the other checks were evaluated",
            details={"privilege": self.privilege, "grant": self.grant},
        )


def denied(exc: psycopg.errors.InsufficientPrivilege, role: str) -> Denied:
    """The privilege a refusal names (or implies) and the GRANT to ``role`` that gives it."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    detail = exc.diag.message_detail or ""
    grantee = sql.Identifier(role).as_string(None)
    found = _OBJECT.search(reason)
    if found is not None:
        kind, name = found.groups()
        if kind == "schema":
            return Denied(reason, f"USAGE on schema {name}",
                          f"GRANT USAGE ON SCHEMA {name} TO {grantee}")  # fmt: skip
        return Denied(reason, f"SELECT on {name}", f"GRANT SELECT ON {name} TO {grantee}")
    named = _PREDEFINED.findall(detail)
    role_needed = named[0] if named else MONITOR_ROLE
    if role_needed in _MONITOR_ROLES:
        privilege = f"{role_needed} (part of {MONITOR_ROLE})"
        return Denied(reason, privilege, f"GRANT {MONITOR_ROLE} TO {grantee}")
    return Denied(reason, role_needed, f"GRANT {role_needed} TO {grantee}")


def readable(value: T | Denied) -> T | None:
    """``value``, or None when it was Denied (for figures, baselines, other readers)."""
    return None if isinstance(value, Denied) else value


def guarded(conn: psycopg.Connection[Any], read: Callable[[], T]) -> T | Denied:
    """``read()`` in its own transaction (a savepoint inside one); Denied when the role may
    not, with the connection left usable."""
    try:
        with conn.transaction():
            return read()
    except psycopg.errors.InsufficientPrivilege as exc:
        return denied(exc, conn.info.user)


def lacking(conn: psycopg.Connection[Any], role: str, what: str) -> Denied | None:
    """Denied when the connected role lacks the privileges of predefined ``role``: reads that
    PostgreSQL answers with rows hidden (``pg_stat_activity`` shows other roles' sessions
    without state or times) rather than with an error; ``what`` says what is hidden."""
    row = conn.execute("SELECT pg_has_role(%s, 'USAGE')", (role,)).fetchone()
    if row is not None and row[0]:
        return None
    grantee = sql.Identifier(conn.info.user).as_string(None)
    grant = MONITOR_ROLE if role in _MONITOR_ROLES else role
    privilege = f"{role} (part of {MONITOR_ROLE})" if role in _MONITOR_ROLES else role
    return Denied(what, privilege, f"GRANT {grant} TO {grantee}")
