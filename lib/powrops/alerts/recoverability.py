"""Verified recoverability for the metrics, read only from what powrops already recorded.

* the last drill (``ops.events`` kind ``drill`` of this server, as ``drill/run.py`` keeps
  it): when it ran, its RTO and RPO; the objectives are ``recovery.objectives``;
* the last successful test restore: the newer of the last ``backup_verification`` run in the
  report archive whose test restore passed (``figures.test_restore``) and the last drill that
  restored and passed every verification (data integrity, application state, user access);
* the end of the verified recovery window: what the last finished ``backup_verification`` run
  recorded (``figures.recovery_window_end``: the newest point a verified backup recovers to
  over WAL read back intact);
* the bytes and objects the last verification read back intact: the objects of the primary
  repository's ``verification/state.json`` with its newest read time (every ``powrops
  verify`` records each object it read intact with its run's time).

Nothing here reads a backup or a WAL file, runs a check again or judges a figure: a figure
without evidence stays None and is not exported, so that the Prometheus rules see it absent.
Evidence that cannot be read is named in ``problems``, and ``evidence_read`` is False when the
drills were not read (the database unreachable, ``ops.events`` refused): absent then means
unread, not "no evidence", and the rules hold the last values read instead of judging absence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from powrops import journal
from powrops.backup import repos
from powrops.config import Settings
from powrops.errors import PowropsError
from powrops.pg.privileges import Denied, guarded
from powrops.reports.catalog import runs_of
from powrops.verify.state import VerificationState

VERIFICATION_REPORT = "backup_verification"

DRILLS_SQL = sql.SQL(
    "SELECT at, details FROM ops.events WHERE kind = 'drill' AND server = {server} "
    "ORDER BY at DESC, id DESC"
)

Drill = tuple[datetime, Mapping[str, Any]]


@dataclass(frozen=True)
class LastRead:
    """The objects the last verification read back intact, from the verification state."""

    at: datetime
    objects: int
    bytes: int


@dataclass
class Recoverability:
    """The evidence of recoverability the metrics publish (None: no evidence)."""

    rto_objective_s: float
    rpo_objective_s: float
    drill_at: datetime | None = None
    drill_rto_s: float | None = None
    drill_rpo_s: float | None = None
    restored_at: datetime | None = None  # the last successful test restore
    restored_by: str | None = None  # "verification <run id>" or "drill <drill id>"
    window_end: datetime | None = None
    last_read: LastRead | None = None
    problems: list[str] = field(default_factory=list)
    evidence_read: bool = True  # False: the drills were not read, the figures are unknown

    def to_dict(self) -> dict[str, Any]:
        read = self.last_read
        return {
            "rto_objective_s": self.rto_objective_s,
            "rpo_objective_s": self.rpo_objective_s,
            "drill_at": _iso(self.drill_at),
            "drill_rto_s": self.drill_rto_s,
            "drill_rpo_s": self.drill_rpo_s,
            "restored_at": _iso(self.restored_at),
            "restored_by": self.restored_by,
            "window_end": _iso(self.window_end),
            "verification_read_at": _iso(read.at) if read else None,
            "verification_read_objects": read.objects if read else None,
            "verification_read_bytes": read.bytes if read else None,
            "problems": list(self.problems),
            "evidence_read": self.evidence_read,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# --- pure: what the records say -------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str | datetime):
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def drill_restored(details: Mapping[str, Any]) -> bool:
    """Whether a drill restored: the restored server accepted queries (an RTO was measured)
    and every verification of the restored data passed."""
    checks = details.get("verification")
    if _number(details.get("rto_s")) is None or not isinstance(checks, Mapping) or not checks:
        return False
    return all(isinstance(c, Mapping) and c.get("ok") is True for c in checks.values())


def finished(run: Mapping[str, Any]) -> bool:
    """Whether an archived run finished and recorded its result (not killed, not failed)."""
    return not run.get("failed") and not run.get("incomplete") and "finished_at" in run


def verification_restore(run: Mapping[str, Any]) -> datetime | None:
    """When a verification run whose test restore passed finished; None for any other run."""
    figures = run.get("figures") or {}
    if not finished(run) or figures.get("test_restore") is not True:
        return None
    return _time(run.get("finished_at"))


def last_read(state: VerificationState) -> LastRead | None:
    """The objects read intact at the newest read time of the verification state."""
    if not state.objects:
        return None
    newest = max(read.read_at for read in state.objects.values())
    reads = [read for read in state.objects.values() if read.read_at == newest]
    return LastRead(newest, len(reads), sum(read.size for read in reads))


def from_records(
    found: Recoverability, drills: Iterable[Drill], runs: Iterable[Mapping[str, Any]]
) -> Recoverability:
    """``found`` completed from the drills and the verification runs, both newest first."""
    drills = list(drills)
    if drills:
        found.drill_at, details = drills[0]
        found.drill_rto_s = _number(details.get("rto_s"))
        found.drill_rpo_s = _number(details.get("rpo_s"))
    restored = next(((at, d) for at, d in drills if drill_restored(d)), None)
    if restored is not None:
        found.restored_at = restored[0]
        found.restored_by = f"drill {restored[1].get('drill_id')}"
    window_seen = False
    for run in runs:
        if not window_seen and finished(run):
            window_seen = True
            found.window_end = _time((run.get("figures") or {}).get("recovery_window_end"))
        verified = verification_restore(run)
        if verified is not None:
            if found.restored_at is None or verified > found.restored_at:
                found.restored_at = verified
                found.restored_by = f"verification {run.get('run_id')}"
            break
    return found


# --- reads ------------------------------------------------------------------------------------


def drills_query(server: str) -> sql.Composed:
    return DRILLS_SQL.format(server=sql.Literal(server))


def drills_of(rows: Iterable[Sequence[Any]]) -> list[Drill]:
    """(at, details) of the rows of ``DRILLS_SQL`` whose details are an object."""
    return [(at, details) for at, details in rows if isinstance(details, Mapping)]


def read_drills(conn: psycopg.Connection[Any], server: str) -> list[Drill] | Denied | None:
    """This server's drills, newest first; None on a schema whose ``ops.events`` records no
    server (before the history-server revision); Denied for a role without ``ops`` (whose
    name alone PostgreSQL refuses to look up)."""

    def read() -> list[Drill] | None:
        if not journal.has_server_column(conn, "ops.events"):
            return None
        return drills_of(conn.execute(drills_query(server)).fetchall())

    return guarded(conn, read)


def read_last_read(settings: Settings) -> tuple[LastRead | None, str | None]:
    """The last verification's intact reads from the primary's verification state, or why
    they cannot be read."""
    try:
        state, problem = VerificationState.load(repos.primary(settings))
    except (PowropsError, OSError) as exc:
        return None, f"verification state unreadable: {exc}"
    return last_read(state), problem


def objectives_only(settings: Settings) -> Recoverability:
    """The objectives (``recovery.objectives``, always known) and no evidence yet."""
    objectives = settings.recovery.objectives
    return Recoverability(
        objectives.rto.timedelta.total_seconds(), objectives.rpo.timedelta.total_seconds()
    )


def unread(settings: Settings, why: str) -> Recoverability:
    """The objectives alone, for a run that could read no record (``why``): every figure of
    evidence unknown, none made up."""
    found = objectives_only(settings)
    found.evidence_read = False
    found.problems.append(why)
    return found


def gather(
    settings: Settings,
    conn: psycopg.Connection[Any],
    drills_read: Iterable[Sequence[Any]] | None = None,
) -> Recoverability:
    """Every figure of verified recoverability for ``settings.server`` (``drills_read``: the
    rows of ``DRILLS_SQL``, when ``reads.read_all`` read them)."""
    found = objectives_only(settings)
    drills = (
        drills_of(drills_read) if drills_read is not None else read_drills(conn, settings.server)
    )
    if isinstance(drills, Denied):
        found.problems.append(f"drills unreadable: {drills.reason} ({drills.grant})")
    elif drills is None:
        found.problems.append("ops.events records no server: powrops migrate latest")
    found.evidence_read = isinstance(drills, list)
    runs = runs_of(settings.reports_dir, VERIFICATION_REPORT, settings.server)
    from_records(found, drills if isinstance(drills, list) else [], runs)
    found.last_read, problem = read_last_read(settings)
    if problem is not None:
        found.problems.append(problem)
    return found
