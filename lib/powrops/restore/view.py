"""What the point-in-time restore runbook shows: candidate targets, the plan, next steps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powrops.backup import repos
from powrops.backup.catalog import Catalog
from powrops.backup.reconstruct import chain_of
from powrops.config import Settings
from powrops.db import connect
from powrops.findings import Finding, Severity
from powrops.restore import RecoveryTarget, RestoredCluster, choose_backup
from powrops.restore.checks import RestoredChecks


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
    record = choose_backup(catalog.records(), target)
    chain = [m.label for m in chain_of(catalog, record)]
    wal = sorted(catalog.wal(), key=lambda w: w.name)
    segments = [w for w in wal if len(w.name) == 24 and w.name >= (record.start_wal or "")]
    newest = max((w.archived_at for w in segments), default=None)
    reachable, why = _reachable(target, newest)
    return {
        "backup": record.label,
        "kind": record.kind,
        "chain": chain,
        "backup ends at": record.stop_time.isoformat() if record.stop_time else None,
        "consistent from LSN": record.stop_lsn,
        "WAL needed from": record.start_wal,
        "WAL segments archived since": len(segments),
        "newest WAL archived at": newest.isoformat() if newest else None,
        "reachable": reachable,
        "why": why,
    }


def _reachable(target: RecoveryTarget, newest: datetime | None) -> tuple[bool, str]:
    if target.kind != "time":
        return True, f"{target.describe()}: checked when recovery runs"
    if newest is None:
        return False, "no WAL is archived after the backup"
    if newest <= target.time:
        return False, (
            f"the newest archived WAL ({newest.isoformat()}) is older than the target: force a "
            "WAL switch (SELECT pg_switch_wal()) on the source and wait for it to be archived"
        )
    return True, f"WAL archived until {newest.isoformat()}, after the target"


def next_steps(restored: RestoredCluster) -> list[str]:
    """What a DBA does next to switch the application over."""
    info = restored.conninfo()
    cluster = restored.cluster
    steps = [
        f"The restored server runs on 127.0.0.1:{info['port']} (database {info['dbname']}, "
        "the source's roles and passwords; superuser password in "
        f"{restored.base_dir / 'password'}).",
        "Check the data the incident was about, with the application's read-only role first.",
        "It does not archive WAL: before it serves production, set archive_command "
        "(powrops wal push) and take a full backup from it (powrops backup full).",
        "Stop the application, point its database URL at the restored server (or move the data "
        "directory to the production host), start the application.",
    ]
    if cluster is not None:
        steps.append(f"Stop it by hand: {cluster.ctl_command('stop')}")
    return steps


def verify(restored: RestoredCluster | None, settings: Settings) -> dict[str, Any]:
    """The restored server's checks (amcheck, application state, user access); {} if none."""
    if restored is None or restored.cluster is None or not restored.cluster.is_running():
        return {}

    return RestoredChecks(restored, settings, {}).run()


def show_next_steps(restored: RestoredCluster | None) -> None:
    if restored is None:
        print("Nothing restored.")
        return
    for number, step in enumerate(next_steps(restored), 1):
        print(f"{number}. {step}")


def findings(checks: dict[str, Any]) -> list[Any]:

    return [
        Finding(f"verify.{name}", Severity.OK if data.get("ok") else Severity.CRITICAL, name)
        for name, data in checks.items()
    ]


def destination(settings: Settings, target_dir: str) -> Path:
    return Path(target_dir) if target_dir else default_target_dir(settings)
