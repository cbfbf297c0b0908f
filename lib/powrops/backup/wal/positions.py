"""WAL positions and file names: pure functions, no I/O.

An LSN is written ``X/Y`` (two hex numbers of up to 8 digits). A WAL segment file is named
``TTTTTTTTXXXXXXXXYYYYYYYY``: timeline, then the segment number split in two at 2^32 bytes.
With the default 16 MiB segments there are 256 segments per "xlogid".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from powrops.backup.wal.names import BACKUP_LABEL_RE as BACKUP_LABEL_RE
from powrops.backup.wal.names import HISTORY_RE as HISTORY_RE
from powrops.backup.wal.names import PARTIAL_RE as PARTIAL_RE
from powrops.backup.wal.names import SEGMENT_RE as SEGMENT_RE
from powrops.backup.wal.names import kind_of as kind_of

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text: str) -> int:
    """'0/3000028' -> 50331688."""
    match = LSN_RE.match(text.strip())
    if not match:
        raise ValueError(f"not an LSN: {text!r} (expected X/Y in hex)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def segments_per_xlogid(segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return 0x100000000 // segment_size


@dataclass(frozen=True, order=True)
class Segment:
    """One WAL segment: timeline and segment number."""

    timeline: int
    number: int
    segment_size: int = DEFAULT_SEGMENT_SIZE

    @property
    def name(self) -> str:
        per = segments_per_xlogid(self.segment_size)
        return f"{self.timeline:08X}{self.number // per:08X}{self.number % per:08X}"

    @property
    def start_lsn(self) -> int:
        return self.number * self.segment_size

    def next(self) -> Segment:
        return Segment(self.timeline, self.number + 1, self.segment_size)

    def __str__(self) -> str:
        return self.name


def parse_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    match = SEGMENT_RE.match(name)
    if not match:
        raise ValueError(f"not a WAL segment name: {name!r}")
    timeline, high, low = (int(g, 16) for g in match.groups())
    return Segment(timeline, high * segments_per_xlogid(segment_size) + low, segment_size)


def segment_of(lsn: int, timeline: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    """The segment holding ``lsn`` on ``timeline``."""
    return Segment(timeline, lsn // segment_size, segment_size)


def segment_range(first: Segment, last: Segment) -> Iterator[Segment]:
    """Every segment from ``first`` to ``last`` inclusive (same timeline)."""
    if first.timeline != last.timeline:
        raise ValueError("a segment range spans one timeline")
    for number in range(first.number, last.number + 1):
        yield Segment(first.timeline, number, first.segment_size)
