"""One backup at a time per repository, with a lock that a crashed run does not hold forever.

The lock is an object in the repository (``locks/backup.lock``) created only if absent. It
names its holder (host, pid, label) and carries a heartbeat that the holder refreshes. Another
run takes the lock over only when the holder is provably gone: the same host and its pid no
longer exists, or the heartbeat is older than ``stale_after``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from powrops.backup.model import LOCK_KEY
from powrops.errors import LockError, ObjectExists, ObjectNotFound
from powrops.storage.base import Repository


def _now() -> datetime:
    return datetime.now(UTC)


def _holder(purpose: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "purpose": purpose,
        "acquired_at": _now().isoformat(),
        "heartbeat": _now().isoformat(),
    }


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


def acquire(repo: Repository, purpose: str, stale_after: timedelta) -> dict[str, Any]:
    holder = _holder(purpose)
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
                    f"another backup holds {repo.url}/{LOCK_KEY}: {current.get('purpose')} "
                    f"(pid {current.get('pid')} on {current.get('host')}, since "
                    f"{current.get('acquired_at')}); only one backup runs at a time"
                ) from None
            repo.delete(LOCK_KEY)
    raise LockError(f"could not take the lock {repo.url}/{LOCK_KEY}: it keeps being recreated")


@contextlib.contextmanager
def repository_lock(
    repo: Repository,
    purpose: str,
    *,
    stale_after: timedelta = timedelta(minutes=10),
    heartbeat: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Hold the repository's backup lock for the duration of the block."""
    holder = acquire(repo, purpose, stale_after)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat):
            holder["heartbeat"] = _now().isoformat()
            with contextlib.suppress(Exception):
                repo.put_bytes(LOCK_KEY, json.dumps(holder).encode())

    thread = threading.Thread(target=beat, name="powrops-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        stop.set()
        thread.join(timeout=5)
        current = read_lock(repo)
        if (
            current
            and current.get("pid") == holder["pid"]
            and current.get("host") == holder["host"]
        ):
            repo.delete(LOCK_KEY)
