"""Can the server's OS user reach a path? Check it, and grant just the traversal it lacks.

PostgreSQL refuses to run as root, so as root powrops runs the server programs as an
unprivileged OS user. That user must be able to traverse every directory above the cluster
and the interpreter that runs ``powrops wal push``. A checkout in a 0700 home (``/root``) is
the common case where it cannot: there powrops adds one POSIX ACL entry per blocking directory,
``user:<os user>:--x`` (traverse, no listing, no reading), and says so. Where ACLs cannot be set
(a file system without them), :func:`check_reachable` fails with a message naming the directory.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from powrops.errors import ClusterError

_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_EXECUTE = 0o1
_READ = 0o4


class Account(Protocol):
    """Who must get through: the OS user (:class:`powrops.pg.cluster.OsUser`)."""

    @property
    def name(self) -> str: ...

    @property
    def uid(self) -> int: ...

    @property
    def gid(self) -> int: ...


def _may_enter(path: Path, who: Account) -> bool:
    """Whether ``who`` may traverse ``path`` by its mode bits or an ACL entry naming it."""
    return _may(path, who, _EXECUTE)


def _may(path: Path, who: Account, right: int) -> bool:
    """Whether ``who`` has ``right`` (1 execute, 4 read) on ``path`` by its mode bits or an
    ACL entry naming it (root, which the server never runs as, is not considered)."""
    info = path.stat()
    if info.st_uid == who.uid:
        return bool(info.st_mode & (right << 6))
    entries = _acl_entries(path)
    named = [perm for tag, perm, ident in entries if tag == _USER and ident == who.uid]
    if named:
        mask = [perm for tag, perm, _ in entries if tag == _MASK]
        return bool(named[0] & (mask[0] if mask else 0o7) & right)
    if info.st_gid == who.gid:
        return bool(info.st_mode & (right << 3))
    return bool(info.st_mode & right)


def unreadable_by(path: Path, who: Account) -> str | None:
    """Why ``who`` cannot read the file ``path`` (a folder above it it cannot enter, or the
    file's own mode), or None when it can (or ``who`` is this process's user)."""
    if who.uid == os.geteuid():
        return None
    blocked = blocking_dirs(path.parent, who)
    if blocked:
        return f"it cannot enter {blocked[0]}"
    try:
        if _may(path, who, _READ):
            return None
        info = path.stat()
    except OSError as exc:
        return f"{exc.strerror or exc}"
    return f"mode {oct(info.st_mode & 0o777)}, owner uid {info.st_uid}"


def blocking_dirs(path: Path, who: Account) -> list[Path]:
    """The directories above ``path`` (and ``path`` if it is one) that ``who`` cannot enter."""
    candidates = [*reversed(path.absolute().parents)]
    if path.is_dir():
        candidates.append(path.absolute())
    blocked = []
    for folder in candidates:
        try:
            if not _may_enter(folder, who):
                blocked.append(folder)
        except OSError:
            continue
    return blocked


def check_reachable(path: Path, who: Account) -> None:
    """Fail clearly when ``who`` cannot traverse every directory above ``path``."""
    if who.uid == os.geteuid():
        return
    for folder in blocking_dirs(path, who)[:1]:
        mode = folder.stat().st_mode & 0o777
        raise ClusterError(
            f"the PostgreSQL OS user {who.name!r} cannot enter {folder} (mode {oct(mode)}); "
            "put the state directory under a path every user can traverse, grant that user "
            f"traversal (setfacl -m u:{who.name}:x {folder}), or run powrops as that user"
        )


def grant_traversal(
    path: Path, who: Account, say: Callable[[str], None] | None = None
) -> list[Path]:
    """Give ``who`` traversal of each directory above ``path`` that it cannot enter.

    Only root may, and only root runs the server as another user; elsewhere nothing changes.
    Returns the directories granted; ``say`` is told about each. A directory whose file system
    has no ACLs is left as it is (``check_reachable`` then names it).
    """
    if os.geteuid() != 0 or who.uid == 0:
        return []
    granted = []
    for folder in blocking_dirs(path, who):
        try:
            _add_user_entry(folder, who.uid, _EXECUTE)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM, errno.EROFS):
                continue
            raise
        granted.append(folder)
        if say is not None:
            say(
                f"granted the PostgreSQL OS user {who.name!r} traversal of {folder} "
                f"(ACL user:{who.name}:--x; nothing else changes)"
            )
    return granted


# --- POSIX ACLs as the kernel stores them in the system.posix_acl_access attribute ---------


def _acl_entries(path: Path) -> list[tuple[int, int, int]]:
    """(tag, permissions, id) of ``path``'s access ACL; from its mode when it has none."""
    try:
        blob = os.getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        mode = path.stat().st_mode
        return [
            (_USER_OBJ, (mode >> 6) & 7, _NO_ID),
            (_GROUP_OBJ, (mode >> 3) & 7, _NO_ID),
            (_OTHER, mode & 7, _NO_ID),
        ]
    count = (len(blob) - 4) // 8
    return [struct.unpack_from("<HHI", blob, 4 + 8 * i) for i in range(count)]


def _add_user_entry(path: Path, uid: int, perm: int) -> None:
    entries = [e for e in _acl_entries(path) if e[0] != _MASK]
    current = [p for tag, p, ident in entries if tag == _USER and ident == uid]
    entries = [e for e in entries if not (e[0] == _USER and e[2] == uid)]
    entries.append((_USER, (current[0] if current else 0) | perm, uid))
    group_class = [p for tag, p, _ in entries if tag in (_USER, _GROUP_OBJ, _GROUP)]
    mask = 0
    for bits in group_class:
        mask |= bits
    entries.append((_MASK, mask, _NO_ID))
    entries.sort(key=lambda e: (e[0], e[2] if e[0] in (_USER, _GROUP) else 0))
    blob = struct.pack("<I", _ACL_VERSION)
    blob += b"".join(struct.pack("<HHI", tag, p, ident) for tag, p, ident in entries)
    os.setxattr(path, _ACL_XATTR, blob)
