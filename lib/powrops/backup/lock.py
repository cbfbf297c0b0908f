"""One backup at a time per repository, with a lock that a crashed run does not hold forever;
and readers that expiry waits for.

The lock is an object in the repository (``locks/backup.lock``) created only if absent. It
names its holder (host, pid, label) and carries a heartbeat that the holder refreshes. Another
run takes the lock over only when the holder is provably gone: the same host and its pid no
longer exists, or the heartbeat is older than ``stale_after``.

A verification reads what expiry deletes. It marks itself as a reader for as long as it runs
(``locks/readers/<host>-<pid>-<id>``, with a heartbeat like the lock's, so that a crashed
reader's mark goes stale and is removed instead of blocking for ever). Expiry (:func:`deleting`)
takes the lock marked ``deletes`` and deletes only while no live reader's mark is there; it
waits for readers and for the lock, and gives up with a LockError (exit 3) after ``wait``
seconds. A reader (:func:`reading`) writes its mark first and then looks at the lock: while an
expiry holds it, the reader withdraws its mark and waits. Each side writes before it looks, so
one of the two always sees the other: expiry never deletes during a read. Backups (which only
add) and readers run side by side.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from powrops.backup.model import LOCK_KEY, READERS_PREFIX
from powrops.errors import LockError, ObjectExists, ObjectNotFound
from powrops.storage.base import Repository


def _now() -> datetime:
    return datetime.now(UTC)


STALE_AFTER = timedelta(minutes=10)
POLL_S = 0.5  # how often a waiting reader or expiry looks again


def _holder(purpose: str, deletes: bool = False) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "purpose": purpose,
        "deletes": deletes,
        "acquired_at": _now().isoformat(),
        "heartbeat": _now().isoformat(),
    }


def describe(holder: dict[str, Any]) -> str:
    """``purpose (pid N on HOST, since WHEN)``, for messages."""
    return (
        f"{holder.get('purpose')} (pid {holder.get('pid')} on {holder.get('host')}, since "
        f"{holder.get('acquired_at')})"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(holder: dict[str, Any], stale_after: timedelta) -> str | None:
    """Why the lock's holder is gone, or None while it may still be running."""
    if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", 0))):
        return f"process {holder.get('pid')} on this host no longer exists"
    try:
        beat = datetime.fromisoformat(str(holder["heartbeat"]))
    except (KeyError, ValueError):
        return "the lock is unreadable"
    if _now() - beat > stale_after:
        return f"no heartbeat since {beat:%Y-%m-%d %H:%M:%S} UTC"
    return None


def read_lock(repo: Repository) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(repo.get_bytes(LOCK_KEY))
        return data
    except ObjectNotFound:
        return None
    except ValueError:
        return {"heartbeat": "unreadable"}


def acquire(
    repo: Repository, purpose: str, stale_after: timedelta, deletes: bool = False
) -> dict[str, Any]:
    holder = _holder(purpose, deletes)
    body = json.dumps(holder).encode()
    for _ in range(2):
        try:
            repo.put_bytes(LOCK_KEY, body, if_absent=True)
            return holder
        except ObjectExists:
            current = read_lock(repo)
            if current is None:
                continue
            reason = is_stale(current, stale_after)
            if reason is None:
                raise LockError(
                    f"another backup holds {repo.url}/{LOCK_KEY}: {describe(current)}; only "
                    "one backup runs at a time"
                ) from None
            repo.delete(LOCK_KEY)
    raise LockError(f"could not take the lock {repo.url}/{LOCK_KEY}: it keeps being recreated")


@contextlib.contextmanager
def _heartbeat(repo: Repository, key: str, holder: dict[str, Any], every: float) -> Iterator[None]:
    """Refresh ``holder``'s heartbeat in ``key`` every ``every`` seconds during the block."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            holder["heartbeat"] = _now().isoformat()
            with contextlib.suppress(Exception):
                repo.put_bytes(key, json.dumps(holder).encode())

    thread = threading.Thread(target=beat, name="powrops-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextlib.contextmanager
def repository_lock(
    repo: Repository,
    purpose: str,
    *,
    stale_after: timedelta = STALE_AFTER,
    heartbeat: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Hold the repository's backup lock for the duration of the block (to delete, use
    :func:`deleting`, which also waits for readers)."""
    holder = acquire(repo, purpose, stale_after)
    try:
        with _heartbeat(repo, LOCK_KEY, holder, heartbeat):
            yield holder
    finally:
        release(repo, holder)


