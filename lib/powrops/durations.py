"""Durations, schedules and sizes in the strategy's own spellings.

The strategy writes retention and schedules as "30d", "1h", "15min", "24h", "2 years",
"3 months", "7 days", "daily", "weekly", "monthly" and "indefinite". A calendar year counts as
365 days and a month as 30 days: retention is about "old enough", not calendar arithmetic.
Sizes are written "10GB" or "2GB" and count in binary units, as PostgreSQL's pg_size_pretty does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

_UNITS: dict[str, float] = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "weeks": 7 * 86400,
    "mo": 30 * 86400,
    "month": 30 * 86400,
    "months": 30 * 86400,
    "y": 365 * 86400,
    "yr": 365 * 86400,
    "year": 365 * 86400,
    "years": 365 * 86400,
}
_WORDS: dict[str, float] = {
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
    "monthly": 30 * 86400,
    "quarterly": 91 * 86400,
    "yearly": 365 * 86400,
}
_INDEFINITE = {"indefinite", "indefinitely", "forever", "never"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
EXPECTED_DURATION = (
    'a duration such as "30d", "24h", "15min", "2 years", "3 months", "daily", "weekly" '
    'or "indefinite"'
)
#: The longest finite duration: past it, "indefinite" says what is meant (and a time that
#: many years back or ahead is no date a datetime can hold).
LONGEST_YEARS = 1000
_LONGEST_S = LONGEST_YEARS * _UNITS["years"]
EXPECTED_SIZE = 'a size such as "10GB", "2GB", "512MB" or a number of bytes'


@dataclass(frozen=True)
class Duration:
    """A span of time as written in config; ``seconds`` is None for "indefinite"."""

    text: str
    seconds: float | None

    @classmethod
    def parse(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"expected {EXPECTED_DURATION}")
        if isinstance(value, (int, float)):
            if value < 0:
                raise ValueError(f"expected {EXPECTED_DURATION}, not a negative number")
            return cls._bounded(f"{value}s", float(value))
        text = value.strip()
        lowered = text.lower()
        if lowered in _INDEFINITE:
            return cls(text, None)
        if lowered in _WORDS:
            return cls(text, _WORDS[lowered])
        match = _PATTERN.match(lowered)
        if not match or match.group(2) not in _UNITS:
            raise ValueError(f"expected {EXPECTED_DURATION}")
        return cls._bounded(text, float(match.group(1)) * _UNITS[match.group(2)])

    @classmethod
    def _bounded(cls, text: str, seconds: float) -> Duration:
        if seconds > _LONGEST_S:
            raise ValueError(
                f"expected {EXPECTED_DURATION}, of at most {LONGEST_YEARS} years (got {text!r})"
            )
        return cls(text, seconds)

    @property
    def indefinite(self) -> bool:
        return self.seconds is None

    @property
    def timedelta(self) -> timedelta:
        if self.seconds is None:
            raise ValueError(f"{self.text!r} is indefinite and has no length")
        return timedelta(seconds=self.seconds)

    @property
    def days(self) -> float:
        return self.timedelta.total_seconds() / 86400

    def postgres(self) -> str:
        """The duration as a PostgreSQL setting value in seconds, e.g. ``'900s'``; "indefinite"
        is ``'0'``, which turns a timeout off (``statement_timeout``, ``archive_timeout``)."""
        if self.seconds is None:
            return "0"
        return f"{int(self.timedelta.total_seconds())}s"

    def __str__(self) -> str:
        return self.text


_SIZE_UNITS = {
    "b": 1,
    "": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class Size:
    """A size in bytes as written in config ("10GB")."""

    text: str
    bytes: int

    @classmethod
    def parse(cls, value: Any) -> Size:
        if isinstance(value, Size):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"expected {EXPECTED_SIZE}")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"expected {EXPECTED_SIZE}, not a negative number")
            return cls(str(value), value)
        match = _SIZE.match(value)
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"expected {EXPECTED_SIZE}")
        return cls(value.strip(), int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]))

    def __str__(self) -> str:
        return self.text
