"""Every human format of a figure: sizes, durations, times, and the progress-line callback.

One place, so that a size reads the same in a report, the index and the CLI. ``result.json``
keeps raw values; only what people read goes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

#: A callback that prints one progress line (``print``, a notebook's display, or a logger);
#: ``None`` where a function takes ``Echo | None`` means quiet.
Echo = Callable[[str], None]

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: float) -> str:
    """A size in binary units, as PostgreSQL's pg_size_pretty counts: 1536 -> '1.5 KiB'."""
    size = float(value)
    for unit in _BINARY_UNITS:
        if abs(size) < 1024 or unit == _BINARY_UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"


def human_duration(seconds: float) -> str:
    """A length of time in the largest units that keep it exact enough to act on:
    '45 s', '12 min', '3 h 12 min', '2 d 3 h'."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def human_time(moment: datetime | None, missing: str = "-") -> str:
    """A moment in UTC to the second: '2026-12-04 01:30:19 UTC'; ``missing`` for None.

    A naive datetime is taken to be UTC already (PostgreSQL's timestamptz arrives aware).
    """
    if moment is None:
        return missing
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_target(target: Mapping[str, Any] | None) -> str | None:
    """The database a run acts on (:class:`powrops.db.Identity` as a dict, as result.json keeps
    it) in one line: 'powr on 127.0.0.1:5432, PostgreSQL 18.1, system 7451..., embedded'.
    None for runs archived before targets were recorded."""
    if not target:
        return None
    where = f"{target.get('host')}:{target['port']}" if target.get("port") else target.get("host")
    parts = [f"{target.get('database')} on {where}"]
    if target.get("server_version"):
        parts.append(f"PostgreSQL {target['server_version']}")
    if target.get("system_identifier"):
        parts.append(f"system {target['system_identifier']}")
    parts.append("embedded" if target.get("embedded") else "configured by database.url")
    return ", ".join(parts)