def release(repo: Repository, holder: dict[str, Any]) -> None:
    """Remove the lock if ``holder`` still holds it."""
    current = read_lock(repo)
    if current and current.get("pid") == holder["pid"] and current.get("host") == holder["host"]:
        repo.delete(LOCK_KEY)


# --- readers, and the expiry that waits for them ------------------------------------------


def readers(repo: Repository, stale_after: timedelta = STALE_AFTER) -> list[dict[str, Any]]:
    """The live readers' marks; a stale one (its process gone, no heartbeat) is removed."""
    live = []
    for info in repo.list(READERS_PREFIX):
        try:
            mark: dict[str, Any] = json.loads(repo.get_bytes(info.key))
        except ObjectNotFound:
            continue  # the reader finished meanwhile
        except ValueError:
            mark = {"heartbeat": "unreadable"}
        if is_stale(mark, stale_after) is not None:
            repo.delete(info.key)
            continue
        live.append(mark)
    return live


def _deleting_holder(repo: Repository, stale_after: timedelta) -> dict[str, Any] | None:
    current = read_lock(repo)
    if current is None or not current.get("deletes") or is_stale(current, stale_after):
        return None
    return current


@contextlib.contextmanager
def reading(
    repo: Repository,
    purpose: str,
    *,
    wait: float,
    stale_after: timedelta = STALE_AFTER,
    heartbeat: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Mark this process as a reader of ``repo`` for the block: expiry deletes nothing
    meanwhile. An expiry already deleting is waited for (its mark withdrawn meanwhile, so that
    expiry can finish), at most ``wait`` seconds, then LockError."""
    holder = _holder(purpose)
    key = f"{READERS_PREFIX}{holder['host']}-{holder['pid']}-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait
    while True:
        repo.put_bytes(key, json.dumps(holder).encode())
        expiry = _deleting_holder(repo, stale_after)
        if expiry is None:
            break
        repo.delete(key)
        if time.monotonic() > deadline:
            raise LockError(
                f"{describe(expiry)} is deleting from {repo.url}; the {purpose} waited "
                f"{wait:.0f} s for it: run it again when expiry is done"
            )
        time.sleep(POLL_S)
    try:
        with _heartbeat(repo, key, holder, heartbeat):
            yield holder
    finally:
        repo.delete(key)


@contextlib.contextmanager
def deleting(
    repo: Repository,
    purpose: str,
    *,
    wait: float,
    stale_after: timedelta = STALE_AFTER,
    heartbeat: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Hold the repository's lock, marked as deleting, with no reader in progress, for the
    block. Readers and the lock (a backup, another expiry) are waited for, at most ``wait``
    seconds; then LockError naming who holds the repository."""
    held = _take_for_deleting(repo, purpose, wait, stale_after)
    try:
        with _heartbeat(repo, LOCK_KEY, held, heartbeat):
            yield held
    finally:
        release(repo, held)


def _take_for_deleting(
    repo: Repository, purpose: str, wait: float, stale_after: timedelta
) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        busy = _busy(repo, purpose, stale_after)
        if busy is None:
            try:
                held = acquire(repo, purpose, stale_after, deletes=True)
            except LockError as exc:
                busy = str(exc)
            else:
                busy = _busy(repo, purpose, stale_after, locked=True)
                if busy is None:  # a reader that marks itself from now on sees us, gives way
                    return held
                release(repo, held)  # a reader came first: let it finish
        if time.monotonic() > deadline:
            raise LockError(f"{purpose} waited {wait:.0f} s and did not start: {busy}")
        time.sleep(POLL_S)


def _busy(
    repo: Repository, purpose: str, stale_after: timedelta, locked: bool = False
) -> str | None:
    """Why ``purpose`` may not delete now, or None."""
    live = readers(repo, stale_after)
    if live:
        return (
            f"a verification is reading {repo.url}: {'; '.join(describe(r) for r in live)}; "
            f"{purpose} deletes nothing while it reads"
        )
    current = None if locked else read_lock(repo)
    if current is not None and is_stale(current, stale_after) is None:
        return f"{repo.url}/{LOCK_KEY} is held by {describe(current)}"
    return None
