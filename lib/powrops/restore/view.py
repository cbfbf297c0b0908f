"""What the point-in-time restore runbook shows: candidate targets, the plan, next steps."""

from __future__ import annotations

from pathlib import Path

from powrops.restore import RestoredCluster


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


def show_next_steps(restored: RestoredCluster | None) -> None:
    if restored is None:
        print("Nothing restored.")
        return
    for number, step in enumerate(next_steps(restored), 1):
        print(f"{number}. {step}")


def show_destination(destination: Path | None) -> None:
    """Where the confirmed restore goes; nothing when it was not confirmed (the gate has
    said so: nothing was restored)."""
    if destination is not None:
        print(f"Restoring into {destination}")
