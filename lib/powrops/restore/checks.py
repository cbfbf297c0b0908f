"""Checks of a restored cluster, as the strategy's recovery plan verifies one: data integrity
(marker rows, row counts), application state (alembic head, smoke queries) and user access
(the login roles can log in and read). Used by the recovery drill and the restore runbook."""

from __future__ import annotations

import secrets
import subprocess
from typing import Any

import psycopg
from psycopg import sql

from powrops import migrate
from powrops.config import Settings
from powrops.pg.binaries import find_binaries

LOGIN_ROLES = {"powr_reporting": "workouts", "powr_app": "workouts", "powr_backup": None}


class RestoredChecks:
    """The plan's verification: data integrity, application state, user access."""

    def __init__(
        self, restored: Any, settings: Settings, markers: dict[str, dict[str, Any]]
    ) -> None:
        self.restored = restored
        self.settings = settings
        self.markers = markers

    def _conn(self, **overrides: Any) -> psycopg.Connection[Any]:
        info = {**self.restored.conninfo(), **overrides}
        return psycopg.connect(**info, autocommit=True, connect_timeout=10)

    def run(self) -> dict[str, Any]:
        wanted = self.settings.recovery.verification
        result: dict[str, Any] = {}
        if wanted.data_integrity:
            result["data_integrity"] = self.data_integrity()
        if wanted.application_state:
            result["application_state"] = self.application_state()
        if wanted.user_access:
            result["user_access"] = self.user_access()
        return result

    def data_integrity(self) -> dict[str, Any]:
        out: dict[str, Any] = {"amcheck": self._amcheck()}
        if self.markers:
            with self._conn() as conn:
                ids = {
                    int(r[0]) for r in conn.execute(
                        "SELECT id FROM ops.events WHERE kind = 'drill_marker' AND id = ANY(%s)",
                        ([m["id"] for m in self.markers.values()],),
                    ).fetchall()
                }  # fmt: skip
                counts = table_counts(conn, tuple(self.markers["before"]["counts"]))
            out["marker_before_present"] = self.markers["before"]["id"] in ids
            out["marker_after_absent"] = self.markers["after"]["id"] not in ids
            expected = self.markers["before"]["counts"]
            out["row_counts"] = {
                t: {"restored": counts[t], "source_at_target": expected[t]} for t in expected
            }
            out["row_counts_match"] = counts == expected
        out["integrity_checks"] = "not available in this version"
        out["ok"] = bool(out["amcheck"]["ok"]) and all(
            out.get(k, True)
            for k in ("marker_before_present", "marker_after_absent", "row_counts_match")
        )
        return out

    def _amcheck(self) -> dict[str, Any]:

        info = self.restored.conninfo()
        binaries = (
            find_binaries(bin_dir=self.settings.postgres.bin_dir)
            if self.settings.postgres.bin_dir
            else self.restored.cluster.binaries
        )
        proc = subprocess.run(
            [str(binaries.path("pg_amcheck")), "-h", info["host"], "-p", str(info["port"]),
             "-U", info["user"], "--database", info["dbname"], "--no-password"],
            capture_output=True, text=True, timeout=1800, check=False,
            env={"PGPASSWORD": info["password"] or "", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        return {"ok": proc.returncode == 0, "output": (proc.stdout + proc.stderr).strip()[-2000:]}

    def application_state(self) -> dict[str, Any]:

        heads = migrate.heads()
        with self._conn() as conn:
            row = conn.execute("SELECT to_regclass('ops.alembic_version')").fetchone()
            revision = None
            if row and row[0]:
                found = conn.execute("SELECT version_num FROM ops.alembic_version").fetchone()
                revision = found[0] if found else None
            smoke = {}
            for name, query in SMOKE_QUERIES.items():
                try:
                    smoke[name] = conn.execute(query).fetchone()[0]  # type: ignore[index]
                except psycopg.Error as exc:
                    smoke[name] = f"error: {exc}"
        ok = revision in heads and not any(str(v).startswith("error") for v in smoke.values())
        return {"ok": ok, "revision": revision, "heads": heads, "smoke": smoke}

    def user_access(self) -> dict[str, Any]:
        roles: dict[str, Any] = {}
        with self._conn() as admin:
            present = {
                r[0]
                for r in admin.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(LOGIN_ROLES),)
                ).fetchall()
            }
            may_set_passwords = _may_set_passwords(admin)
            for role, table in LOGIN_ROLES.items():
                if role not in present:
                    roles[role] = {"ok": False, "error": "role missing"}
                elif may_set_passwords:
                    password = secrets.token_urlsafe(16)  # only on the scratch cluster
                    admin.execute(
                        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            sql.Identifier(role), sql.Literal(password)
                        )
                    )
                    roles[role] = self._login(role, password, table)
                else:
                    roles[role] = _grants(admin, role, table)
        return {"ok": all(r["ok"] for r in roles.values()), "roles": roles}

    def _login(self, role: str, password: str, table: str | None) -> dict[str, Any]:
        try:
            with self._conn(user=role, password=password) as conn:
                query = f"SELECT count(*) FROM public.{table}" if table else "SELECT 1"
                value = conn.execute(query).fetchone()[0]  # type: ignore[index]
            return {"ok": True, "read": query, "value": value}
        except psycopg.Error as exc:
            return {"ok": False, "error": str(exc).strip()}


def _may_set_passwords(conn: psycopg.Connection[Any]) -> bool:
    """Whether the drill's connection may give a role a password (superuser or CREATEROLE)."""
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])


def _grants(conn: psycopg.Connection[Any], role: str, table: str | None) -> dict[str, Any]:
    """A role's access from the catalog, when the drill runs under a job role that cannot log
    in as it: it may log in, connect to the database, and read its table."""
    row = conn.execute(
        "SELECT r.rolcanlogin, has_database_privilege(r.rolname, current_database(), 'CONNECT'), "
        "CASE WHEN %s::text IS NULL THEN true "
        "ELSE has_table_privilege(r.rolname, 'public.' || %s, 'SELECT') END "
        "FROM pg_roles r WHERE r.rolname = %s",
        (table, table, role),
    ).fetchone()
    login, connect, read = row if row else (False, False, False)
    checked = "from the catalog: LOGIN, CONNECT" + (f" and SELECT on {table}" if table else "")
    if login and connect and read:
        return {"ok": True, "read": checked}
    return {"ok": False, "error": f"{checked}: login {login}, connect {connect}, read {read}"}


def table_counts(conn: psycopg.Connection[Any], tables: tuple[str, ...]) -> dict[str, int]:
    """Row counts of the named public tables, in the connection's snapshot."""
    counts: dict[str, int] = {}
    for table in tables:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


SMOKE_QUERIES = {
    "select_1": "SELECT 1",
    "users": "SELECT count(*) FROM public.users",
    "recent_workouts": "SELECT count(*) FROM public.workouts WHERE date > current_date - 30",
}
