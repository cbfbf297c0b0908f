"""What the point-in-time restore runbook reads before and after a restore: recent audit
events, the plan (which backup, whether the archive reaches the target), the destination, and
the checks of the restored server. :mod:`powrops.restore.view` shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from powrops.alerts.recoverability import read_drills
from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.expiry import ArchivedWal
from powrops.backup.model import BackupRecord
from powrops.backup.reconstruct import chain_of
from powrops.config import Settings
from powrops.db import connect
from powrops.errors import ParameterError, PowropsError
from powrops.findings import Finding, Severity
from powrops.format import human_bytes, human_seconds, human_time
from powrops.pg.privileges import Denied
from powrops.restore import RecoveryTarget, RestoredCluster, choose_backup
from powrops.restore.checks import RestoredChecks
from powrops.restore.choose import restorable
from powrops.restore.errors import RestoreFailed


def recent_events(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """Recent audit events (data changes and system changes) to pick a target from.

    Only ids, tables, actions and times: never the old or new values, which may hold personal
    data.
    """

    with connect(settings, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT occurred_at, actor, action, table_name, row_id FROM audit_log "
            "ORDER BY occurred_at DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return [
        {"time": r[0].isoformat(), "actor": r[1], "action": r[2], "table": r[3], "row id": r[4]}
        for r in rows
    ]


def default_target_dir(settings: Settings) -> Path:
    """``<state dir>/restores/<UTC timestamp>``, its parent created (traversable)."""
    parent = settings.state_dir / "restores"
    parent.mkdir(parents=True, exist_ok=True)
    parent.chmod(0o755)
    return parent / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def plan(settings: Settings, target: RecoveryTarget) -> dict[str, Any]:
    """Which backup and WAL the target needs, and whether the archive can reach it."""

    catalog = Catalog(repos.primary(settings))
    records = catalog.records()
    try:
        record = choose_backup(records, target)
    except RestoreFailed as exc:
        raise ParameterError(_unreachable(target, restorable(records))) from exc
    members = chain_of(catalog, record)
    chain = [m.label for m in members]
    wal = sorted(catalog.wal(), key=lambda w: w.name)
    segments = [w for w in wal if len(w.name) == 24 and w.name >= (record.start_wal or "")]
    newest = max((w.archived_at for w in segments), default=None)
    reachable, why = _reachable(target, newest)
    replay = _replayed(segments, target)
    sizes = catalog.wal_objects()
    wal_stored = sum(sizes[w.name].size for w in replay if w.name in sizes)
    backup_stored = sum(m.stored_size for m in members)
    return {
        "backup": record.label,
        "kind": record.kind,
        "chain": chain,
        "backup ends at": record.stop_time.isoformat() if record.stop_time else None,
        "consistent from LSN": record.stop_lsn,
        "WAL needed from": record.start_wal,
        "WAL segments archived since": len(segments),
        "newest WAL archived at": newest.isoformat() if newest else None,
        "WAL segments to replay": len(replay),
        "to read from the repository": (
            f"{human_bytes(backup_stored + wal_stored)} stored (backup "
            f"{human_bytes(backup_stored)}, WAL {human_bytes(wal_stored)})"
        ),
        "to write (data directory)": human_bytes(members[0].raw_size),
        "how long (restore, last drill)": last_drill_time(settings),
        "reachable": reachable,
        "why": why,
    }


def last_drill_time(settings: Settings) -> str:
    """How long a restore takes here, as the newest recovery drill of this server that reached
    a running server measured it (restore start to accepting queries: its RTO), naming that
    drill; or that none did."""
    try:
        with connect(settings, autocommit=True) as conn:
            drills = read_drills(conn, settings.server)
    except (PowropsError, psycopg.Error) as exc:  # the plan itself reads only the repository
        return f"not known: the drills kept in ops.events cannot be read ({exc})"
    if isinstance(drills, Denied):
        return f"not known: the drills kept in ops.events cannot be read ({drills.reason})"
    measured = [(at, d) for at, d in drills or [] if d.get("rto_s") is not None]
    if not measured:
        return "not measured: no recovery drill of this server reached a running server yet"
    at, details = measured[0]
    return (
        f"{human_seconds(details['rto_s'])} to accept queries in drill {details.get('drill_id')} "
        f"({human_time(at)}, backup {details.get('label')})"
    )


def _replayed(segments: list[ArchivedWal], target: RecoveryTarget) -> list[ArchivedWal]:
    """The archived segments recovery reads from the backup to ``target``: to a time, those up
    to the first archived after it (which holds the commit that ends recovery); else all."""
    if target.kind != "time":
        return segments
    after = [i for i, w in enumerate(segments) if w.archived_at > target.time]
    return segments[: after[0] + 1] if after else segments


def _unreachable(target: RecoveryTarget, usable: list[BackupRecord]) -> str:
    """Why no backup can reach ``target``, in the runbook's terms (its parameters)."""
    if not usable:
        return (
            "no backup to restore from: the repository holds no successful backup "
            "(take one with powrops backup full)"
        )
    oldest = usable[0]
    if target.kind == "time":
        when = target.time.astimezone(UTC).isoformat(sep=" ").replace("+00:00", " UTC")
        return (
            f"target_time {when} is before every backup: the oldest, {oldest.label}, ends at "
            f"{human_time(oldest.stop_time)}. Set target_time in the parameters cell to a "
            "later time (or leave it empty for the end of the archived WAL)."
        )
    return (
        f"target_lsn {target.value} is before every backup: the oldest, {oldest.label}, ends at "
        f"LSN {oldest.stop_lsn}. Set target_lsn in the parameters cell to a later position."
    )


