"""Names of archived WAL files and their repository keys; imported by the archive command,
so nothing here imports more than ``re``."""

from __future__ import annotations

import re

SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
PARTIAL_RE = re.compile(r"^([0-9A-F]{24})\.partial$")
HISTORY_RE = re.compile(r"^([0-9A-F]{8})\.history$")
BACKUP_LABEL_RE = re.compile(r"^([0-9A-F]{24})\.([0-9A-F]{8})\.backup$")
WAL_PREFIX = "wal/"


def kind_of(name: str) -> str:
    """Kind of an archived WAL file: segment, partial, history, backup_label or unknown."""
    if SEGMENT_RE.match(name):
        return "segment"
    if PARTIAL_RE.match(name):
        return "partial"
    if HISTORY_RE.match(name):
        return "history"
    if BACKUP_LABEL_RE.match(name):
        return "backup_label"
    return "unknown"


def wal_key(name: str) -> str:
    """Repository key of an archived WAL file (segments grouped by timeline and xlogid)."""
    directory = name[:16] if len(name) >= 24 else name[:8]
    return f"{WAL_PREFIX}{directory}/{name}.zst"


def wal_name_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".zst")
