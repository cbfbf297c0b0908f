"""Backup verification: can we restore, and to when? With evidence.

``verify(settings)`` checks every backup in the configured repositories and returns a
:class:`VerificationReport` (findings, one row per backup, WAL coverage per timeline,
recoverability windows, freshness figures, the optional test restore) that the CLI, JSON
results and notebooks render alike:

- repository checksums: every stored file read back from the primary and the secondary and
  compared with the SHA-256 its record holds; every archived WAL object decompressed to the end;
- ``pg_verifybackup`` on each backup's data directory, reconstructed with its chain combined;
- WAL continuity from each backup's start to the newest archived segment, per timeline, with gaps
  named by segment and timeline history files checked;
- freshness against ``backup.schedule`` and ``pg_stat_archiver``, and failed backup runs against
  ``alerts.failed_backups``;
- each backup's recoverability window: its consistency point to the last contiguous WAL;
- optionally a test restore into a scratch cluster (``restore=True``).
"""

from __future__ import annotations

from powrops.verify.continuity import Gap, TimelineCoverage
from powrops.verify.report import BackupRow, Freshness, RecoveryWindow, VerificationReport
from powrops.verify.runner import verify

__all__ = [
    "BackupRow",
    "Freshness",
    "Gap",
    "RecoveryWindow",
    "TimelineCoverage",
    "VerificationReport",
    "verify",
]
