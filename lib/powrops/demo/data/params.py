"""Seed parameters: what a demo dataset is generated from, their bounds and random streams."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from powrops.errors import SeedError

GENERATOR_VERSION = 1
"""Bumped whenever the same parameters would produce different rows."""

EARLIEST_DATE = date(2020, 1, 1)
"""The validation rules' lower bound for workout dates; natural data never goes before it."""
FIRST_MONDAY = date(2020, 1, 6)
EARLIEST_TODAY = date(2023, 1, 1)
"""Inactive users' histories (over 2 years old) must fit after EARLIEST_DATE."""
MOST_USER_WEEKS = 260_000
"""The most users x weeks one seed generates: its rows are held in memory before they are
loaded, about 5 kB a user-week (10,000 users for 26 weeks: some 1.3 GB); past it a seed run
would take the host's memory, and on a database's host, risk the server's."""


@dataclass(frozen=True)
class SeedParams:
    """What a dataset was generated from. ``identity()`` decides whether a seed run matches."""

    users: int
    weeks: int
    seed: int
    defects: bool
    today: date

    def identity(self) -> dict[str, Any]:
        """The parameters that determine the rows (``today`` only shifts them in time)."""
        return {
            "users": self.users,
            "weeks": self.weeks,
            "seed": self.seed,
            "defects": self.defects,
            "generator": GENERATOR_VERSION,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity(), "today": self.today.isoformat()}

    @property
    def now(self) -> datetime:
        """The instant every generated timestamp is relative to: ``today`` at 00:00 UTC."""
        return datetime.combine(self.today, time.min, tzinfo=UTC)

    def rng(self, purpose: str) -> random.Random:
        """An independent, reproducible random stream for one purpose."""
        return random.Random(f"powrops-demo:{GENERATOR_VERSION}:{self.seed}:{purpose}")


def monday_of(day: date) -> date:
    """The Monday of the week ``day`` falls in."""
    return day - timedelta(days=day.weekday())


def weeks_between(first: date, last: date) -> int:
    return (last - first).days // 7


def validate(params: SeedParams) -> None:
    """Raise SeedError for parameters that cannot give valid data."""
    if params.users < 1:
        raise SeedError(f"users must be at least 1 (got {params.users})")
    if params.today < EARLIEST_TODAY:
        raise SeedError(
            f"today must be {EARLIEST_TODAY} or later (got {params.today}): inactive users' "
            f"histories, over 2 years old, must start after {EARLIEST_DATE}"
        )
    most = weeks_between(FIRST_MONDAY, monday_of(params.today))
    if not 1 <= params.weeks <= most:
        raise SeedError(
            f"weeks must be between 1 and {most} so that no workout is dated before "
            f"{EARLIEST_DATE} (got {params.weeks})"
        )
    if params.users * params.weeks > MOST_USER_WEEKS:
        raise SeedError(
            f"users x weeks must be at most {MOST_USER_WEEKS:,} (got {params.users:,} x "
            f"{params.weeks:,}): the generated rows are held in memory before they are loaded"
        )
    if params.defects and params.users < 10:
        raise SeedError(f"planting defects needs at least 10 users (got {params.users})")
