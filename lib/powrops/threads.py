"""Work spread over a few threads, for I/O and for C code that releases the GIL
(decompression, subprocess pipes). Imports nothing heavy: the WAL fetch path uses it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Sequence
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


class _Ordered:
    """The shared state of one :func:`ordered` run."""

    def __init__(self, items: Iterator[object], ahead: int) -> None:
        self.items = items
        self.taking = threading.Lock()  # one thread at a time draws the next item
        self.done = threading.Condition()  # results and the end, for the caller
        self.slots = threading.Semaphore(ahead)
        self.results: dict[int, object] = {}
        self.taken = 0
        self.end: int | None = None  # how many items there were, once known
        self.stopping = False

    def take(self) -> tuple[int, object] | None:
        """The next item and its place; None at the end (or when stopping)."""
        with self.taking:
            if self.stopping or self.end is not None:
                return None
            index = self.taken
            try:
                item: object = next(self.items)
            except StopIteration:
                self.finish(index)
                return None
            except BaseException as exc:  # handed to the caller at its place
                self.put(index, exc)
                self.finish(index + 1)
                return None
            self.taken += 1
            return index, item

    def put(self, index: int, result: object) -> None:
        with self.done:
            self.results[index] = result
            self.done.notify_all()

    def finish(self, end: int) -> None:
        with self.done:
            self.end = end
            self.done.notify_all()

    def handed_on(self, index: int) -> bool:
        """Whether the caller had every item once it asked for item ``index``."""
        with self.done:
            return self.end is not None and index >= self.end

    def wait(self, index: int) -> tuple[bool, object]:
        """(True, result) of item ``index`` once there, (False, None) past the last."""
        with self.done:
            while index not in self.results and (self.end is None or index < self.end):
                self.done.wait()
            if index not in self.results:
                return False, None
            return True, self.results.pop(index)


def ordered(
    work: Callable[[T], R], items: Iterator[T], threads: int, ahead: int,
    stop: Callable[[], object] | None = None,
) -> Generator[R]:  # fmt: skip
    """``work(item)`` for each of ``items`` on ``threads`` threads, yielded in the items' order
    (frames of a stream compressed or decoded side by side, handed on in order).

    The threads draw ``items`` one at a time, in order (reading a stream is the iterator's
    work); at most ``ahead`` items are drawn and not yet handed on, so memory stays bounded. A
    result stays the caller's until it asks for the next one. An exception, of ``work`` or of
    ``items``, is raised in the caller at its place. Closing the generator (an exception or an
    interrupt in the caller) stops the threads and waits for them: nothing is left running.
    Before it waits, ``stop`` (when given) unblocks what ``items`` may be waiting on (a
    process writing into the pipe a thread reads the next item from), unless every item was
    handed on."""
    state = _Ordered(items, max(ahead, threads))

    def run() -> None:
        while True:
            state.slots.acquire()
            taken = state.take()
            if taken is None:
                state.slots.release()
                return
            index, item = taken
            try:
                result: object = work(item)  # type: ignore[arg-type]
            except BaseException as exc:  # handed to the caller at its place
                result = exc
            state.put(index, result)

    workers = [threading.Thread(target=run, name=f"ordered-{i}", daemon=True)
               for i in range(max(threads, 1))]  # fmt: skip
    for worker in workers:
        worker.start()
    index = 0
    try:
        while True:
            there, result = state.wait(index)
            if not there:
                return
            if isinstance(result, BaseException):
                raise result
            yield result  # type: ignore[misc]
            state.slots.release()
            index += 1
    finally:
        state.stopping = True
        if stop is not None and not state.handed_on(index):
            stop()
        for _ in workers:
            state.slots.release()
        for worker in workers:
            worker.join()
