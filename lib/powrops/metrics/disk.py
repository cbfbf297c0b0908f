"""The disk the data lives on, as the alerts and the growth forecast read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Disk:
    """The disk the data lives on: used and total bytes, and where the figures come from."""

    used_bytes: int
    capacity_bytes: int
    source: str

    @property
    def percent(self) -> float:
        return 100.0 * self.used_bytes / self.capacity_bytes if self.capacity_bytes else 0.0
