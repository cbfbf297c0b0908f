"""Work spread over a few threads, for I/O and for C code that releases the GIL
(decompression, subprocess pipes). Imports nothing heavy: the WAL fetch path uses it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def each(work: Callable[[T], R], items: Sequence[T], threads: int) -> list[R | BaseException]:
    """``work(item)`` for every item on at most ``threads`` threads; the results in the
    items' order, an exception in place of a result that raised (the caller decides)."""
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
    for worker in workers:
        worker.join()
    return results  # type: ignore[return-value]
