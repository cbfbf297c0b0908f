"""The restore's error: a restore that started and could not finish."""

from __future__ import annotations

from powrops.errors import EXIT_CRITICAL, BackupError


class RestoreFailed(BackupError):
    """A restore started and could not finish: nothing to restore from, or recovery failed."""

    exit_code = EXIT_CRITICAL
