"""What a process holds across calls and gives back when it ends before it is done with it.

A drill's scratch cluster is the case: in a runbook, its server runs from the cell that
restores it to the cell that finishes the drill. The holder says how to release it
(:func:`hold`) and lets go once it released it itself (:func:`let_go`). :func:`release_all`
releases what is still held: at the process's exit (a command, or a notebook's kernel shut
down or culled once its page was closed), and when an interrupted report run asks its kernel
to before stopping it (:data:`RELEASE_CODE`, :mod:`powrops.reports.kernel`).
"""

from __future__ import annotations

import atexit
import itertools
from collections.abc import Callable

#: What a kernel is asked to run to release what it holds.
RELEASE_CODE = "import powrops.held\npowrops.held.release_all()"

_held: dict[int, Callable[[], object]] = {}
_tokens = itertools.count(1)


def hold(release: Callable[[], object]) -> int:
    """Register ``release``; the token that lets go of it."""
    token = next(_tokens)
    _held[token] = release
    return token


def let_go(token: int) -> None:
    """The holder released it itself: nothing left to do at the end."""
    _held.pop(token, None)


def release_all() -> None:
    """Release what is still held, newest first; each once, whatever the others do."""
    while _held:
        _, release = _held.popitem()
        try:
            release()
        except Exception as exc:  # the next one is still released
            print(f"powrops: could not release what was held: {exc}")


atexit.register(release_all)
