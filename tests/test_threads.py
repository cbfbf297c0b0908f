"""Work spread over threads: results in order, bounded read-ahead, errors at their place."""

from __future__ import annotations

import random
import signal
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


def test_an_interrupt_while_the_source_blocks_stops_it_before_the_threads_are_waited_for() -> None:
    """The caller waits for an item while a thread waits on the source (a pipe that a process
    has stopped writing to): an interrupt lands in the generator's wait, and ``stop`` unblocks
    the source before the threads are joined, instead of the join waiting on the source."""
    unblocked = threading.Event()
    stops: list[float] = []

    def items() -> Iterator[int]:
        yield 0
        unblocked.wait(10)  # the stalled pipe: only stop() ends the wait early
        yield 1

    def stop() -> None:
        stops.append(time.monotonic())
        unblocked.set()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    started = time.monotonic()
    try:
        results = threads.ordered(_slow_square, items(), 2, 4, stop=stop)
        assert next(results) == 0
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            next(results)  # waits for item 1, which the source does not give
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(stops) == 1 and time.monotonic() - started < 5
    assert not _alive()


def test_stop_is_not_called_once_every_item_was_handed_on() -> None:
    stops: list[int] = []
    assert list(
        threads.ordered(_slow_square, iter(range(5)), 2, 4, stop=lambda: stops.append(1))
    ) == [
        0,
        1,
        4,
        9,
        16,
    ]
    assert stops == []
