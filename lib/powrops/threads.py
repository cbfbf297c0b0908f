"""Work spread over a few threads, for I/O and for C code that releases the GIL
(decompression, subprocess pipes). Imports nothing heavy: the WAL fetch path uses it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def each(
    work: Callable[[T], R],
    items: Sequence[T],
    threads: int,
    cancel: threading.Event | None = None,
) -> list[R | BaseException]:
    """``work(item)`` for every item on at most ``threads`` threads; the results in the
    items' order, an exception in place of a result that raised (the caller decides).

    Interrupted while it waits (Ctrl-C, SIGTERM), it sets ``cancel``, which the work is to
    check, and waits for the threads before the interrupt goes on: nothing is left writing
    behind the caller's clean-up."""
    results: list[R | BaseException | None] = [None] * len(items)

    def run(indexes: range) -> None:
        for index in indexes:
            try:
                results[index] = work(items[index])
            except BaseException as exc:  # handed back to the caller, in its thread
                results[index] = exc

    count = min(threads, len(items))
    workers = [threading.Thread(target=run, args=(range(i, len(items), count),))
               for i in range(count)]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except BaseException:
        if cancel is not None:
            cancel.set()
        for worker in workers:
            worker.join()
        raise
    return results  # type: ignore[return-value]
