"""``file://`` repositories: a directory on a local or mounted file system.

URL forms:

- ``file:///var/backups/powr`` — an absolute path;
- ``file://localhost/var/backups/powr`` — the same (RFC 8089's explicit local host);
- ``file://backups/powr`` — a *relative* path (the first path part sits where a URL's host
  would be). The configuration resolves it against its file's folder when it is loaded
  (:func:`powrops.config.validate`), so a configured repository is always absolute; a relative
  URL given to :func:`open_repository` directly resolves against the current working directory.

Percent-escapes in the path are decoded. Directories powrops creates are mode 0700 and objects
are mode 0600: a backup holds every user's data. Run as root in a repository whose directory
belongs to another user (the server's OS user, whose ``archive_command`` writes WAL there), what
powrops creates belongs to that user too, so that the server, and jobs run as that user, can
still enter and read everything root's commands (a backup, a verification, a lock) added.

The repository directory itself is created on the first write if its parent exists; a missing or
unwritable parent is a StorageError naming the path, so a typo in the URL, or a file system that is
not mounted, does not silently create a tree elsewhere. A repository powrops keeps in its state
directory (the default when none is configured) is opened with ``create_below`` the state
directory's parent: the state directory is created with it.

Writes are atomic and durable: the bytes go to a temporary file in the destination directory
(its name contains ``.powrops-tmp.``; listings skip such files), which is fsynced, renamed over
the key (or hard-linked for ``if_absent``, which fails if the key exists) and the directory is
fsynced. A crash leaves at worst a temporary file, never a partial object.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from powrops.errors import ObjectExists, ObjectNotFound, StorageError
from powrops.storage.base import (
    TEMP_MARKER,
    ObjectInfo,
    Repository,
    safe_url,
    validate_key,
    validate_prefix,
)
from powrops.storage.registry import register_scheme

if TYPE_CHECKING:
    from powrops.config import Repository as RepositorySettings

DIR_MODE = 0o700
FILE_MODE = 0o600


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def path_from_url(url: str) -> Path:
    """The absolute directory a ``file://`` URL names (relative ones against the cwd)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StorageError(f"invalid repository URL {safe_url(url)}: {exc}") from None
    if parts.scheme.lower() != "file":
        raise StorageError(f"{safe_url(url)} is not a file:// URL")
    if parts.query or parts.fragment:
        raise StorageError(f"repository URL {safe_url(url)} must not have a query or fragment")
    host = parts.netloc
    if "@" in host:
        raise StorageError(f"repository URL {safe_url(url)} must not contain credentials")
    path = unquote(parts.path)
    text = path if host in ("", "localhost") else unquote(host) + path
    if not text:
        raise StorageError(f"repository URL {safe_url(url)} names no directory")
    return Path(os.path.abspath(text))


def kept_owner(folder: Path) -> tuple[int, int] | None:
    """The uid and gid of ``folder`` when root writes into it and another user owns it: what
    root adds there is given to that user, who goes on entering and writing all of it (the
    server in its repository, the scheduled reports in their archive). None when not root,
    when root owns it, or when it does not exist."""
    if os.geteuid() != 0:
        return None
    try:
        info = folder.stat()
    except OSError:
        return None
    return None if info.st_uid == 0 else (info.st_uid, info.st_gid)


