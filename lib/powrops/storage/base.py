"""The repository contract every storage backend implements.

A repository is a flat namespace of objects addressed by keys: ``/``-separated relative paths
such as ``backups/20261126T061500F/base.tar.zst``. Backends differ in where the bytes live
(``file://`` a local directory, ``s3://`` a bucket on any S3-compatible service), not in what a
caller can rely on:

- a write is atomic: an object appears complete under its key, or not at all;
- reads of a missing key raise :class:`~powrops.errors.ObjectNotFound`; every other failure is a
  :class:`~powrops.errors.StorageError` whose message names the repository (never credentials);
- listings are recursive and sorted by key (Python string order, which is also S3's UTF-8 byte
  order).

The registry of URL schemes and :func:`~powrops.storage.registry.open_repository` live in
:mod:`powrops.storage.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import urlsplit, urlunsplit

from powrops.errors import EncryptionKeyError, StorageError

if TYPE_CHECKING:
    from powrops.config import Repository as RepositorySettings

#: Part of the name of a file:// write in progress; no key may contain it.
TEMP_MARKER = ".powrops-tmp."
#: S3's limit on the length of a key, in UTF-8 bytes (prefix included).
MAX_KEY_BYTES = 1024
#: Which URL scheme each configured repository kind uses.
KIND_SCHEMES = {"file": "file", "s3": "s3", "gcs": "s3"}


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key, its stored size in bytes and when it was last written."""

    key: str
    size: int
    mtime: datetime | None


def _check_parts(text: str, what: str, parts: Iterable[str]) -> None:
    for part in parts:
        if part in ("", ".", ".."):
            raise StorageError(
                f"invalid {what} {text!r}: empty, '.' and '..' path parts are not allowed"
            )
        if TEMP_MARKER in part:
            raise StorageError(f"invalid {what} {text!r}: {TEMP_MARKER!r} is reserved")


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise StorageError(f"invalid {what} {text!r}: expected a string")
    if text.startswith("/"):
        raise StorageError(f"invalid {what} {text!r}: must be relative (no leading '/')")
    if "\\" in text or "\x00" in text:
        raise StorageError(f"invalid {what} {text!r}: backslashes and NUL are not allowed")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise StorageError(f"invalid {what} {text[:40]!r}...: longer than {MAX_KEY_BYTES} bytes")
    return text


def validate_key(key: object) -> str:
    """The key itself when it is a valid object key, else StorageError saying why."""
    text = _check_text(key, "key")
    if not text:
        raise StorageError("invalid key '': a key must not be empty")
    _check_parts(text, "key", text.split("/"))
    return text


def validate_prefix(prefix: object) -> str:
    """A listing prefix: like a key, but may be empty, end in '/' or end in a partial name."""
    text = _check_text(prefix, "prefix")
    if text:
        parts = text.split("/")
        _check_parts(text, "prefix", parts[:-1])
        if parts[-1] in (".", ".."):
            raise StorageError(f"invalid prefix {text!r}: '.' and '..' are not allowed")
    return text


#: The first bytes of every object client-side encryption writes (see crypto.py).
ENCRYPTED_MAGIC = b"POWRENC1"


def refuse_ciphertext(data: bytes, where: str) -> None:
    """EncryptionKeyError when ``data``, which did not parse, is an object powrops encrypted:
    the repository is read without the key it was written with, nothing is damaged."""
    if data.startswith(ENCRYPTED_MAGIC):
        raise EncryptionKeyError(
            f"{where} is encrypted by powrops but read without a key: set "
            "[backup.storage.encryption] enabled = true with the key_file or key_env it was "
            "written with",
            where=where,
        )


def safe_url(url: str) -> str:
    """The URL with any user name or password replaced by ``***``, fit for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc="***@" + host))


def read_up_to(stream: _Readable, size: int) -> bytes:
    """``size`` bytes of ``stream``, fewer only at its end: a stream's ``read`` may return
    less than asked (a socket, a decrypting reader) before it ends."""
    parts: list[bytes] = []
    while size > 0 and (data := stream.read(size)):
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


class Repository(ABC):
    """A place that stores objects under keys; the contract every backend implements.

    ``url`` identifies the repository without credentials and is safe to print.
    """

    url: str

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: RepositorySettings | None,
        environ: Mapping[str, str],
    ) -> Repository:
        """The repository a URL of this backend's scheme names (used by open_repository)."""
        raise StorageError(f"{cls.__name__} cannot be opened from a URL ({safe_url(url)})")

    def describe(self, key: str) -> str:
        """The key's full location, for messages."""
        return f"{self.url.rstrip('/')}/{key}"

    def failing_fast(self, silence: float) -> Repository:
        """This repository for a caller that retries on its own (the archive command, which
        PostgreSQL runs again): a service that stays silent for ``silence`` seconds fails the
        call at once, without retries. A local repository is returned as it is."""
        return self

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically.

        With ``if_absent`` an existing object is never replaced: ObjectExists is raised instead.
        """

    @abstractmethod
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A streaming writer; the object appears only when the with-block exits cleanly.

        An exception inside the block (or a crash) leaves nothing under ``key`` (an existing
        object stays as it was).
        """

    def get_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFound when it does not exist."""
        with self.open_read(key) as stream:
            return stream.read()

    @abstractmethod
    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A streaming reader; ObjectNotFound when the object does not exist."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size and time, or None when it does not exist."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self.stat(key) is not None

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, sorted by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove several objects; missing keys are not an error."""
        for key in keys:
            self.delete(key)

    def unfinished(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Writes under ``prefix`` that were started and never completed nor aborted (an
        object store's pending multipart uploads, left by a writer that lost the network or
        was killed): no object, but storage the service keeps and bills. Size 0, the time
        the write started. None where every write is one atomic step."""
        return iter(())

    def abort_unfinished(self, prefix: str) -> int:
        """Abort every unfinished write under ``prefix``; how many there were."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
