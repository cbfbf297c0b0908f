"""A count a notebook parameter gives (rows listed, runs shown, days ahead), checked alike by
every runbook and report that takes one, and by ``report run`` and ``powrops runbook`` before
a run starts."""

from __future__ import annotations

from typing import Any

from powrops.errors import ParameterError

#: The largest count a notebook parameter takes (rows listed, runs shown, days ahead): more
#: is no report, and past a bigint the database refuses it (``LIMIT``).
MOST_COUNT = 1_000_000


def check_positive(name: str, value: Any) -> int:
    """A positive integer notebook parameter, or ParameterError naming it."""

    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MOST_COUNT:
        raise ParameterError(
            f"{name} = {value!r}: expected a positive whole number of at most {MOST_COUNT:,}"
        )
    return value
