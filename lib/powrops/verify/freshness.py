"""Freshness against ``backup.schedule``, failed backup runs, and the server's WAL archiver.

- The newest ok full must be younger than ``schedule.full`` (WARNING beyond it, CRITICAL beyond
  twice it); the newest ok backup of any kind younger than ``schedule.incremental`` (WARNING),
  except on PostgreSQL before 17, which has no incremental backups: there only fulls are expected.
- The newest archived WAL object must be younger than ``schedule.logs`` (WARNING), unless the
  server has written nothing since its last archived segment (an idle server does not switch).
- ``pg_stat_archiver`` on the configured database: archiving that fails (the last failure newer
  than the last success), a last success older than ``schedule.logs``, ``archive_mode`` off. The
  database is only looked at, never started: when it cannot be reached, that check is UNKNOWN.
- Failed runs: the most recent consecutive failed backup runs against
  ``alerts.failed_backups`` (one is a WARNING, two are CRITICAL by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from powrops.backup.catalog import consecutive_failures
from powrops.backup.model import BackupRecord
from powrops.backup.wal.positions import DEFAULT_SEGMENT_SIZE, SEGMENT_RE, parse_lsn
from powrops.config import Settings
from powrops.db import connect, target
from powrops.durations import Duration
from powrops.errors import DatabaseError
from powrops.findings import Severity
from powrops.format import human_duration, human_time
from powrops.pg import control
from powrops.verify.report import Freshness, VerificationReport

PAGE = 8192


@dataclass(frozen=True)
class ArchiverState:
    """``pg_stat_archiver`` and the settings around it, read from the configured database."""

    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    archive_mode: str
    version_num: int
    system_identifier: str | None
    insert_lsn: str | None  # None on a standby
    segment_size: int = DEFAULT_SEGMENT_SIZE

    @property
    def failing(self) -> bool:
        if not self.failed_count or self.last_failed_time is None:
            return False
        return self.last_archived_time is None or self.last_failed_time > self.last_archived_time

    @property
    def idle(self) -> bool:
        """Nothing written since the last archived segment ended (so nothing to archive)."""
        if self.last_archived_wal is None or self.insert_lsn is None:
            return False
        match = SEGMENT_RE.match(self.last_archived_wal[:24])
        if not match:
            return False
        per = 0x100000000 // self.segment_size
        number = int(match.group(2), 16) * per + int(match.group(3), 16)
        written = parse_lsn(self.insert_lsn) - (number + 1) * self.segment_size
        return 0 <= written < PAGE

    def to_dict(self) -> dict[str, Any]:
        return {
            "archived_count": self.archived_count,
            "last_archived_wal": self.last_archived_wal,
            "last_archived_time": _iso(self.last_archived_time),
            "failed_count": self.failed_count,
            "last_failed_wal": self.last_failed_wal,
            "last_failed_time": _iso(self.last_failed_time),
            "archive_mode": self.archive_mode,
            "version_num": self.version_num,
            "insert_lsn": self.insert_lsn,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


ARCHIVER_SQL = """
SELECT archived_count, last_archived_wal, last_archived_time,
       failed_count, last_failed_wal, last_failed_time,
       current_setting('archive_mode'), current_setting('server_version_num')::int,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END,
       (SELECT setting::bigint * CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024
                                          WHEN 'MB' THEN 1048576 ELSE 1 END
          FROM pg_settings WHERE name = 'wal_segment_size')
  FROM pg_stat_archiver
