"""Where verification writes what it must put on disk for a moment: in memory when it fits.

A chain combined for ``pg_verifybackup`` and the WAL segments of a backup's range decompressed
for ``pg_waldump`` are written, read once and thrown away; in memory (``/dev/shm``) that costs a
fraction of the file system's metadata writes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from powrops.config import Settings

MEMORY_SHARE = 4  # a scratch copy in memory may take at most this fraction of what is free


def scratch_dir(settings: Settings, need: int) -> str | None:
    """Where ``need`` bytes are written for a moment (a chain combined for ``pg_verifybackup``,
    WAL decompressed for ``pg_waldump``): ``verification.scratch_dir``, else memory
    (``/dev/shm``) when they fit in a quarter of the memory available, else the system's
    temporary directory. Unpacking thousands of small files is bound by the file system's
    metadata writes; in memory it takes a fraction of the time, and the copy is thrown away
    at once."""
    if settings.verification.scratch_dir:
        return settings.verification.scratch_dir
    shm = Path("/dev/shm")
    try:
        free = shutil.disk_usage(shm).free
        available = _memory_available()
    except OSError:
        return None
    if (
        available is not None
        and need * MEMORY_SHARE <= min(free, available)
        and os.access(shm, os.W_OK)
    ):
        return str(shm)
    return None


def _memory_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