def require_reachable(found: dict[str, Any]) -> None:
    """Stop the runbook (one message, no traceback) when the archive cannot reach the target."""
    if not found["reachable"]:
        raise RestoreFailed(f"the target cannot be reached: {found['why']}")


def _reachable(target: RecoveryTarget, newest: datetime | None) -> tuple[bool, str]:
    if target.kind != "time":
        return True, f"{target.describe()}: checked when recovery runs"
    future = target.not_yet()
    if future is not None:
        return False, future.in_notebook()
    if newest is None:
        return False, "no WAL is archived after the backup"
    if newest <= target.time:
        return False, (
            f"the newest archived WAL ({human_time(newest)}) is older than the target: force a "
            "WAL switch (SELECT pg_switch_wal()) on the source and wait for it to be archived"
        )
    return True, f"WAL archived until {human_time(newest)}, after the target"


def verify(restored: RestoredCluster | None, settings: Settings) -> dict[str, Any]:
    """The restored server's checks (amcheck, application state, user access); {} if none."""
    if restored is None or restored.cluster is None or not restored.cluster.is_running():
        return {}

    return RestoredChecks(restored, settings, {}).run()


def destination(settings: Settings, target_dir: str) -> Path:
    """Where the restore runbook restores: ``target_dir``, else a new folder of the state dir."""
    return given_target_dir(target_dir) or default_target_dir(settings)


def given_target_dir(target_dir: str) -> Path | None:
    """The runbook's ``target_dir`` as a path (None when empty), refused unless absolute: a
    runbook's kernel does not run where the DBA typed the command (by hand it runs in its run
    folder, under ``report run`` in the project), so a relative path would name another
    folder than the one ``powrops runbook`` checked, by hand one inside the report archive."""
    if not target_dir:
        return None
    path = Path(target_dir).expanduser()
    if not path.is_absolute():
        raise ParameterError(
            f"target_dir {target_dir!r} is a relative path: give an absolute one (the "
            "runbook's kernel runs elsewhere than your shell), or leave it empty for a new "
            "folder of the state dir",
            parameter="target_dir",
        )
    return path


def check_findings(checks: dict[str, Any]) -> list[Finding]:
    """A finding per check of the restored copy (:func:`verify`): OK or CRITICAL."""
    return [
        Finding(f"verify.{name}", Severity.OK if data.get("ok") else Severity.CRITICAL, name)
        for name, data in checks.items()
    ]