"""


def archiver_state(conn: Any, system_identifier: str | None = None) -> ArchiverState:
    """``pg_stat_archiver`` and the settings around it, read on ``conn``."""
    row = conn.execute(ARCHIVER_SQL).fetchone()
    assert row is not None
    return archiver_from_row(row, system_identifier)


def archiver_from_row(row: Sequence[Any], system_identifier: str | None = None) -> ArchiverState:
    """:func:`archiver_state` of a row of ``ARCHIVER_SQL``."""
    return ArchiverState(
        archived_count=row[0],
        last_archived_wal=row[1],
        last_archived_time=row[2],
        failed_count=row[3],
        last_failed_wal=row[4],
        last_failed_time=row[5],
        archive_mode=row[6],
        version_num=row[7],
        system_identifier=system_identifier,
        insert_lsn=row[8],
        segment_size=int(row[9] or DEFAULT_SEGMENT_SIZE),
    )


def read_archiver(settings: Settings) -> ArchiverState:
    """The configured database's archiver state; DatabaseError when it cannot be read.

    Verification only looks: a stopped embedded cluster stays stopped.
    """
    import psycopg

    tgt = target(settings)
    try:
        with connect(settings, autocommit=True) as conn:
            return archiver_state(conn, control.system_identifier(conn))
    except (psycopg.Error, DatabaseError) as exc:
        raise DatabaseError(f"cannot read pg_stat_archiver on {tgt.display}: {exc}") from exc


# --- schedule ------------------------------------------------------------------------------


def _reference(record: BackupRecord) -> datetime:
    return record.stop_time or record.start_time


def _judge(age: float, limit: Duration, critical_factor: float | None) -> Severity:
    if limit.seconds is None:
        return Severity.OK
    if critical_factor is not None and age > critical_factor * limit.seconds:
        return Severity.CRITICAL
    return Severity.WARNING if age > limit.seconds else Severity.OK


def _figure(
    report: VerificationReport,
    check: str,
    reference: str | None,
    at: datetime | None,
    now: datetime,
    limit: Duration | None,
    severity: Severity,
) -> None:
    age = (now - at).total_seconds() if at else None
    report.freshness.append(
        Freshness(check, reference, at, age, limit.seconds if limit else None, severity)
    )


def backups(
    report: VerificationReport,
    ok: Sequence[BackupRecord],
    settings: Settings,
    now: datetime,
    server_major: int | None,
) -> None:
    """freshness.full and freshness.incremental."""
    schedule = settings.backup.schedule
    fulls = [r for r in ok if r.kind == "full"]
    if ok and not fulls:
        report.add(
            "freshness.full",
            Severity.CRITICAL,
            f"no successful full backup in {report.repository}",
            advice="take one: `powrops backup full`",
        )
    if fulls:
        newest = max(fulls, key=_reference)
        age = (now - _reference(newest)).total_seconds()
        severity = _judge(age, schedule.full, 2.0)
        verdict = {
            Severity.OK: "within",
            Severity.WARNING: "older than",
            Severity.CRITICAL: "more than twice",
        }
        report.add(
            "freshness.full",
            severity,
            f"newest full backup {newest.label} finished {human_duration(age)} ago "
            f"({verdict[severity]} the schedule: full {schedule.full})",
            newest.label,
            advice=None if severity == Severity.OK else "check the backup schedule and its logs",
            label=newest.label,
            age_s=round(age, 1),
        )
        _figure(report, "freshness.full", newest.label, _reference(newest), now,
                schedule.full, severity)  # fmt: skip
    if server_major is not None and server_major < 17:
        report.add(
            "freshness.incremental",
            Severity.OK,
            f"PostgreSQL {server_major} has no incremental backups: only fulls are expected "
            "(judged by freshness.full)",
        )
        return
    if ok:
        newest = max(ok, key=_reference)
        age = (now - _reference(newest)).total_seconds()
        severity = _judge(age, schedule.incremental, None)
        word = "within" if severity == Severity.OK else "older than"
        report.add(
            "freshness.incremental",
            severity,
            f"newest backup {newest.label} ({newest.kind}) finished {human_duration(age)} ago "
            f"({word} the schedule: incremental {schedule.incremental})",
            newest.label,
            label=newest.label,
            age_s=round(age, 1),
        )
        _figure(report, "freshness.incremental", newest.label, _reference(newest), now,
                schedule.incremental, severity)  # fmt: skip


def wal(
    report: VerificationReport,
    newest: tuple[str, datetime] | None,
    settings: Settings,
    now: datetime,
    archiver: ArchiverState | None,
) -> None:
    """freshness.wal: the newest WAL object in the repository."""
    logs = settings.backup.schedule.logs
    if newest is None:
        report.add(
            "freshness.wal",
            Severity.WARNING,
            f"no WAL archived in {report.repository}: no point-in-time recovery",
            advice="check archive_mode and archive_command (`powrops wal push`)",
        )
        _figure(report, "freshness.wal", None, None, now, logs, Severity.WARNING)
        return
    name, at = newest
    age = (now - at).total_seconds()
    severity = _judge(age, logs, None)
    message = f"newest archived WAL {name} arrived {human_duration(age)} ago"
    if severity != Severity.OK and archiver is not None and archiver.idle:
        severity = Severity.OK
        message += " (the server has written no WAL since, so there is nothing to archive)"
    else:
        word = "within" if severity == Severity.OK else "older than"
        message += f" ({word} the schedule: logs {logs})"
    report.add("freshness.wal", severity, message, name, segment=name, age_s=round(age, 1))
    _figure(report, "freshness.wal", name, at, now, logs, severity)


def archiver_findings(
    report: VerificationReport,
    settings: Settings,
    now: datetime,
    state: ArchiverState | DatabaseError,
    system_identifiers: set[str],
) -> None:
    """freshness.archiver from pg_stat_archiver (UNKNOWN when the database is unreachable)."""
    check = "freshness.archiver"
    if isinstance(state, DatabaseError):
        report.add(check, Severity.UNKNOWN, f"database unreachable: {state}")
        return
    if (
        state.system_identifier
        and system_identifiers
        and (state.system_identifier not in system_identifiers)
    ):
        report.add(
            check,
            Severity.UNKNOWN,
            f"the configured database (system identifier {state.system_identifier}) is not the "
            f"server whose backups are in {report.repository}",
        )
        return
    report.figures["archiver"] = state.to_dict()
    problems = 0
    if state.archive_mode not in ("on", "always"):
        problems += 1
        report.add(
            check,
            Severity.WARNING,
            f"archive_mode is {state.archive_mode}: WAL is not archived, so no point-in-time "
            "recovery past the newest backup",
            advice="ALTER SYSTEM SET archive_mode = on (needs a restart)",
        )
    if state.failing:
        problems += 1
        assert state.last_failed_time is not None
        last_ok = (
            f"last success {state.last_archived_wal} at {human_time(state.last_archived_time)}"
            if state.last_archived_time
            else "no success since the statistics were reset"
        )
        report.add(
            check,
            Severity.WARNING,
            f"archiving is failing: {state.last_failed_wal} failed at "
            f"{human_time(state.last_failed_time)} ({state.failed_count} failures counted; "
            f"{last_ok})",
            state.last_failed_wal,
            advice="see the server log for the archive_command's error",
            segment=state.last_failed_wal,
        )
    logs = settings.backup.schedule.logs
    if state.last_archived_time is not None:
        age = (now - state.last_archived_time).total_seconds()
        severity = _judge(age, logs, None)
        if severity != Severity.OK and not state.idle:
            problems += 1
            report.add(
                check,
                severity,
                f"the server last archived {state.last_archived_wal} {human_duration(age)} ago "
                f"(older than the schedule: logs {logs})",
                state.last_archived_wal,
                segment=state.last_archived_wal,
            )
        _figure(report, check, state.last_archived_wal, state.last_archived_time, now, logs,
                severity if not state.idle else Severity.OK)  # fmt: skip
    if not problems:
        last = (
            f"last archived {state.last_archived_wal} at {human_time(state.last_archived_time)}"
            if state.last_archived_time
            else "nothing archived since the statistics were reset"
        )
        report.add(
            check,
            Severity.OK,
            f"pg_stat_archiver: {last}; {state.failed_count} failures counted, none since",
            state.last_archived_wal,
        )


# --- failed runs ---------------------------------------------------------------------------


def failed_runs(
    report: VerificationReport, records: Sequence[BackupRecord], settings: Settings
) -> None:
    """failed_backups: the most recent consecutive failed runs against the alert thresholds."""
    threshold = settings.alerts.failed_backups
    runs = sorted(records, key=lambda r: (r.start_time, r.label))
    streak = consecutive_failures([r.status for r in runs])
    failed = runs[::-1][:streak]
    if not runs:
        return
    if not failed:
        report.add(
            "failed_backups",
            Severity.OK,
            f"the most recent backup run {runs[-1].label} ({runs[-1].kind}) succeeded",
            runs[-1].label,
        )
        return
    severity = (
        Severity.CRITICAL
        if len(failed) >= threshold.critical
        else Severity.WARNING
        if len(failed) >= threshold.warning
        else Severity.OK
    )
    runs_text = "; ".join(f"{r.label} ({r.kind}): {r.error or 'no error recorded'}" for r in failed)
    what = (
        "the most recent backup run failed"
        if len(failed) == 1
        else f"the {len(failed)} most recent backup runs failed"
    )
    report.add(
        "failed_backups",
        severity,
        f"{what}: {runs_text}",
        failed[0].label,
        advice="fix the cause and take a backup (`powrops backup full`)",
        labels=[r.label for r in failed],
        consecutive=len(failed),
    )