class FileRepository(Repository):
    """A repository in a directory; keys map to files below it."""

    def __init__(
        self, root: str | os.PathLike[str], *, create_below: str | os.PathLike[str] | None = None
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.url = self.root.as_uri()
        # The existing folder below which the first write creates what is missing of the
        # root: the root's parent unless the caller owns more of the path (the state directory).
        self.base = Path(os.path.abspath(create_below)) if create_below else self.root.parent
        if self.base != self.root.parent and self.base not in self.root.parents:
            raise StorageError(f"{self.root} is not below {self.base}", path=self.root)

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: RepositorySettings | None,
        environ: Mapping[str, str],
    ) -> FileRepository:
        return cls(path_from_url(url))

    # --- paths and directories ---------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _mkdir(self, directory: Path) -> None:
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise StorageError(
                    f"cannot create directory {directory}: a file is in the way", path=directory
                ) from None
            return
        except FileNotFoundError:
            raise StorageError(
                f"cannot create directory {directory}: its parent {directory.parent} "
                "does not exist",
                path=directory,
            ) from None
        except OSError as exc:
            raise StorageError(
                f"cannot create directory {directory}: {_reason(exc)}", path=directory
            ) from exc
        os.chmod(directory, DIR_MODE)  # the umask may have narrowed it; never widened
        owner = self._owner()
        if owner is not None:
            os.chown(directory, *owner)
        _fsync_dir(directory.parent)  # the new directory's entry is durable too

    def _create_temp(self, path: Path) -> tuple[int, Path]:
        """A new temporary file beside ``path``, open for writing, mode 0600."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for _ in range(3):
            self._make_parents(path.parent)
            temp = path.with_name(f".{path.name}{TEMP_MARKER}{os.urandom(6).hex()}")
            try:
                fd = os.open(temp, flags, FILE_MODE)
            except FileNotFoundError:
                continue  # a concurrent delete pruned the empty directory: create it again
            except OSError as exc:
                raise StorageError(f"cannot write {path}: {_reason(exc)}", path=path) from exc
            os.fchmod(fd, FILE_MODE)
            owner = self._owner()
            if owner is not None:
                os.fchown(fd, *owner)
            return fd, temp
        raise StorageError(f"cannot write {path}: its directory keeps disappearing", path=path)

    def _owner(self) -> tuple[int, int] | None:
        """Who owns what root creates here: the repository directory's user, when another
        user's (the server's, whose archive_command writes WAL here); else None."""
        return kept_owner(self.root)  # not created yet: root creates it, and keeps it

    def _make_parents(self, directory: Path) -> None:
        try:
            if directory.is_dir():
                return
        except OSError as exc:  # a folder above that this OS user may not enter
            raise StorageError(f"cannot enter {directory}: {_reason(exc)}", path=directory) from exc
        current = self.base
        for part in directory.relative_to(self.base).parts:
            current = current / part
            self._mkdir(current)

    def _commit(self, temp: Path, path: Path, *, if_absent: bool) -> None:
        """Move a complete, fsynced temporary file to its key and make the rename durable."""
        try:
            if if_absent:
                try:
                    os.link(temp, path)
                except FileExistsError:
                    raise ObjectExists(f"{path} already exists", path=path, url=self.url) from None
                finally:
                    os.unlink(temp)
            else:
                os.replace(temp, path)
            _fsync_dir(path.parent)
        except StorageError:
            raise
        except OSError as exc:
            _unlink_quietly(temp)
            raise StorageError(f"cannot write {path}: {_reason(exc)}", path=path) from exc

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, tz=UTC))

    # --- the contract ------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        path = self._path(key)
        if if_absent and self.stat(key) is not None:
            raise ObjectExists(f"{path} already exists", path=path, url=self.url)
        fd, temp = self._create_temp(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            _unlink_quietly(temp)
            raise StorageError(f"cannot write {path}: {_reason(exc)}", path=path) from exc
        except BaseException:
            _unlink_quietly(temp)
            raise
        self._commit(temp, path, if_absent=if_absent)
        return self._info(key, path)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        fd, temp = self._create_temp(path)
        handle = os.fdopen(fd, "wb")
        try:
            yield handle
            if handle.closed:  # the caller closed it early: reopen to make it durable
                handle = open(temp, "ab")  # noqa: SIM115
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        except OSError as exc:
            handle.close()
            _unlink_quietly(temp)
            raise StorageError(f"cannot write {path}: {_reason(exc)}", path=path) from exc
        except BaseException:
            handle.close()
            _unlink_quietly(temp)
            raise
        self._commit(temp, path, if_absent=False)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"{path} does not exist", path=path, url=self.url) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {_reason(exc)}", path=path) from exc

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"{path} does not exist", path=path, url=self.url) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {_reason(exc)}", path=path) from exc
        with handle:
            yield handle

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {path}: {_reason(exc)}", path=path) from exc
        if not os.path.isfile(path):
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, tz=UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = validate_prefix(prefix)
        base = prefix.rpartition("/")[0]
        directory = self.root.joinpath(*base.split("/")) if base else self.root
        yield from self._walk(directory, base + "/" if base else "", prefix)

    def _walk(self, directory: Path, dir_key: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects below ``directory`` in key order: a sub-directory sorts as ``name/``."""
        try:
            with os.scandir(directory) as it:
                entries = [
                    (e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in it
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot list {directory}: {_reason(exc)}", path=directory) from exc
        for name, entry in sorted(entries, key=lambda item: item[0]):
            key = dir_key + name
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif key.startswith(prefix) and TEMP_MARKER not in name and entry.is_file():
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted while we listed
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, tz=UTC))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {path}: {_reason(exc)}", path=path) from exc
        self._prune(path.parent)

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty directories between ``directory`` and the root (not the root)."""
        while directory != self.root and self.root in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty, already gone, or not ours to remove: the delete succeeded
            directory = directory.parent


def _unlink_quietly(path: Path) -> None:
    with suppress(OSError):
        os.unlink(path)


register_scheme("file", FileRepository)
