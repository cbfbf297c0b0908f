"""Readiness: the strategy's "Initial Setup" checklist, checked against the live server.

Each item of the checklist (configure the backup system, set up monitoring, create maintenance
scripts, document recovery procedures) is a group of findings. Nothing here changes the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from powrops import bundle, migrate
from powrops.alerts.run import read_only_findings
from powrops.config import Settings
from powrops.findings import Finding, Severity, counts
from powrops.format import human_bytes, human_time
from powrops.metrics.snapshot import statements_status
from powrops.pg import catalog, control
from powrops.pg.embedded import archive_spec_findings
from powrops.pg.privileges import Denied, guarded
from powrops.readiness.archiving import archive_command_findings
from powrops.reports import show_table
from powrops.tables import STRATEGY_INDEXES

BACKUP = "Configure backup system"
MONITORING = "Set up monitoring"
MAINTENANCE = "Create maintenance scripts"
RECOVERY = "Document recovery procedures"

ROLES: dict[str, str] = {
    "powr_readonly": "read-only reporting (member of pg_monitor)",
    "powr_reporting": "login for scheduled reports",
    "powr_backup": "backups (REPLICATION)",
    "powr_app": "the application's least-privilege login",
    "powr_owner": "owns the POWR tables: maintenance, retention, cleanup, repairs",
}
SETTINGS = (
    "data_checksums",
    "wal_level",
    "archive_mode",
    "archive_command",
    "archive_library",
    "archive_timeout",
    "summarize_wal",
    "shared_preload_libraries",
    "autovacuum",
    "track_io_timing",
    "max_wal_senders",
)

Check = Callable[[psycopg.Connection[Any], Settings, dict[str, dict[str, Any]]], Iterator[Finding]]


def _finding(group: str, check: str, severity: Severity, message: str, **kw: Any) -> Finding:
    details = dict(kw.pop("details", {}))
    details["checklist"] = group
    return Finding(check=check, severity=severity, message=message, details=details, **kw)


def _denied(group: str, check: str, denied: Denied) -> Finding:
    """``check`` UNKNOWN in ``group``: the role may not read what it judges."""
    finding = denied.finding(check)
    return replace(finding, details={**finding.details, "checklist": group})


def _value(conf: dict[str, dict[str, Any]], name: str) -> str | None:
    row = conf.get(name)
    return None if row is None else str(row["setting"])


def check_wal(
    conn: psycopg.Connection[Any], settings: Settings, conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:
    checksums = _value(conf, "data_checksums")
    yield _finding(
        BACKUP,
        "data_checksums",
        Severity.OK if checksums == "on" else Severity.CRITICAL,
        "data checksums are enabled"
        if checksums == "on"
        else "data checksums are off: silent corruption of data pages cannot be detected",
        value=checksums,
        expected="on",
        advice=None
        if checksums == "on"
        else "enable with pg_checksums --enable on a stopped cluster",
    )
    level = _value(conf, "wal_level")
    ok = level in ("replica", "logical")
    yield _finding(
        BACKUP,
        "wal_level",
        Severity.OK if ok else Severity.CRITICAL,
        f"wal_level is {level}" + ("" if ok else ": base backups and WAL archiving need replica"),
        value=level,
        expected="replica or logical",
    )
    mode = _value(conf, "archive_mode")
    ok = mode in ("on", "always")
    yield _finding(
        BACKUP,
        "archive_mode",
        Severity.OK if ok else Severity.CRITICAL,
        f"archive_mode is {mode}" + ("" if ok else ": no point-in-time recovery is possible"),
        value=mode,
        expected="on",
    )
    command = (_value(conf, "archive_command") or "").strip()
    library = (_value(conf, "archive_library") or "").strip()
    configured = bool(command and command != "(disabled)") or bool(library)
    yield _finding(
        BACKUP,
        "archive_command",
        Severity.OK if configured else Severity.CRITICAL,
        f"WAL is archived by {command or library!r}"
        if configured
        else "no archive_command or archive_library: WAL segments are not being archived",
        value=command or library or None,
        expected="powrops --config FILE wal push %p",
        advice=None
        if configured
        else f"set archive_command = 'powrops --config {settings.config_file or 'FILE'} wal push "
        "%p' (see README)",
    )
    found = archive_spec_findings(settings)  # WAL reaches the configured repository
    found += archive_command_findings(command, settings) if configured else []
    for f in found:
        yield _finding(BACKUP, f.check, f.severity, f.message, object=f.object, value=f.value,
                       expected=f.expected, advice=f.advice, details=f.details)  # fmt: skip
    yield from _archive_timeout(settings, conf)
    yield from _summarize_wal(conn, conf)


def _archive_timeout(settings: Settings, conf: dict[str, dict[str, Any]]) -> Iterator[Finding]:
    schedule = settings.backup.schedule.logs
    row = conf.get("archive_timeout")
    seconds = catalog.setting_seconds(row) if row else 0.0
    limit = schedule.timedelta.total_seconds()
    ok = 0 < seconds <= limit
    yield _finding(
        BACKUP,
        "archive_timeout",
        Severity.OK if ok else Severity.WARNING,
        f"archive_timeout is {seconds:.0f} s against the WAL schedule of {schedule}"
        + ("" if ok else ": a quiet server may leave WAL unarchived for longer than the schedule"),
        value=f"{seconds:.0f}s",
        expected=f"1s..{limit:.0f}s ({schedule})",
    )


def _summarize_wal(
    conn: psycopg.Connection[Any], conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:
    version = catalog.server_version_num(conn)
    if version < 170000:
        yield _finding(
            BACKUP,
            "summarize_wal",
            Severity.WARNING,
            f"PostgreSQL {version // 10000} cannot take incremental backups (needs 17 or newer); "
            "the hourly incremental schedule will be served by full backups and WAL",
            value=str(version // 10000),
            expected="17 or newer",
        )
        return
    value = _value(conf, "summarize_wal")
    yield _finding(
        BACKUP,
        "summarize_wal",
        Severity.OK if value == "on" else Severity.WARNING,
        "WAL summarization is on: incremental backups are possible"
        if value == "on"
        else "summarize_wal is off: incremental backups will fail",
        value=value,
        expected="on",
    )


def check_storage(
    conn: psycopg.Connection[Any], settings: Settings, conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:
    storage = settings.backup.storage
    primary = storage.primary
    if primary.url is None:
        yield _finding(
            BACKUP,
            "storage.primary",
            Severity.WARNING,
            f"no primary repository URL configured: backups go to a local directory under "
            f"{settings.state.dir}, not to {primary.kind} as the strategy asks",
            expected=f"{primary.kind} repository URL",
        )
    else:
        yield _finding(
            BACKUP,
            "storage.primary",
            Severity.OK,
            f"primary repository is {primary.kind}",
            value=primary.kind,
        )
    secondary = storage.secondary
    if secondary is None or secondary.url is None:
        yield _finding(
            BACKUP,
            "storage.secondary",
            Severity.WARNING,
            "no secondary repository configured: backups exist in one place only",
            expected=f"{secondary.kind if secondary else 'gcs'} repository URL",
        )
    else:
        yield _finding(
            BACKUP,
            "storage.secondary",
            Severity.OK,
            f"secondary repository is {secondary.kind}",
            value=secondary.kind,
        )


def check_monitoring(
    conn: psycopg.Connection[Any], settings: Settings, conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:
    # Asked of the extension, not of shared_preload_libraries: pg_settings hides that
    # setting from a role without pg_read_all_settings, which would read as "not loaded".
    missing = statements_status(conn)
    if missing is None:
        yield _finding(
            MONITORING,
            "pg_stat_statements",
            Severity.OK,
            "pg_stat_statements is loaded and installed: slow queries can be found",
        )
    else:
        yield _finding(
            MONITORING,
            "pg_stat_statements",
            Severity.WARNING,
            f"{missing} (query-time alerts cannot see statements)",
            value=_value(conf, "shared_preload_libraries"),
            expected="loaded and CREATE EXTENSION pg_stat_statements",
        )
    io_timing = _value(conf, "track_io_timing")
    yield _finding(
        MONITORING,
        "track_io_timing",
        Severity.OK if io_timing == "on" else Severity.WARNING,
        f"track_io_timing is {io_timing}",
        value=io_timing,
        expected="on",
    )


def check_writable(
    conn: psycopg.Connection[Any], settings: Settings, conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:
    """A database left read-only (after the corruption runbook) is reported here too."""
    for found in read_only_findings(catalog.read_only_state(conn)):
        yield _finding(MONITORING, found.check, found.severity, found.message,
                       object=found.object, advice=found.advice)  # fmt: skip


def check_maintenance(
    conn: psycopg.Connection[Any], settings: Settings, conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:
    autovacuum = _value(conf, "autovacuum")
    yield _finding(
        MAINTENANCE,
        "autovacuum",
        Severity.OK if autovacuum == "on" else Severity.WARNING,
        f"autovacuum is {autovacuum}",
        value=autovacuum,
        expected="on",
    )
    found = catalog.indexes(conn, STRATEGY_INDEXES)
    for name, index in STRATEGY_INDEXES.items():
        columns, predicate = index.columns, index.predicate
        yield _index_finding(name, columns, predicate, found.get(name))


def _index_finding(
    name: str, columns: str, predicate: str | None, row: dict[str, Any] | None
) -> Finding:
    if row is None:
        return _finding(
            MAINTENANCE,
            f"index.{name}",
            Severity.CRITICAL,
            f"the strategy's index {name} is missing",
            object=name,
            expected=columns,
            advice="run `powrops migrate latest`",
        )
    problems = []
    if columns not in row["definition"]:
        problems.append(f"definition is {row['definition']}")
    if predicate and (row["predicate"] or "").strip("()") != predicate:
        problems.append(f"predicate is {row['predicate']!r}")
    if not row["valid"] or not row["ready"]:
        problems.append("index is INVALID (a failed CREATE INDEX CONCURRENTLY?)")
    if problems:
        return _finding(
            MAINTENANCE,
            f"index.{name}",
            Severity.CRITICAL,
            f"index {name}: " + "; ".join(problems),
            object=name,
            value=row["definition"],
            expected=columns,
            advice="REINDEX INDEX CONCURRENTLY or recreate it",
        )
    return _finding(
        MAINTENANCE,
        f"index.{name}",
        Severity.OK,
        f"index {name} is present and valid",
        object=name,
        value=row["definition"],
    )


def check_schema(
    conn: psycopg.Connection[Any], settings: Settings, conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:

    heads = migrate.heads()
    current = guarded(conn, lambda: current_revision(conn))
    if isinstance(current, Denied):
        yield _denied(MAINTENANCE, "alembic", current)
    elif current is None:
        yield _finding(
            MAINTENANCE,
            "alembic",
            Severity.CRITICAL,
            "the POWR schema is not under migration control (no alembic revision)",
            expected=", ".join(heads),
            advice="run `powrops migrate latest`",
        )
    elif current in heads:
        yield _finding(
            MAINTENANCE, "alembic", Severity.OK, f"schema is at head ({current})", value=current
        )
    else:
        yield _finding(
            MAINTENANCE,
            "alembic",
            Severity.WARNING,
            f"schema is at {current}, head is {', '.join(heads)}: migrations are pending",
            value=current,
            expected=", ".join(heads),
            advice="review with `powrops migrate status`, then apply",
        )
    found = catalog.roles(conn, ROLES)
    for name, purpose in ROLES.items():
        yield _role_finding(name, purpose, found.get(name))


def _role_finding(name: str, purpose: str, row: dict[str, Any] | None) -> Finding:
    if row is None:
        return _finding(
            MAINTENANCE,
            f"role.{name}",
            Severity.WARNING,
            f"role {name} ({purpose}) is missing",
            object=name,
            advice="run `powrops migrate latest`",
        )
    problems = []
    if name == "powr_backup" and not row["replication"]:
        problems.append("lacks REPLICATION")
    if name == "powr_readonly" and "pg_monitor" not in row["member_of"]:
        problems.append("is not a member of pg_monitor")
    if row["superuser"]:
        problems.append("is a superuser (least privilege)")
    severity = Severity.WARNING if problems else Severity.OK
    message = f"role {name} ({purpose}) " + ("; ".join(problems) if problems else "is present")
    return _finding(MAINTENANCE, f"role.{name}", severity, message, object=name)


def check_recovery_docs(
    conn: psycopg.Connection[Any], settings: Settings, conf: dict[str, dict[str, Any]]
) -> Iterator[Finding]:

    runbooks = bundle.folder("runbooks")
    found = sorted(p.stem for p in Path(runbooks).glob("*.ipynb")) if runbooks.is_dir() else []
    wanted = "recovery_drill"
    if wanted in found:
        yield _finding(
            RECOVERY,
            "runbooks",
            Severity.OK,
            f"recovery procedures are documented as runbooks: {', '.join(found)}",
        )
    else:
        yield _finding(
            RECOVERY,
            "runbooks",
            Severity.WARNING,
            "no recovery drill runbook yet: recovery procedures are not documented "
            "as an executable runbook",
            value=", ".join(found) or None,
            expected=f"runbooks/{wanted}.ipynb",
        )


def current_revision(conn: psycopg.Connection[Any]) -> str | None:
    """The alembic revision the database is at, read without alembic (None: not migrated)."""
    row = conn.execute("SELECT to_regclass('ops.alembic_version')").fetchone()
    if row is None or row[0] is None:
        return None
    version = conn.execute("SELECT version_num FROM ops.alembic_version").fetchone()
    return str(version[0]) if version else None


CHECKS: tuple[Check, ...] = (
    check_wal,
    check_storage,
    check_monitoring,
    check_writable,
    check_maintenance,
    check_schema,
    check_recovery_docs,
)


def run_checks(conn: psycopg.Connection[Any], settings: Settings) -> list[Finding]:
    """Every readiness finding, in checklist order."""
    conf = catalog.settings(conn, SETTINGS)
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(conn, settings, conf))
    return findings


def server_facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Headline facts about the server for the report's header (the system identifier None
    when the role may not execute pg_control_system())."""
    row = conn.execute(
        "SELECT current_setting('server_version'), pg_database_size(current_database())"
    ).fetchone()
    assert row is not None
    return {
        "server_version": row[0],
        "database_size": int(row[1]),
        "system_identifier": control.system_identifier(conn),
    }


# --- helpers for the notebook ----------------------------------------------------------------


def group(findings: list[Finding], name: str) -> list[Finding]:
    return [f for f in findings if f.details.get("checklist") == name]


def figures(findings: list[Finding], facts: dict[str, Any]) -> dict[str, Any]:

    tally = counts(findings)
    return {
        "server_version": facts["server_version"],
        "checks": len(findings),
        "ok": tally["OK"],
        "warnings": tally["WARNING"],
        "critical": tally["CRITICAL"],
    }


def show_facts(facts: dict[str, Any], settings: Settings) -> None:

    rows = [
        ("PostgreSQL", facts["server_version"]),
        ("Database size", human_bytes(facts["database_size"])),
        ("System identifier", facts["system_identifier"] or "unknown"),
        ("Configuration", settings.source or "defaults"),
        ("WAL schedule", str(settings.backup.schedule.logs)),
    ]
    show_table([{"item": k, "value": v} for k, v in rows], caption="Server")


def period(now: datetime | None = None) -> str:
    """What the readiness report covers: the server as it is now."""
    return f"the server as of {human_time(now or datetime.now(UTC))}"
