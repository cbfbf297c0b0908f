"""Work spread over threads: results in order, bounded read-ahead, errors at their place."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from powrops import threads


def _slow_square(value: int) -> int:
    time.sleep(random.uniform(0, 0.002))  # the threads finish out of order
    return value * value


def _alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ordered-")]


def test_ordered_hands_results_on_in_the_items_order() -> None:
    results = list(threads.ordered(_slow_square, iter(range(200)), 4, 8))
    assert results == [n * n for n in range(200)]
    assert list(threads.ordered(_slow_square, iter([]), 4, 8)) == []
    assert not _alive()


def test_ordered_draws_at_most_ahead_items_before_the_caller_takes_them() -> None:
    drawn: list[int] = []

    def items() -> Iterator[int]:
        for n in range(100):
            drawn.append(n)
            yield n

    results = threads.ordered(_slow_square, items(), 3, 5)
    assert next(results) == 0
    time.sleep(0.05)  # time enough for the threads to draw everything they may
    assert len(drawn) == 5  # the one the caller holds and four ahead
    results.close()  # the caller stops: the threads stop too
    assert not _alive() and len(drawn) <= 6


def test_an_error_is_raised_at_its_place_and_the_threads_stop() -> None:
    def work(value: int) -> int:
        if value == 7:
            raise ValueError("seven")
        return value

    seen: list[int] = []
    with pytest.raises(ValueError, match="seven"):
        for value in threads.ordered(work, iter(range(50)), 2, 4):
            seen.append(value)
    assert seen == list(range(7)) and not _alive()

    def items() -> Iterator[int]:
        yield from range(3)
        raise OSError("the stream broke")

    seen.clear()
    with pytest.raises(OSError, match="the stream broke"):
        for value in threads.ordered(_slow_square, items(), 2, 4):
            seen.append(value)
    assert seen == [0, 1, 4] and not _alive()
