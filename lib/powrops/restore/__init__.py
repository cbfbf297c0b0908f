"""Restoring a backup chain into a data directory, to the end of the archive or a point in time.

``restore`` checks the destination and the backup, combines the chain, configures recovery
(WAL through ``powrops wal fetch``, the recovery target, archiving off) and, started, watches
the server replay WAL until it is promoted. ``test_restore`` is the verification's test
restore: the newest backup into a scratch directory, smoke queries, and teardown whatever
happened.

- :mod:`.target`: the recovery target and the command-line options it comes from;
- :mod:`.choose`: which backup a restore starts from;
- :mod:`.prepare`: ``restore``, its checks, and the configuration of the restored directory;
- :mod:`.recovery`: the restored cluster, starting it and awaiting recovery;
- :mod:`.smoke`: the test restore and its smoke queries;
- :mod:`.errors`: ``RestoreFailed``.
"""

from __future__ import annotations

from powrops.restore.choose import choose_backup
from powrops.restore.errors import RestoreFailed
from powrops.restore.prepare import MARKER, check_target_dir, restore
from powrops.restore.recovery import (
    PID_GRACE,
    POLL,
    PROGRESS_EVERY,
    RestoredCluster,
    base_dir_for,
)
from powrops.restore.smoke import DEFAULT_SMOKE, run_smoke, smoke_queries, test_restore
from powrops.restore.target import OPTION, RecoveryTarget, TargetKind

__all__ = [
    "DEFAULT_SMOKE",
    "MARKER",
    "OPTION",
    "PID_GRACE",
    "POLL",
    "PROGRESS_EVERY",
    "RecoveryTarget",
    "RestoreFailed",
    "RestoredCluster",
    "TargetKind",
    "base_dir_for",
    "check_target_dir",
    "choose_backup",
    "restore",
    "run_smoke",
    "smoke_queries",
    "test_restore",
]
